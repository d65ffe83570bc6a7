//! HTML for every page (maud): one layout with the search box, then one function per view.

use super::{
    charts::{bar_chart, Bar},
    format::{duration_ms, grid_amount, short, utc_time},
    HomeView, WebError,
};
use crate::query::{
    AccountDetail, BlockDetail, BlockSummary, EventView, ExtrinsicDetail, ExtrinsicSummary, Paged,
    ValidatorRow, ValidatorsView,
};
use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use gridchain_primitives::AccountId;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;
use std::str::FromStr;

pub fn html(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

pub(super) fn layout(title: &str, api_path: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · gridchain explorer" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header.top {
                    a.brand href="/" { span.logo { "▦" } " gridchain " span.muted { "explorer" } }
                    nav {
                        a href="/blocks" { "Blocks" }
                        a href="/validators" { "Validators" }
                        a href="/farms" { "Farms" }
                        a href="/nodes" { "Nodes" }
                        a href="/reservations" { "Reservations" }
                        a href="/twins" { "Twins" }
                    }
                    form.search action="/search" method="get" role="search" {
                        input type="search" name="q" placeholder="Height, hash, address, node N, farm or twin"
                            aria-label="Search" autocomplete="off";
                        button type="submit" { "Search" }
                    }
                }
                main { (body) }
                footer {
                    "Same data as JSON: " a href=(api_path) { code { (api_path) } }
                }
            }
        }
    }
}

pub(super) fn block_link(number: u64) -> Markup {
    html! { a href=(format!("/block/{number}")) { "#" (number) } }
}

pub(super) fn account_link(address: &str) -> Markup {
    html! { a.mono href=(format!("/account/{address}")) title=(address) { (short(address)) } }
}

fn extrinsic_link(hash: &str) -> Markup {
    html! { a.mono href=(format!("/extrinsic/{hash}")) title=(hash) { (short(hash)) } }
}

fn outcome(success: bool) -> Markup {
    html! {
        @if success { span.badge.ok { "success" } } @else { span.badge.fail { "failed" } }
    }
}

fn call_label(pallet: &str, call: &str) -> Markup {
    html! { span.call { (pallet) "." (call) } }
}

pub(super) fn card(label: &str, live_key: Option<&str>, value: Markup) -> Markup {
    html! {
        div.card {
            div.label { (label) }
            div.value data-live=[live_key] { (value) }
        }
    }
}

/// A UTC time whose date part the home page's compact tables hide (CSS `.date`).
fn time_cell(timestamp_ms: u64) -> Markup {
    let full = utc_time(timestamp_ms);
    let (date, clock) = full.split_once(' ').unwrap_or(("", full.as_str()));
    html! { span.date { (date) " " } (clock) }
}

fn block_row(b: &BlockSummary) -> Markup {
    html! {
        tr {
            td { (block_link(b.number)) }
            td.mono.hide-narrow.hash { a href=(format!("/block/{}", b.hash)) title=(b.hash) { (short(&b.hash)) } }
            td { (b.extrinsic_count) }
            td.hide-narrow { (account_link(&b.proposer)) }
            td.time { (time_cell(b.timestamp_ms)) }
        }
    }
}

fn extrinsic_row(x: &ExtrinsicSummary) -> Markup {
    html! {
        tr {
            td { (extrinsic_link(&x.hash)) }
            td { (block_link(x.block_number)) }
            td { (call_label(&x.pallet, &x.call_name)) }
            td.hide-narrow.signer { (account_link(&x.signer)) }
            td { (outcome(x.success)) }
        }
    }
}

fn blocks_table(id: Option<&str>, rows: &[BlockSummary]) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { th { "Block" } th.hide-narrow.hash { "Hash" } th { "Extrinsics" } th.hide-narrow { "Proposer" } th { "Time" } } }
                tbody id=[id] {
                    @for b in rows { (block_row(b)) }
                }
            }
        }
    }
}

