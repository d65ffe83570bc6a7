//! Signing and submitting any runtime call, then following it to a final block, the way
//! `grid transfer` does (see the README's "How a transfer is made"): the grid commands use it.

use crate::{
    commands::{
        query::render_extrinsic,
        transfer::{lookup_final, poll_until_final, watch_until_final, MORTALITY_BLOCKS},
    },
    failure::Failure,
    output::Progress,
    rpc::{Node, NodeClient},
};
use anyhow::{Context, Result};
use gridchain_primitives::{Bytes, ChainContext, Hash, Pair};
use gridchain_rpc_api::{
    AuthorApiClient, ChainApiClient, ExtrinsicInfo, StateApiClient, SystemApiClient,
};
use gridchain_runtime::{system::DispatchError, Call, Event, Extrinsic};
use parity_scale_codec::Encode;

/// The genesis hash of the chain `node` serves: what signatures and sealed secrets are bound to.
pub async fn genesis_hash<C: NodeClient>(node: &Node<'_, C>) -> Result<Hash> {
    node.read(node.client.block_hash(Some(0)))
        .await?
        .context("the node has no genesis block")
}

/// Signs `call` with `signer` (no tip), submits it and waits until its block is final.
///
/// Returns the transaction's report if the call succeeded; a failed call is
/// [`Failure::CallFailed`] (exit 5) with the pallet error and the report.
pub async fn submit_call<C: NodeClient>(
    node: &Node<'_, C>,
    signer: &Pair,
    call: Call,
    progress: &mut Progress,
) -> Result<ExtrinsicInfo> {
    let client = node.client;
    let genesis_hash = genesis_hash(node).await?;
    let spec_version = node.read(client.runtime_version()).await?.spec_version;
    let nonce = node
        .read(client.account_next_index(signer.public().to_string()))
        .await?;
    let best = node
        .read(client.header(None))
        .await?
        .context("the node has no best block")?;
    let valid_until = best.number + MORTALITY_BLOCKS;
    let context = ChainContext {
        genesis_hash,
        spec_version,
    };
    let extrinsic = Extrinsic::sign(signer, call, nonce, valid_until, 0, context);
    let hash = extrinsic.hash();
    let encoded = Bytes(extrinsic.encode());
    if node.can_watch {
        watch_until_final(node, encoded, progress).await?;
    } else {
        node.submit(client.submit_extrinsic(encoded)).await?;
        progress.step("submitted");
        poll_until_final(node, hash, valid_until).await?;
    }
    let info = lookup_final(node, hash).await?;
    progress.step("final");
    progress.finish();
    if info.success {
        return Ok(info);
    }
    let report = render_extrinsic(&info)?;
    Err(Failure::CallFailed {
        hash: hash.to_string(),
        block: info.block_number,
        error: info.error.unwrap_or_else(|| DispatchError {
            pallet: "unknown".into(),
            error: "Unknown".into(),
            message: "the node reported failure without an error".into(),
        }),
        report: Box::new(report),
    }
    .into())
}

/// The first event of the transaction that `pick` recognises.
pub fn find_event<T>(info: &ExtrinsicInfo, pick: impl Fn(&Event) -> Option<T>) -> Option<T> {
    info.events.iter().find_map(|record| pick(&record.event))
}

/// `{"hash", "block", "blockHash", "fee"}` of a transaction, for the grid commands' JSON.
pub fn transaction_json(info: &ExtrinsicInfo) -> serde_json::Value {
    serde_json::json!({
        "hash": info.hash,
        "blockNumber": info.block_number,
        "blockHash": info.block_hash,
        "fee": info.fee.to_string(),
    })
}
