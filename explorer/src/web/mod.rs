//! The web server: every page is a loader that returns a view (a `Serialize` struct) from the
//! index, rendered either as HTML (`/block/7`) or as JSON under `/api/` (`/api/block/7`), so the
//! pages and the API can never disagree. `/api/live` streams newly indexed blocks as
//! server-sent events; `static/live.js` applies them to the home page.
//!
//! Bad input never reaches SQLite unparsed: heights, hashes, addresses and page numbers are
//! parsed first and refused with 400 (malformed) or 404 (well-formed but not indexed), as an
//! HTML page or a JSON `{"error": {"status", "message"}}`.

mod charts;
mod format;
mod grid;
mod grid_pages;
mod pages;

use crate::{
    db::{DbError, Store},
    grid_query,
    indexer::{ChainStatus, LiveBlock},
    query::{self, PageOutOfRange},
};
use axum::{
    extract::{rejection::PathRejection, rejection::QueryRejection, Path, Query, State},
    http::{header, HeaderMap, StatusCode, Uri},
    response::{
        sse::{Event as SseEvent, KeepAlive, Sse},
        IntoResponse, Redirect, Response,
    },
    routing::get,
    Json, Router,
};
use gridchain_primitives::{AccountId, Hash};
use maud::Markup;
use parking_lot::RwLock;
use serde::Serialize;
use std::{collections::HashMap, convert::Infallible, str::FromStr, sync::Arc};
use tokio::sync::broadcast;
use tokio_stream::{wrappers::BroadcastStream, StreamExt};

/// Blocks shown in the charts and used for the average block time.
pub const CHART_BLOCKS: u64 = 60;
/// Rows in the home page's latest-blocks and latest-extrinsics tables.
pub const LATEST_ROWS: u64 = 10;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub status: Arc<RwLock<ChainStatus>>,
    pub live: broadcast::Sender<LiveBlock>,
    /// Becomes true when the explorer stops; open live streams end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// HTML page or JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Json,
}

/// A request that cannot be answered with the page asked for.
#[derive(Debug, Clone, Serialize)]
pub struct WebError {
    #[serde(serialize_with = "serialize_status")]
    pub status: StatusCode,
    pub message: String,
}

fn serialize_status<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl WebError {
    fn not_found(message: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<DbError> for WebError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "index query failed");
        WebError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "the index could not be read; see the explorer's log".into(),
        }
    }
}

impl From<PageOutOfRange> for WebError {
    fn from(e: PageOutOfRange) -> Self {
        WebError::not_found(format!(
            "page {} does not exist; pages are 1 to {}",
            e.page, e.pages
        ))
    }
}

fn reply<T: Serialize>(
    format: Format,
    result: Result<T, WebError>,
    render: impl FnOnce(&T) -> Markup,
) -> Response {
    match (format, result) {
        (Format::Html, Ok(view)) => pages::html(StatusCode::OK, render(&view)),
        (Format::Json, Ok(view)) => Json(view).into_response(),
        (format, Err(error)) => error_response(format, error),
    }
}

fn error_response(format: Format, error: WebError) -> Response {
    match format {
        Format::Html => pages::html(error.status, pages::error(&error)),
        Format::Json => (error.status, Json(serde_json::json!({ "error": error }))).into_response(),
    }
}

/// Runs a query on a pooled connection off the async threads.
async fn read<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, DbError> + Send + 'static,
) -> Result<T, WebError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.read(f))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "query task failed");
            WebError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "query task failed".into(),
            }
        })?
        .map_err(WebError::from)
}

