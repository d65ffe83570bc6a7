//! Workload kinds: one module per kind, one interface ([`WorkloadKind`]).
//!
//! The reconciler ([`crate::reconcile`]) knows no kind. For every pass it asks each kind to
//! observe what exists of it on the node and remove what no live workload wants
//! ([`WorkloadKind::remove_unwanted`]), then, reservation by reservation, hands each workload to
//! the kind named by its spec ([`WorkloadSpec::kind`]) to bring it to that spec
//! ([`WorkloadKind::ensure`]), and turns the [`Outcome`] into the result reported on chain.
//! Adding a kind (public IPs, gateways, VMs) is: a module here implementing the trait, and one
//! line in [`Kinds::new`]'s caller.
//!
//! Within a reservation, kinds of an earlier [`WorkloadKind::stage`] are ensured first
//! (networks and volumes before the containers that use them), and a workload sees the results
//! of those ensured before it ([`ReservationPass::ready`]); removal runs in the opposite order
//! (containers first: they hold volumes and interfaces).

pub mod container;
pub mod network;
pub mod public_ip;
pub mod volume;
pub mod zdb;

use async_trait::async_trait;
use gridchain_primitives::{
    seal::{self, SealContext, SealError, SealPurpose},
    Hash, Pair,
};
use gridchain_runtime::reservations::{
    Mesh, Reservation, ReservationState, ResultData, Workload, WorkloadResult, WorkloadState,
};
use std::collections::BTreeMap;

/// The Docker name of workload `workload` of reservation `id` on the node tagged `node_tag`
/// (containers and volumes; see [`crate::reconcile::node_tag`]).
pub fn container_name(node_tag: &str, id: u64, workload: &str) -> String {
    format!("gc-{node_tag}-r{id}-{workload}")
}

