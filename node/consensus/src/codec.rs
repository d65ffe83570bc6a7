//! SCALE wire format of every message Malachite sends or writes to its WAL.
//!
//! Malachite's own types are generic and carry no encoding, so each gets a plain wire struct
//! here; decoding goes through [`decode_wire`], which rejects trailing bytes and bounds nesting,
//! so bytes from a peer can fail to decode but never panic or allocate without bound.

use crate::context::{
    Address, BlockValue, ConsensusSignature, GridContext, Height, Proposal, ProposalPart, Vote,
};
use crate::signing::{round_from_i64, round_to_i64};
use bytes::Bytes;
use gridchain_primitives::{block::DECODE_DEPTH_LIMIT, Hash};
use malachitebft_app_channel::app::consensus::{LivenessMsg, SignedConsensusMsg};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, CommitSignature, ExtendedCommitCertificate, ExtendedCommitSignature,
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType,
    RoundSignature, SignedMessage, ValidatorProof, Validity, VoteType,
};
use malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use malachitebft_app_channel::app::types::{PeerId, ProposedValue};
use parity_scale_codec::{Decode, DecodeLimit, Encode};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

fn invalid(what: &'static str, reason: impl Into<String>) -> CodecError {
    CodecError::Invalid {
        what,
        reason: reason.into(),
    }
}

/// Decodes untrusted bytes: all of them, with bounded nesting.
pub fn decode_wire<T: Decode>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    T::decode_all_with_depth_limit(DECODE_DEPTH_LIMIT, &mut &bytes[..]).map_err(|e| {
        CodecError::Decode {
            what,
            reason: e.to_string(),
        }
    })
}

fn round(what: &'static str, value: i64) -> Result<Round, CodecError> {
    round_from_i64(value).ok_or_else(|| invalid(what, format!("round {value}")))
}

fn nil_or_val(value: Option<Hash>) -> NilOrVal<Hash> {
    match value {
        Some(h) => NilOrVal::Val(h),
        None => NilOrVal::Nil,
    }
}

fn from_nil_or_val(value: &NilOrVal<Hash>) -> Option<Hash> {
    match value {
        NilOrVal::Nil => None,
        NilOrVal::Val(h) => Some(*h),
    }
}

fn vote_type_byte(t: VoteType) -> u8 {
    match t {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    }
}

fn vote_type(what: &'static str, byte: u8) -> Result<VoteType, CodecError> {
    match byte {
        0 => Ok(VoteType::Prevote),
        1 => Ok(VoteType::Precommit),
        other => Err(invalid(what, format!("vote type {other}"))),
    }
}

#[derive(Encode, Decode)]
struct WireVote {
    vote_type: u8,
    height: u64,
    round: i64,
    value: Option<Hash>,
    validator: Address,
    /// Signature of the (empty) vote extension, when there is one.
    extension: Option<ConsensusSignature>,
}

impl WireVote {
    fn from_vote(v: &Vote) -> Self {
        WireVote {
            vote_type: vote_type_byte(v.vote_type),
            height: v.height.0,
            round: round_to_i64(v.round),
            value: from_nil_or_val(&v.value),
            validator: v.validator,
            extension: v.extension.as_ref().map(|e| e.signature),
        }
    }

    fn into_vote(self) -> Result<Vote, CodecError> {
        Ok(Vote {
            vote_type: vote_type("vote", self.vote_type)?,
            height: Height(self.height),
            round: round("vote", self.round)?,
            value: nil_or_val(self.value),
            validator: self.validator,
            extension: self.extension.map(|s| SignedMessage::new((), s)),
        })
    }
}

#[derive(Encode, Decode)]
struct WireProposal {
    height: u64,
    round: i64,
    value: Hash,
    pol_round: i64,
    proposer: Address,
}

impl WireProposal {
    fn from_proposal(p: &Proposal) -> Self {
        WireProposal {
            height: p.height.0,
            round: round_to_i64(p.round),
            value: p.value.0,
            pol_round: round_to_i64(p.pol_round),
            proposer: p.proposer,
        }
    }

