//! The agent as a light client: nothing an RPC endpoint says about the node's desired state is
//! used unless it is proven against a header that validators of the chain made final.
//!
//! **Trust anchor**: the genesis hash — `--genesis-hash`, or on first start the hash every
//! reachable `--rpc` endpoint agrees on (trust on first use), kept in `<data dir>/light.json`.
//! The genesis header must hash to it; the validator set of the first heights is proven against
//! its state root.
//!
//! **Trusted state** ([`Trusted`]): one verified header and the validator-set storage values
//! (`validators/active_set`, `validators/scheduled_set`, `validators/config`) proven against its
//! state root. From the state after block `n`, `pallet_validators::validator_set_at` gives the
//! set of every height up to the end of the epoch after the one holding `n + 1` (sets are chosen
//! at an epoch's end and take effect one whole epoch later), so the trusted state covers a window
//! of heights ([`Trusted::window_end`]).
//!
//! **Per block** ([`LightClient::verify_header`]): the header's hash is computed here; its commit
//! certificate (`gridchain_commitCertificate`) must name that hash and carry precommits of more
//! than 2/3 of the power of the height's set (computed from the trusted values, never from
//! `gridchain_validators`), signatures checked. Once per epoch (the first verified header of a new
//! epoch) the set values are proven again at that header and it becomes the trusted state,
//! persisted (fsynced). A head beyond the window (agent down for a while) is reached by walking:
//! the header at the window's end is certified, the set proven at it, and so on — one
//! certificate and three proofs per two epochs, whatever the number of blocks.
//!
//! **Desired state** ([`LightClient::proven_snapshot`]): the node's snapshot is rebuilt with the
//! very function the server uses (`gridchain_rpc_api::grid::build_node_snapshot`) over a state
//! that holds only values proven (`state_getReadProof`) against the verified header's state
//! root. A key the rebuild reads that is not proven yet is fetched and proven, and the rebuild
//! runs again until it reads nothing unproven; so the node record, the length of its reservation
//! set, every index of it and every reservation are proven, and absence is proven too (a liar
//! cannot drop a reservation, shorten the set or claim the node is gone).
//!
//! An answer that does not verify is a [`Refused`] error: the caller moves to another endpoint.

use anyhow::Context as _;
use gridchain_primitives::{
    decode_untrusted, AccountId, Bytes, Hash, Header, Overlay, ReadProof, StateRead,
};
use gridchain_rpc_api::{
    grid::{build_node_snapshot, NodeSnapshot},
    jsonrpsee::ws_client::WsClient,
    ChainApiClient, GridchainApiClient, StateApiClient,
};
use gridchain_runtime::{
    tfgrid::NodeId,
    validators::{self, StakingConfig, ValidatorSet},
    Context,
};
use serde::{Deserialize, Serialize};
use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Instant,
};

/// An endpoint's answer did not verify; the endpoint must not be used for this.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refused(pub String);

fn refused<T>(reason: impl Into<String>) -> anyhow::Result<T> {
    Err(Refused(reason.into()).into())
}

/// Most keys one `state_getReadProof` call may ask for (the server's limit).
const MAX_PROOF_KEYS: usize = 1_000;
/// Most proving rounds of one snapshot rebuild (the reads depend on each other about 4 deep).
const MAX_ROUNDS: usize = 16;

/// A header the light client verified, and the validator-set values proven at its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trusted {
    pub genesis: Hash,
    pub header: Header,
    /// SCALE `ValidatorSet`s as stored (absent: `None`), proven against `header.state_root`.
    pub active_set: Option<Bytes>,
    pub scheduled_set: Option<Bytes>,
    pub epoch_length: u64,
}

