//! # pallet-twins
//!
//! The phone book of digital selves. A twin is an account's identity on the grid: a unique name
//! and an endpoint where it can be reached. Farms, 3Nodes and reservations all belong to twins.
//!
//! - Each account has at most one twin; names are unique (case-insensitive: stored lowercase).
//! - Lookup by id (`twins/twin/<id>`), by account (`twins/by_account/<account>`) and by name
//!   (`twins/by_name/<name>`). Ids count up from 1 (`twins/next_id`), so listing is a walk over
//!   `1..next_id`.
//! - Other pallets hold references to a twin ([`add_reference`]) while a farm, node or
//!   reservation uses it; [`Call::DeleteTwin`] refuses a twin that is still referenced.

use gridchain_primitives::{state::storage_key, state::storage_map_key, AccountId};
use pallet_system::{Context, PalletError};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

pub const PALLET: &str = "twins";

pub type TwinId = u32;

/// Longest twin name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest endpoint, in bytes.
pub const MAX_ENDPOINT_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Twin {
    pub id: TwinId,
    pub account: AccountId,
    pub name: String,
    /// Where the twin can be reached (e.g. a URL or a relay address); free text.
    pub endpoint: String,
    /// Farms, nodes and reservations that belong to this twin.
    pub references: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "call")]
pub enum Call {
    /// Creates the signer's twin.
    CreateTwin { name: String, endpoint: String },
    /// Renames the signer's twin and/or changes its endpoint.
    UpdateTwin { name: String, endpoint: String },
    /// Deletes the signer's twin; it must own nothing any more.
    DeleteTwin,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Event {
    TwinCreated {
        id: TwinId,
        account: AccountId,
        name: String,
    },
    TwinUpdated {
        id: TwinId,
        name: String,
        endpoint: String,
    },
    TwinDeleted {
        id: TwinId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("this account already has twin {0}")]
    AlreadyHasTwin(TwinId),
    #[error("this account has no twin")]
    NoTwin,
    #[error("the name {0:?} is taken")]
    NameTaken(String),
    #[error("invalid name: 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'")]
    InvalidName,
    #[error("endpoint is longer than {MAX_ENDPOINT_LEN} bytes or has control characters")]
    InvalidEndpoint,
    #[error("twin {id} still owns {references} farms, nodes or reservations")]
    TwinInUse { id: TwinId, references: u32 },
}

impl PalletError for Error {
    const PALLET: &'static str = PALLET;
    fn name(&self) -> &'static str {
        match self {
            Error::AlreadyHasTwin(_) => "AlreadyHasTwin",
            Error::NoTwin => "NoTwin",
            Error::NameTaken(_) => "NameTaken",
            Error::InvalidName => "InvalidName",
            Error::InvalidEndpoint => "InvalidEndpoint",
            Error::TwinInUse { .. } => "TwinInUse",
        }
    }
}

pub fn dispatch<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    call: Call,
) -> Result<(), Error> {
    match call {
        Call::CreateTwin { name, endpoint } => create_twin(ctx, who, name, endpoint).map(|_| ()),
        Call::UpdateTwin { name, endpoint } => update_twin(ctx, who, name, endpoint),
        Call::DeleteTwin => delete_twin(ctx, who),
    }
}

// ---- storage ----

pub fn twin_key(id: TwinId) -> Vec<u8> {
    storage_map_key(PALLET, "twin", &id)
}
pub fn by_account_key(account: &AccountId) -> Vec<u8> {
    storage_map_key(PALLET, "by_account", account)
}
pub fn by_name_key(name: &str) -> Vec<u8> {
    storage_map_key(PALLET, "by_name", &name.to_lowercase())
}
pub fn next_id_key() -> Vec<u8> {
    storage_key(PALLET, "next_id")
}

/// The id the next twin gets; existing twins have ids below it.
pub fn next_id<E>(ctx: &Context<E>) -> TwinId {
    ctx.overlay.get_decoded(&next_id_key()).unwrap_or(1)
}

pub fn twin<E>(ctx: &Context<E>, id: TwinId) -> Option<Twin> {
    ctx.overlay.get_decoded(&twin_key(id))
}