    fn into_proposal(self) -> Result<Proposal, CodecError> {
        Ok(Proposal {
            height: Height(self.height),
            round: round("proposal", self.round)?,
            value: BlockValue(self.value),
            pol_round: round("proposal", self.pol_round)?,
            proposer: self.proposer,
        })
    }
}

#[derive(Encode, Decode)]
enum WireConsensusMsg {
    Vote(WireVote, ConsensusSignature),
    Proposal(WireProposal, ConsensusSignature),
}

#[derive(Encode, Decode)]
struct WirePolka {
    height: u64,
    round: i64,
    value: Hash,
    signatures: Vec<(Address, ConsensusSignature)>,
}

#[derive(Encode, Decode)]
struct WireRoundCertificate {
    height: u64,
    round: i64,
    /// 0 skip, 1 precommit.
    cert_type: u8,
    signatures: Vec<(u8, Option<Hash>, Address, ConsensusSignature)>,
}

#[derive(Encode, Decode)]
enum WireLiveness {
    Vote(WireVote, ConsensusSignature),
    Polka(WirePolka),
    SkipRound(WireRoundCertificate),
}

#[derive(Encode, Decode)]
struct WireStreamMessage {
    stream_id: Vec<u8>,
    sequence: u64,
    /// `None` is the end of the stream.
    content: Option<ProposalPart>,
}

#[derive(Encode, Decode)]
struct WireValidatorProof {
    public_key: Vec<u8>,
    peer_id: Vec<u8>,
    signature: ConsensusSignature,
}

#[derive(Encode, Decode)]
struct WireProposedValue {
    height: u64,
    round: i64,
    valid_round: i64,
    proposer: Address,
    value: Hash,
    valid: bool,
}

#[derive(Encode, Decode)]
struct WireStatus {
    peer_id: Vec<u8>,
    tip_height: u64,
    history_min_height: u64,
}

#[derive(Encode, Decode)]
struct WireRequest {
    start: u64,
    end: u64,
}

/// A commit certificate as sync sends it (vote extensions, if any, by signature only).
#[derive(Encode, Decode)]
struct WireExtendedCertificate {
    height: u64,
    round: i64,
    value: Hash,
    signatures: Vec<(Address, ConsensusSignature, Option<ConsensusSignature>)>,
}

#[derive(Encode, Decode)]
struct WireResponse {
    start_height: u64,
    values: Vec<(Vec<u8>, WireExtendedCertificate)>,
}

fn polka_to_wire(c: &PolkaCertificate<GridContext>) -> WirePolka {
    WirePolka {
        height: c.height.0,
        round: round_to_i64(c.round),
        value: c.value_id,
        signatures: c
            .polka_signatures
            .iter()
            .map(|s| (s.address, s.signature))
            .collect(),
    }
}

fn polka_from_wire(w: WirePolka) -> Result<PolkaCertificate<GridContext>, CodecError> {
    Ok(PolkaCertificate {
        height: Height(w.height),
        round: round("polka certificate", w.round)?,
        value_id: w.value,
        polka_signatures: w
            .signatures
            .into_iter()
            .map(|(address, signature)| PolkaSignature { address, signature })
            .collect(),
    })
}

fn ext_cert_to_wire(c: &ExtendedCommitCertificate<GridContext>) -> WireExtendedCertificate {
    WireExtendedCertificate {
        height: c.height.0,
        round: round_to_i64(c.round),
        value: c.value_id,
        signatures: c
            .commit_signatures
            .iter()
            .map(|s| {
                (
                    s.address,
                    s.signature,
                    s.extension.as_ref().map(|e| e.signature),
                )
            })
            .collect(),
    }
}

fn ext_cert_from_wire(
    w: WireExtendedCertificate,
) -> Result<ExtendedCommitCertificate<GridContext>, CodecError> {
    Ok(ExtendedCommitCertificate {
        height: Height(w.height),
        round: round("commit certificate", w.round)?,
        value_id: w.value,
        commit_signatures: w
            .signatures
            .into_iter()
            .map(|(address, signature, ext)| {
                ExtendedCommitSignature::new(
                    address,
                    signature,
                    ext.map(|s| SignedMessage::new((), s)),
                )
            })
            .collect(),
    })
}