impl Trusted {
    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("light.json")
    }

    pub fn load(data_dir: &Path) -> anyhow::Result<Option<Trusted>> {
        match std::fs::read(Self::path(data_dir)) {
            Ok(bytes) => {
                let t: Trusted = serde_json::from_slice(&bytes).context("corrupt light.json")?;
                // The values were checked when proven; a damaged file must not panic later.
                for v in [&t.active_set, &t.scheduled_set].into_iter().flatten() {
                    decode_untrusted::<ValidatorSet>("validator set", &v.0)
                        .context("corrupt light.json")?;
                }
                Ok(Some(t))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Written to a temporary file, fsynced, renamed, and the directory fsynced: after a crash
    /// the old or the new state is there, whole.
    pub fn store(&self, data_dir: &Path) -> anyhow::Result<()> {
        let tmp = data_dir.join("light.json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, Self::path(data_dir))?;
        std::fs::File::open(data_dir)?.sync_all()?;
        Ok(())
    }

    /// The last height whose validator set the trusted values decide.
    pub fn window_end(&self) -> u64 {
        let l = self.epoch_length.max(1);
        (validators::epoch_of(self.header.number + 1, l) + 2) * l - 1
    }

    /// (consensus key, power) of the set that signs `height`; `height` must be in
    /// `header.number + 1 ..= window_end()`.
    pub fn set_for(&self, height: u64) -> Vec<(AccountId, u64)> {
        debug_assert!(height > self.header.number && height <= self.window_end());
        let mut state = BTreeMap::new();
        if let Some(v) = &self.active_set {
            state.insert(validators::active_set_key(), v.0.clone());
        }
        if let Some(v) = &self.scheduled_set {
            state.insert(validators::scheduled_set_key(), v.0.clone());
        }
        validators::validator_set_at(&state, height)
            .into_iter()
            .map(|v| (v.consensus_key, v.power))
            .collect()
    }
}

/// Proves `keys` against `header` through `c`: every answer must be a proof of the key asked,
/// at the block asked, that verifies against the header's state root.
pub async fn prove(
    c: &WsClient,
    header: &Header,
    keys: &[Vec<u8>],
    cost: &mut Cost,
) -> anyhow::Result<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
    let at = header.hash();
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_PROOF_KEYS) {
        let answer = c
            .read_proof(chunk.iter().cloned().map(Bytes).collect(), Some(at))
            .await?;
        if answer.at != at {
            return refused(format!(
                "read proof for block {} when {at} was asked",
                answer.at
            ));
        }
        if answer.proof.len() != chunk.len() {
            return refused(format!(
                "{} read proofs for {} keys",
                answer.proof.len(),
                chunk.len()
            ));
        }
        let started = Instant::now();
        for (key, bytes) in chunk.iter().zip(answer.proof) {
            let proof: ReadProof = match decode_untrusted("read proof", &bytes.0) {
                Ok(p) => p,
                Err(e) => return refused(e.to_string()),
            };
            if &proof.key != key {
                return refused("read proof of another key");
            }
            if let Err(e) = proof.verify(header.state_root) {
                return refused(format!(
                    "read proof of {} at block {}: {e}",
                    String::from_utf8_lossy(key),
                    header.number
                ));
            }
            out.push((proof.key, proof.value));
        }
        cost.verify_us += started.elapsed().as_micros() as u64;
        cost.proofs += chunk.len();
    }
    Ok(out)
}

/// Reads proven values only; records every other key read.
struct ProvenState<'a> {
    proven: &'a BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    missing: RefCell<BTreeSet<Vec<u8>>>,
}

impl StateRead for ProvenState<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.proven.get(key) {
            Some(v) => v.clone(),
            None => {
                self.missing.borrow_mut().insert(key.to_vec());
                None
            }
        }
    }
}

/// What one verification cost, for the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    /// CPU-side time of certificate and proof checks (no network), µs.
    pub verify_us: u64,
    pub proofs: usize,
    pub certificates: usize,
}

pub struct LightClient {
    data_dir: PathBuf,
    trusted: Mutex<Trusted>,
    node_key: AccountId,
}

impl LightClient {
    pub fn genesis(&self) -> Hash {
        self.trusted.lock().expect("not poisoned").genesis
    }

    pub fn trusted(&self) -> Trusted {
        self.trusted.lock().expect("not poisoned").clone()
    }

    /// Loads the trusted state from `data_dir`, or starts from the genesis header of `genesis`
    /// fetched through `c`. A stored state of another chain than `genesis` is an error.
    pub async fn open(
        data_dir: &Path,
        genesis: Hash,
        node_key: AccountId,
        c: &WsClient,
    ) -> anyhow::Result<LightClient> {
        let trusted = match Trusted::load(data_dir)? {
            Some(t) if t.genesis == genesis => t,
            Some(t) => anyhow::bail!(
                "{} trusts chain {} but genesis {genesis} is configured; remove the file to \
                 follow another chain",
                Trusted::path(data_dir).display(),
                t.genesis
            ),
            None => {
                let Some(header) = c.header(Some(genesis)).await? else {
                    return refused(format!("no genesis header {genesis}"));
                };
                if header.hash() != genesis || header.number != 0 {
                    return refused("the genesis header does not hash to the genesis hash");
                }
                let t = Self::prove_sets(c, genesis, header, &mut Cost::default()).await?;
                t.store(data_dir)?;
                tracing::info!(%genesis, "light client anchored at the genesis header");
                t
            }
        };
        Ok(LightClient {
            data_dir: data_dir.to_path_buf(),
            trusted: Mutex::new(trusted),
            node_key,
        })
    }

