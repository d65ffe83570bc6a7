//! A request: what the owner asks, bound to one chain, one node and one minute, signed by the
//! owner's account key.

use gridchain_primitives::{AccountId, Hash, Pair, Signature};
use parity_scale_codec::{Decode, Encode};

/// Domain of the signed payload: a request signature can never pass as an extrinsic's or any
/// other message's, nor the other way round.
const DOMAIN: &[u8] = b"gridchain/owner-api/v1";
/// How far `issued_at` may be from the node's clock, either way.
pub const MAX_SKEW_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct LogsQuery {
    /// One container workload; `None`: all of the reservation's.
    pub workload: Option<String>,
    /// Keep streaming new output until the client hangs up.
    pub follow: bool,
    /// Only the last N lines of each workload's log.
    pub tail: Option<u32>,
    /// Only output since this Unix time (seconds).
    pub since_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ExecQuery {
    pub workload: String,
    /// The command and its arguments (no shell unless the command is one).
    pub cmd: Vec<String>,
    /// Allocate a TTY (an interactive shell); stdin is always attached.
    pub tty: bool,
    /// Initial terminal size (cols, rows), TTY only.
    pub size: Option<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Action {
    Logs(LogsQuery),
    Exec(ExecQuery),
    Events,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Request {
    /// The chain the reservation is on.
    pub genesis: Hash,
    /// The node the request is for: the node refuses any other id.
    pub node_id: u32,
    pub reservation: u64,
    /// Unix milliseconds when signed.
    pub issued_at_ms: u64,
    /// Random; with the signer, makes the request single-use.
    pub nonce: [u8; 16],
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SignedRequest {
    pub request: Request,
    pub signer: AccountId,
    pub signature: Signature,
}

fn payload(request: &Request) -> Vec<u8> {
    let mut payload = DOMAIN.to_vec();
    request.encode_to(&mut payload);
    payload
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Request {
    /// A request for `action` on `reservation` (on node `node_id` of chain `genesis`), issued
    /// now with a fresh nonce.
    pub fn new(genesis: Hash, node_id: u32, reservation: u64, action: Action) -> Request {
        Request {
            genesis,
            node_id,
            reservation,
            issued_at_ms: now_ms(),
            nonce: rand::random(),
            action,
        }
    }

    pub fn sign(self, key: &Pair) -> SignedRequest {
        let signature = key.sign(&payload(&self));
        SignedRequest {
            request: self,
            signer: key.public(),
            signature,
        }
    }
}

impl SignedRequest {
    /// Whether the signature is the signer's over this request.
    pub fn signature_is_valid(&self) -> bool {
        gridchain_primitives::signature::verify(
            &self.signer,
            &payload(&self.request),
            &self.signature,
        )
    }

    /// Whether `issued_at` is within [`MAX_SKEW_MS`] of `now_ms`.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        self.request.issued_at_ms.abs_diff(now_ms) <= MAX_SKEW_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_every_field_and_nothing_else_passes() {
        let alice = Pair::dev("Alice");
        let request = Request::new(Hash::default(), 3, 7, Action::Events);
        let signed = request.clone().sign(&alice);
        assert!(signed.signature_is_valid());
        assert!(signed.is_fresh(now_ms()));
        assert!(!signed.is_fresh(now_ms() + MAX_SKEW_MS + 1_000));

        let mut other_node = signed.clone();
        other_node.request.node_id = 4;
        assert!(!other_node.signature_is_valid());
        let mut other_action = signed.clone();
        other_action.request.action = Action::Exec(ExecQuery {
            workload: "web".into(),
            cmd: vec!["sh".into()],
            tty: true,
            size: None,
        });
        assert!(!other_action.signature_is_valid());
        let mut other_signer = signed.clone();
        other_signer.signer = Pair::dev("Bob").public();
        assert!(!other_signer.signature_is_valid());
        // The same fields signed as something else (no domain) do not pass.
        let mut raw = signed;
        raw.signature = alice.sign(&request.encode());
        assert!(!raw.signature_is_valid());
    }
}