/// The commit certificate gridchain stores beside each block: the >2/3 precommits that made it
/// final. [`crate::certificate::verify`] checks one against a validator set.
pub fn certificate_from_malachite(
    c: &CommitCertificate<GridContext>,
) -> gridchain_primitives::finality::CommitCertificate {
    gridchain_primitives::finality::CommitCertificate {
        height: c.height.0,
        round: c.round.as_u32().unwrap_or(0),
        block_hash: c.value_id,
        signatures: c
            .commit_signatures
            .iter()
            .map(|s| (s.address.0, s.signature.into()))
            .collect(),
    }
}

pub fn certificate_to_malachite(
    c: &gridchain_primitives::finality::CommitCertificate,
) -> CommitCertificate<GridContext> {
    CommitCertificate {
        height: Height(c.height),
        round: Round::new(c.round),
        value_id: c.block_hash,
        commit_signatures: c
            .signatures
            .iter()
            .map(|(a, s)| CommitSignature::new(Address(*a), (*s).into()))
            .collect(),
    }
}

/// The one codec for consensus gossip, sync and the WAL.
#[derive(Clone, Copy, Debug, Default)]
pub struct WireCodec;

macro_rules! codec {
    ($t:ty, $what:literal, |$enc:ident| $encode:expr, |$dec:ident: $wire:ty| $decode:expr) => {
        impl Codec<$t> for WireCodec {
            type Error = CodecError;

            fn decode(&self, bytes: Bytes) -> Result<$t, CodecError> {
                let $dec: $wire = decode_wire($what, &bytes)?;
                $decode
            }

            fn encode(&self, $enc: &$t) -> Result<Bytes, CodecError> {
                Ok(Bytes::from($encode))
            }
        }
    };
}

codec!(
    ProposalPart,
    "proposal part",
    |p| p.encode(),
    |w: ProposalPart| Ok(w)
);

codec!(
    SignedConsensusMsg<GridContext>,
    "consensus message",
    |m| match m {
        SignedConsensusMsg::Vote(v) =>
            WireConsensusMsg::Vote(WireVote::from_vote(&v.message), v.signature),
        SignedConsensusMsg::Proposal(p) =>
            WireConsensusMsg::Proposal(WireProposal::from_proposal(&p.message), p.signature),
    }
    .encode(),
    |w: WireConsensusMsg| match w {
        WireConsensusMsg::Vote(v, s) => Ok(SignedConsensusMsg::Vote(SignedMessage::new(
            v.into_vote()?,
            s
        ))),
        WireConsensusMsg::Proposal(p, s) => Ok(SignedConsensusMsg::Proposal(SignedMessage::new(
            p.into_proposal()?,
            s
        ))),
    }
);

codec!(
    LivenessMsg<GridContext>,
    "liveness message",
    |m| match m {
        LivenessMsg::Vote(v) => WireLiveness::Vote(WireVote::from_vote(&v.message), v.signature),
        LivenessMsg::PolkaCertificate(c) => WireLiveness::Polka(polka_to_wire(c)),
        LivenessMsg::SkipRoundCertificate(c) => WireLiveness::SkipRound(WireRoundCertificate {
            height: c.height.0,
            round: round_to_i64(c.round),
            cert_type: match c.cert_type {
                RoundCertificateType::Skip => 0,
                RoundCertificateType::Precommit => 1,
            },
            signatures: c
                .round_signatures
                .iter()
                .map(|s| (
                    vote_type_byte(s.vote_type),
                    from_nil_or_val(&s.value_id),
                    s.address,
                    s.signature
                ))
                .collect(),
        }),
    }
    .encode(),
    |w: WireLiveness| match w {
        WireLiveness::Vote(v, s) => Ok(LivenessMsg::Vote(SignedMessage::new(v.into_vote()?, s))),
        WireLiveness::Polka(p) => Ok(LivenessMsg::PolkaCertificate(polka_from_wire(p)?)),
        WireLiveness::SkipRound(c) => {
            let cert_type = match c.cert_type {
                0 => RoundCertificateType::Skip,
                1 => RoundCertificateType::Precommit,
                other => return Err(invalid("round certificate", format!("type {other}"))),
            };
            let mut round_signatures = Vec::with_capacity(c.signatures.len());
            for (t, value, address, signature) in c.signatures {
                round_signatures.push(RoundSignature {
                    vote_type: vote_type("round certificate", t)?,
                    value_id: nil_or_val(value),
                    address,
                    signature,
                });
            }
            Ok(LivenessMsg::SkipRoundCertificate(RoundCertificate {
                height: Height(c.height),
                round: round("round certificate", c.round)?,
                cert_type,
                round_signatures,
            }))
        }
    }
);