pub fn router(state: AppState) -> Router {
    use Format::{Html, Json};
    Router::new()
        .route("/", get(|s: State<AppState>| home(s, Html)))
        .route("/api", get(|s: State<AppState>| home(s, Json)))
        .route("/api/", get(|s: State<AppState>| home(s, Json)))
        .route("/blocks", get(|s, q| blocks(s, q, Html)))
        .route("/api/blocks", get(|s, q| blocks(s, q, Json)))
        .route("/block/{id}", get(|s, p| block(s, p, Html)))
        .route("/api/block/{id}", get(|s, p| block(s, p, Json)))
        .route("/extrinsic/{hash}", get(|s, p| extrinsic(s, p, Html)))
        .route("/api/extrinsic/{hash}", get(|s, p| extrinsic(s, p, Json)))
        .route("/account/{address}", get(|s, p, q| account(s, p, q, Html)))
        .route(
            "/api/account/{address}",
            get(|s, p, q| account(s, p, q, Json)),
        )
        .route("/validators", get(|s| validators(s, Html)))
        .route("/api/validators", get(|s| validators(s, Json)))
        .route("/farms", get(|s| grid::farms(s, Html)))
        .route("/api/farms", get(|s| grid::farms(s, Json)))
        .route("/nodes", get(|s, q| grid::nodes(s, q, Html)))
        .route("/api/nodes", get(|s, q| grid::nodes(s, q, Json)))
        .route("/node/{id}", get(|s, p| grid::node(s, p, Html)))
        .route("/api/node/{id}", get(|s, p| grid::node(s, p, Json)))
        .route("/reservations", get(|s, q| grid::reservations(s, q, Html)))
        .route(
            "/api/reservations",
            get(|s, q| grid::reservations(s, q, Json)),
        )
        .route(
            "/reservation/{id}",
            get(|s, p| grid::reservation(s, p, Html)),
        )
        .route(
            "/api/reservation/{id}",
            get(|s, p| grid::reservation(s, p, Json)),
        )
        .route(
            "/mesh/{owner}/{network}",
            get(|s, p| grid::mesh(s, p, Html)),
        )
        .route(
            "/api/mesh/{owner}/{network}",
            get(|s, p| grid::mesh(s, p, Json)),
        )
        .route("/twins", get(|s, q| grid::twins(s, q, Html)))
        .route("/api/twins", get(|s, q| grid::twins(s, q, Json)))
        .route("/search", get(|s, q| search(s, q, Html)))
        .route("/api/search", get(|s, q| search(s, q, Json)))
        .route("/api/live", get(live))
        .route("/static/style.css", get(style_css))
        .route("/static/live.js", get(live_js))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    let format = if uri.path().starts_with("/api") {
        Format::Json
    } else {
        Format::Html
    };
    error_response(
        format,
        WebError::not_found(format!("there is no page at {}", uri.path())),
    )
}

async fn style_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../static/style.css"),
    )
        .into_response()
}

async fn live_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../static/live.js"),
    )
        .into_response()
}

/// Path parameter, or a 400 if it is not valid UTF-8 / percent-encoding.
fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, WebError> {
    path.map(|Path(p)| p)
        .map_err(|e| WebError::bad_request(format!("bad path: {e}")))
}

