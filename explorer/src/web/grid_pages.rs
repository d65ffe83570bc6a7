//! HTML of the grid pages.

use super::{
    charts::{bar_chart, Bar},
    format::{bytes, url_component, utc_time},
    grid::{NodesView, TwinsView},
    pages::{account_link, block_link, card, json_value, layout, pager},
};
use crate::{
    grid_query::{FarmRow, GridTotals, MeshView, NodeDetail, NodeSort, NodeStatusFilter},
    query::Paged,
};
use gridchain_runtime::{
    reservations::{Reservation, WorkloadSpec, WorkloadState},
    tfgrid::{Resources, GIB},
};
use maud::{html, Markup};

fn node_link(id: u32) -> Markup {
    html! { a href=(format!("/node/{id}")) { "node " (id) } }
}

fn status_badge(status: &str) -> Markup {
    let class = match status {
        "up" | "deployed" | "ok" => "badge ok",
        "down" | "failed" | "error" | "deleted" => "badge fail",
        _ => "badge",
    };
    html! { span class=(class) { (status) } }
}

fn variant(value: impl serde::Serialize) -> String {
    crate::db::variant_name(&serde_json::to_value(value).unwrap_or_default())
}

fn resources_cells(r: &Resources) -> Markup {
    html! {
        td { (r.cru) } td { (bytes(r.mru)) } td.hide-narrow { (bytes(r.sru)) } td.hide-narrow { (bytes(r.hru)) }
    }
}

/// Home page cards for the grid.
pub fn grid_cards(t: &GridTotals) -> Markup {
    let used = |used: u64, total: u64, f: fn(u64) -> String| {
        html! {
            (f(used)) span.muted { " / " (f(total)) }
        }
    };
    html! {
        (card("Twins", None, html! { a href="/twins" { (t.twins) } }))
        (card("Farms", None, html! { a href="/farms" { (t.farms) } }))
        (card("Nodes up", None, html! { a href="/nodes?status=up" { (t.nodes_up) } span.muted { " / " a href="/nodes" { (t.nodes) } } }))
        (card("Reservations", None, html! { a href="/reservations" { (t.active_reservations) } span.muted { " active" } }))
        (card("CPU used", None, used(t.reserved.cru, t.total.cru, |c| format!("{c}"))))
        (card("Memory used", None, used(t.reserved.mru, t.total.mru, bytes)))
        (card("SSD used", None, used(t.reserved.sru, t.total.sru, bytes)))
        (card("HDD used", None, used(t.reserved.hru, t.total.hru, bytes)))
    }
}

pub fn farms(rows: &[FarmRow]) -> Markup {
    layout(
        "Farms",
        "/api/farms",
        html! {
            h1 { "Farms" }
            div.table-wrap {
                table {
                    thead { tr { th { "Farm" } th { "Name" } th { "Nodes up" } th.hide-narrow { "Owner" } th.hide-narrow { "Payout" } th { "Public IPs" } th.hide-narrow { "Pricing" } } }
                    tbody {
                        @for f in rows {
                            tr {
                                td { (f.farm.id) }
                                td { a href=(format!("/nodes?farm={}", f.farm.id)) { (f.farm.name) } }
                                td { (f.nodes_up) span.muted { " / " (f.nodes) } }
                                td.hide-narrow { (account_link(&f.farm.owner.to_string())) }
                                td.hide-narrow { (account_link(&f.farm.payout.to_string())) }
                                td { (f.farm.public_ips.iter().filter(|ip| ip.reservation.is_none()).count()) span.muted { " free / " (f.farm.public_ips.len()) } }
                                td.hide-narrow { "policy " (f.farm.pricing_policy_id) }
                            }
                        }
                        @if rows.is_empty() { tr { td colspan="7" .muted { "No farms yet." } } }
                    }
                }
            }
        },
    )
}

