//! `grid staking bond|unbond|withdraw|validate|chill|validators`: stake and the validator set
//! (`pallet-validators`).
//!
//! The transactions are signed, submitted and followed to a final block by
//! [`submit_call`](crate::commands::submit::submit_call), like the grid commands; each prints one
//! line. Input is checked before the node is contacted: a bad amount, commission, consensus key
//! or signer is a general error (exit 1) and nothing is sent.

use crate::{
    accounts::{resolve_account, resolve_signer, KeystoreLocation},
    amount::{format_grid, parse_amount},
    commands::submit::{find_event, submit_call, transaction_json},
    keystore,
    output::{Progress, Rendered},
    rpc::{Node, NodeClient},
};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use gridchain_primitives::{decode_untrusted, AccountId, Balance, BlockNumber, Bytes, Hash, Pair};
use gridchain_rpc_api::{ChainApiClient, ExtrinsicInfo, GridchainApiClient, StateApiClient};
use gridchain_runtime::{
    validators::{self, Candidate, Ledger, StakingConfig, ValidatorInfo, PERBILL},
    Call, Event,
};
use parity_scale_codec::Decode;
use serde_json::json;

/// An amount of stake, as `bond` and `unbond` take it.
#[derive(Debug, Args)]
pub struct StakeAmount {
    /// Amount in GRID with up to 12 decimals (e.g. 2000 or 1.5), or raw units with --units.
    #[arg(allow_hyphen_values = true)]
    amount: String,
    /// Read the amount as raw units (10^-12 GRID).
    #[arg(long)]
    units: bool,
}

