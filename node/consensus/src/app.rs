//! The application side of consensus: answers Malachite's [`AppMsg`] stream with gridchain's
//! blocks.
//!
//! ```text
//! ConsensusReady ─▶ start at best + 1 with that height's validator set (from state)
//! StartedRound   ─▶ hand back blocks of this round already received (or restored after a crash)
//! GetValue       ─▶ build a block from the pool, execute it, stream it as parts, return its hash
//! ProposalPart   ─▶ reassemble per publisher, check the proposer's signature, decode, execute
//!                   on the best state, compare state root ─▶ Valid / Invalid
//! Decided        ─▶ commit block + commit certificate in one RocksDB batch; pool, heads
//! Finalized      ─▶ keep the certificate with the most signatures; start the next height
//! GetDecidedValues / ProcessSyncedValue ─▶ serve and import blocks for value sync
//! ```
//!
//! Only the best block's state is ever executed against: a proposal for height `h` is checked
//! once `h - 1` is committed, and one for a later height waits in [`FutureProposals`] until then.
//! Proposals this node built or accepted are written to storage before consensus hears of them,
//! so a validator restarted mid-height still has the block its write-ahead log voted for.

use crate::codec::{certificate_from_malachite, certificate_to_malachite};
use crate::context::{
    Address, BlockValue, GridContext, Height, ProposalFin, ProposalInit, ProposalPart, Validator,
    ValidatorSet,
};
use crate::signing::{parts_sign_bytes, round_from_i64, round_to_i64, GridSigner};
use anyhow::Context as _;
use bytes::Bytes;
use gridchain_primitives::{
    decode_untrusted, AccountId, ChainContext, Hash, Header, StateChanges, StateRead,
};
use gridchain_runtime::{Block, BlockBuilder, InvalidTransaction};
use gridchain_storage::{PreparedState, Storage};
use gridchain_txpool::TxPool;
use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::core::{
    ExtendedCommitCertificate, LinearTimeouts, Round, Validity, VoteExtensions,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, PeerId, ProposedValue};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use parity_scale_codec::{Decode, Encode};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Most transactions considered per block; the runtime's byte limit usually binds first.
const MAX_BLOCK_TRANSACTIONS: usize = 100_000;
/// Share of the block time a proposer spends adding transactions. Every validator re-executes
/// the block before it prevotes, so a block that took longer to build than the propose timeout
/// allows would time out the round, and the next round's block would be bigger still.
const BUILD_SHARE_OF_BLOCK_TIME: u32 = 3;
/// Size of one `Data` part of a streamed block.
const PART_BYTES: usize = 256 * 1024;
/// A block stamped further ahead of the local clock than this is refused.
pub const MAX_FUTURE_DRIFT_MS: u64 = 2_000;
/// A freshly proposed block (not a re-proposal) stamped further behind the local clock than this
/// is refused: the proposer's clock is wrong, and billing periods would drift.
pub const MAX_PAST_DRIFT_MS: u64 = 30_000;
/// Part streams being reassembled at once; the oldest is dropped beyond this.
const MAX_OPEN_STREAMS: usize = 64;
/// Part streams one publisher may have open at once (its proposal of this round and a few
/// re-proposals); beyond this its own oldest is dropped, so one peer opening streams without end
/// neither holds memory for them nor pushes out the streams of others.
const MAX_STREAMS_PER_PUBLISHER: usize = 4;
/// Heights ahead of ours whose proposal streams are reassembled (their blocks wait in
/// `FutureProposals` until we get there).
const MAX_HEIGHTS_AHEAD: u64 = 4;
/// Rounds ahead of ours (at our height; of round 0 at later heights) whose proposal streams are
/// reassembled: a validator may be a few rounds ahead of us after a timeout, but a stream for
/// round 1,000 is someone filling our memory.
const MAX_ROUNDS_AHEAD: u32 = 8;
/// Largest stream accepted (a full block plus framing).
const MAX_STREAM_BYTES: usize = gridchain_runtime::MAX_BLOCK_BYTES + 1024 * 1024;
/// Most parts in one stream: a full block in `PART_BYTES` slices, `Init` and `Fin`.
const MAX_STREAM_PARTS: usize = MAX_STREAM_BYTES / PART_BYTES + 2;
/// Blocks of heights ahead of ours kept until we get there.
const MAX_FUTURE_PROPOSALS: usize = 32;
/// Most bytes of blocks in one sync response (Malachite's limit is 10 MiB).
const MAX_SYNC_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// A validator as the chain state names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMember {
    /// Signs votes and proposals.
    pub consensus_key: AccountId,
    /// Receives the fees and rewards of the blocks it proposes.
    pub account: AccountId,
    pub power: u64,
}