/// The names `name` gives the workloads of kind `kind` of the `live` reservations.
pub fn wanted_names(
    live: &[&Reservation],
    kind: &str,
    name: impl Fn(&Reservation, &Workload) -> String,
) -> std::collections::BTreeSet<String> {
    live.iter()
        .flat_map(|r| {
            r.deployment
                .workloads
                .iter()
                .filter(|w| w.spec.kind() == kind)
                .map(|w| name(r, w))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Where one workload stands after [`WorkloadKind::ensure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// As its spec asks (and healthy, if it has a health check).
    Ready(ResultData),
    /// Waiting for something the node fetches in the background (an image); says what.
    Pulling(String),
    /// Running, but its health check has not passed (yet).
    Unhealthy { message: String, data: ResultData },
    /// Cannot be brought to its spec; says why, in the words of what failed.
    Failed(String),
}

impl From<Result<ResultData, String>> for Outcome {
    fn from(result: Result<ResultData, String>) -> Outcome {
        match result {
            Ok(data) => Outcome::Ready(data),
            Err(why) => Outcome::Failed(why),
        }
    }
}

impl Outcome {
    /// The result reported on chain for workload `name` of a reservation that is `paused` (in
    /// its grace period: what runs is paused, so a probe cannot pass either).
    pub fn into_result(self, name: &str, paused: bool) -> WorkloadResult {
        let (state, message, data) = match self {
            Outcome::Ready(data) | Outcome::Unhealthy { data, .. } if paused => (
                WorkloadState::Paused,
                "paused: reservation is in its grace period".to_string(),
                data,
            ),
            Outcome::Ready(data) => (WorkloadState::Ok, String::new(), data),
            Outcome::Unhealthy { message, data } => (WorkloadState::Unhealthy, message, data),
            Outcome::Pulling(message) => (WorkloadState::Pulling, message, ResultData::None),
            Outcome::Failed(message) => (WorkloadState::Error, message, ResultData::None),
        };
        WorkloadResult {
            name: name.to_string(),
            state,
            message,
            data,
        }
    }
}

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassSummary {
    pub created: usize,
    pub removed: usize,
    pub reported: usize,
    /// Reports that did not make it on chain; the caller runs another pass soon.
    pub failed_reports: usize,
}

/// One reservation being brought to its spec, as the kinds see it.
pub struct ReservationPass<'a> {
    pub reservation: &'a Reservation,
    /// The meshes of the node's snapshot (networks across nodes: members, keys, endpoints).
    pub meshes: &'a [Mesh],
    /// In its grace period: what runs is paused, zdb namespaces are locked.
    pub paused: bool,
    /// Results of this reservation's workloads ensured so far in this pass, by name.
    done: BTreeMap<String, WorkloadResult>,
    pub summary: &'a mut PassSummary,
}

impl<'a> ReservationPass<'a> {
    pub fn new(
        reservation: &'a Reservation,
        meshes: &'a [Mesh],
        summary: &'a mut PassSummary,
    ) -> Self {
        ReservationPass {
            reservation,
            meshes,
            paused: matches!(reservation.state, ReservationState::GracePeriod { .. }),
            done: BTreeMap::new(),
            summary,
        }
    }

    /// The data of workload `name` of this reservation if it was ensured before in this pass
    /// and is usable (`Ok`, or `Paused` in grace); `None` otherwise.
    pub fn ready(&self, name: &str) -> Option<&ResultData> {
        self.done
            .get(name)
            .filter(|r| matches!(r.state, WorkloadState::Ok | WorkloadState::Paused))
            .map(|r| &r.data)
    }

    pub(crate) fn record(&mut self, result: WorkloadResult) {
        self.done.insert(result.name.clone(), result);
    }

    pub(crate) fn into_results(self) -> BTreeMap<String, WorkloadResult> {
        self.done
    }
}

/// One kind of workload: observes what exists of it on the node, brings one workload to its
/// spec, removes what nobody wants. Every method is idempotent: a pass finds the previous
/// pass's work (also one cut short by a crash) and changes nothing that matches.
#[async_trait]
pub trait WorkloadKind: Send + Sync {
    /// The spec this kind provisions: [`WorkloadSpec::kind`] of its workloads.
    fn kind(&self) -> &'static str;

    /// Kinds of a lower stage are ensured first within a reservation, and removed last.
    fn stage(&self) -> u8 {
        0
    }

    /// Observes what exists of this kind on the node and removes what no workload of `live`
    /// (the live reservations of this node) wants; returns how many things it removed.
    async fn remove_unwanted(&self, live: &[&Reservation]) -> anyhow::Result<usize>;

    /// Brings workload `w` of `pass.reservation` to its spec.
    async fn ensure(&self, w: &Workload, pass: &mut ReservationPass<'_>) -> Outcome;

    /// Runs once every reservation was ensured (e.g. collecting images no workload uses).
    async fn finish_pass(&self, _live: &[&Reservation]) {}

    /// Whether something changed outside a pass that calls for one now (a pull ended, a
    /// container exited); clears the flag.
    fn take_changed(&self) -> bool {
        false
    }
}

/// The kinds a node runs, in the order they are ensured.
pub struct Kinds(Vec<Box<dyn WorkloadKind>>);

impl Kinds {
    pub fn new(mut kinds: Vec<Box<dyn WorkloadKind>>) -> Kinds {
        // Stable: kinds of one stage keep the caller's order.
        kinds.sort_by_key(|k| k.stage());
        Kinds(kinds)
    }

    pub fn get(&self, kind: &str) -> Option<&dyn WorkloadKind> {
        self.0.iter().find(|k| k.kind() == kind).map(|k| &**k)
    }

    /// In the order they are ensured.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &dyn WorkloadKind> {
        self.0.iter().map(|k| &**k)
    }

    /// The stage workload kind `kind` is ensured in (unknown kinds last: they only fail).
    pub fn stage_of(&self, kind: &str) -> u8 {
        self.get(kind).map_or(u8::MAX, |k| k.stage())
    }

    pub fn take_changed(&self) -> bool {
        // Every flag is cleared, not only up to the first one set.
        self.0.iter().fold(false, |any, k| k.take_changed() | any)
    }
}

/// Opens the secrets sealed to this node, only in the context they were sealed for.
#[derive(Clone)]
pub struct Secrets {
    pub node_seed: [u8; 32],
    /// Genesis hash of the chain followed: part of the context every secret is sealed in.
    pub genesis_hash: Hash,
}

impl Secrets {
    /// Opens a secret of workload `w` of reservation `r`, only in that reservation's context:
    /// its owner, this node, this chain, that workload and `purpose`. A value sealed for any
    /// other context (copied from someone else's reservation, say) is an error for this
    /// workload, which never carries the plaintext.
    pub fn open(
        &self,
        r: &Reservation,
        w: &Workload,
        purpose: SealPurpose,
        sealed: &[u8],
    ) -> Result<String, String> {
        let what = match &purpose {
            SealPurpose::Env { name } => format!("sealed value for env {name}"),
            SealPurpose::ZdbPassword => "sealed zdb password".to_string(),
            SealPurpose::RegistryAuth => "sealed registry credentials".to_string(),
        };
        let context = SealContext {
            genesis: self.genesis_hash,
            owner: r.owner,
            node: Pair::from_seed(&self.node_seed).public(),
            workload: w.name.clone(),
            purpose,
        };
        match seal::open(&self.node_seed, &context, sealed) {
            Ok(plain) => String::from_utf8(plain).map_err(|_| format!("{what} is not UTF-8")),
            Err(SealError::Open) => Err(format!(
                "{what} does not open in this reservation's context (sealed for another owner, \
                 node, chain or workload, or altered?)"
            )),
            Err(e) => Err(format!("{what}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_reservation_reports_paused_whatever_its_probe_says() {
        let data = ResultData::Volume { path: "/v".into() };
        let unhealthy = Outcome::Unhealthy {
            message: "probe failed".into(),
            data: data.clone(),
        };
        assert_eq!(
            unhealthy.clone().into_result("w", true).state,
            WorkloadState::Paused
        );
        assert_eq!(
            unhealthy.into_result("w", false).state,
            WorkloadState::Unhealthy
        );
        let failed = Outcome::Failed("no".into()).into_result("w", true);
        assert_eq!(
            (failed.state, failed.message.as_str(), failed.data),
            (WorkloadState::Error, "no", ResultData::None)
        );
        let pulling = Outcome::Pulling("pulling x".into()).into_result("w", true);
        assert_eq!(pulling.state, WorkloadState::Pulling);
        assert_eq!(
            Outcome::Ready(data.clone()).into_result("w", false),
            WorkloadResult {
                name: "w".into(),
                state: WorkloadState::Ok,
                message: String::new(),
                data
            }
        );
    }
}