pub(super) fn extrinsics_table(id: Option<&str>, rows: &[ExtrinsicSummary]) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { th { "Extrinsic" } th { "Block" } th { "Call" } th.hide-narrow.signer { "Signer" } th { "Result" } } }
                tbody id=[id] {
                    @for x in rows { (extrinsic_row(x)) }
                    @if rows.is_empty() && id.is_none() {
                        tr { td colspan="5" .muted { "None." } }
                    }
                }
            }
        }
    }
}

pub(super) fn pager(base: &str, paged_page: u64, pages: u64) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager {
                @if paged_page > 1 { a href=(format!("{base}?page={}", paged_page - 1)) { "← Newer" } }
                span.muted { "page " (paged_page) " of " (pages) }
                @if paged_page < pages { a href=(format!("{base}?page={}", paged_page + 1)) { "Older →" } }
            }
        }
    }
}

/// Fields that hold amounts in the smallest unit (as decimal strings) in calls and events.
const AMOUNT_FIELDS: [&str; 8] = [
    "amount",
    "fee",
    "tip",
    "free",
    "reserved",
    "balance",
    "ratePerHour",
    "totalPaid",
];

/// A JSON value as the page shows it: addresses link to their account, objects become lists,
/// amount fields are shown in GRID.
pub(super) fn json_value(value: &Value) -> Markup {
    match value {
        Value::String(s) if AccountId::from_str(s).is_ok() => account_link(s),
        Value::String(s) => html! { span.mono { (s) } },
        Value::Object(fields) => html! {
            dl.fields {
                @for (k, v) in fields {
                    dt { (k) }
                    dd {
                        @match v.as_str().filter(|_| AMOUNT_FIELDS.contains(&k.as_str())) {
                            Some(units) => span title=(format!("{units} units")) { (grid_amount(units)) },
                            None => (json_value(v)),
                        }
                    }
                }
            }
        },
        Value::Array(items) => html! {
            ol.fields { @for v in items { li { (json_value(v)) } } }
        },
        other => html! { span.mono { (other.to_string()) } },
    }
}

fn events_table(events: &[EventView]) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { th { "#" } th.hide-narrow { "Phase" } th { "Event" } th { "Data" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (e.index) }
                            td.muted.hide-narrow { (e.phase) }
                            td { span.call { (e.pallet) "." (e.name) } }
                            td.data { (json_value(&e.data)) }
                        }
                    }
                    @if events.is_empty() { tr { td colspan="4" .muted { "None." } } }
                }
            }
        }
    }
}

pub fn home(view: &HomeView) -> Markup {
    let chain = &view.chain;
    let height = |h: Option<u64>| html! { @match h { Some(h) => (block_link(h)), None => "—" } };
    let block_times: Vec<Bar> = view
        .chart
        .iter()
        .filter_map(|p| {
            p.block_time_ms.map(|t| Bar {
                label: format!("#{}", p.number),
                value: t as f64 / 1000.0,
            })
        })
        .collect();
    let tx_counts: Vec<Bar> = view
        .chart
        .iter()
        .map(|p| Bar {
            label: format!("#{}", p.number),
            value: p.extrinsic_count as f64,
        })
        .collect();
    layout(
        "Home",
        "/api/",
        html! {
            section.cards {
                (card("Final height", Some("final-height"), height(chain.final_height)))
                (card("Best height", Some("best-height"), height(chain.best_height)))
                (card("Indexed height", Some("indexed-height"), height(view.latest_blocks.first().map(|b| b.number))))
                (card("Block time", None, html! { @match view.average_block_time_ms { Some(t) => (duration_ms(t)), None => "—" } }))
                (card("Validators", None, html! { a href="/validators" { (view.totals.validators) } }))
                (card("Extrinsics", Some("extrinsic-count"), html! { (view.totals.extrinsics) }))
                (card("Accounts", None, html! { (view.totals.accounts) }))
                (super::grid_pages::grid_cards(&view.grid))
                (card("Node", Some("node-status"), html! {
                    @if chain.connected { span.badge.ok { "following" } }
                    @else { span.badge.fail title=[chain.last_error.as_deref()] { "disconnected" } }
                }))
            }
            section.charts {
                figure {
                    figcaption { "Block time, last " (block_times.len()) " blocks" }
                    (bar_chart("Block time per block", "s", &block_times))
                }
                figure {
                    figcaption { "Extrinsics per block, last " (tx_counts.len()) " blocks" }
                    (bar_chart("Extrinsics per block", "tx", &tx_counts))
                }
            }
            section.split {
                div {
                    h2 { "Latest blocks " span.live-dot title="updates live" {} }
                    (blocks_table(Some("latest-blocks"), &view.latest_blocks))
                    p { a href="/blocks" { "All blocks →" } }
                }
                div {
                    h2 { "Latest extrinsics" }
                    (extrinsics_table(Some("latest-extrinsics"), &view.latest_extrinsics))
                }
            }
            script src="/static/live.js" defer {}
        },
    )
}