#[derive(Debug, Subcommand)]
pub enum StakingCommand {
    /// Bond AMOUNT of the signer's free balance as stake (reserved; at least the chain's
    /// minimum bond in total).
    Bond {
        #[command(flatten)]
        stake: StakeAmount,
        /// Signing key: name of a key in the keystore, or a secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// Start unbonding AMOUNT of stake: withdrawable after the chain's unbonding period.
    /// Unbonding the whole bond also ends the candidacy.
    Unbond {
        #[command(flatten)]
        stake: StakeAmount,
        /// Signing key: name of a key in the keystore, or a secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// Return every unbonded chunk whose unbonding period is over to the free balance.
    Withdraw {
        /// Signing key: name of a key in the keystore, or a secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// Become (or update) a validator candidate; the set chosen at the end of the epoch takes
    /// the candidates with the largest bonds.
    Validate {
        /// The ed25519 key the validator node signs votes with: an address, a key name or a
        /// secret URI (only its public key is used) [default: the signer's own key].
        #[arg(long, value_name = "ADDRESS|NAME|SECRET_URI")]
        consensus_key: Option<String>,
        /// Commission in percent, 0 to 100 with up to 7 decimals (e.g. 5 or 2.5)
        /// [default: the current one of a candidate, else 0].
        #[arg(long, value_name = "PERCENT", allow_hyphen_values = true)]
        commission: Option<String>,
        /// Signing key: name of a key in the keystore, or a secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// Stop being a validator candidate (the bond stays).
    Chill {
        /// Signing key: name of a key in the keystore, or a secret URI.
        #[arg(long, value_name = "NAME|SECRET_URI")]
        from: Option<String>,
    },
    /// The validator set that signs the next block (or height --at), with each validator's
    /// account, consensus key and voting power, and the scheduled change, if any.
    Validators {
        /// The height whose signers to show (its parent block must exist) [default: the next
        /// block].
        #[arg(long, value_name = "HEIGHT")]
        at: Option<BlockNumber>,
        /// Same as `--output json`.
        #[arg(long)]
        json: bool,
    },
}

/// A staking command checked and resolved locally, before the node is contacted.
#[allow(clippy::large_enum_variant)] // one per run
pub enum StakingRequest {
    Bond {
        signer: Pair,
        amount: Balance,
    },
    Unbond {
        signer: Pair,
        amount: Balance,
    },
    Withdraw {
        signer: Pair,
    },
    Validate {
        signer: Pair,
        consensus_key: AccountId,
        commission: Option<u32>,
    },
    Chill {
        signer: Pair,
    },
    Validators {
        at: Option<BlockNumber>,
    },
}

impl StakingRequest {
    pub fn prepare(command: StakingCommand, keystore: &KeystoreLocation) -> Result<Self> {
        let signer = |from: Option<String>| resolve_signer(from.as_deref(), keystore);
        Ok(match command {
            StakingCommand::Bond { stake, from } => StakingRequest::Bond {
                amount: parse_stake(&stake.amount, stake.units)?,
                signer: signer(from)?,
            },
            StakingCommand::Unbond { stake, from } => StakingRequest::Unbond {
                amount: parse_stake(&stake.amount, stake.units)?,
                signer: signer(from)?,
            },
            StakingCommand::Withdraw { from } => StakingRequest::Withdraw {
                signer: signer(from)?,
            },
            StakingCommand::Validate {
                consensus_key,
                commission,
                from,
            } => {
                let commission = commission
                    .as_deref()
                    .map(parse_commission)
                    .transpose()
                    .context("invalid --commission")?;
                let signer = signer(from)?;
                let consensus_key = match consensus_key.as_deref() {
                    None => signer.public(),
                    Some(text) => resolve_consensus_key(text, keystore)?,
                };
                StakingRequest::Validate {
                    signer,
                    consensus_key,
                    commission,
                }
            }
            StakingCommand::Chill { from } => StakingRequest::Chill {
                signer: signer(from)?,
            },
            StakingCommand::Validators { at, json: _ } => {
                if at == Some(0) {
                    bail!("invalid --at 0: the genesis block has no signers (heights start at 1)");
                }
                StakingRequest::Validators { at }
            }
        })
    }

    pub async fn execute<C: NodeClient>(
        self,
        node: &Node<'_, C>,
        mut progress: Progress,
    ) -> Result<Rendered> {
        match self {
            StakingRequest::Bond { signer, amount } => {
                let call = Call::Validators(validators::Call::Bond { amount });
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let who = signer.public();
                let bonded = ledger_at(node, &who, &info).await?.map_or(0, |l| l.bonded);
                let text = format!(
                    "{who} bonded {} (bond now {}); {}",
                    format_grid(amount),
                    format_grid(bonded),
                    in_block(&info)
                );
                let json = json!({
                    "account": who,
                    "amount": amount.to_string(),
                    "bonded": bonded.to_string(),
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            StakingRequest::Unbond { signer, amount } => {
                let call = Call::Validators(validators::Call::Unbond { amount });
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let who = signer.public();
                let release_at = find_event(&info, |e| match e {
                    Event::Validators(validators::Event::Unbonded { release_at, .. }) => {
                        Some(*release_at)
                    }
                    _ => None,
                });
                let chilled = chilled(&info);
                let bonded = ledger_at(node, &who, &info).await?.map_or(0, |l| l.bonded);
                let mut text = format!(
                    "{who} unbonding {}{} (bond now {})",
                    format_grid(amount),
                    release_at
                        .map(|at| format!(", withdrawable from block #{at}"))
                        .unwrap_or_default(),
                    format_grid(bonded),
                );
                if chilled {
                    text.push_str(", no longer a validator candidate");
                }
                text.push_str(&format!("; {}", in_block(&info)));
                let json = json!({
                    "account": who,
                    "amount": amount.to_string(),
                    "releaseAt": release_at,
                    "bonded": bonded.to_string(),
                    "chilled": chilled,
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            StakingRequest::Withdraw { signer } => {
                let call = Call::Validators(validators::Call::WithdrawUnbonded);
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let who = signer.public();
                let amount = find_event(&info, |e| match e {
                    Event::Validators(validators::Event::Withdrawn { amount, .. }) => Some(*amount),
                    _ => None,
                })
                .unwrap_or(0);
                let text = format!(
                    "{who} withdrew {} to its free balance; {}",
                    format_grid(amount),
                    in_block(&info)
                );
                let json = json!({
                    "account": who,
                    "amount": amount.to_string(),
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            StakingRequest::Validate {
                signer,
                consensus_key,
                commission,
            } => {
                let who = signer.public();
                let commission = match commission {
                    Some(commission) => commission,
                    None => {
                        read_storage::<_, Candidate>(node, validators::candidate_key(&who), None)
                            .await?
                            .map_or(0, |c| c.commission)
                    }
                };
                let call = Call::Validators(validators::Call::Validate {
                    consensus_key,
                    commission,
                });
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let epochs = next_choice(node, &info).await?;
                let text = format!(
                    "{who} is a validator candidate with consensus key {consensus_key}, commission \
                     {}%; the next set is chosen in block #{} and signs from #{}; {}",
                    format_percent(commission),
                    epochs.chosen_in,
                    epochs.signs_from,
                    in_block(&info)
                );
                let json = json!({
                    "account": who,
                    "consensusKey": consensus_key,
                    "commission": commission,
                    "commissionPercent": format_percent(commission),
                    "nextSetChosenIn": epochs.chosen_in,
                    "nextSetSignsFrom": epochs.signs_from,
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            StakingRequest::Chill { signer } => {
                let call = Call::Validators(validators::Call::Chill);
                let info = submit_call(node, &signer, call, &mut progress).await?;
                let who = signer.public();
                let epochs = next_choice(node, &info).await?;
                let text = format!(
                    "{who} is no longer a validator candidate: the set chosen in block #{} \
                     (signing from #{}) leaves it out; {}",
                    epochs.chosen_in,
                    epochs.signs_from,
                    in_block(&info)
                );
                let json = json!({
                    "account": who,
                    "nextSetChosenIn": epochs.chosen_in,
                    "nextSetSignsFrom": epochs.signs_from,
                    "transaction": transaction_json(&info),
                });
                Ok(Rendered::new(json, text))
            }
            StakingRequest::Validators { at } => {
                if let Some(height) = at {
                    let best = node
                        .read(ChainApiClient::header(node.client, None))
                        .await?
                        .map_or(0, |header| header.number);
                    if height > best + 1 {
                        bail!(
                            "no validator set for height {height} yet: it is read from the state \
                             after block #{}, and the best block is #{best}",
                            height - 1
                        );
                    }
                }
                let info = node
                    .read(GridchainApiClient::validators(node.client, at))
                    .await?;
                let mut text = format!(
                    "validators of height {}: {}",
                    info.height,
                    set_summary(&info.validators)
                );
                push_set(&mut text, &info.validators);
                match &info.scheduled {
                    Some(next) => {
                        text.push_str(&format!(
                            "\nscheduled from height {}: {}",
                            next.effective_height,
                            set_summary(&next.validators)
                        ));
                        push_set(&mut text, &next.validators);
                    }
                    None => text.push_str("\nno change scheduled"),
                }
                Ok(Rendered::new(serde_json::to_value(&info)?, text))
            }
        }
    }
}

/// A bond or unbond amount: GRID (or raw units), and not zero.
fn parse_stake(text: &str, units: bool) -> Result<Balance> {
    let amount = parse_amount(text, units)?;
    if amount == 0 {
        bail!("amount must be greater than zero: {}", text.trim());
    }
    Ok(amount)
}

/// Parts per billion in one percent.
const PERBILL_PER_PERCENT: u32 = PERBILL / 100;
/// Decimal places of a percentage that parts per billion can hold.
const PERCENT_DECIMALS: usize = 7;

/// A commission in percent (`5`, `2.5`, `0.0000001`, optionally with a trailing `%`) as parts
/// per billion; at most 100 %.
fn parse_commission(text: &str) -> Result<u32> {
    let text = text.trim();
    let number = text.strip_suffix('%').unwrap_or(text).trim();
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (number.contains('.') && !digits(fraction)) {
        bail!("'{text}' is not a percentage (e.g. 5 or 2.5)");
    }
    if fraction.len() > PERCENT_DECIMALS {
        bail!("'{text}' has more than {PERCENT_DECIMALS} decimal places");
    }
    let above_100 = || anyhow!("commission {text} is above 100%");
    let whole: u32 = whole.parse().map_err(|_| above_100())?;
    if whole > 100 {
        return Err(above_100());
    }
    let fraction: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<PERCENT_DECIMALS$}").parse()?
    };
    // Seven decimals of a percent are exactly parts per billion.
    let ppb = whole * PERBILL_PER_PERCENT + fraction;
    if ppb > PERBILL {
        return Err(above_100());
    }
    Ok(ppb)
}

/// Parts per billion as a percentage without trailing zeros: 25_000_000 → `2.5`.
fn format_percent(ppb: u32) -> String {
    let whole = ppb / PERBILL_PER_PERCENT;
    let fraction = ppb % PERBILL_PER_PERCENT;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0PERCENT_DECIMALS$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `--consensus-key`: a secret URI (its public key), an address, or a keystore key's account.
fn resolve_consensus_key(text: &str, keystore: &KeystoreLocation) -> Result<AccountId> {
    let text = text.trim();
    if keystore::looks_like_secret_uri(text) {
        return Pair::from_uri(text)
            .map(|pair| pair.public())
            .context("--consensus-key is not a valid secret URI");
    }
    resolve_account(text, keystore).context("invalid --consensus-key")
}

/// `transaction 0x… in block #N`.
fn in_block(info: &ExtrinsicInfo) -> String {
    format!("transaction {} in block #{}", info.hash, info.block_number)
}

fn chilled(info: &ExtrinsicInfo) -> bool {
    find_event(info, |e| match e {
        Event::Validators(validators::Event::Chilled { .. }) => Some(()),
        _ => None,
    })
    .is_some()
}

/// A SCALE value of the state at block `at` (default: best), if the key is set.
async fn read_storage<C: NodeClient, T: Decode>(
    node: &Node<'_, C>,
    key: Vec<u8>,
    at: Option<Hash>,
) -> Result<Option<T>> {
    let Some(bytes) = node
        .read(StateApiClient::storage(node.client, Bytes(key), at))
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(decode_untrusted("staking storage value", &bytes.0)?))
}

/// The signer's ledger right after the transaction's block.
async fn ledger_at<C: NodeClient>(
    node: &Node<'_, C>,
    who: &AccountId,
    info: &ExtrinsicInfo,
) -> Result<Option<Ledger>> {
    read_storage(node, validators::ledger_key(who), Some(info.block_hash)).await
}

/// When the candidacies as of a transaction's block are next turned into a set.
struct NextChoice {
    /// The last block of the epoch: the set is chosen at its end.
    chosen_in: BlockNumber,
    /// The first height of the epoch after next, which that set signs.
    signs_from: BlockNumber,
}

async fn next_choice<C: NodeClient>(
    node: &Node<'_, C>,
    info: &ExtrinsicInfo,
) -> Result<NextChoice> {
    let config: StakingConfig = read_storage(node, validators::config_key(), Some(info.block_hash))
        .await?
        .unwrap_or_default();
    Ok(epoch_schedule(
        info.block_number,
        config.epoch_length.max(1),
    ))
}

fn epoch_schedule(block: BlockNumber, epoch_length: u64) -> NextChoice {
    let epoch = block / epoch_length;
    NextChoice {
        chosen_in: (epoch + 1) * epoch_length - 1,
        signs_from: (epoch + 2) * epoch_length,
    }
}

/// `2 validators, total power 102000`.
fn set_summary(set: &[ValidatorInfo]) -> String {
    let total: u64 = set.iter().map(|v| v.power).sum();
    format!(
        "{} validator{}, total power {total}",
        set.len(),
        if set.len() == 1 { "" } else { "s" }
    )
}

/// One line per validator: account, consensus key, power and its share.
fn push_set(text: &mut String, set: &[ValidatorInfo]) {
    let total: u64 = set.iter().map(|v| v.power).sum::<u64>().max(1);
    for v in set {
        text.push_str(&format!(
            "\n  {}  consensus key {}  power {} ({:.2}%)",
            v.account,
            v.consensus_key,
            v.power,
            v.power as f64 * 100.0 / total as f64
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn commission_percent_to_parts_per_billion() {
        assert_eq!(parse_commission("0").unwrap(), 0);
        assert_eq!(parse_commission("5").unwrap(), 50_000_000);
        assert_eq!(parse_commission("2.5").unwrap(), 25_000_000);
        assert_eq!(parse_commission("2.5%").unwrap(), 25_000_000);
        assert_eq!(parse_commission("0.0000001").unwrap(), 1);
        assert_eq!(parse_commission("100").unwrap(), PERBILL);
        assert_eq!(parse_commission("100.0").unwrap(), PERBILL);
        for bad in ["100.0000001", "101", "1000", "99999999999"] {
            let error = parse_commission(bad).unwrap_err().to_string();
            assert!(error.contains("above 100%"), "{bad}: {error}");
        }
        for bad in [
            "", "-1", "abc", "1.", ".5", "1.2.3", "5 %%", "0x10", "+5", "1e2",
        ] {
            assert!(parse_commission(bad).is_err(), "{bad}");
        }
        assert!(parse_commission("0.00000001")
            .unwrap_err()
            .to_string()
            .contains("decimal places"));
    }

    #[test]
    fn commission_formats_back() {
        for ppb in [0, 1, 25_000_000, 50_000_000, 123_456_789, PERBILL] {
            assert_eq!(parse_commission(&format_percent(ppb)).unwrap(), ppb);
        }
        assert_eq!(format_percent(25_000_000), "2.5");
        assert_eq!(format_percent(PERBILL), "100");
    }

    #[test]
    fn stake_amounts() {
        assert_eq!(parse_stake("2000", false).unwrap(), 2_000_000_000_000_000);
        assert_eq!(parse_stake("5", true).unwrap(), 5);
        for bad in ["0", "0.0", "-1", "1.2.3", ""] {
            assert!(parse_stake(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_set_of_an_epoch() {
        let at = epoch_schedule(5, 10);
        assert_eq!((at.chosen_in, at.signs_from), (9, 20));
        let at = epoch_schedule(9, 10);
        assert_eq!((at.chosen_in, at.signs_from), (9, 20));
        let at = epoch_schedule(10, 10);
        assert_eq!((at.chosen_in, at.signs_from), (19, 30));
    }
}
