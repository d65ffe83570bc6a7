//! Who may ask what: every check a request passes before the node does anything for it.
//!
//! The order puts the cheap checks first and the signature before anything that reads state, so
//! a stranger's request costs one signature check at most; ownership comes from the last
//! verified final snapshot (no chain call per request, nothing a request can amplify).

use gridchain_primitives::{AccountId, Hash};
use gridchain_rpc_api::grid::NodeSnapshot;
use gridchain_runtime::reservations::WorkloadSpec;
use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};
use zos_owner_api::{request::MAX_SKEW_MS, Action, RefusalCode, SignedRequest};

/// Requests one signer may have in the replay window at once.
pub const MAX_REQUESTS_PER_SIGNER: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
}

fn refuse(code: RefusalCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// What an accepted request is about: the reservation's container workloads it names (all of
/// them for logs without a workload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub reservation: u64,
    pub owner: AccountId,
    pub containers: Vec<String>,
}

/// Nonces seen within the freshness window, per signer: a request is single-use.
#[derive(Default)]
pub struct ReplayGuard {
    /// signer → nonce → issued_at_ms.
    seen: Mutex<HashMap<AccountId, BTreeMap<[u8; 16], u64>>>,
}

impl ReplayGuard {
    /// Records the request's nonce; refuses one seen before. Entries leave once their request
    /// could no longer be fresh, so the memory is bounded by what signers can send per window.
    fn admit(&self, request: &SignedRequest, now_ms: u64) -> Result<(), Refusal> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let horizon = now_ms.saturating_sub(2 * MAX_SKEW_MS);
        seen.retain(|_, nonces| {
            nonces.retain(|_, issued| *issued >= horizon);
            !nonces.is_empty()
        });
        let nonces = seen.entry(request.signer).or_default();
        if nonces.contains_key(&request.request.nonce) {
            return Err(refuse(
                RefusalCode::Replayed,
                "this request was already used; sign a new one",
            ));
        }
        if nonces.len() >= MAX_REQUESTS_PER_SIGNER {
            return Err(refuse(
                RefusalCode::Busy,
                format!(
                    "more than {MAX_REQUESTS_PER_SIGNER} requests in two minutes from this signer"
                ),
            ));
        }
        nonces.insert(request.request.nonce, request.request.issued_at_ms);
        Ok(())
    }
}

/// Checks `request` for node `node_id` of chain `genesis` against `snapshot` (the last verified
/// final state) at `now_ms`; single use through `replay`.
pub fn check(
    request: &SignedRequest,
    genesis: &Hash,
    node_id: u32,
    snapshot: Option<&NodeSnapshot>,
    replay: &ReplayGuard,
    now_ms: u64,
) -> Result<Target, Refusal> {
    let r = &request.request;
    if !request.is_fresh(now_ms) {
        return Err(refuse(
            RefusalCode::Expired,
            format!(
                "the request was signed {} s away from the node's clock (at most {} s allowed)",
                r.issued_at_ms.abs_diff(now_ms) / 1_000,
                MAX_SKEW_MS / 1_000
            ),
        ));
    }
    if r.genesis != *genesis {
        return Err(refuse(
            RefusalCode::WrongChain,
            format!("signed for chain {}; this node is on {genesis}", r.genesis),
        ));
    }
    if r.node_id != node_id {
        return Err(refuse(
            RefusalCode::WrongNode,
            format!("signed for node {}; this is node {node_id}", r.node_id),
        ));
    }
    if !request.signature_is_valid() {
        return Err(refuse(
            RefusalCode::BadSignature,
            format!("the signature is not {}'s", request.signer),
        ));
    }
    let reservation = snapshot
        .and_then(|s| s.reservations.iter().find(|x| x.id == r.reservation))
        .filter(|x| !x.is_deleted())
        .ok_or_else(|| {
            refuse(
                RefusalCode::NoSuchReservation,
                format!("no live reservation {} on node {node_id}", r.reservation),
            )
        })?;
    if reservation.owner != request.signer {
        return Err(refuse(
            RefusalCode::NotOwner,
            format!(
                "{} does not own reservation {}",
                request.signer, r.reservation
            ),
        ));
    }
    let containers: Vec<&str> = reservation
        .deployment
        .workloads
        .iter()
        .filter(|w| matches!(w.spec, WorkloadSpec::Container { .. }))
        .map(|w| w.name.as_str())
        .collect();
    let named = match &r.action {
        Action::Logs(q) => q.workload.as_deref(),
        Action::Exec(q) => Some(q.workload.as_str()),
        Action::Events => None,
    };
    let containers = match named {
        Some(name) if containers.contains(&name) => vec![name.to_string()],
        Some(name) => {
            return Err(refuse(
                RefusalCode::NoSuchWorkload,
                format!(
                    "reservation {} has no container workload {name:?} (it has: {})",
                    r.reservation,
                    containers.join(", ")
                ),
            ))
        }
        None => containers.into_iter().map(str::to_string).collect(),
    };
    if let Action::Exec(q) = &r.action {
        if q.cmd.is_empty() {
            return Err(refuse(RefusalCode::BadRequest, "no command to run"));
        }
    }
    replay.admit(request, now_ms)?;
    Ok(Target {
        reservation: r.reservation,
        owner: reservation.owner,
        containers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridchain_primitives::Pair;
    use zos_owner_api::{request::now_ms, Request};

    #[test]
    fn a_signer_gets_a_bounded_number_of_nonces_per_window_and_each_once() {
        let guard = ReplayGuard::default();
        let bob = Pair::dev("Bob");
        let now = now_ms();
        let first = Request::new(Hash::default(), 1, 1, Action::Events).sign(&bob);
        guard.admit(&first, now).unwrap();
        assert_eq!(
            guard.admit(&first, now).unwrap_err().code,
            RefusalCode::Replayed
        );
        for _ in 1..MAX_REQUESTS_PER_SIGNER {
            let r = Request::new(Hash::default(), 1, 1, Action::Events).sign(&bob);
            guard.admit(&r, now).unwrap();
        }
        let over = Request::new(Hash::default(), 1, 1, Action::Events).sign(&bob);
        assert_eq!(guard.admit(&over, now).unwrap_err().code, RefusalCode::Busy);
        // Another signer is not held up by Bob.
        let alice = Request::new(Hash::default(), 1, 1, Action::Events).sign(&Pair::dev("Alice"));
        guard.admit(&alice, now).unwrap();
        // Once Bob's requests can no longer be fresh, they are forgotten.
        let later = now + 2 * MAX_SKEW_MS + 1;
        let mut fresh = Request::new(Hash::default(), 1, 1, Action::Events);
        fresh.issued_at_ms = later;
        guard.admit(&fresh.sign(&bob), later).unwrap();
    }
}
