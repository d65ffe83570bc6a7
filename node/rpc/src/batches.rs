//! JSON-RPC batches, run concurrently.
//!
//! jsonrpsee answers the calls of a batch one after the other. A submission waits for its turn
//! on the submission thread (`submit.rs`), so a batch of 50 submissions would take 50 turns;
//! run together they share one turn, and their signatures one batch check. Responses keep the
//! order of the calls, as the JSON-RPC spec asks.
//!
//! Bounds, since a batch is one request from one client: the server refuses batches of more than
//! [`MAX_BATCH_LEN`] calls (jsonrpsee's `BatchRequestConfig`); at most
//! [`BATCH_CONCURRENCY`] calls of a batch run at once; and responses are added to the batch
//! response as they complete, in order, so a batch whose response outgrows the limit is
//! answered with the too-large error as soon as it does, instead of after every call ran and
//! every response was held in memory.

use futures::StreamExt;
use jsonrpsee::{
    core::middleware::{Batch, BatchEntry, Notification, RpcServiceT},
    server::{BatchResponseBuilder, MethodResponse},
    types::Request,
};
use std::future::Future;

/// Most calls in one batch.
pub const MAX_BATCH_LEN: u32 = 1_024;
/// Most calls of one batch running at once.
pub const BATCH_CONCURRENCY: usize = 64;

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
            // Boxed so the stream's item type is one concrete future (a closure returning
            // `async` blocks trips the compiler's higher-ranked lifetime inference here).
            let mut calls: Vec<
                std::pin::Pin<Box<dyn Future<Output = Option<MethodResponse>> + Send + 'a>>,
            > = Vec::new();
            for entry in batch.into_iter() {
                let service = service.clone();
                calls.push(Box::pin(async move {
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
                }));
            }
            let mut responses = futures::stream::iter(calls).buffered(BATCH_CONCURRENCY);
            let mut got_notification = false;
            let mut builder = BatchResponseBuilder::new_with_limit(limit);
            while let Some(response) = responses.next().await {
                let Some(response) = response else {
                    got_notification = true;
                    continue;
                };
                // Dropping the stream cancels the calls not yet answered.
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
