//! Inline SVG charts, rendered on the server: no script, they scale with their container.

use maud::{html, Markup, PreEscaped};

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 10.0;

/// One bar: its x label (e.g. `#123` for a block) and value.
pub struct Bar {
    pub label: String,
    pub value: f64,
}

/// A bar chart with a zero baseline, a max gridline labelled with `unit`, and the first and last
/// x labels. `title` is its accessible name.
pub fn bar_chart(title: &str, unit: &str, bars: &[Bar]) -> Markup {
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let scale_max = nice_ceiling(max);
    let plot_w = WIDTH - LEFT - 4.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = if bars.is_empty() {
        plot_w
    } else {
        plot_w / bars.len() as f64
    };
    let bar_w = (slot * 0.75).max(1.0);
    let mut body = String::new();
    for (i, bar) in bars.iter().enumerate() {
        let h = if scale_max > 0.0 {
            bar.value / scale_max * plot_h
        } else {
            0.0
        };
        let x = LEFT + i as f64 * slot + (slot - bar_w) / 2.0;
        let y = TOP + plot_h - h;
        body.push_str(&format!(
            r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}"><title>{}: {} {unit}</title></rect>"#,
            bar.label,
            trim_number(bar.value),
        ));
    }
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title)
            preserveAspectRatio="none" {
            title { (title) }
            line.axis x1=(LEFT) y1=(TOP + plot_h) x2=(WIDTH - 4.0) y2=(TOP + plot_h) {}
            line.grid x1=(LEFT) y1=(TOP) x2=(WIDTH - 4.0) y2=(TOP) {}
            text.tick x=(LEFT - 6.0) y=(TOP + 4.0) text-anchor="end" { (trim_number(scale_max)) " " (unit) }
            text.tick x=(LEFT - 6.0) y=(TOP + plot_h) text-anchor="end" { "0" }
            @if let (Some(first), Some(last)) = (bars.first(), bars.last()) {
                text.tick x=(LEFT) y=(HEIGHT - 4.0) text-anchor="start" { (first.label) }
                text.tick x=(WIDTH - 4.0) y=(HEIGHT - 4.0) text-anchor="end" { (last.label) }
            }
            (PreEscaped(body))
        }
    }
}

/// The smallest of 1, 2, 5 × 10^k at or above `value` (at least 1).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= value)
        .unwrap_or(10.0 * magnitude)
}

fn trim_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(1001.0), 2000.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
    }

    #[test]
    fn renders_one_rect_per_bar() {
        let bars: Vec<Bar> = (0..5)
            .map(|i| Bar {
                label: format!("#{i}"),
                value: i as f64,
            })
            .collect();
        let svg = bar_chart("t", "tx", &bars).into_string();
        assert_eq!(svg.matches("<rect").count(), 5);
        assert!(svg.contains("#4"));
    }
}
