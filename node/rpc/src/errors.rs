//! Mapping of node errors to JSON-RPC errors with stable codes.

use gridchain_rpc_api::error_codes::*;
use gridchain_runtime::InvalidTransaction;
use gridchain_txpool::PoolError;
use jsonrpsee::types::{ErrorObject, ErrorObjectOwned};

pub fn internal(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObject::owned(INTERNAL, message.into(), None::<()>)
}

pub fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObject::owned(INVALID_PARAMS, message.into(), None::<()>)
}

pub fn pool_error(e: PoolError) -> ErrorObjectOwned {
    let message = e.to_string();
    match e {
        PoolError::Invalid(invalid) => {
            let code = match invalid {
                InvalidTransaction::TooLarge { .. } => TOO_LARGE,
                InvalidTransaction::BadSignature => BAD_SIGNATURE,
                InvalidTransaction::Stale { .. } => STALE_NONCE,
                InvalidTransaction::Future { .. } => FUTURE_NONCE,
                InvalidTransaction::Expired { .. } => EXPIRED,
                InvalidTransaction::Payment { .. } => INSUFFICIENT_FEE,
                InvalidTransaction::ExhaustsResources | InvalidTransaction::TooHeavy { .. } => {
                    EXHAUSTS_RESOURCES
                }
            };
            ErrorObject::owned(code, message, Some(invalid))
        }
        PoolError::AlreadyImported(hash) => {
            ErrorObject::owned(ALREADY_IMPORTED, message, Some(hash))
        }
        PoolError::TooLowPriority => ErrorObject::owned(TOO_LOW_PRIORITY, message, None::<()>),
        PoolError::PoolFull => ErrorObject::owned(POOL_FULL, message, None::<()>),
        PoolError::TooManyFromSender(_) => {
            ErrorObject::owned(TOO_MANY_FROM_SENDER, message, None::<()>)
        }
    }
}
