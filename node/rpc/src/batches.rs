//! JSON-RPC batches, run concurrently.
//!
//! jsonrpsee answers the calls of a batch one after the other. A submission waits for its turn
//! on the submission thread (`submit.rs`), so a batch of 50 submissions would take 50 turns;
//! run together they share one turn, and their signatures one batch check. Responses keep the
//! order of the calls, as the JSON-RPC spec asks.

use jsonrpsee::{
    core::middleware::{Batch, BatchEntry, Notification, RpcServiceT},
    server::{BatchResponseBuilder, MethodResponse},
    types::Request,
};
use std::future::Future;

/// The middleware: wraps the server's RPC service `S`.
#[derive(Clone)]
pub(crate) struct ConcurrentBatches<S> {
    pub(crate) service: S,
    /// The server's response size limit, which a whole batch response must respect too.
    pub(crate) max_response_bytes: usize,
}

impl<S> RpcServiceT for ConcurrentBatches<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            NotificationResponse = MethodResponse,
            BatchResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.service.call(request)
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.service.notification(notification)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let service = self.service.clone();
        let limit = self.max_response_bytes;
        async move {
            // `None` for a notification, which gets no response.
            let responses = futures::future::join_all(batch.into_iter().map(|entry| {
                let service = service.clone();
                async move {
                    match entry {
                        Ok(BatchEntry::Call(request)) => Some(service.call(request).await),
                        Ok(BatchEntry::Notification(notification)) => {
                            service.notification(notification).await;
                            None
                        }
                        Err(invalid) => {
                            let (error, id) = invalid.into_parts();
                            Some(MethodResponse::error(id, error))
                        }
                    }
                }
            }))
            .await;
            let got_notification = responses.iter().any(Option::is_none);
            let mut builder = BatchResponseBuilder::new_with_limit(limit);
            for response in responses.into_iter().flatten() {
                if let Err(too_big) = builder.append(response) {
                    return too_big;
                }
            }
            if builder.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(builder.finish())
            }
        }
    }
}
