//! `grid balance`, `grid block` and `grid tx`: reading the chain.

use crate::{
    amount::format_grid,
    describe,
    output::Rendered,
    rpc::{Node, NodeClient},
};
use anyhow::{anyhow, bail, Context, Result};
use gridchain_primitives::{decode_untrusted, AccountId, BlockNumber, Hash};
use gridchain_rpc_api::{ChainApiClient, ExtrinsicInfo, GridchainApiClient};
use serde_json::json;

/// Which block `grid block` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRef {
    Best,
    Number(BlockNumber),
    Hash(Hash),
}

impl BlockRef {
    /// Parses a block number or a `0x` block hash; none means the best block.
    pub fn parse(text: Option<&str>) -> Result<Self> {
        let Some(text) = text.map(str::trim) else {
            return Ok(BlockRef::Best);
        };
        if text.starts_with("0x") {
            return text
                .parse()
                .map(BlockRef::Hash)
                .map_err(|e| anyhow!("invalid block hash '{text}': {e}"));
        }
        text.parse()
            .map(BlockRef::Number)
            .map_err(|_| anyhow!("invalid block '{text}': expected a block number or a 0x hash"))
    }
}

/// Parses a `0x` transaction hash.
pub fn parse_tx_hash(text: &str) -> Result<Hash> {
    text.trim()
        .parse()
        .map_err(|e| anyhow!("invalid transaction hash '{text}': {e}"))
}

pub async fn balance<C: NodeClient>(node: &Node<'_, C>, account: AccountId) -> Result<Rendered> {
    let info = node
        .read(GridchainApiClient::account(
            node.client,
            account.to_string(),
        ))
        .await?;
    let json = serde_json::to_value(&info)?;
    let text = format!(
        "address:  {}\nfree:     {}\nreserved: {}\nnonce:    {}\nat block: {}",
        info.address,
        format_grid(info.free),
        format_grid(info.reserved),
        info.nonce,
        info.at
    );
    Ok(Rendered::new(json, text))
}

pub async fn block<C: NodeClient>(node: &Node<'_, C>, which: BlockRef) -> Result<Rendered> {
    let hash = match which {
        BlockRef::Best => node.read(node.client.block_hash(None)).await?,
        BlockRef::Number(number) => node.read(node.client.block_hash(Some(number))).await?,
        BlockRef::Hash(hash) => Some(hash),
    };
    let not_found = || match which {
        BlockRef::Best => anyhow!("the node has no best block"),
        BlockRef::Number(number) => anyhow!("block #{number} not found"),
        BlockRef::Hash(hash) => anyhow!("block {hash} not found"),
    };
    let hash = hash.ok_or_else(not_found)?;
    let block = node
        .read(ChainApiClient::block(node.client, Some(hash)))
        .await?
        .ok_or_else(not_found)?
        .block;
    let header = &block.header;
    let mut extrinsics_json = Vec::new();
    let mut extrinsic_lines = Vec::new();
    for (index, bytes) in block.extrinsics.iter().enumerate() {
        let tx_hash = Hash::of(&bytes.0);
        match decode_untrusted::<gridchain_runtime::Extrinsic>("extrinsic", &bytes.0) {
            Ok(extrinsic) => {
                extrinsic_lines.push(format!(
                    "  #{index} {tx_hash} from {} nonce {}: {}",
                    extrinsic.signer,
                    extrinsic.nonce,
                    describe::call(&extrinsic.call)
                ));
                extrinsics_json.push(json!({
                    "index": index,
                    "hash": tx_hash,
                    "signer": extrinsic.signer,
                    "nonce": extrinsic.nonce,
                    "tip": extrinsic.tip.to_string(),
                    "call": extrinsic.call,
                }));
            }
            Err(e) => {
                extrinsic_lines.push(format!("  #{index} {tx_hash}: {e}"));
                extrinsics_json
                    .push(json!({ "index": index, "hash": tx_hash, "error": e.to_string() }));
            }
        }
    }
    let json = json!({
        "number": header.number,
        "hash": hash,
        "header": header,
        "extrinsics": extrinsics_json,
    });
    let mut text = format!(
        "block #{} {hash}\nparent:          {}\ntimestamp (ms):  {}\nstate root:      {}\nextrinsics root: {}\nproposer:        {}\nextrinsics:      {}",
        header.number,
        header.parent_hash,
        header.timestamp_ms,
        header.state_root,
        header.extrinsics_root,
        header.proposer,
        block.extrinsics.len()
    );
    for line in extrinsic_lines {
        text.push('\n');
        text.push_str(&line);
    }
    Ok(Rendered::new(json, text))
}

pub async fn tx<C: NodeClient>(node: &Node<'_, C>, hash: Hash) -> Result<Rendered> {
    let Some(info) = node.read(node.client.extrinsic(hash)).await? else {
        bail!("transaction {hash} is not in a final block (unknown, pending, or dropped)");
    };
    render_extrinsic(&info)
}

/// The report of a transaction in a final block, shared by `grid tx` and `grid transfer`.
pub fn render_extrinsic(info: &ExtrinsicInfo) -> Result<Rendered> {
    let json = serde_json::to_value(info).context("cannot encode the transaction as JSON")?;
    let result = match (&info.success, &info.error) {
        (true, _) => "success".to_string(),
        (false, Some(error)) => format!("failed: {error}"),
        (false, None) => "failed".to_string(),
    };
    let mut text = format!(
        "transaction {}\nblock:  #{} {} (index {})\nsigner: {} (nonce {})\ncall:   {}\nresult: {result}\nfee:    {} (tip {})\nevents:",
        info.hash,
        info.block_number,
        info.block_hash,
        info.index,
        info.signer,
        info.nonce,
        describe::call(&info.call),
        format_grid(info.fee),
        format_grid(info.tip),
    );
    for record in &info.events {
        text.push_str("\n  ");
        text.push_str(&describe::event(&record.event));
    }
    Ok(Rendered::new(json, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_block_refs() {
        assert_eq!(BlockRef::parse(None).ok(), Some(BlockRef::Best));
        assert_eq!(BlockRef::parse(Some("12")).ok(), Some(BlockRef::Number(12)));
        let hash = Hash::of(b"block");
        assert_eq!(
            BlockRef::parse(Some(&hash.to_string())).ok(),
            Some(BlockRef::Hash(hash))
        );
        assert!(BlockRef::parse(Some("-1")).is_err());
        assert!(BlockRef::parse(Some("0x12")).is_err());
        assert!(BlockRef::parse(Some("best")).is_err());
    }
}