type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The 1-based `page` query parameter (default 1).
fn page_param(query: &QueryParams) -> Result<u64, WebError> {
    let query = query
        .as_ref()
        .map_err(|e| WebError::bad_request(format!("bad query string: {e}")))?;
    match query.get("page") {
        None => Ok(1),
        Some(p) => match p.trim().parse::<u64>() {
            Ok(0) | Err(_) => Err(WebError::bad_request(format!(
                "page must be a whole number from 1, not {p:?}"
            ))),
            Ok(page) => Ok(page),
        },
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HomeView {
    pub chain: ChainStatus,
    pub totals: query::Totals,
    pub grid: grid_query::GridTotals,
    /// Mean block time over the charted blocks.
    pub average_block_time_ms: Option<u64>,
    pub latest_blocks: Vec<query::BlockSummary>,
    pub latest_extrinsics: Vec<query::ExtrinsicSummary>,
    pub chart: Vec<query::ChartPoint>,
}

async fn home(State(state): State<AppState>, format: Format) -> Response {
    let chain = state.status.read().clone();
    let result = read(&state, move |conn| {
        let chart = query::chart_points(conn, CHART_BLOCKS)?;
        let times: Vec<u64> = chart.iter().filter_map(|p| p.block_time_ms).collect();
        Ok(HomeView {
            chain,
            totals: query::totals(conn)?,
            grid: grid_query::totals(conn)?,
            average_block_time_ms: (!times.is_empty())
                .then(|| times.iter().sum::<u64>() / times.len() as u64),
            latest_blocks: query::latest_blocks(conn, LATEST_ROWS)?,
            latest_extrinsics: query::latest_extrinsics(conn, LATEST_ROWS)?,
            chart,
        })
    })
    .await;
    reply(format, result, pages::home)
}

async fn blocks(State(state): State<AppState>, query: QueryParams, format: Format) -> Response {
    let result = async {
        let page = page_param(&query)?;
        Ok(read(&state, move |conn| query::blocks_page(conn, page)).await??)
    }
    .await;
    reply(format, result, pages::blocks)
}

/// A block height or a `0x` block hash.
async fn block(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    format: Format,
) -> Response {
    let result = async {
        let id = path_param(path)?;
        let number = match parse_block_id(&id)? {
            BlockId::Number(n) => n,
            BlockId::Hash(hash) => {
                let hash = hash.to_string();
                read(&state, move |conn| query::block_number_by_hash(conn, &hash))
                    .await?
                    .ok_or_else(|| WebError::not_found(format!("no indexed block has hash {id}")))?
            }
        };
        read(&state, move |conn| query::block(conn, number))
            .await?
            .ok_or_else(|| WebError::not_found(format!("block {number} is not indexed (yet)")))
    }
    .await;
    reply(format, result, pages::block)
}

enum BlockId {
    Number(u64),
    Hash(Hash),
}

fn parse_block_id(id: &str) -> Result<BlockId, WebError> {
    let id = id.trim();
    if id.starts_with("0x") {
        return parse_hash(id).map(BlockId::Hash);
    }
    id.parse::<u64>().map(BlockId::Number).map_err(|_| {
        WebError::bad_request(format!(
            "{id:?} is neither a block height (0 to {}) nor a 0x block hash",
            u64::MAX
        ))
    })
}

fn parse_hash(s: &str) -> Result<Hash, WebError> {
    Hash::from_str(s.trim())
        .map_err(|e| WebError::bad_request(format!("{s:?} is not a 0x hash of 32 bytes: {e}")))
}

fn parse_address(s: &str) -> Result<AccountId, WebError> {
    AccountId::from_str(s.trim())
        .map_err(|e| WebError::bad_request(format!("{s:?} is not an address: {e}")))
}

async fn extrinsic(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    format: Format,
) -> Response {
    let result = async {
        let hash = parse_hash(&path_param(path)?)?.to_string();
        read(&state, {
            let hash = hash.clone();
            move |conn| query::extrinsic(conn, &hash)
        })
        .await?
        .ok_or_else(|| WebError::not_found(format!("no indexed extrinsic has hash {hash}")))
    }
    .await;
    reply(format, result, pages::extrinsic)
}

async fn account(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: QueryParams,
    format: Format,
) -> Response {
    let result = async {
        let address = parse_address(&path_param(path)?)?.to_string();
        let page = page_param(&query)?;
        let found = read(&state, {
            let address = address.clone();
            move |conn| query::account(conn, &address, page)
        })
        .await?
        .ok_or_else(|| {
            WebError::not_found(format!("{address} has not taken part in any indexed block"))
        })?;
        Ok(found?)
    }
    .await;
    reply(format, result, pages::account)
}

async fn validators(State(state): State<AppState>, format: Format) -> Response {
    let result = read(&state, query::validators).await;
    reply(format, result, pages::validators)
}

/// Where a search string leads.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub kind: &'static str,
    pub path: String,
}

async fn search(State(state): State<AppState>, query: QueryParams, format: Format) -> Response {
    let result = async {
        let query = query.map_err(|e| WebError::bad_request(format!("bad query string: {e}")))?;
        let q = query
            .get("q")
            .map(|q| q.trim())
            .unwrap_or_default()
            .to_string();
        find(&state, q).await
    }
    .await;
    match (format, result) {
        (Format::Html, Ok(hit)) => Redirect::to(&hit.path).into_response(),
        // An HTML hit redirected above, so no page is rendered here: JSON, or an error page.
        (format, result) => reply(format, result, |_| maud::html! {}),
    }
}

async fn find(state: &AppState, q: String) -> Result<SearchHit, WebError> {
    if q.is_empty() {
        return Err(WebError::bad_request(
            "type a block height, block or extrinsic hash, address, node N, farm or twin name",
        ));
    }
    if q.len() > 128 {
        return Err(WebError::bad_request(
            "search text is too long (128 bytes at most)",
        ));
    }
    if q.bytes().all(|b| b.is_ascii_digit()) {
        let number: u64 = q
            .parse()
            .map_err(|_| WebError::bad_request(format!("{q} is larger than any block height")))?;
        return Ok(SearchHit {
            kind: "block",
            path: format!("/block/{number}"),
        });
    }
    if q.starts_with("0x") {
        let hash = parse_hash(&q)?.to_string();
        let (is_block, is_extrinsic) = read(state, {
            let hash = hash.clone();
            move |conn| {
                Ok((
                    query::block_number_by_hash(conn, &hash)?.is_some(),
                    query::extrinsic_exists(conn, &hash)?,
                ))
            }
        })
        .await?;
        return match (is_block, is_extrinsic) {
            (true, _) => Ok(SearchHit {
                kind: "block",
                path: format!("/block/{hash}"),
            }),
            (_, true) => Ok(SearchHit {
                kind: "extrinsic",
                path: format!("/extrinsic/{hash}"),
            }),
            _ => Err(WebError::not_found(format!(
                "no indexed block or extrinsic has hash {hash}"
            ))),
        };
    }
    if let Ok(account) = AccountId::from_str(&q) {
        return Ok(SearchHit {
            kind: "account",
            path: format!("/account/{account}"),
        });
    }
    if let Some(id) = node_id_in(&q) {
        let id: u32 = id
            .parse()
            .map_err(|_| WebError::bad_request(format!("{id} is not a node id")))?;
        return match read(state, move |conn| grid_query::node_exists(conn, id)).await? {
            true => Ok(SearchHit {
                kind: "node",
                path: format!("/node/{id}"),
            }),
            false => Err(WebError::not_found(format!("node {id} is not on the grid"))),
        };
    }
    // Twin and farm names: letters, digits, '-', '_', '.'.
    if !q
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(WebError::bad_request(format!(
            "{q:?} is not a block height, hash, address, \"node N\", or farm or twin name"
        )));
    }
    let (farm, twin) = read(state, {
        let q = q.clone();
        move |conn| {
            Ok((
                grid_query::farm_id_by_name(conn, &q)?,
                grid_query::twin_exists_by_name(conn, &q)?,
            ))
        }
    })
    .await?;
    match (farm, twin) {
        (Some(id), _) => Ok(SearchHit {
            kind: "farm",
            path: format!("/nodes?farm={id}"),
        }),
        (None, true) => Ok(SearchHit {
            kind: "twin",
            path: format!("/twins?q={q}"),
        }),
        (None, false) => Err(WebError::not_found(format!(
            "no block, extrinsic, account, node, farm or twin matches {q:?}"
        ))),
    }
}