    /// The validator-set values at `header` (already verified), proven.
    async fn prove_sets(
        c: &WsClient,
        genesis: Hash,
        header: Header,
        cost: &mut Cost,
    ) -> anyhow::Result<Trusted> {
        let keys = [
            validators::active_set_key(),
            validators::scheduled_set_key(),
            validators::config_key(),
        ];
        let values = prove(c, &header, &keys, cost).await?;
        let config = match &values[2].1 {
            Some(v) => decode_untrusted::<StakingConfig>("staking config", v)?,
            None => StakingConfig::default(),
        };
        for v in [&values[0].1, &values[1].1].into_iter().flatten() {
            decode_untrusted::<ValidatorSet>("validator set", v)?;
        }
        Ok(Trusted {
            genesis,
            header,
            active_set: values[0].1.clone().map(Bytes),
            scheduled_set: values[1].1.clone().map(Bytes),
            epoch_length: config.epoch_length,
        })
    }

    /// Checks `header`'s certificate (fetched through `c`) against the set `trusted` decides.
    async fn certify(
        c: &WsClient,
        trusted: &Trusted,
        header: &Header,
        cost: &mut Cost,
    ) -> anyhow::Result<()> {
        let Some(cert) = c.commit_certificate(header.number).await? else {
            return refused(format!("no certificate for block {}", header.number));
        };
        let started = Instant::now();
        let set = trusted.set_for(header.number);
        let result = cert.verify(trusted.genesis, header.number, header.hash(), &set);
        cost.verify_us += started.elapsed().as_micros() as u64;
        cost.certificates += 1;
        result.map_err(|e| {
            Refused(format!(
                "certificate of block {} does not make header {} final: {e}",
                header.number,
                header.hash()
            ))
            .into()
        })
    }

    /// The header of block `number` through `c`, checked to hash to what the same endpoint
    /// says is block `number`'s hash (its finality is checked by the caller).
    pub async fn header_at(c: &WsClient, number: u64) -> anyhow::Result<Header> {
        let Some(hash) = c.block_hash(Some(number)).await? else {
            return refused(format!("no block {number}"));
        };
        let Some(header) = c.header(Some(hash)).await? else {
            return refused(format!("no header {hash}"));
        };
        if header.hash() != hash || header.number != number {
            return refused(format!("header of block {number} does not hash to {hash}"));
        }
        Ok(header)
    }

    /// Makes `header` (from any source) trusted as final, or refuses it. Walks the trusted
    /// validator set forward as far as needed, and persists it when it moves.
    pub async fn verify_header(&self, c: &WsClient, header: &Header) -> anyhow::Result<Cost> {
        let mut cost = Cost::default();
        let mut trusted = self.trusted();
        if header.number <= trusted.header.number {
            if header.number == trusted.header.number && header.hash() == trusted.header.hash() {
                return Ok(cost);
            }
            return refused(format!(
                "block {} is not after the trusted block {}",
                header.number, trusted.header.number
            ));
        }
        let mut moved = false;
        // Walk: the last height the trusted set decides, certified, becomes the trusted header.
        while header.number > trusted.window_end() {
            let step = Self::header_at(c, trusted.window_end()).await?;
            Self::certify(c, &trusted, &step, &mut cost).await?;
            let next = Self::prove_sets(c, trusted.genesis, step, &mut cost).await?;
            tracing::debug!(
                from = trusted.header.number,
                to = next.header.number,
                "light client walked the validator set forward"
            );
            trusted = next;
            moved = true;
        }
        Self::certify(c, &trusted, header, &mut cost).await?;
        // Once per epoch: prove the set values at the newest verified header.
        let l = trusted.epoch_length.max(1);
        if validators::epoch_of(header.number, l) != validators::epoch_of(trusted.header.number, l)
        {
            trusted = Self::prove_sets(c, trusted.genesis, header.clone(), &mut cost).await?;
            moved = true;
        }
        if moved {
            trusted.store(&self.data_dir)?;
            *self.trusted.lock().expect("not poisoned") = trusted;
        }
        Ok(cost)
    }