codec!(
    StreamMessage<ProposalPart>,
    "proposal stream message",
    |m| WireStreamMessage {
        stream_id: m.stream_id.to_bytes().to_vec(),
        sequence: m.sequence,
        content: m.content.as_data().cloned(),
    }
    .encode(),
    |w: WireStreamMessage| Ok(StreamMessage::new(
        StreamId::new(Bytes::from(w.stream_id)),
        w.sequence,
        match w.content {
            Some(part) => StreamContent::Data(part),
            None => StreamContent::Fin,
        },
    ))
);

codec!(
    ValidatorProof<GridContext>,
    "validator proof",
    |p| WireValidatorProof {
        public_key: p.public_key.clone(),
        peer_id: p.peer_id.clone(),
        signature: p.signature,
    }
    .encode(),
    |w: WireValidatorProof| Ok(ValidatorProof::new(w.public_key, w.peer_id, w.signature))
);

codec!(
    ProposedValue<GridContext>,
    "proposed value",
    |v| WireProposedValue {
        height: v.height.0,
        round: round_to_i64(v.round),
        valid_round: round_to_i64(v.valid_round),
        proposer: v.proposer,
        value: v.value.0,
        valid: v.validity.is_valid(),
    }
    .encode(),
    |w: WireProposedValue| Ok(ProposedValue {
        height: Height(w.height),
        round: round("proposed value", w.round)?,
        valid_round: round("proposed value", w.valid_round)?,
        proposer: w.proposer,
        value: BlockValue(w.value),
        validity: Validity::from_bool(w.valid),
    })
);

codec!(
    PolkaCertificate<GridContext>,
    "polka certificate",
    |c| polka_to_wire(c).encode(),
    |w: WirePolka| polka_from_wire(w)
);

codec!(
    Status<GridContext>,
    "sync status",
    |s| WireStatus {
        peer_id: s.peer_id.to_bytes(),
        tip_height: s.tip_height.0,
        history_min_height: s.history_min_height.0,
    }
    .encode(),
    |w: WireStatus| Ok(Status {
        peer_id: PeerId::from_bytes(&w.peer_id)
            .map_err(|e| invalid("sync status", e.to_string()))?,
        tip_height: Height(w.tip_height),
        history_min_height: Height(w.history_min_height),
    })
);

codec!(
    Request<GridContext>,
    "sync request",
    |r| match r {
        Request::ValueRequest(v) => WireRequest {
            start: v.range.start().0,
            end: v.range.end().0,
        },
    }
    .encode(),
    |w: WireRequest| Ok(Request::ValueRequest(malachitebft_sync::ValueRequest::new(
        Height(w.start)..=Height(w.end)
    )))
);

fn response_to_wire(r: &Response<GridContext>) -> WireResponse {
    match r {
        Response::ValueResponse(v) => WireResponse {
            start_height: v.start_height.0,
            values: v
                .values
                .iter()
                .map(|d| (d.value_bytes.to_vec(), ext_cert_to_wire(&d.certificate)))
                .collect(),
        },
    }
}

codec!(
    Response<GridContext>,
    "sync response",
    |r| response_to_wire(r).encode(),
    |w: WireResponse| {
        let mut values = Vec::with_capacity(w.values.len());
        for (bytes, cert) in w.values {
            values.push(RawDecidedValue::new(
                Bytes::from(bytes),
                ext_cert_from_wire(cert)?,
            ));
        }
        Ok(Response::ValueResponse(
            malachitebft_sync::ValueResponse::new(Height(w.start_height), values),
        ))
    }
);

impl HasEncodedLen<Response<GridContext>> for WireCodec {
    fn encoded_len(&self, msg: &Response<GridContext>) -> Result<usize, CodecError> {
        Ok(response_to_wire(msg).encoded_size())
    }
}