/// The validator set of height `h`, from the state after block `h - 1` (given with `h`).
pub type ValidatorSource = Arc<dyn Fn(&dyn StateRead, u64) -> Vec<SetMember> + Send + Sync>;

/// The chain's own rule: the set `pallet-validators` scheduled for the height.
pub fn runtime_validators() -> ValidatorSource {
    Arc::new(|state: &dyn StateRead, height| {
        gridchain_runtime::validators::validator_set_at(state, height)
            .into_iter()
            .map(|v| SetMember {
                consensus_key: v.consensus_key,
                account: v.account,
                power: v.power,
            })
            .collect()
    })
}

/// Called after each committed block with its header, number of extrinsics and commit time.
pub type CommitObserver = Arc<dyn Fn(&Header, usize, Duration) + Send + Sync>;

pub(crate) struct App {
    storage: Arc<Storage>,
    pool: Arc<TxPool>,
    chain: ChainContext,
    signer: Option<Arc<GridSigner>>,
    validators: ValidatorSource,
    block_time: Duration,
    heads: broadcast::Sender<Header>,
    on_commit: CommitObserver,
    status: Arc<crate::ConsensusStatus>,
    /// Blocks checked (or built) at the current height, by hash.
    executed: HashMap<Hash, ExecutedBlock>,
    /// Values consensus should hear of at `StartedRound`, by round.
    undecided: BTreeMap<u32, Vec<ProposedValue<GridContext>>>,
    /// What this node proposed at (height, round): asking twice gives the same block.
    own_proposals: HashMap<(u64, u32), Hash>,
    /// Valid proposals of others at the current height, as received, so consensus can have
    /// them re-published verbatim (Malachite asks for that past its hidden-lock round).
    relayable: HashMap<Hash, CompleteStream>,
    streams: PartStreams,
    future: FutureProposals,
    current_height: u64,
    /// The decided value was not available, so the height must restart.
    restart_height: bool,
}

struct ExecutedBlock {
    block: Block,
    changes: StateChanges,
    prepared: PreparedState,
}

/// A proposal as persisted for crash recovery.
#[derive(Encode, Decode)]
struct SavedProposal {
    round: u32,
    pol_round: i64,
    proposer: Address,
    block: Block,
}

/// A complete, not yet checked part stream.
#[derive(Clone)]
pub(crate) struct CompleteStream {
    pub init: ProposalInit,
    pub data: Vec<u8>,
    pub fin: ProposalFin,
}

/// Part streams being reassembled, by publisher and stream id.
#[derive(Default)]
pub(crate) struct PartStreams {
    open: HashMap<(PeerId, StreamId), OpenStream>,
    next_arrival: u64,
    /// Our (height, round) once consensus runs: streams outside the window it allows are
    /// refused before anything is kept.
    position: Option<(u64, u32)>,
}

struct OpenStream {
    arrival: u64,
    parts: BTreeMap<u64, Option<ProposalPart>>,
    fin_sequence: Option<u64>,
    bytes: usize,
}