fn capacity_chart(view: &NodesView) -> Markup {
    let bars: Vec<Bar> = view
        .capacity
        .iter()
        .map(|s| Bar {
            label: format!("#{}", s.block_number),
            value: if s.total.mru == 0 {
                0.0
            } else {
                s.reserved.mru as f64 * 100.0 / s.total.mru as f64
            },
        })
        .collect();
    html! {
        figure {
            figcaption { "Grid memory reserved, % of total, last " (bars.len()) " snapshots" }
            (bar_chart("Grid memory reserved over time", "%", &bars))
        }
    }
}

pub fn nodes(view: &NodesView) -> Markup {
    let q = &view.query;
    let gib = |b: u64| {
        if b == 0 {
            String::new()
        } else {
            (b / GIB).to_string()
        }
    };
    let base = {
        let mut parts = Vec::new();
        if let Some(f) = q.farm {
            parts.push(format!("farm={f}"));
        }
        if let Some(s) = q.status {
            parts.push(format!("status={}", s.name()));
        }
        for (name, v) in [
            ("minCru", q.min_free.cru.to_string()),
            ("minMruGib", gib(q.min_free.mru)),
            ("minSruGib", gib(q.min_free.sru)),
            ("minHruGib", gib(q.min_free.hru)),
        ] {
            if !v.is_empty() && v != "0" {
                parts.push(format!("{name}={v}"));
            }
        }
        parts
    };
    let sort_link = |sort: NodeSort| {
        let descending = q.sort == sort && !q.descending;
        let mut parts = base.clone();
        parts.push(format!("sort={}", sort.name()));
        if descending {
            parts.push("order=desc".into());
        }
        format!("/nodes?{}", parts.join("&"))
    };
    let header = |label: &str, sort: NodeSort| {
        let arrow = match (q.sort == sort, q.descending) {
            (true, false) => " ▲",
            (true, true) => " ▼",
            _ => "",
        };
        html! { a href=(sort_link(sort)) { (label) (arrow) } }
    };
    let mut page_base = base.clone();
    page_base.push(format!("sort={}", q.sort.name()));
    if q.descending {
        page_base.push("order=desc".into());
    }
    let page_base = format!("/nodes?{}", page_base.join("&"));
    let n = &view.nodes;
    layout(
        "Nodes",
        &format!("/api{}&page={}", page_base, n.page),
        html! {
            h1 { "Nodes" }
            form.filters action="/nodes" method="get" {
                label { "Farm " input type="number" name="farm" min="0" value=[q.farm]; }
                label { "Status "
                    select name="status" {
                        option value="" { "any" }
                        @for s in NodeStatusFilter::ALL {
                            option value=(s.name()) selected[q.status == Some(s)] { (s.name()) }
                        }
                    }
                }
                label { "Free cores ≥ " input type="number" name="minCru" min="0" value=(q.min_free.cru); }
                label { "Free memory ≥ " input type="number" name="minMruGib" min="0" value=(gib(q.min_free.mru)) placeholder="GiB"; }
                label { "Free SSD ≥ " input type="number" name="minSruGib" min="0" value=(gib(q.min_free.sru)) placeholder="GiB"; }
                label { "Free HDD ≥ " input type="number" name="minHruGib" min="0" value=(gib(q.min_free.hru)) placeholder="GiB"; }
                input type="hidden" name="sort" value=(q.sort.name());
                @if q.descending { input type="hidden" name="order" value="desc"; }
                button type="submit" { "Filter" }
            }
            p.muted { "Matching nodes: " (n.total) }
            div.table-wrap {
                table {
                    thead { tr {
                        th { (header("Node", NodeSort::Id)) }
                        th { (header("Farm", NodeSort::Farm)) }
                        th { (header("Status", NodeSort::Status)) }
                        th { (header("Free cores", NodeSort::FreeCru)) }
                        th { (header("Free memory", NodeSort::FreeMru)) }
                        th.hide-narrow { (header("Free SSD", NodeSort::FreeSru)) }
                        th.hide-narrow { (header("Free HDD", NodeSort::FreeHru)) }
                        th.hide-narrow { (header("Last proof", NodeSort::LastProof)) }
                    } }
                    tbody {
                        @for node in &n.items {
                            tr {
                                td { (node_link(node.id)) }
                                td { a href=(format!("/nodes?farm={}", node.farm_id)) { (node.farm_name.as_deref().unwrap_or("?")) } }
                                td { (status_badge(&node.status)) }
                                (resources_cells(&node.free))
                                td.hide-narrow.time { @match node.last_proof_ms { Some(t) => (utc_time(t)), None => "never" } }
                            }
                        }
                        @if n.items.is_empty() { tr { td colspan="8" .muted { "No node matches." } } }
                    }
                }
            }
            (pager_with_query(&page_base, n.page, n.pages))
            section.charts { (capacity_chart(view)) }
        },
    )
}