    /// The snapshot of `node_id` after `header` (verified with [`Self::verify_header`]), rebuilt
    /// from values proven against its state root. `None`: the node is proven absent.
    pub async fn proven_snapshot(
        &self,
        c: &WsClient,
        header: &Header,
        node_id: NodeId,
        cost: &mut Cost,
    ) -> anyhow::Result<Option<NodeSnapshot>> {
        let mut proven = BTreeMap::new();
        for _ in 0..MAX_ROUNDS {
            let started = Instant::now();
            let state = ProvenState {
                proven: &proven,
                missing: RefCell::new(BTreeSet::new()),
            };
            let snapshot = {
                let ctx: Context = Context::new(Overlay::new(&state));
                build_node_snapshot(&ctx, header, node_id)
            };
            let missing: Vec<Vec<u8>> = state.missing.into_inner().into_iter().collect();
            cost.verify_us += started.elapsed().as_micros() as u64;
            if missing.is_empty() {
                if let Some(s) = &snapshot {
                    if s.node.node.account != self.node_key {
                        return refused(format!(
                            "node {node_id} belongs to another key ({})",
                            s.node.node.account
                        ));
                    }
                }
                return Ok(snapshot);
            }
            proven.extend(prove(c, header, &missing, cost).await?);
        }
        refused("the node's state needs more proving rounds than any honest state does")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridchain_primitives::Pair;
    use gridchain_runtime::validators::ValidatorInfo;
    use parity_scale_codec::Encode;

    fn set(since: u64, names: &[&str]) -> ValidatorSet {
        let mut validators: Vec<ValidatorInfo> = names
            .iter()
            .map(|n| ValidatorInfo {
                account: Pair::dev(n).public(),
                consensus_key: Pair::dev(n).public(),
                power: 10,
            })
            .collect();
        validators.sort_by_key(|v| v.consensus_key);
        ValidatorSet { since, validators }
    }

    fn trusted(number: u64, active: ValidatorSet, scheduled: Option<ValidatorSet>) -> Trusted {
        Trusted {
            genesis: Hash::of(b"g"),
            header: Header {
                parent_hash: Hash::ZERO,
                number,
                timestamp_ms: 0,
                state_root: Hash::ZERO,
                extrinsics_root: Hash::ZERO,
                proposer: Pair::dev("A").public(),
            },
            active_set: Some(Bytes(active.encode())),
            scheduled_set: scheduled.map(|s| Bytes(s.encode())),
            epoch_length: 10,
        }
    }

    #[test]
    fn the_window_reaches_the_end_of_the_next_epoch() {
        let a = set(0, &["A"]);
        // State after block 0 (genesis): heights 1..=19 (epochs 0 and 1) are decided.
        assert_eq!(trusted(0, a.clone(), None).window_end(), 19);
        // After block 8 (n + 1 = 9 in epoch 0): still up to 19.
        assert_eq!(trusted(8, a.clone(), None).window_end(), 19);
        // After block 9, the last of epoch 0, the set of epoch 2 is chosen: up to 29.
        assert_eq!(trusted(9, a.clone(), None).window_end(), 29);
        assert_eq!(trusted(15, a, None).window_end(), 29);
    }

    #[test]
    fn a_scheduled_set_signs_from_its_height_on() {
        let a = set(0, &["A"]);
        let b = set(20, &["B", "C"]);
        // State after block 9: A active, B chosen for epoch 2.
        let t = trusted(9, a.clone(), Some(b.clone()));
        let keys = |s: &ValidatorSet| {
            s.validators
                .iter()
                .map(|v| (v.consensus_key, v.power))
                .collect::<Vec<_>>()
        };
        assert_eq!(t.set_for(10), keys(&a));
        assert_eq!(t.set_for(19), keys(&a));
        assert_eq!(t.set_for(20), keys(&b));
        assert_eq!(t.set_for(29), keys(&b));
    }

    #[test]
    fn a_damaged_trust_file_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut t = trusted(9, set(0, &["A"]), None);
        t.store(dir).unwrap();
        assert_eq!(Trusted::load(dir).unwrap(), Some(t.clone()));
        t.active_set = Some(Bytes(vec![1, 2, 3]));
        t.store(dir).unwrap();
        assert!(Trusted::load(dir).is_err());
    }
}
