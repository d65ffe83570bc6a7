//! Sealing secrets to a 3Node, bound to the reservation they belong to, so they can live on chain.
//!
//! A reservation carries secrets (zdb passwords, secret environment values) that only the node
//! hosting it may read, and only for that reservation. The client seals each secret to the node's
//! account key *in a context* ([`SealContext`]: chain, owner, node, workload, purpose); only the
//! node's agent, which holds the node's ed25519 seed, can open it, and only when it asks in the
//! same context.
//!
//! # Construction
//!
//! HPKE (RFC 9180) from the `hpke` crate, Base mode, single-shot seal/open, suite
//! DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305:
//! - `info` = [`SEAL_LABEL`] ++ SCALE([`SealContext`]) — the label separates these seals from any
//!   other use of HPKE with the node key, and versions the scheme; `aad` is empty (the context
//!   already goes into every key and nonce through `info`).
//! - Sealed bytes: `enc (32, the ephemeral X25519 public key) ++ ciphertext ++ tag (16)`, i.e.
//!   [`SEAL_OVERHEAD`] = 48 bytes on top of the plaintext, the same layout as the scheme before
//!   contexts (whose values no longer open: they were bound to no context).
//! - Each seal draws a fresh ephemeral key (thread RNG of `rand` 0.10), so two seals of the same
//!   secret differ and reveal nothing about each other.
//!
//! # The node's X25519 key
//!
//! The node has one key, its ed25519 account key, which the chain already binds to the node
//! (`grid_node(id).account`): the client needs no second, separately registered and rotated
//! encryption key. The X25519 public key is that ed25519 public key mapped to Montgomery form;
//! the X25519 secret is the clamped first half of `SHA-512(ed25519 seed)`, the scalar ed25519
//! itself signs with, so both keys are the same point (`ed25519-dalek`'s `to_scalar_bytes` and
//! `to_montgomery`, made for this). Reusing one key pair this way is acceptable:
//! - it is proven safe for exactly this pair of uses: Ed25519 signatures stay unforgeable and an
//!   X25519-based KEM such as HPKE's DHKEM stays IND-CCA secure when they share the key
//!   (Thormarker, "On using the same key pair for Ed25519 and an X25519 based KEM", ePrint
//!   2021/509);
//! - the agent never signs anything derived from what it decrypts, and never decrypts on request
//!   for others: it only feeds opened values into its own workloads;
//! - the secret is the same either way: it lives only on the node, and losing it loses both
//!   roles, as it would with two keys on the same machine;
//! - the public key is already on chain and bound to the node by its registration, so clients
//!   need no second key that would have to be registered, authenticated and rotated.
//!
//! Recipients that are not curve points, or are points of small order (whose shared secret
//! carries nothing secret), are refused.
//!
//! # The context, and why
//!
//! Everyone reads the chain, so a sealed value is public. Sealed to the node alone, it would open
//! for anyone who copies it into a reservation of their own on the same node: the agent would
//! put the victim's secret into the attacker's container. Bound to a [`SealContext`], it opens
//! only where it was meant to:
//! - `genesis`: not on another chain, even one whose node runs with the same key;
//! - `owner`: not in another owner's reservation (the owner is the signer of `reserve`, so
//!   nobody else can make a reservation with that owner);
//! - `node`: not on another node (also implied by the node key; stated for clarity);
//! - `workload`: not in a workload of another name, even of the same owner on that node;
//! - `purpose`: not as a zdb password when it was an env value, nor as env `B` when it was
//!   env `A`.
//!
//! SCALE prefixes every string with its length, so no two contexts encode alike (bytes cannot
//! slide from the workload name into the env name).
//!
//! What is *not* bound, on purpose: the reservation id and version. The wallet seals before the
//! chain assigns the id, and an update by the owner (same owner, node and workload name) must
//! keep opening the values it keeps. So the owner can move a value between their own
//! reservations on that node under the same workload name and purpose; that gains them nothing,
//! since they can seal any value to themselves anyway. A party that can sign as the owner can do
//! anything the owner can.
//!
//! [`SealPurpose`] is extensible: new purposes (registry credentials of a container were the
//! third) are appended as new variants, which keeps the SCALE index of the existing ones.