pub fn blocks(view: &Paged<BlockSummary>) -> Markup {
    layout(
        "Blocks",
        &format!("/api/blocks?page={}", view.page),
        html! {
            h1 { "Blocks" }
            p.muted { (view.total) " blocks indexed." }
            (blocks_table(None, &view.items))
            (pager("/blocks", view.page, view.pages))
        },
    )
}

pub fn block(b: &BlockDetail) -> Markup {
    layout(
        &format!("Block #{}", b.number),
        &format!("/api/block/{}", b.number),
        html! {
            nav.crumbs {
                @if b.number > 0 { a href=(format!("/block/{}", b.number - 1)) { "← #" (b.number - 1) } }
                @if b.has_next { a href=(format!("/block/{}", b.number + 1)) { "#" (b.number + 1) " →" } }
            }
            h1 { "Block " span.mono { "#" (b.number) } }
            dl.facts {
                dt { "Hash" } dd.mono.wrap { (b.hash) }
                dt { "Parent" } dd.mono.wrap {
                    @if b.number > 0 { a href=(format!("/block/{}", b.parent_hash)) { (b.parent_hash) } }
                    @else { (b.parent_hash) }
                }
                dt { "Time" } dd { (utc_time(b.timestamp_ms))
                    @if let Some(t) = b.block_time_ms { span.muted { " (" (duration_ms(t)) " after its parent)" } } }
                dt { "Proposer" } dd { a.mono.wrap href=(format!("/account/{}", b.proposer)) { (b.proposer) } }
                dt { "State root" } dd.mono.wrap { (b.state_root) }
                dt { "Extrinsics root" } dd.mono.wrap { (b.extrinsics_root) }
            }
            h2 { "Extrinsics (" (b.extrinsics.len()) ")" }
            (extrinsics_table(None, &b.extrinsics))
            h2 { "Events (" (b.events.len()) ")" }
            (events_table(&b.events))
        },
    )
}

pub fn extrinsic(x: &ExtrinsicDetail) -> Markup {
    let args = match &x.call {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, _)| *k != "pallet" && *k != "call")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    };
    layout(
        &format!("Extrinsic {}", short(&x.hash)),
        &format!("/api/extrinsic/{}", x.hash),
        html! {
            h1 { "Extrinsic " (call_label(&x.pallet, &x.call_name)) }
            dl.facts {
                dt { "Hash" } dd.mono.wrap { (x.hash) }
                dt { "Block" } dd { (block_link(x.block_number)) span.muted { " · index " (x.index) " · " (utc_time(x.timestamp_ms)) } }
                dt { "Result" } dd { (outcome(x.success))
                    @if let Some(error) = &x.error {
                        " " span.error { (error.get("pallet").and_then(Value::as_str).unwrap_or_default()) "::"
                            (error.get("error").and_then(Value::as_str).unwrap_or_default()) " — "
                            (error.get("message").and_then(Value::as_str).unwrap_or_default()) }
                    }
                }
                dt { "Signer" } dd { a.mono.wrap href=(format!("/account/{}", x.signer)) { (x.signer) } }
                dt { "Nonce" } dd { (x.nonce) }
                dt { "Fee" } dd { (grid_amount(&x.fee)) span.muted { " (tip " (grid_amount(&x.tip)) ")" } }
                dt { "Valid until" } dd { "block " (x.valid_until) }
            }
            h2 { "Call arguments" }
            div.panel { (json_value(&args)) }
            h2 { "Events (" (x.events.len()) ")" }
            (events_table(&x.events))
        },
    )
}

