//! `grid transfer`: build, sign and submit a balance transfer, then follow it to a final block.

use crate::{
    accounts::{resolve_account, resolve_signer, KeystoreLocation},
    amount::{format_grid, parse_amount},
    cli::TransferArgs,
    commands::query::render_extrinsic,
    failure::Failure,
    output::{Progress, Rendered},
    rpc::{Node, NodeClient},
};
use anyhow::{anyhow, Context, Result};
use gridchain_primitives::{AccountId, Balance, BlockNumber, Bytes, ChainContext, Hash, Pair};
use gridchain_rpc_api::{
    AuthorApiClient, ChainApiClient, ExtrinsicInfo, GridchainApiClient, StateApiClient,
    SystemApiClient, TransactionStatus,
};
use gridchain_runtime::{balances, system::DispatchError, Call, Extrinsic};
use parity_scale_codec::Encode;
use serde_json::json;
use std::time::Duration;

/// How many blocks past the best one a transaction stays valid.
pub(crate) const MORTALITY_BLOCKS: BlockNumber = 256;
/// How often an HTTP client asks whether the transaction is final.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long to wait for `gridchain_extrinsic` to know a transaction reported final.
const FINAL_LOOKUP_ATTEMPTS: u32 = 20;

/// A transfer checked and resolved locally, before the node is contacted.
pub struct Transfer {
    signer: Pair,
    dest: AccountId,
    amount: Balance,
    tip: Balance,
    wait: bool,
}

impl Transfer {
    pub fn prepare(args: &TransferArgs, keystore: &KeystoreLocation) -> Result<Self> {
        let dest = resolve_account(&args.to, keystore)?;
        let amount = parse_amount(&args.amount, args.units)?;
        let tip = parse_amount(&args.tip, args.units).context("invalid --tip")?;
        let signer = resolve_signer(args.from.as_deref(), keystore)?;
        Ok(Transfer {
            signer,
            dest,
            amount,
            tip,
            wait: !args.no_wait,
        })
    }

    pub async fn execute<C: NodeClient>(
        self,
        node: &Node<'_, C>,
        mut progress: Progress,
    ) -> Result<Rendered> {
        let client = node.client;
        let genesis_hash = node
            .read(client.block_hash(Some(0)))
            .await?
            .context("the node has no genesis block")?;
        let spec_version = node.read(client.runtime_version()).await?.spec_version;
        let signer_address = self.signer.public().to_string();
        let nonce = node
            .read(client.account_next_index(signer_address.clone()))
            .await?;
        let best = node
            .read(client.header(None))
            .await?
            .context("the node has no best block")?;
        let valid_until = best.number + MORTALITY_BLOCKS;
        let call = Call::Balances(balances::Call::Transfer {
            dest: self.dest,
            amount: self.amount,
        });
        let context = ChainContext {
            genesis_hash,
            spec_version,
        };
        let extrinsic = Extrinsic::sign(&self.signer, call, nonce, valid_until, self.tip, context);
        let hash = extrinsic.hash();
        let encoded = Bytes(extrinsic.encode());

        if !self.wait {
            let hash = node.submit(client.submit_extrinsic(encoded)).await?;
            let json = json!({
                "hash": hash,
                "status": "submitted",
                "signer": signer_address,
                "nonce": nonce,
                "validUntil": valid_until,
            });
            let text = format!(
                "submitted {hash}: {} from {signer_address} to {} (nonce {nonce})",
                format_grid(self.amount),
                self.dest
            );
            return Ok(Rendered::new(json, text));
        }

        if node.can_watch {
            watch_until_final(node, encoded, &mut progress).await?;
        } else {
            node.submit(client.submit_extrinsic(encoded)).await?;
            progress.step("submitted");
            poll_until_final(node, hash, valid_until).await?;
        }
        let info = lookup_final(node, hash).await?;
        progress.step("final");
        progress.finish();
        let report = render_extrinsic(&info)?;
        if info.success {
            return Ok(report);
        }
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
}

/// Submits over a subscription and follows the status updates until the block is final.
pub(crate) async fn watch_until_final<C: NodeClient>(
    node: &Node<'_, C>,
    encoded: Bytes,
    progress: &mut Progress,
) -> Result<()> {
    let hash = Hash::of(&encoded.0);
    let mut updates = node
        .submit(node.client.submit_and_watch_extrinsic(encoded))
        .await?;
    while let Some(update) = updates.next().await {
        let status = update.context("unexpected transaction status from the node")?;
        let left_pool = |status: &'static str| Failure::Dropped {
            hash: hash.to_string(),
            status,
        };
        match status {
            TransactionStatus::Future => progress.step("future"),
            TransactionStatus::Ready => progress.step("ready"),
            TransactionStatus::InBlock(block) => {
                let number = node
                    .read(node.client.header(Some(block)))
                    .await?
                    .map(|header| format!("#{}", header.number))
                    .unwrap_or_else(|| block.to_string());
                progress.step(&format!("in block {number}"));
            }
            TransactionStatus::Finalized(_) => return Ok(()),
            TransactionStatus::Usurped(_) => return Err(left_pool("usurped").into()),
            TransactionStatus::Dropped => return Err(left_pool("dropped").into()),
            TransactionStatus::Invalid => return Err(left_pool("invalid").into()),
        }
    }
    Err(Failure::Unreachable {
        url: node.url.to_string(),
        reason: "the connection closed while watching the transaction".into(),
    }
    .into())
}

/// Polls (HTTP has no subscriptions) until the transaction is final or has expired.
pub(crate) async fn poll_until_final<C: NodeClient>(
    node: &Node<'_, C>,
    hash: Hash,
    valid_until: BlockNumber,
) -> Result<()> {
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        if node.read(node.client.extrinsic(hash)).await?.is_some() {
            return Ok(());
        }
        let final_head = node.read(node.client.finalized_head()).await?;
        let final_number = node
            .read(node.client.header(Some(final_head)))
            .await?
            .map_or(0, |header| header.number);
        if final_number > valid_until {
            return Err(Failure::Dropped {
                hash: hash.to_string(),
                status: "expired",
            }
            .into());
        }
    }
}

/// Fetches the report of a transaction the node called final.
pub(crate) async fn lookup_final<C: NodeClient>(
    node: &Node<'_, C>,
    hash: Hash,
) -> Result<ExtrinsicInfo> {
    for _ in 0..FINAL_LOOKUP_ATTEMPTS {
        if let Some(info) = node.read(node.client.extrinsic(hash)).await? {
            return Ok(info);
        }
        tokio::time::sleep(POLL_INTERVAL / 5).await;
    }
    Err(anyhow!(
        "transaction {hash} was reported final but the node does not know it"
    ))
}