use crate::{AccountId, Hash};
use hpke::{
    aead::ChaCha20Poly1305, kdf::HkdfSha256, kem::X25519HkdfSha256, Deserializable, OpModeR,
    OpModeS, Serializable,
};
use parity_scale_codec::Encode;
use zeroize::Zeroizing;

type Kem = X25519HkdfSha256;
type PublicKey = <Kem as hpke::Kem>::PublicKey;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// Length of the encapsulated key that starts every sealed value.
const ENC_LEN: usize = 32;
/// Length of the ChaCha20-Poly1305 tag that ends it.
const TAG_LEN: usize = 16;

/// Bytes a sealed secret has on top of its plaintext.
pub const SEAL_OVERHEAD: usize = ENC_LEN + TAG_LEN;

/// Domain-separation label, the first bytes of the HPKE `info`.
pub const SEAL_LABEL: &[u8] = b"gridchain-seal-v2/hpke-x25519-sha256-chacha20poly1305";

/// What a sealed value is for, inside its workload.
#[derive(Debug, Clone, PartialEq, Eq, Encode)]
pub enum SealPurpose {
    /// The value of environment variable `name` of a container workload.
    Env { name: String },
    /// The password of a zdb namespace workload.
    ZdbPassword,
    /// `username:password` for the registry a container workload's image is pulled from.
    RegistryAuth,
}

/// Where a sealed value belongs: it opens only in exactly this context. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Encode)]
pub struct SealContext {
    /// Genesis hash of the chain the reservation is on.
    pub genesis: Hash,
    /// The reservation's owner (the signer of `reserve` / `reserve_many`).
    pub owner: AccountId,
    /// The account key of the node hosting the reservation; the value is sealed to it.
    pub node: AccountId,
    /// Name of the workload the value belongs to.
    pub workload: String,
    pub purpose: SealPurpose,
}

impl SealContext {
    /// The HPKE `info`: [`SEAL_LABEL`] ++ SCALE(self).
    pub fn info(&self) -> Vec<u8> {
        let mut info = SEAL_LABEL.to_vec();
        self.encode_to(&mut info);
        info
    }
}

/// Why a secret cannot be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the recipient key is not a valid ed25519 public key of a node")]
    BadRecipient,
    #[error("the context names another node than the one sealed to or opening")]
    NodeMismatch,
    #[error("sealed secret is too short ({0} bytes, at least {SEAL_OVERHEAD})")]
    TooShort(usize),
    #[error(
        "sealed secret does not open in this context (sealed for another chain, owner, node, \
         workload or purpose, or altered)"
    )]
    Open,
}

/// The node's X25519 public key: its ed25519 key in Montgomery form.
fn recipient_key(node: &AccountId) -> Result<PublicKey, SealError> {
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&node.0).map_err(|_| SealError::BadRecipient)?;
    if key.is_weak() {
        return Err(SealError::BadRecipient);
    }
    PublicKey::from_bytes(key.to_montgomery().as_bytes()).map_err(|_| SealError::BadRecipient)
}