/// The digits of `node 5`, `node:5` or `node5`, if `q` names a node.
fn node_id_in(q: &str) -> Option<&str> {
    let rest = q.strip_prefix("node").or_else(|| q.strip_prefix("Node"))?;
    let digits = rest.trim_start_matches([' ', ':', '#']);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Server-sent events: one `block` event (id = block number) per newly indexed block.
///
/// `?after=N` (the newest block the page shows) or the browser's `Last-Event-ID` on a reconnect
/// first replays the newest blocks after N from the index, so a block indexed between rendering
/// the page and opening the stream is not missed; the subscription is taken before that read and
/// blocks already replayed are skipped, so none is sent twice.
async fn live(State(state): State<AppState>, query: QueryParams, headers: HeaderMap) -> Response {
    let after = match live_after(&query, &headers) {
        Ok(after) => after,
        Err(e) => return error_response(Format::Json, e),
    };
    let receiver = state.live.subscribe();
    let backlog = match after {
        Some(after) => match read(&state, move |conn| {
            query::live_backlog(conn, after, LATEST_ROWS)
        })
        .await
        {
            Ok(backlog) => backlog,
            Err(e) => return error_response(Format::Json, e),
        },
        None => Vec::new(),
    };
    let status = state.status.read().clone();
    let last_sent = backlog.last().map(|(b, _)| b.number).or(after);
    let replay = backlog
        .into_iter()
        .map(move |(block, extrinsics)| LiveBlock {
            block,
            extrinsics,
            final_height: status.final_height,
            best_height: status.best_height,
        });
    let fresh = BroadcastStream::new(receiver).filter_map(move |item| {
        // A lagging client skips blocks; the next event carries the current heights anyway.
        let block = item.ok()?;
        (last_sent.is_none_or(|n| block.block.number > n)).then_some(block)
    });
    let stream = tokio_stream::iter(replay).chain(fresh).map(|block| {
        let data = serde_json::to_string(&block).unwrap_or_default();
        Ok::<_, Infallible>(
            SseEvent::default()
                .id(block.block.number.to_string())
                .event("block")
                .data(data),
        )
    });
    let mut shutdown = state.shutdown.clone();
    let stream = futures::StreamExt::take_until(stream, async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The newest block the client has: the larger of `?after=` and `Last-Event-ID`.
fn live_after(query: &QueryParams, headers: &HeaderMap) -> Result<Option<u64>, WebError> {
    let query = query
        .as_ref()
        .map_err(|e| WebError::bad_request(format!("bad query string: {e}")))?;
    let parse = |what: &str, v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| WebError::bad_request(format!("{what} must be a block height, not {v:?}")))
    };
    let from_query = query.get("after").map(|v| parse("after", v)).transpose()?;
    let from_header = match headers.get("last-event-id") {
        Some(v) => Some(parse(
            "Last-Event-ID",
            v.to_str()
                .map_err(|_| WebError::bad_request("Last-Event-ID is not text"))?,
        )?),
        None => None,
    };
    Ok(from_query.max(from_header))
}