pub fn twin_id_of<E>(ctx: &Context<E>, account: &AccountId) -> Option<TwinId> {
    ctx.overlay.get_decoded(&by_account_key(account))
}

pub fn twin_of<E>(ctx: &Context<E>, account: &AccountId) -> Option<Twin> {
    twin_id_of(ctx, account).and_then(|id| twin(ctx, id))
}

pub fn twin_by_name<E>(ctx: &Context<E>, name: &str) -> Option<Twin> {
    let id: TwinId = ctx.overlay.get_decoded(&by_name_key(name))?;
    twin(ctx, id)
}

fn put_twin<E>(ctx: &mut Context<E>, twin: &Twin) {
    ctx.overlay.put_encoded(twin_key(twin.id), twin);
}

// ---- checks ----

/// A twin or farm name: 1..=64 of `[A-Za-z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_endpoint(endpoint: &str) -> Result<(), Error> {
    if endpoint.len() > MAX_ENDPOINT_LEN || endpoint.chars().any(char::is_control) {
        return Err(Error::InvalidEndpoint);
    }
    Ok(())
}

// ---- calls ----

pub fn create_twin<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    name: String,
    endpoint: String,
) -> Result<TwinId, Error> {
    if let Some(id) = twin_id_of(ctx, &who) {
        return Err(Error::AlreadyHasTwin(id));
    }
    if !valid_name(&name) {
        return Err(Error::InvalidName);
    }
    check_endpoint(&endpoint)?;
    if twin_by_name(ctx, &name).is_some() {
        return Err(Error::NameTaken(name));
    }
    let id = next_id(ctx);
    ctx.overlay.put_encoded(next_id_key(), &(id + 1));
    put_twin(
        ctx,
        &Twin {
            id,
            account: who,
            name: name.clone(),
            endpoint,
            references: 0,
        },
    );
    ctx.overlay.put_encoded(by_account_key(&who), &id);
    ctx.overlay.put_encoded(by_name_key(&name), &id);
    ctx.deposit_event(Event::TwinCreated {
        id,
        account: who,
        name,
    });
    Ok(id)
}

fn update_twin<E: From<Event>>(
    ctx: &mut Context<E>,
    who: AccountId,
    name: String,
    endpoint: String,
) -> Result<(), Error> {
    let mut twin = twin_of(ctx, &who).ok_or(Error::NoTwin)?;
    if !valid_name(&name) {
        return Err(Error::InvalidName);
    }
    check_endpoint(&endpoint)?;
    if name.to_lowercase() != twin.name.to_lowercase() {
        if twin_by_name(ctx, &name).is_some() {
            return Err(Error::NameTaken(name));
        }
        ctx.overlay.delete(by_name_key(&twin.name));
        ctx.overlay.put_encoded(by_name_key(&name), &twin.id);
    }
    twin.name = name.clone();
    twin.endpoint = endpoint.clone();
    put_twin(ctx, &twin);
    ctx.deposit_event(Event::TwinUpdated {
        id: twin.id,
        name,
        endpoint,
    });
    Ok(())
}

fn delete_twin<E: From<Event>>(ctx: &mut Context<E>, who: AccountId) -> Result<(), Error> {
    let twin = twin_of(ctx, &who).ok_or(Error::NoTwin)?;
    if twin.references > 0 {
        return Err(Error::TwinInUse {
            id: twin.id,
            references: twin.references,
        });
    }
    ctx.overlay.delete(twin_key(twin.id));
    ctx.overlay.delete(by_account_key(&who));
    ctx.overlay.delete(by_name_key(&twin.name));
    ctx.deposit_event(Event::TwinDeleted { id: twin.id });
    Ok(())
}

// ---- references held by other pallets ----

/// Records that something (a farm, node or reservation) now belongs to twin `id`.
pub fn add_reference<E>(ctx: &mut Context<E>, id: TwinId) {
    if let Some(mut twin) = twin(ctx, id) {
        twin.references = twin.references.saturating_add(1);
        put_twin(ctx, &twin);
    }
}

/// Records that something that belonged to twin `id` is gone.
pub fn remove_reference<E>(ctx: &mut Context<E>, id: TwinId) {
    if let Some(mut twin) = twin(ctx, id) {
        twin.references = twin.references.saturating_sub(1);
        put_twin(ctx, &twin);
    }
}