#[derive(Default)]
struct FutureProposals {
    by_height: BTreeMap<u64, Vec<CompleteStream>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The messages that carry `block` (SCALE bytes) as `signer`'s proposal at (height, round):
/// `Init`, the block in `Data` slices, `Fin` with the signature over all of them, and the
/// stream's end marker.
pub(crate) fn proposal_stream(
    signer: &GridSigner,
    genesis: Hash,
    height: u64,
    round: u32,
    pol_round: i64,
    block: &[u8],
) -> Vec<StreamMessage<ProposalPart>> {
    let init = ProposalInit {
        height,
        round,
        pol_round,
        proposer: signer.address(),
    };
    let fin = ProposalFin {
        signature: signer.sign(&parts_sign_bytes(
            genesis,
            height,
            round,
            pol_round,
            Hash::of(block),
        )),
    };
    frame_stream(&init, block, &fin)
}

async fn publish(channels: &Channels<GridContext>, messages: Vec<StreamMessage<ProposalPart>>) {
    for message in messages {
        if channels
            .network
            .send(NetworkMsg::PublishProposalPart(message))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The stream messages of a proposal: `Init`, `Data` slices, `Fin`, end marker. The stream id
/// is (height, round), so a relayed copy of someone's stream is the same stream.
fn frame_stream(
    init: &ProposalInit,
    block: &[u8],
    fin: &ProposalFin,
) -> Vec<StreamMessage<ProposalPart>> {
    let stream_id = StreamId::new(Bytes::from((init.height, init.round).encode()));
    let mut parts = vec![ProposalPart::Init(init.clone())];
    parts.extend(
        block
            .chunks(PART_BYTES)
            .map(|c| ProposalPart::Data(c.to_vec())),
    );
    parts.push(ProposalPart::Fin(fin.clone()));
    let count = parts.len() as u64;
    let mut messages: Vec<_> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| StreamMessage::new(stream_id.clone(), i as u64, StreamContent::Data(p)))
        .collect();
    messages.push(StreamMessage::new(stream_id, count, StreamContent::Fin));
    messages
}

/// The (height, round) a stream id names (`frame_stream` makes them so).
fn stream_position(id: &StreamId) -> Option<(u64, u32)> {
    let bytes = id.to_bytes();
    let bytes: &[u8] = &bytes;
    if bytes.len() != 12 {
        return None;
    }
    let height = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let round = u32::from_le_bytes(bytes[8..].try_into().ok()?);
    Some((height, round))
}

/// Whether a stream at `at` is worth reassembling from `position` (ours; `None` before
/// consensus starts: everything is).
fn within_window(position: Option<(u64, u32)>, at: (u64, u32)) -> bool {
    let Some((height, round)) = position else {
        return true;
    };
    let (h, r) = at;
    if h < height || h > height + MAX_HEIGHTS_AHEAD {
        return false;
    }
    let base = if h == height { round } else { 0 };
    r <= base.saturating_add(MAX_ROUNDS_AHEAD)
}

impl PartStreams {
    /// Streams of `publisher` being reassembled.
    #[cfg(test)]
    pub fn open_count(&self, publisher: &PeerId) -> usize {
        self.open.keys().filter(|(p, _)| p == publisher).count()
    }

    /// Adds a part; returns the whole stream once every part up to its end arrived.
    pub fn insert(
        &mut self,
        publisher: PeerId,
        message: StreamMessage<ProposalPart>,
    ) -> Result<Option<CompleteStream>, String> {
        let key = (publisher, message.stream_id.clone());
        if !self.open.contains_key(&key) {
            let Some(at) = stream_position(&message.stream_id) else {
                return Err("proposal stream id is not a (height, round)".into());
            };
            if !within_window(self.position, at) {
                return Err(format!(
                    "proposal stream for height {} round {} is outside our window ({:?})",
                    at.0, at.1, self.position
                ));
            }
            let own = self.open.keys().filter(|(p, _)| *p == publisher).count();
            let full = own >= MAX_STREAMS_PER_PUBLISHER || self.open.len() >= MAX_OPEN_STREAMS;
            // The publisher's own oldest stream goes first; another's only when the publisher
            // has none open (then it is within its share).
            let oldest = full
                .then(|| {
                    self.open
                        .iter()
                        .filter(|((p, _), _)| own == 0 || *p == publisher)
                        .min_by_key(|(_, s)| s.arrival)
                        .map(|(k, _)| k.clone())
                })
                .flatten();
            if let Some(oldest) = oldest {
                self.open.remove(&oldest);
            }
        }
        self.next_arrival += 1;
        let arrival = self.next_arrival;
        let stream = self.open.entry(key.clone()).or_insert_with(|| OpenStream {
            arrival,
            parts: BTreeMap::new(),
            fin_sequence: None,
            bytes: 0,
        });
        match message.content {
            StreamContent::Fin => stream.fin_sequence = Some(message.sequence),
            StreamContent::Data(part) => {
                stream.bytes += match &part {
                    ProposalPart::Data(d) => d.len(),
                    _ => 128,
                };
                stream.parts.insert(message.sequence, Some(part));
                if stream.bytes > MAX_STREAM_BYTES || stream.parts.len() > MAX_STREAM_PARTS {
                    self.open.remove(&key);
                    return Err("proposal stream exceeds the block size limit".into());
                }
            }
        }
        let Some(fin) = stream.fin_sequence else {
            return Ok(None);
        };
        // Complete when parts 0..fin are all here (the Fin marker itself carries no part).
        if stream.parts.len() as u64 != fin
            || stream
                .parts
                .keys()
                .next_back()
                .is_some_and(|last| *last >= fin)
        {
            return Ok(None);
        }
        let stream = self.open.remove(&key).expect("present");
        let mut parts = stream.parts.into_values().flatten();
        let Some(ProposalPart::Init(init)) = parts.next() else {
            return Err("proposal stream does not start with Init".into());
        };
        let mut data = Vec::new();
        let mut fin = None;
        for part in parts {
            match (part, &fin) {
                (ProposalPart::Data(d), None) => data.extend_from_slice(&d),
                (ProposalPart::Fin(f), None) => fin = Some(f),
                _ => return Err("malformed proposal stream".into()),
            }
        }
        let fin = fin.ok_or("proposal stream has no Fin part")?;
        Ok(Some(CompleteStream { init, data, fin }))
    }

    /// Moves the window to our `(height, round)`, dropping the streams it no longer allows.
    pub fn set_position(&mut self, height: u64, round: u32) {
        self.position = Some((height, round));
        self.open.retain(|(_, id), _| {
            stream_position(id).is_some_and(|at| within_window(Some((height, round)), at))
        });
    }
}

/// What an [`App`] works with.
pub(crate) struct AppParts {
    pub storage: Arc<Storage>,
    pub pool: Arc<TxPool>,
    pub chain: ChainContext,
    pub signer: Option<Arc<GridSigner>>,
    pub validators: ValidatorSource,
    pub block_time: Duration,
    pub heads: broadcast::Sender<Header>,
    pub on_commit: CommitObserver,
    pub status: Arc<crate::ConsensusStatus>,
}

impl App {
    pub fn new(parts: AppParts) -> Self {
        let AppParts {
            storage,
            pool,
            chain,
            signer,
            validators,
            block_time,
            heads,
            on_commit,
            status,
        } = parts;
        App {
            storage,
            pool,
            chain,
            signer,
            validators,
            block_time,
            heads,
            on_commit,
            status,
            executed: HashMap::new(),
            undecided: BTreeMap::new(),
            own_proposals: HashMap::new(),
            relayable: HashMap::new(),
            streams: PartStreams::default(),
            future: FutureProposals::default(),
            current_height: 0,
            restart_height: false,
        }
    }

    /// SCALE bytes of a block checked or built at the current height.
    #[cfg(test)]
    pub fn executed_block_bytes(&self, hash: &Hash) -> Option<Vec<u8>> {
        self.executed.get(hash).map(|e| e.block.encode())
    }

    fn best(&self) -> anyhow::Result<Header> {
        self.storage
            .best_header()?
            .context("the database has no best block")
    }

    /// The validator set of the height after the best block.
    pub fn next_validator_set(&self) -> anyhow::Result<ValidatorSet> {
        let next = self.best()?.number + 1;
        let storage: &Storage = &self.storage;
        Ok(ValidatorSet::new(
            (self.validators)(storage, next)
                .into_iter()
                .map(|m| Validator {
                    address: Address(m.consensus_key),
                    public_key: m.consensus_key,
                    account: m.account,
                    power: m.power,
                })
                .collect(),
        ))
    }

    fn height_params(&self) -> anyhow::Result<HeightParams<GridContext>> {
        let set = self.next_validator_set()?;
        anyhow::ensure!(
            !set.is_empty(),
            "the validator set of the next height is empty"
        );
        let block = self.block_time;
        let timeouts = LinearTimeouts {
            // A proposer must build, execute, save and stream its block, and validators must
            // execute and save it before they prevote. Under a flood on busy machines that took
            // just over 2 s (building alone ~1 s: a third of the block time for transactions,
            // then the state root and an fsync), and a round that times out throws all of it
            // away and makes the next block bigger: 3 block times leave room.
            propose: (block * 3).max(Duration::from_secs(3)),
            propose_delta: Duration::from_millis(500),
            prevote: block.max(Duration::from_millis(500)),
            prevote_delta: Duration::from_millis(500),
            precommit: block.max(Duration::from_millis(500)),
            precommit_delta: Duration::from_millis(500),
            rebroadcast: block * 4,
            max_timeout: Duration::from_secs(30),
        };
        Ok(HeightParams::new(set, timeouts, Some(block)))
    }

    /// Runs until consensus closes its channel.
    pub async fn run(mut self, mut channels: Channels<GridContext>) -> anyhow::Result<()> {
        while let Some(msg) = channels.consensus.recv().await {
            if let Err(e) = self.handle(msg, &channels).await {
                // Storage failures end the node: going on could fork our own history.
                tracing::error!(error = %format!("{e:#}"), "consensus application failed; stopping");
                return Err(e);
            }
        }
        Ok(())
    }

    pub(crate) async fn handle(
        &mut self,
        msg: AppMsg<GridContext>,
        channels: &Channels<GridContext>,
    ) -> anyhow::Result<()> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let best = self.best()?;
                self.current_height = best.number + 1;
                self.restore_saved_proposals()?;
                tracing::info!(height = self.current_height, "consensus ready");
                let _ = reply.send((Height(best.number + 1), self.height_params()?));
            }
            AppMsg::StartedRound {
                height,
                round,
                proposer,
                role,
                reply_value,
            } => {
                tracing::debug!(%height, %round, %proposer, ?role, "round started");
                self.current_height = height.0;
                self.status.set_round(height.0, round.as_i64());
                self.streams
                    .set_position(height.0, round.as_u32().unwrap_or(0));
                self.check_future_proposals()?;
                let values = round
                    .as_u32()
                    .and_then(|r| self.undecided.get(&r).cloned())
                    .unwrap_or_default();
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout: _,
                reply,
            } => {
                let r = round.as_u32().context("GetValue for a nil round")?;
                let hash = match self.own_proposals.get(&(height.0, r)) {
                    Some(hash) => *hash,
                    None => self.propose(height.0, r)?,
                };
                self.stream_proposal(channels, height.0, r, Round::Nil, hash)
                    .await;
                let _ = reply.send(LocallyProposedValue::new(height, round, BlockValue(hash)));
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                // Extensions are disabled; an empty one carries nothing to judge.
                let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                address,
                value_id,
            } => {
                let ours = self.signer.as_ref().map(|s| s.address()) == Some(address);
                match (ours, round.as_u32(), self.relayable.get(&value_id)) {
                    (true, Some(r), _) => {
                        self.stream_proposal(channels, height.0, r, valid_round, value_id)
                            .await
                    }
                    (false, Some(r), Some(seen)) if seen.init.round == r => {
                        let messages = frame_stream(&seen.init, &seen.data, &seen.fin);
                        publish(channels, messages).await;
                    }
                    _ => tracing::debug!(%height, %round, %value_id, "nothing to restream"),
                }
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(Height(1));
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let publisher = published_by.unwrap_or(from);
                let value = match self.streams.insert(publisher, part) {
                    Ok(Some(stream)) => self.on_complete_stream(stream)?,
                    Ok(None) => None,
                    Err(reason) => {
                        tracing::warn!(%from, %reason, "dropping proposal stream");
                        None
                    }
                };
                let _ = reply.send(value);
            }
            AppMsg::Decided {
                certificate, reply, ..
            } => {
                self.commit(certificate_from_malachite(&certificate))?;
                let _ = reply.send(());
            }
            AppMsg::Finalized {
                certificate, reply, ..
            } => {
                let height = certificate.height.0;
                let certificate = certificate_from_malachite(&certificate);
                if let Some(stored) = self.storage.certificate(height)? {
                    if certificate.block_hash == stored.block_hash
                        && certificate.signatures.len() > stored.signatures.len()
                    {
                        self.storage.put_certificate(&certificate)?;
                    }
                }
                let next = if std::mem::take(&mut self.restart_height) {
                    Next::Restart(Height(height), self.height_params()?)
                } else {
                    Next::Start(Height(height + 1), self.height_params()?)
                };
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let _ = reply.send(self.decided_values(range.start().0, range.end().0)?);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let outcome = self.on_synced_value(height.0, round, proposer, &value_bytes);
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }

    /// Builds, executes and saves this node's block for (height, round).
    fn propose(&mut self, height: u64, round: u32) -> anyhow::Result<Hash> {
        let signer = self
            .signer
            .clone()
            .context("asked to propose without a key")?;
        let started = Instant::now();
        let parent = self.best()?;
        anyhow::ensure!(
            parent.number + 1 == height,
            "asked to propose height {height} on top of {}",
            parent.number
        );
        let timestamp_ms = now_ms().max(parent.timestamp_ms + 1);
        use malachitebft_app_channel::app::types::core::ValidatorSet as _;
        // Fees and the block reward go to our staking account.
        let account = self
            .next_validator_set()?
            .get_by_address(&signer.address())
            .map_or(signer.key.public(), |v| v.account);
        let storage: &Storage = &self.storage;
        let mut builder = BlockBuilder::new(
            storage,
            self.chain,
            parent.hash(),
            height,
            timestamp_ms,
            account,
        )?;
        let budget = (self.block_time / BUILD_SHARE_OF_BLOCK_TIME).max(Duration::from_millis(100));
        for tx in self.pool.ready(MAX_BLOCK_TRANSACTIONS) {
            if started.elapsed() > budget {
                break;
            }
            // The pool verified this exact extrinsic's signature for this chain.
            match builder.push(tx.xt.clone(), tx.encoded_len, false) {
                Ok(_) => {}
                Err(InvalidTransaction::ExhaustsResources) => break,
                Err(error) => {
                    tracing::debug!(hash = %tx.hash, %error, "dropping transaction at block build");
                    self.pool.remove_invalid(&tx.hash);
                }
            }
        }
        let built = builder.finish();
        let prepared = self.storage.prepare_state(&built.changes, height)?;
        let header = built.header(prepared.root);
        let block = Block {
            header,
            extrinsics: built.extrinsics,
        };
        let hash = block.hash();
        self.save_proposal(round, -1, Address(signer.key.public()), &block)?;
        tracing::info!(
            height,
            round,
            %hash,
            extrinsics = block.extrinsics.len(),
            build_ms = started.elapsed().as_millis() as u64,
            "proposing block"
        );
        self.executed.insert(
            hash,
            ExecutedBlock {
                block,
                changes: built.changes,
                prepared,
            },
        );
        self.own_proposals.insert((height, round), hash);
        Ok(hash)
    }

    /// Publishes the block `hash` as the parts of our proposal at (height, round).
    async fn stream_proposal(
        &self,
        channels: &Channels<GridContext>,
        height: u64,
        round: u32,
        pol_round: Round,
        hash: Hash,
    ) {
        let Some(signer) = &self.signer else { return };
        // Alone (a dev chain, or cut off): nobody to send to; peers that connect later get the
        // block through restream or value sync.
        if self.status.peers() == 0 {
            return;
        }
        let block = match self.executed.get(&hash) {
            Some(e) => e.block.encode(),
            None => match self.storage.block(&hash) {
                Ok(Some(b)) => b.encode(),
                _ => {
                    tracing::warn!(%hash, "cannot restream a block we do not have");
                    return;
                }
            },
        };
        let messages = proposal_stream(
            signer,
            self.chain.genesis_hash,
            height,
            round,
            round_to_i64(pol_round),
            &block,
        );
        publish(channels, messages).await;
    }

    /// Checks a complete stream now if it is for the current height, later if it is ahead.
    fn on_complete_stream(
        &mut self,
        stream: CompleteStream,
    ) -> anyhow::Result<Option<ProposedValue<GridContext>>> {
        let height = stream.init.height;
        if height < self.current_height {
            return Ok(None);
        }
        if height > self.current_height {
            let queued: usize = self.future.by_height.values().map(Vec::len).sum();
            if queued < MAX_FUTURE_PROPOSALS && height <= self.current_height + MAX_HEIGHTS_AHEAD {
                self.future
                    .by_height
                    .entry(height)
                    .or_default()
                    .push(stream);
            }
            return Ok(None);
        }
        self.check_stream(stream)
    }

    /// Checks the proposals that waited for the height we just reached.
    fn check_future_proposals(&mut self) -> anyhow::Result<()> {
        let current = self.current_height;
        self.future.by_height.retain(|h, _| *h >= current);
        if let Some(streams) = self.future.by_height.remove(&current) {
            for stream in streams {
                self.check_stream(stream)?;
            }
        }
        Ok(())
    }

    /// Verifies a stream's signature and its block; `Err` only for local (storage) failures.
    fn check_stream(
        &mut self,
        stream: CompleteStream,
    ) -> anyhow::Result<Option<ProposedValue<GridContext>>> {
        let CompleteStream { init, data, fin } = stream;
        let set = self.next_validator_set()?;
        if set.is_empty() {
            return Ok(None);
        }
        // Only the round's proposer streams a block for it (a re-proposal too), so nothing else
        // is worth executing: a validator streaming blocks out of turn only costs us its check.
        use malachitebft_app_channel::app::types::core::Context as _;
        let expected =
            GridContext.select_proposer(&set, Height(init.height), Round::new(init.round));
        if expected.address != init.proposer {
            tracing::warn!(
                proposer = %init.proposer,
                expected = %expected.address,
                height = init.height,
                round = init.round,
                "proposal stream from a validator that is not the round's proposer"
            );
            return Ok(None);
        }
        let signed = parts_sign_bytes(
            self.chain.genesis_hash,
            init.height,
            init.round,
            init.pol_round,
            Hash::of(&data),
        );
        if !init.proposer.0.verify(&signed, &fin.signature.into()) {
            tracing::warn!(proposer = %init.proposer, height = init.height, "bad proposal signature");
            return Ok(None);
        }
        let Some(pol_round) = round_from_i64(init.pol_round) else {
            return Ok(None);
        };
        let block: Block = match decode_untrusted("proposed block", &data) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(proposer = %init.proposer, error = %e, "undecodable proposed block");
                return Ok(None);
            }
        };
        let hash = block.hash();
        let fresh = pol_round.is_nil();
        let validity = if self.executed.contains_key(&hash) {
            Validity::Valid
        } else {
            match self.execute(&block, fresh) {
                Ok(executed) => {
                    self.save_proposal(init.round, init.pol_round, init.proposer, &block)?;
                    self.executed.insert(hash, executed);
                    self.relayable.insert(
                        hash,
                        CompleteStream {
                            init: init.clone(),
                            data,
                            fin,
                        },
                    );
                    Validity::Valid
                }
                Err(BlockCheck::Invalid(reason)) => {
                    tracing::warn!(height = init.height, round = init.round, %hash, %reason, "invalid proposal");
                    Validity::Invalid
                }
                Err(BlockCheck::Local(e)) => return Err(e),
            }
        };
        let value = ProposedValue {
            height: Height(init.height),
            round: Round::new(init.round),
            valid_round: pol_round,
            proposer: init.proposer,
            value: BlockValue(hash),
            validity,
        };
        self.undecided
            .entry(init.round)
            .or_default()
            .push(value.clone());
        Ok(Some(value))
    }

    /// Executes `block` on the best state and checks everything its header claims.
    fn execute(&self, block: &Block, fresh: bool) -> Result<ExecutedBlock, BlockCheck> {
        let parent = self.best().map_err(BlockCheck::Local)?;
        let header = &block.header;
        if header.number != parent.number + 1 || header.parent_hash != parent.hash() {
            return Err(BlockCheck::Invalid(format!(
                "block {} does not extend our best block {} ({})",
                header.number,
                parent.number,
                parent.hash()
            )));
        }
        let now = now_ms();
        if header.timestamp_ms > now + MAX_FUTURE_DRIFT_MS {
            return Err(BlockCheck::Invalid(format!(
                "timestamp {} is {} ms ahead of our clock",
                header.timestamp_ms,
                header.timestamp_ms - now
            )));
        }
        if fresh && header.timestamp_ms + MAX_PAST_DRIFT_MS < now {
            return Err(BlockCheck::Invalid(format!(
                "timestamp {} is {} ms behind our clock",
                header.timestamp_ms,
                now - header.timestamp_ms
            )));
        }
        let set = self.next_validator_set().map_err(BlockCheck::Local)?;
        if !set
            .validators()
            .iter()
            .any(|v| v.account == header.proposer)
        {
            return Err(BlockCheck::Invalid(format!(
                "block proposer {} is not the account of a validator",
                header.proposer
            )));
        }
        let storage: &Storage = &self.storage;
        let pool = &self.pool;
        let built = tokio::task::block_in_place(|| {
            // Transactions our pool holds were verified on the way in (gossip or RPC).
            gridchain_runtime::execute_block_with_verified(storage, self.chain, block, &|h| {
                pool.contains(h)
            })
        })
        .map_err(|e| BlockCheck::Invalid(e.to_string()))?;
        let prepared = self
            .storage
            .prepare_state(&built.changes, header.number)
            .map_err(|e| BlockCheck::Local(e.into()))?;
        if prepared.root != header.state_root {
            return Err(BlockCheck::Invalid(format!(
                "state root is {}, header says {}",
                prepared.root, header.state_root
            )));
        }
        Ok(ExecutedBlock {
            block: block.clone(),
            changes: built.changes,
            prepared,
        })
    }

    fn save_proposal(
        &self,
        round: u32,
        pol_round: i64,
        proposer: Address,
        block: &Block,
    ) -> anyhow::Result<()> {
        let saved = SavedProposal {
            round,
            pol_round,
            proposer,
            block: block.clone(),
        };
        self.storage
            .put_pending_proposal(&block.hash(), &saved.encode())?;
        Ok(())
    }

    /// After a restart: re-checks the proposals saved for the next height, so consensus (replaying
    /// its WAL) finds the blocks it voted for.
    fn restore_saved_proposals(&mut self) -> anyhow::Result<()> {
        let height = self.current_height;
        for (hash, bytes) in self.storage.pending_proposals()? {
            let Ok(saved) = decode_untrusted::<SavedProposal>("saved proposal", &bytes) else {
                self.storage.delete_pending_proposal(&hash)?;
                continue;
            };
            if saved.block.header.number != height {
                self.storage.delete_pending_proposal(&hash)?;
                continue;
            }
            match self.execute(&saved.block, false) {
                Ok(executed) => {
                    let value = ProposedValue {
                        height: Height(height),
                        round: Round::new(saved.round),
                        valid_round: round_from_i64(saved.pol_round).unwrap_or(Round::Nil),
                        proposer: saved.proposer,
                        value: BlockValue(hash),
                        validity: Validity::Valid,
                    };
                    tracing::info!(height, round = saved.round, %hash, "restored a proposal saved before restart");
                    self.undecided.entry(saved.round).or_default().push(value);
                    if self.signer.as_ref().map(|s| s.address()) == Some(saved.proposer)
                        && saved.pol_round == -1
                    {
                        self.own_proposals.insert((height, saved.round), hash);
                    }
                    self.executed.insert(hash, executed);
                }
                Err(BlockCheck::Invalid(_)) => self.storage.delete_pending_proposal(&hash)?,
                Err(BlockCheck::Local(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Commits the decided block with its certificate.
    fn commit(
        &mut self,
        certificate: gridchain_primitives::finality::CommitCertificate,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let hash = certificate.block_hash;
        let Some(executed) = self.executed.remove(&hash) else {
            tracing::error!(height = certificate.height, %hash, "decided a block this node does not have; restarting the height");
            self.restart_height = true;
            return Ok(());
        };
        let ExecutedBlock {
            block,
            changes,
            prepared,
        } = executed;
        if self.signer.is_some() {
            self.storage
                .commit_block(&block, &certificate, &changes, prepared)?;
        } else {
            // A full node never votes, so a block lost to a power cut is simply fetched again.
            self.storage
                .commit_block_unsynced(&block, &certificate, &changes, prepared)?;
        }
        let header = block.header.clone();
        let included: Vec<Hash> = block.extrinsics.iter().map(|x| x.hash()).collect();
        let storage: &Storage = &self.storage;
        self.pool.on_block_committed(
            storage,
            hash,
            header.number,
            &included,
            gridchain_runtime::account_nonce,
        );
        self.executed.clear();
        self.relayable.clear();
        self.undecided.clear();
        self.own_proposals.retain(|(h, _), _| *h > header.number);
        tracing::info!(
            number = header.number,
            %hash,
            round = certificate.round,
            signatures = certificate.signatures.len(),
            extrinsics = included.len(),
            commit_ms = started.elapsed().as_millis() as u64,
            "committed final block"
        );
        (self.on_commit)(&header, included.len(), started.elapsed());
        let _ = self.heads.send(header);
        Ok(())
    }

    fn decided_values(
        &self,
        start: u64,
        end: u64,
    ) -> anyhow::Result<Vec<RawDecidedValue<GridContext>>> {
        let mut values = Vec::new();
        let mut bytes = 0;
        for number in start.max(1)..=end {
            let Some(hash) = self.storage.hash_of(number)? else {
                break;
            };
            let (Some(block), Some(certificate)) = (
                self.storage.block(&hash)?,
                self.storage.certificate(number)?,
            ) else {
                break;
            };
            let encoded = block.encode();
            bytes += encoded.len();
            if !values.is_empty() && bytes > MAX_SYNC_RESPONSE_BYTES {
                break;
            }
            values.push(RawDecidedValue::new(
                Bytes::from(encoded),
                ExtendedCommitCertificate::from_commit_certificate_and_extensions(
                    certificate_to_malachite(&certificate),
                    VoteExtensions::default(),
                ),
            ));
        }
        Ok(values)
    }

    fn on_synced_value(
        &mut self,
        height: u64,
        round: Round,
        proposer: Address,
        value_bytes: &[u8],
    ) -> SyncedValueOutcome<GridContext> {
        let block: Block = match decode_untrusted("synced block", value_bytes) {
            Ok(b) => b,
            Err(_) => return SyncedValueOutcome::PeerFault,
        };
        if block.header.number != height {
            return SyncedValueOutcome::PeerFault;
        }
        let hash = block.hash();
        let validity = if self.executed.contains_key(&hash) {
            Validity::Valid
        } else {
            match self.execute(&block, false) {
                Ok(executed) => {
                    self.executed.insert(hash, executed);
                    Validity::Valid
                }
                Err(BlockCheck::Invalid(reason)) => {
                    tracing::warn!(height, %hash, %reason, "invalid synced block");
                    Validity::Invalid
                }
                Err(BlockCheck::Local(e)) => {
                    tracing::error!(error = %e, "cannot check a synced block");
                    return SyncedValueOutcome::LocalTransientError;
                }
            }
        };
        SyncedValueOutcome::Verdict(ProposedValue {
            height: Height(height),
            round,
            valid_round: Round::Nil,
            proposer,
            value: BlockValue(hash),
            validity,
        })
    }
}

enum BlockCheck {
    /// The block breaks a rule: vote against it.
    Invalid(String),
    /// This node failed (disk): stop rather than judge.
    Local(anyhow::Error),
}
