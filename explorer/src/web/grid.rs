//! Handlers of the grid pages: farms, nodes (filters, sort), node detail, reservations, twins.
//! Same pattern as the chain pages: parse, query, render as HTML or JSON.

use super::{
    grid_pages, page_param, parse_address, path_param, read, reply, AppState, Format, QueryParams,
    WebError,
};
use crate::grid_query::{self, NodeQuery, NodeSort, NodeStatusFilter};
use axum::{
    extract::{rejection::PathRejection, Path, State},
    response::Response,
};
use gridchain_runtime::tfgrid::GIB;
use std::collections::HashMap;

pub async fn farms(State(state): State<AppState>, format: Format) -> Response {
    let result = read(&state, grid_query::farms).await;
    reply(format, result, |rows| grid_pages::farms(rows))
}

/// An optional whole-number query parameter.
fn number_param<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, WebError> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            WebError::bad_request(format!("{name} must be a whole number, not {v:?}"))
        }),
    }
}

fn query_map(query: &QueryParams) -> Result<HashMap<String, String>, WebError> {
    query
        .as_ref()
        .map(|q| q.0.clone())
        .map_err(|e| WebError::bad_request(format!("bad query string: {e}")))
}

/// `?farm=&status=&minCru=&minMruGib=&minSruGib=&minHruGib=&sort=&order=`
fn node_query(params: &HashMap<String, String>) -> Result<NodeQuery, WebError> {
    let gib = |name: &str| -> Result<u64, WebError> {
        Ok(number_param::<u64>(params, name)?
            .unwrap_or(0)
            .saturating_mul(GIB))
    };
    let status = match params
        .get("status")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => Some(
            NodeStatusFilter::ALL
                .into_iter()
                .find(|f| f.name() == s)
                .ok_or_else(|| {
                    WebError::bad_request(format!("status must be up, down or standby, not {s:?}"))
                })?,
        ),
    };
    let sort = match params
        .get("sort")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => NodeSort::default(),
        Some(s) => NodeSort::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = NodeSort::ALL.iter().map(|f| f.name()).collect();
                WebError::bad_request(format!(
                    "sort must be one of {}, not {s:?}",
                    names.join(", ")
                ))
            })?,
    };
    let descending = match params.get("order").map(|s| s.trim()) {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(WebError::bad_request(format!(
                "order must be asc or desc, not {other:?}"
            )))
        }
    };
    Ok(NodeQuery {
        farm: number_param(params, "farm")?,
        status,
        min_free: gridchain_runtime::tfgrid::Resources {
            cru: number_param(params, "minCru")?.unwrap_or(0),
            mru: gib("minMruGib")?,
            sru: gib("minSruGib")?,
            hru: gib("minHruGib")?,
        },
        sort,
        descending,
    })
}

/// `/mesh/{owner}/{network}`: one private network across nodes, its members and peers.
pub async fn mesh(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    format: Format,
) -> Response {
    let result = async {
        let Path((owner, network)) =
            path.map_err(|e| WebError::bad_request(format!("bad path: {e}")))?;
        let owner = parse_address(&owner)?.to_string();
        let view = read(&state, move |conn| grid_query::mesh(conn, &owner, &network)).await?;
        if view.members.is_empty() {
            return Err(WebError::not_found(format!(
                "{} has no live mesh network {:?}",
                view.owner, view.network
            )));
        }
        Ok(view)
    }
    .await;
    reply(format, result, grid_pages::mesh)
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodesView {
    pub query: NodeQuery,
    pub nodes: crate::query::Paged<grid_query::NodeRow>,
    pub capacity: Vec<grid_query::CapacitySample>,
}

pub async fn nodes(State(state): State<AppState>, query: QueryParams, format: Format) -> Response {
    let result = async {
        let params = query_map(&query)?;
        let filter = node_query(&params)?;
        let page = page_param(&query)?;
        let view = read(&state, move |conn| {
            Ok(match grid_query::nodes(conn, &filter, page)? {
                Ok(nodes) => Ok(NodesView {
                    query: filter,
                    nodes,
                    capacity: grid_query::capacity_history(conn, super::CHART_BLOCKS)?,
                }),
                Err(e) => Err(e),
            })
        })
        .await??;
        Ok(view)
    }
    .await;
    reply(format, result, grid_pages::nodes)
}

fn id_param<T: std::str::FromStr>(
    path: Result<Path<String>, PathRejection>,
    what: &str,
) -> Result<T, WebError> {
    let raw = path_param(path)?;
    raw.trim()
        .parse()
        .map_err(|_| WebError::bad_request(format!("{raw:?} is not a {what} id (a whole number)")))
}

pub async fn node(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    format: Format,
) -> Response {
    let result = async {
        let id: u32 = id_param(path, "node")?;
        read(&state, move |conn| grid_query::node(conn, id))
            .await?
            .ok_or_else(|| WebError::not_found(format!("node {id} is not on the grid (yet)")))
    }
    .await;
    reply(format, result, grid_pages::node)
}

pub async fn reservations(
    State(state): State<AppState>,
    query: QueryParams,
    format: Format,
) -> Response {
    let result = async {
        let params = query_map(&query)?;
        let owner = match params
            .get("owner")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            Some(a) => Some(parse_address(a)?.to_string()),
            None => None,
        };
        let node: Option<u32> = number_param(&params, "node")?;
        let page = page_param(&query)?;
        let paged = read(&state, move |conn| {
            grid_query::reservations(conn, owner.as_deref(), node, page)
        })
        .await??;
        Ok(paged)
    }
    .await;
    reply(format, result, grid_pages::reservations)
}

pub async fn reservation(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    format: Format,
) -> Response {
    let result = async {
        let id: u64 = id_param(path, "reservation")?;
        read(&state, move |conn| grid_query::reservation(conn, id))
            .await?
            .ok_or_else(|| WebError::not_found(format!("reservation {id} does not exist")))
    }
    .await;
    reply(format, result, grid_pages::reservation)
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TwinsView {
    pub search: String,
    pub twins: crate::query::Paged<gridchain_runtime::twins::Twin>,
}

pub async fn twins(State(state): State<AppState>, query: QueryParams, format: Format) -> Response {
    let result = async {
        let params = query_map(&query)?;
        let search = params
            .get("q")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if search.len() > 64 {
            return Err(WebError::bad_request("twin names have at most 64 bytes"));
        }
        let page = page_param(&query)?;
        let found = read(&state, {
            let search = search.clone();
            move |conn| grid_query::twins(conn, &search, page)
        })
        .await??;
        Ok(TwinsView {
            search,
            twins: found,
        })
    }
    .await;
    reply(format, result, grid_pages::twins)
}
