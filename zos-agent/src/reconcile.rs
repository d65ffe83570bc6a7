//! Desired state from the chain, actual state from the node, and the actions that make them
//! agree, for every workload kind alike ([`crate::kinds`]).
//!
//! One pass ([`Reconciler::run`]):
//! 1. each kind observes what exists of it and removes what no live reservation of this node
//!    wants (cancelled, out of funds, node deleted, or left over from a crash), the kinds of the
//!    last stage first (containers hold volumes and interfaces);
//! 2. for each live reservation, each workload goes to the kind its spec names, earlier stages
//!    first, which adopts what already matches and creates or replaces what does not;
//! 3. each reservation's per-workload results are reported on chain when they differ from what
//!    the chain already has for the current version (with a back-off on failure and a pace per
//!    version, so a flapping workload cannot make the node pay a fee per flap);
//! 4. each kind finishes the pass (pulled images no live workload uses are removed).
//!
//! Everything is named after the reservation, so a second pass finds the first pass's work and
//! changes nothing.

use crate::{
    chain::Chain,
    kinds::{Kinds, PassSummary, ReservationPass},
    owner::events::EventLog,
};
use gridchain_primitives::{hash::blake2_256, AccountId};
use gridchain_rpc_api::grid::NodeSnapshot;
use gridchain_runtime::{
    reservations::{self, Mesh, Reservation, ReservationState, ResultData, WorkloadResult},
    Call,
};
use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

/// Names this node's things apart from any other node's on the same host, including nodes of
/// other chains and other keys: `<8 hex digits of blake2(genesis hash ++ node key)>-<node id>`.
pub fn node_tag(
    genesis_hash: &gridchain_primitives::Hash,
    node_key: &AccountId,
    node_id: u32,
) -> String {
    let mut input = genesis_hash.0.to_vec();
    input.extend_from_slice(&node_key.0);
    let hex: String = blake2_256(&input)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}-{node_id}", &hex[..8])
}

pub struct Reconciler {
    pub node_id: u32,
    /// See [`node_tag`].
    pub node_tag: String,
    /// What this node runs, one module per kind of workload.
    pub kinds: Kinds,
    /// Reports that failed, per (reservation, version): when to try again.
    pub report_backoff: ReportBackoff,
    /// How often one reservation version may be reported (see [`ReportPacer`]).
    pub report_pacer: ReportPacer,
    /// Each reservation's events, for its owner: the states reported are recorded here.
    pub events: EventLog,
}

/// A report that fails (the chain refuses it, or the endpoint is down) is retried after 2, 4,
/// 8 … up to 300 seconds rather than on every block: a report the chain refuses for good would
/// otherwise pay a fee every second for ever.
#[derive(Default)]
pub struct ReportBackoff(std::sync::Mutex<BTreeMap<(u64, u32), (u32, Instant)>>);

impl ReportBackoff {
    const MAX: Duration = Duration::from_secs(300);

    fn due(&self, id: u64, version: u32) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(id, version))
            .is_none_or(|(_, next)| Instant::now() >= *next)
    }

    fn failed(&self, id: u64, version: u32) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let failures = map.get(&(id, version)).map_or(0, |(f, _)| *f) + 1;
        let wait = Duration::from_secs(1u64 << failures.min(9)).min(Self::MAX);
        map.insert((id, version), (failures, Instant::now() + wait));
    }

    fn succeeded(&self, id: u64, version: u32) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(id, version));
    }
}

/// Reports of one reservation version are paced, so a workload that flaps (a crash loop under
/// `restart: always`, a health check that comes and goes) cannot make the node pay a report fee
/// per flap: each report spends a token, [`ReportPacer::BURST`] at most, one back every
/// `refill` (`--report-refill-secs`, 60 s); a change of data alone (restart count, digest)
/// needs two, so one is always left for a change of state. What waits is sent by a later pass
/// (at least every reconcile interval), with the state of that moment.
pub struct ReportPacer {
    refill: Duration,
    tokens: std::sync::Mutex<BTreeMap<(u64, u32), (f64, Instant)>>,
}

impl ReportPacer {
    pub const BURST: f64 = 4.0;

    pub fn new(refill: Duration) -> ReportPacer {
        ReportPacer {
            refill,
            tokens: Default::default(),
        }
    }