/// Seals `plaintext` to the node whose account key is `node`, for `context` (whose `node` must
/// be the same key).
pub fn seal(
    node: &AccountId,
    context: &SealContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    if context.node != *node {
        return Err(SealError::NodeMismatch);
    }
    let recipient = recipient_key(node)?;
    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &recipient,
        &context.info(),
        plaintext,
        &[],
        &mut rand_batch::rng(),
    )
    // Encapsulation fails only for a shared secret of zero, i.e. a small-order recipient,
    // which `recipient_key` already refused.
    .map_err(|_| SealError::BadRecipient)?;
    let mut out = Vec::with_capacity(ENC_LEN + ciphertext.len());
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a secret sealed to the node whose ed25519 seed is `node_seed`, in `context` (whose
/// `node` must be that node's account key). Any other context, and any altered byte, is
/// [`SealError::Open`]. Never panics, whatever `sealed` holds.
pub fn open(
    node_seed: &[u8; 32],
    context: &SealContext,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::TooShort(sealed.len()));
    }
    let signing = ed25519_dalek::SigningKey::from_bytes(node_seed);
    if AccountId(signing.verifying_key().to_bytes()) != context.node {
        return Err(SealError::NodeMismatch);
    }
    // `from_bytes` clamps, which gives the ed25519 signing scalar (see the module docs).
    let scalar = Zeroizing::new(signing.to_scalar_bytes());
    let secret = PrivateKey::from_bytes(&scalar[..]).map_err(|_| SealError::Open)?;
    let (enc, ciphertext) = sealed.split_at(ENC_LEN);
    let enc = EncappedKey::from_bytes(enc).map_err(|_| SealError::Open)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        &secret,
        &enc,
        &context.info(),
        ciphertext,
        &[],
    )
    .map_err(|_| SealError::Open)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Pair;
    use proptest::prelude::*;

    fn context(node: &Pair) -> SealContext {
        SealContext {
            genesis: Hash([7; 32]),
            owner: Pair::dev("Bob").public(),
            node: node.public(),
            workload: "web".into(),
            purpose: SealPurpose::Env {
                name: "API_KEY".into(),
            },
        }
    }

    #[test]
    fn round_trip_in_the_same_context() {
        let node = Pair::dev("Node1");
        let ctx = context(&node);
        let sealed = seal(&node.public(), &ctx, b"zdb password").unwrap();
        assert_eq!(sealed.len(), 12 + SEAL_OVERHEAD);
        assert_eq!(open(&node.seed(), &ctx, &sealed).unwrap(), b"zdb password");
        // Empty secrets too.
        let empty = seal(&node.public(), &ctx, b"").unwrap();
        assert_eq!(empty.len(), SEAL_OVERHEAD);
        assert_eq!(open(&node.seed(), &ctx, &empty).unwrap(), b"");
        // Two seals of the same secret differ (fresh ephemeral key each time).
        assert_ne!(
            seal(&node.public(), &ctx, b"x").unwrap(),
            seal(&node.public(), &ctx, b"x").unwrap()
        );
    }

    #[test]
    fn every_other_context_fails_to_open() {
        let node = Pair::dev("Node1");
        let ctx = context(&node);
        let sealed = seal(&node.public(), &ctx, b"s3cret").unwrap();
        type Change = fn(&mut SealContext);
        let changes: [(&str, Change); 6] = [
            ("genesis (another chain)", |c| c.genesis.0[0] ^= 1),
            ("owner", |c| c.owner = Pair::dev("Charlie").public()),
            ("workload", |c| c.workload = "web2".into()),
            ("purpose", |c| c.purpose = SealPurpose::ZdbPassword),
            ("env name", |c| {
                c.purpose = SealPurpose::Env {
                    name: "API_KEY2".into(),
                }
            }),
            ("workload/env split", |c| {
                // The SCALE encoding keeps field boundaries: moving bytes between the workload
                // and the env name is another context.
                c.workload = "we".into();
                c.purpose = SealPurpose::Env {
                    name: "bAPI_KEY".into(),
                }
            }),
        ];
        for (what, change) in changes {
            let mut other = ctx.clone();
            change(&mut other);
            assert_ne!(other.info(), ctx.info(), "{what}");
            assert_eq!(
                open(&node.seed(), &other, &sealed),
                Err(SealError::Open),
                "changed {what}"
            );
        }
        // Another node, in a context naming it: its key does not open it.
        let node2 = Pair::dev("Node2");
        let mut ctx2 = ctx.clone();
        ctx2.node = node2.public();
        assert_eq!(open(&node2.seed(), &ctx2, &sealed), Err(SealError::Open));
        // A context naming another node than the opener's key is a caller bug, said as such.
        assert_eq!(
            open(&node2.seed(), &ctx, &sealed),
            Err(SealError::NodeMismatch)
        );
        assert_eq!(
            seal(&node2.public(), &ctx, b"x"),
            Err(SealError::NodeMismatch)
        );
    }

    #[test]
    fn tampering_fails_to_open() {
        let node = Pair::dev("Node1");
        let ctx = context(&node);
        let sealed = seal(&node.public(), &ctx, b"zdb password").unwrap();
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x40;
            assert_eq!(
                open(&node.seed(), &ctx, &tampered),
                Err(SealError::Open),
                "byte {i}"
            );
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(open(&node.seed(), &ctx, &longer), Err(SealError::Open));
        assert_eq!(
            open(&node.seed(), &ctx, &sealed[..sealed.len() - 1]),
            Err(SealError::Open)
        );
        // An all-zero encapsulated key (a small-order point) is refused, not a zero secret.
        let mut zero_enc = sealed.clone();
        zero_enc[..32].fill(0);
        assert_eq!(open(&node.seed(), &ctx, &zero_enc), Err(SealError::Open));
    }

    #[test]
    fn too_short_is_refused() {
        let node = Pair::dev("Node1");
        let ctx = context(&node);
        assert_eq!(
            open(&node.seed(), &ctx, &[0; 10]),
            Err(SealError::TooShort(10))
        );
        assert_eq!(
            open(&node.seed(), &ctx, &[0; SEAL_OVERHEAD - 1]),
            Err(SealError::TooShort(SEAL_OVERHEAD - 1))
        );
        assert_eq!(open(&node.seed(), &ctx, &[]), Err(SealError::TooShort(0)));
    }

    #[test]
    fn non_curve_and_small_order_recipients_are_refused() {
        // y = 2 is not the y-coordinate of a point on edwards25519.
        let mut bad = [0u8; 32];
        bad[0] = 2;
        // The identity (y = 1) has small order: a shared secret with it carries no secret.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for key in [bad, identity] {
            let mut ctx = context(&Pair::dev("Node1"));
            ctx.node = AccountId(key);
            assert_eq!(
                seal(&AccountId(key), &ctx, b"x"),
                Err(SealError::BadRecipient)
            );
        }
    }

    #[test]
    fn the_x25519_key_is_the_ed25519_key() {
        // What `open` derives from the seed is the secret of what `seal` derives from the
        // account key (the conversion both sides rely on).
        let node = Pair::dev("Node1");
        let signing = ed25519_dalek::SigningKey::from_bytes(&node.seed());
        let secret = PrivateKey::from_bytes(&signing.to_scalar_bytes()).unwrap();
        assert_eq!(
            <Kem as hpke::Kem>::sk_to_pk(&secret).to_bytes(),
            recipient_key(&node.public()).unwrap().to_bytes()
        );
    }

    #[test]
    fn a_long_context_seals_and_opens() {
        let node = Pair::dev("Node1");
        let mut ctx = context(&node);
        ctx.workload = "w".repeat(70_000);
        let sealed = seal(&node.public(), &ctx, b"x").unwrap();
        assert_eq!(open(&node.seed(), &ctx, &sealed).unwrap(), b"x");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic_open(
            sealed in proptest::collection::vec(any::<u8>(), 0..200),
            workload in ".{0,40}",
        ) {
            let node = Pair::dev("Node1");
            let mut ctx = context(&node);
            ctx.workload = workload;
            let opened = open(&node.seed(), &ctx, &sealed);
            prop_assert!(opened.is_err());
        }
    }
}