/// Like [`pager`] for a base that already has a query string.
fn pager_with_query(base: &str, page: u64, pages: u64) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager {
                @if page > 1 { a href=(format!("{base}&page={}", page - 1)) { "← Previous" } }
                span.muted { "page " (page) " of " (pages) }
                @if page < pages { a href=(format!("{base}&page={}", page + 1)) { "Next →" } }
            }
        }
    }
}

fn percent(p: Option<f64>) -> Markup {
    html! { @match p { Some(p) => (format!("{p:.1} %")), None => span.muted { "—" } } }
}

pub fn node(d: &NodeDetail) -> Markup {
    let info = &d.info;
    let node = &info.node;
    let cap = &info.capacity;
    let status = variant(info.status);
    let hourly: Vec<Bar> = d
        .uptime_hourly_percent
        .iter()
        .enumerate()
        .filter_map(|(h, p)| {
            p.map(|p| Bar {
                label: format!("{} h ago", d.uptime_hourly_percent.len() - h),
                value: p,
            })
        })
        .collect();
    layout(
        &format!("Node {}", node.id),
        &format!("/api/node/{}", node.id),
        html! {
            h1 { "Node " (node.id) " " (status_badge(&status)) }
            section.cards {
                (card("Uptime 24 h", None, percent(d.uptime_24h_percent)))
                (card("Uptime 30 d", None, percent(d.uptime_30d_percent)))
                (card("Last capacity proof", None, html! { @match info.health.last_proof_ms { Some(t) => span.small { (utc_time(t)) }, None => "never" } }))
                (card("Reservations", None, html! { (d.reservations.len()) }))
            }
            dl.facts {
                dt { "Farm" } dd { a href=(format!("/nodes?farm={}", node.farm_id)) { (d.farm_name.as_deref().unwrap_or("?")) " (" (node.farm_id) ")" } }
                dt { "Account" } dd { a.mono.wrap href=(format!("/account/{}", node.account)) { (node.account.to_string()) } }
                dt { "Twin" } dd { (node.twin_id) }
                dt { "Registered" } dd { "block " (block_link(node.created_at)) }
                dt { "Location" } dd { @if node.location.country.is_empty() && node.location.city.is_empty() { span.muted { "not given" } } @else { (node.location.city) ", " (node.location.country) } }
                dt { "Public config" } dd { @match &node.public_config { Some(c) => (json_value(&serde_json::to_value(c).unwrap_or_default())), None => span.muted { "none" } } }
                dt { "Up since" } dd { @match info.health.up_since_ms { Some(t) => (utc_time(t)), None => span.muted { "—" } } }
                dt { "Uptime measured until" } dd { (utc_time(d.measured_until_ms)) }
            }
            h2 { "Capacity" }
            div.table-wrap {
                table {
                    thead { tr { th { "" } th { "Cores" } th { "Memory" } th.hide-narrow { "SSD" } th.hide-narrow { "HDD" } } }
                    tbody {
                        tr { th { "Total" } (resources_cells(&cap.total)) }
                        tr { th { "System reserve" } (resources_cells(&cap.system_reserve)) }
                        tr { th { "Reserved" } (resources_cells(&cap.reserved)) }
                        tr { th { "Free" } (resources_cells(&cap.free)) }
                        tr { th { "Measured (last proof)" } (resources_cells(&info.health.measured)) }
                        tr { th { "Used (last proof)" } (resources_cells(&info.health.used_reported)) }
                    }
                }
            }
            section.charts {
                figure {
                    figcaption { "Uptime per hour, last 24 h (bar = hour, 100 = up all hour)" }
                    (bar_chart("Node uptime per hour", "%", &hourly))
                }
            }
            h2 { "Workloads" }
            (reservations_table(&d.reservations))
        },
    )
}