pub fn account(a: &AccountDetail) -> Markup {
    let base = format!("/account/{}", a.address);
    layout(
        &format!("Account {}", short(&a.address)),
        &format!("/api{base}?page={}", a.history.page),
        html! {
            h1 { "Account" }
            p.mono.wrap { (a.address) }
            section.cards {
                (card("Free", None, html! { (grid_amount(&a.free)) }))
                (card("Reserved", None, html! { (grid_amount(&a.reserved)) }))
                (card("Nonce", None, html! { (a.nonce) }))
                (card("Blocks proposed", None, html! { (a.blocks_proposed) }))
                (card("Twin", None, html! {
                    @match &a.twin {
                        Some(t) => a href=(format!("/twins?q={}", super::format::url_component(&t.name))) { (t.name) " (" (t.id) ")" },
                        None => span.muted { "none" },
                    }
                }))
            }
            @if a.twin.is_some() {
                p { a href=(format!("/reservations?owner={}", a.address)) { "Reservations of this account →" } }
            }
            p.muted {
                "Balance read from the node after block "
                @match a.balance_at_block { Some(n) => (block_link(n)), None => "—" }
                ". Active from block " (block_link(a.first_seen)) " to " (block_link(a.last_seen)) "."
            }
            h2 { "History (" (a.history.total) " extrinsics)" }
            (extrinsics_table(None, &a.history.items))
            (pager(&base, a.history.page, a.history.pages))
        },
    )
}

fn validator_table(rows: &[ValidatorRow]) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { th { "Account" } th.hide-narrow { "Consensus key" } th { "Power" } th { "Share" } th { "Blocks" } th { "Last" } } }
                tbody {
                    @for v in rows {
                        tr {
                            td { (account_link(&v.account)) }
                            td.hide-narrow.mono { (v.consensus_key) }
                            td { (v.power) }
                            td { (format!("{:.1} %", v.power_percent)) }
                            td { (v.blocks_proposed) }
                            td { @match v.last_block { Some(b) => (block_link(b)), None => span.muted { "—" } } }
                        }
                    }
                    @if rows.is_empty() { tr { td colspan="6" .muted { "No validator set indexed yet." } } }
                }
            }
        }
    }
}

pub fn validators(view: &ValidatorsView) -> Markup {
    layout(
        "Validators",
        "/api/validators",
        html! {
            h1 { "Validators" }
            p.muted {
                "The set that signs from block " (view.active_from)
                ": voting power is bonded stake in whole tokens; a block is final with precommits of more than 2/3 of it. Blocks: how many indexed blocks each proposed."
            }
            (validator_table(&view.active))
            @if let Some(from) = view.scheduled_from {
                h2 { "Scheduled from block " (from) }
                (validator_table(&view.scheduled))
            }
        },
    )
}

pub fn error(e: &WebError) -> Markup {
    let title = match e.status.as_u16() {
        400 => "Bad request",
        404 => "Not found",
        _ => "Error",
    };
    layout(
        title,
        "/api/",
        html! {
            section.error-page {
                h1 { (e.status.as_u16()) " · " (title) }
                p { (e.message) }
                p { a href="/" { "← Back to the latest blocks" } }
            }
        },
    )
}