    /// Whether a report of (`id`, `version`) may go now; spends its tokens if so.
    fn allow(&self, id: u64, version: u32, state_changed: bool, now: Instant) -> bool {
        let mut map = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = map.entry((id, version)).or_insert((Self::BURST, now));
        let refilled =
            now.saturating_duration_since(*at).as_secs_f64() / self.refill.as_secs_f64().max(0.001);
        *tokens = (*tokens + refilled).min(Self::BURST);
        *at = now;
        let needed = if state_changed { 1.0 } else { 2.0 };
        if *tokens < needed {
            return false;
        }
        *tokens -= 1.0;
        true
    }

    /// Forgets the versions not in `live`.
    fn retain(&self, live: &BTreeSet<(u64, u32)>) {
        let mut map = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|key, _| live.contains(key));
    }
}

/// Cuts a result down to what the chain accepts (`reservations::MAX_TEXT_LEN` bytes per text,
/// at a character boundary; at most 64 data fields), so a long Docker or registry error does
/// not make the whole report fail on chain.
pub fn fit_for_chain(mut result: WorkloadResult) -> WorkloadResult {
    fn cut(text: &mut String) {
        if text.len() > reservations::MAX_TEXT_LEN {
            let mut end = reservations::MAX_TEXT_LEN - '…'.len_utf8();
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
    }
    cut(&mut result.message);
    match &mut result.data {
        ResultData::None => {}
        ResultData::Container {
            container_id,
            ips,
            image_digest,
            ..
        } => {
            cut(container_id);
            cut(image_digest);
            ips.truncate(62);
            ips.iter_mut().for_each(cut);
        }
        ResultData::Zdb {
            namespace,
            endpoints,
        } => {
            cut(namespace);
            endpoints.truncate(63);
            endpoints.iter_mut().for_each(cut);
        }
        ResultData::Network {
            subnet,
            gateway,
            wireguard,
        } => {
            cut(subnet);
            gateway.iter_mut().for_each(cut);
            if let Some(w) = wireguard {
                cut(&mut w.endpoint);
            }
        }
        ResultData::Volume { path } => cut(path),
        ResultData::PublicIp { ip, container } => {
            cut(ip);
            cut(container);
        }
    }
    result
}

fn is_live(r: &Reservation) -> bool {
    !matches!(r.state, ReservationState::Deleted { .. })
}

impl Reconciler {
    /// One reconciliation pass against `snapshot`; reports results through `chain` (if given).
    pub async fn run(
        &self,
        snapshot: &NodeSnapshot,
        chain: Option<&Chain>,
    ) -> anyhow::Result<PassSummary> {
        let mut summary = PassSummary::default();
        let live: Vec<&Reservation> = snapshot
            .reservations
            .iter()
            .filter(|r| is_live(r))
            .collect();
        for kind in self.kinds.iter().rev() {
            summary.removed += kind.remove_unwanted(&live).await?;
        }
        let mut reports = Vec::new();
        for r in live.iter().copied() {
            let results: Vec<WorkloadResult> = self
                .ensure_reservation(r, &snapshot.meshes, &mut summary)
                .await
                .into_iter()
                .map(fit_for_chain)
                .collect();
            let changed_states: Vec<&WorkloadResult> = results
                .iter()
                .filter(|result| {
                    r.results
                        .iter()
                        .find(|old| old.name == result.name)
                        .is_none_or(|old| {
                            (old.state, &old.message) != (result.state, &result.message)
                        })
                })
                .collect();
            if results != r.results
                && self.report_backoff.due(r.id, r.version)
                && self.report_pacer.allow(
                    r.id,
                    r.version,
                    !changed_states.is_empty() || results.len() != r.results.len(),
                    Instant::now(),
                )
            {
                for result in changed_states {
                    let message = match result.message.as_str() {
                        "" => format!("{:?}", result.state),
                        m => format!("{:?}: {m}", result.state),
                    };
                    self.events.record(r.id, &result.name, "state", &message);
                }
                reports.push((
                    (r.id, r.version),
                    Call::Reservations(reservations::Call::ReportResults {
                        id: r.id,
                        version: r.version,
                        results,
                    }),
                ));
            }
        }
        for kind in self.kinds.iter() {
            kind.finish_pass(&live).await;
        }
        self.events.retain(&live.iter().map(|r| r.id).collect());
        self.report_pacer
            .retain(&live.iter().map(|r| (r.id, r.version)).collect());
        // All reports at once, so they land in the same block instead of one block each.
        if let Some(chain) = chain {
            let outcomes = futures::future::join_all(
                reports
                    .into_iter()
                    .map(|(key, call)| async move { (key, chain.submit(call).await) }),
            )
            .await;
            for ((id, version), outcome) in outcomes {
                match outcome {
                    Ok(_) => {
                        self.report_backoff.succeeded(id, version);
                        summary.reported += 1;
                    }
                    Err(e) => {
                        self.report_backoff.failed(id, version);
                        summary.failed_reports += 1;
                        tracing::warn!(reservation = id, error = %e, "reporting results failed; will retry after a back-off")
                    }
                }
            }
        }
        Ok(summary)
    }

    /// Brings one reservation's workloads to what it asks; returns a result per workload, in
    /// deployment order.
    async fn ensure_reservation(
        &self,
        r: &Reservation,
        meshes: &[Mesh],
        summary: &mut PassSummary,
    ) -> Vec<WorkloadResult> {
        let mut pass = ReservationPass::new(r, meshes, summary);
        let mut order: Vec<_> = r.deployment.workloads.iter().collect();
        order.sort_by_key(|w| self.kinds.stage_of(w.spec.kind()));
        for w in order {
            let outcome = match self.kinds.get(w.spec.kind()) {
                Some(kind) => kind.ensure(w, &mut pass).await,
                None => crate::kinds::Outcome::Failed(format!(
                    "this node does not run workloads of kind {}",
                    w.spec.kind()
                )),
            };
            let result = outcome.into_result(&w.name, pass.paused);
            pass.record(result);
        }
        let mut done = pass.into_results();
        r.deployment
            .workloads
            .iter()
            .filter_map(|w| done.remove(&w.name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridchain_runtime::reservations::WorkloadState;

    #[test]
    fn results_are_cut_to_what_the_chain_accepts() {
        let long = "é".repeat(reservations::MAX_TEXT_LEN);
        let result = fit_for_chain(WorkloadResult {
            name: "web".into(),
            state: WorkloadState::Error,
            message: long.clone(),
            data: ResultData::Container {
                container_id: "c".into(),
                ips: vec![long.clone(); 100],
                image_digest: long,
                restarts: 0,
                limits: Default::default(),
            },
        });
        assert!(result.message.len() <= reservations::MAX_TEXT_LEN);
        assert!(result.message.ends_with('…'));
        let ResultData::Container { ips, .. } = &result.data else {
            panic!("container data")
        };
        // With the container id and the image digest: the chain's 64 fields.
        assert_eq!(ips.len(), 62);
        assert!(ips.iter().all(|ip| ip.len() <= reservations::MAX_TEXT_LEN));
    }

    #[test]
    fn failed_reports_back_off_until_they_succeed() {
        let backoff = ReportBackoff::default();
        assert!(backoff.due(1, 1));
        backoff.failed(1, 1);
        assert!(!backoff.due(1, 1), "retried at once");
        assert!(backoff.due(1, 2), "a new version is reported at once");
        backoff.succeeded(1, 1);
        assert!(backoff.due(1, 1));
    }

    #[test]
    fn a_flapping_workload_is_reported_in_a_burst_then_once_a_minute() {
        let refill = Duration::from_secs(60);
        let pacer = ReportPacer::new(refill);
        let start = Instant::now();
        // Four reports at once (a version's Pulling, Ok, then two changes).
        for _ in 0..4 {
            assert!(pacer.allow(1, 1, true, start));
        }
        assert!(!pacer.allow(1, 1, true, start), "a fifth at once");
        // A minute later, one token: enough for a state change, not for data alone.
        let later = start + refill;
        assert!(!pacer.allow(1, 1, false, later));
        assert!(pacer.allow(1, 1, true, later));
        assert!(!pacer.allow(1, 1, true, later));
        // Another version or reservation has its own tokens.
        assert!(pacer.allow(1, 2, true, later));
        assert!(pacer.allow(2, 1, true, later));
        // Long quiet: back to the burst, not beyond.
        let much_later = later + 100 * refill;
        for _ in 0..4 {
            assert!(pacer.allow(1, 1, true, much_later));
        }
        assert!(!pacer.allow(1, 1, true, much_later));
        pacer.retain(&BTreeSet::new());
        assert!(pacer.tokens.lock().unwrap().is_empty());
    }
}