fn workload_summary(r: &Reservation) -> Markup {
    html! {
        @for w in &r.deployment.workloads {
            @let result = r.results.iter().find(|x| x.name == w.name);
            span.workload {
                span.mono { (w.name) } " "
                @match result {
                    Some(x) => (status_badge(&variant(x.state))),
                    None => span.badge { "pending" },
                }
            }
        }
    }
}

fn reservations_table(rows: &[Reservation]) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { th { "Reservation" } th { "State" } th { "Node" } th.hide-narrow { "Owner" } th { "Workloads" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { a href=(format!("/reservation/{}", r.id)) { "#" (r.id) } }
                            td { (status_badge(&variant(r.state))) }
                            td { (node_link(r.node_id)) }
                            td.hide-narrow { (account_link(&r.owner.to_string())) }
                            td.data { (workload_summary(r)) }
                        }
                    }
                    @if rows.is_empty() { tr { td colspan="5" .muted { "None." } } }
                }
            }
        }
    }
}

pub fn reservations(paged: &Paged<Reservation>) -> Markup {
    layout(
        "Reservations",
        &format!("/api/reservations?page={}", paged.page),
        html! {
            h1 { "Reservations" }
            form.filters action="/reservations" method="get" {
                label { "Owner " input type="text" name="owner" placeholder="address"; }
                label { "Node " input type="number" name="node" min="0"; }
                button type="submit" { "Filter" }
            }
            p.muted { "Reservations: " (paged.total) }
            (reservations_table(&paged.items))
            (pager("/reservations", paged.page, paged.pages))
        },
    )
}

pub fn reservation(r: &Reservation) -> Markup {
    layout(
        &format!("Reservation #{}", r.id),
        &format!("/api/reservation/{}", r.id),
        html! {
            h1 { "Reservation #" (r.id) " " (status_badge(&variant(r.state))) }
            dl.facts {
                dt { "Owner" } dd { a.mono.wrap href=(format!("/account/{}", r.owner)) { (r.owner.to_string()) } }
                dt { "Node" } dd { (node_link(r.node_id)) }
                dt { "State" } dd { (json_value(&serde_json::to_value(r.state).unwrap_or_default())) }
                dt { "Version" } dd { (r.version) }
                dt { "Created" } dd { "block " (block_link(r.created_at)) }
                dt { "Metadata" } dd { (r.deployment.metadata) }
                dt { "Resources" } dd { (r.resources.cru) " cores · " (bytes(r.resources.mru)) " memory · " (bytes(r.resources.sru)) " SSD · " (bytes(r.resources.hru)) " HDD" }
                dt { "Billing" } dd { (json_value(&serde_json::to_value(&r.billing).unwrap_or_default())) }
                @if !r.public_ips.is_empty() {
                    dt { "Public IPs" }
                    dd { @for a in &r.public_ips { span.mono { (a.ip) } " (" (a.workload) ", gateway " (a.gateway) ") " } }
                }
            }
            h2 { "Workloads" }
            div.table-wrap {
                table {
                    thead { tr { th { "Name" } th { "Type" } th { "State" } th { "Message from the node" } th { "Result" } } }
                    tbody {
                        @for w in &r.deployment.workloads {
                            @let spec = serde_json::to_value(&w.spec).unwrap_or_default();
                            @let result = r.results.iter().find(|x| x.name == w.name);
                            tr {
                                td.mono { (w.name) }
                                td {
                                    (spec.get("type").and_then(|t| t.as_str()).unwrap_or("?"))
                                    @if matches!(w.spec, WorkloadSpec::Network { mesh: Some(_), .. }) {
                                        " · " a href=(format!("/mesh/{}/{}", r.owner, w.name)) { "mesh" }
                                    }
                                }
                                td { @match result { Some(x) => (status_badge(&variant(x.state))), None => span.badge { "pending" } } }
                                td.data { @match result {
                                    Some(x) if x.state == WorkloadState::Error => span.error { (x.message) },
                                    Some(x) => (x.message),
                                    None => span.muted { "no result yet" },
                                } }
                                td.data { @if let Some(x) = result { (json_value(&serde_json::to_value(&x.data).unwrap_or_default())) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn mesh(m: &MeshView) -> Markup {
    layout(
        &format!("Mesh {}", m.network),
        &format!("/api/mesh/{}/{}", m.owner, m.network),
        html! {
            h1 { "Mesh " span.mono { (m.network) } }
            dl.facts {
                dt { "Owner" } dd { (account_link(&m.owner)) }
                dt { "Range" } dd.mono { (m.range.as_deref().unwrap_or("?")) }
                dt { "Members" } dd { (m.members.len()) @if m.members.len() == 1 { " node" } @else { " nodes" } }
            }
            h2 { "Members" }
            div.table-wrap {
                table {
                    thead { tr { th { "Reservation" } th { "Node" } th { "Subnet" } th { "WireGuard key" } th { "Endpoint" } } }
                    tbody {
                        @for x in &m.members {
                            tr {
                                td { a href=(format!("/reservation/{}", x.reservation)) { "#" (x.reservation) } }
                                td { (node_link(x.node_id)) }
                                td.mono { (x.subnet) }
                                @match &x.wireguard {
                                    Some(wg) => { td.mono.wrap { (wg.public_key.to_base64()) } td.mono { (wg.endpoint) } }
                                    None => { td.muted colspan="2" { "not reported yet" } }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Owner's peers" }
            div.table-wrap {
                table {
                    thead { tr { th { "Address" } th { "WireGuard key" } } }
                    tbody {
                        @for (ip, key) in &m.peers { tr { td.mono { (ip) } td.mono.wrap { (key) } } }
                        @if m.peers.is_empty() { tr { td colspan="2" .muted { "None." } } }
                    }
                }
            }
        },
    )
}

pub fn twins(view: &TwinsView) -> Markup {
    let t = &view.twins;
    layout(
        "Twins",
        &format!(
            "/api/twins?q={}&page={}",
            url_component(&view.search),
            t.page
        ),
        html! {
            h1 { "Twins" }
            form.filters action="/twins" method="get" {
                label { "Name contains " input type="search" name="q" value=(view.search); }
                button type="submit" { "Search" }
            }
            p.muted { "Twins: " (t.total) }
            div.table-wrap {
                table {
                    thead { tr { th { "Twin" } th { "Name" } th { "Account" } th.hide-narrow { "Endpoint" } th { "Owns" } } }
                    tbody {
                        @for twin in &t.items {
                            tr {
                                td { (twin.id) }
                                td { (twin.name) }
                                td { (account_link(&twin.account.to_string())) }
                                td.hide-narrow { (twin.endpoint) }
                                td { (twin.references) }
                            }
                        }
                        @if t.items.is_empty() { tr { td colspan="5" .muted { "No twin matches." } } }
                    }
                }
            }
            (pager_with_query(&format!("/twins?q={}", url_component(&view.search)), t.page, t.pages))
        },
    )
}
