//! The answering side of the bus: a service subscribes to `kms.v1.<service>.>` in queue
//! group `kms-<service>`, decodes each request, runs its handler and replies. On shutdown
//! it stops taking requests and drains the ones in flight within a grace period.
//! Each request is a server span continuing the caller's W3C `traceparent`, and is
//! counted and timed by operation and AWS error code (`kms_bus_server_*`, see
//! `kms_telemetry::metrics`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use kms_core::{ErrorCode, KmsError, KmsResult};
use kms_proto::v1::{reply, Reply, ServiceError};
use prost::Message;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::client::{HEADER_DEADLINE, HEADER_REQUEST_ID, HEADER_TRACEPARENT};
use crate::codes::{error_from_wire, error_to_wire};
use crate::{Bus, Operation};

type BoxFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;
type Handler<S> = Box<dyn Fn(Arc<S>, Bytes) -> BoxFuture + Send + Sync>;

/// Maps operation names to handlers over a shared service state `S`.
pub struct Router<S> {
    service: &'static str,
    routes: HashMap<&'static str, Handler<S>>,
}

impl<S: Send + Sync + 'static> Router<S> {
    pub fn new(service: &'static str) -> Self {
        Self { service, routes: HashMap::new() }
    }

    /// Registers the handler of operation `O`.
    pub fn route<O, F, Fut>(mut self, handler: F) -> Self
    where
        O: Operation,
        F: Fn(Arc<S>, O::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = KmsResult<O::Response>> + Send + 'static,
    {
        debug_assert_eq!(O::SERVICE, self.service);
        let handler = Arc::new(handler);
        self.routes.insert(
            O::NAME,
            Box::new(move |state, payload| {
                let handler = handler.clone();
                Box::pin(async move {
                    let result = match O::Request::decode(payload) {
                        Ok(request) => handler(state, request).await,
                        Err(_) => Err(KmsError::validation("The request could not be decoded")),
                    };
                    to_reply(result.map(|r| r.encode_to_vec()))
                })
            }),
        );
        self
    }

    /// `operation` when this router serves it, `unknown` otherwise: a metric label from
    /// the routes' own names, which no caller can add to.
    fn operation_label(&self, operation: &str) -> &'static str {
        self.routes.get_key_value(operation).map_or("unknown", |(name, _)| *name)
    }

    fn dispatch(&self, state: Arc<S>, operation: &str, payload: Bytes) -> BoxFuture {
        match self.routes.get(operation) {
            Some(handler) => handler(state, payload),
            None => {
                tracing::warn!(
                    service = self.service,
                    operation,
                    "request for an unknown operation"
                );
                Box::pin(std::future::ready(to_reply(Err(KmsError::internal()))))
            }
        }
    }
}

fn to_reply(result: KmsResult<Vec<u8>>) -> Reply {
    let result = match result {
        Ok(bytes) => reply::Result::Ok(bytes),
        // A service logs the cause of an internal error where it happens.
        Err(err) => reply::Result::Error(error_to_wire(&err)),
    };
    Reply { result: Some(result) }
}

/// The AWS error code of a reply that is an error (a missing result counts as internal).
fn reply_error_code(reply: &Reply) -> Option<&'static str> {
    match &reply.result {
        Some(reply::Result::Ok(_)) => None,
        Some(reply::Result::Error(err)) => {
            let code = ServiceError { code: err.code, message: String::new() };
            Some(error_from_wire(code).code.aws_name())
        }
        None => Some(ErrorCode::Internal.aws_name()),
    }
}

/// Serves `router` until `shutdown` resolves, then drains in-flight requests for at
/// most `grace`.
pub async fn serve<S: Send + Sync + 'static>(
    bus: &Bus,
    state: Arc<S>,
    router: Router<S>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let service = router.service;
    let prefix = format!("kms.v1.{service}.");
    let mut subscription = bus
        .client()
        .queue_subscribe(format!("{prefix}>"), format!("kms-{service}"))
        .await
        .map_err(|e| anyhow::anyhow!("subscribing {service}: {e}"))?;
    bus.client().flush().await.map_err(|e| anyhow::anyhow!("flushing subscription: {e}"))?;
    tracing::info!(service, "serving on the bus");
    let router = Arc::new(router);
    let mut in_flight = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            message = subscription.next() => {
                let Some(message) = message else { break };
                let Some(reply_to) = message.reply.clone() else { continue };
                let operation = message.subject.as_str().strip_prefix(&prefix).unwrap_or("").to_owned();
                let prefix = prefix.clone();
                if deadline_passed(message.headers.as_ref()) {
                    tracing::debug!(service, operation, "dropping request past its deadline");
                    continue;
                }
                let header = |name: &str| {
                    message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned()).unwrap_or_default()
                };
                let request_id = header(HEADER_REQUEST_ID);
                let traceparent = header(HEADER_TRACEPARENT);
                let router = router.clone();
                let state = state.clone();
                let client = bus.client().clone();
                in_flight.spawn(async move {
                    let label = router.operation_label(&operation);
                    let span = tracing::info_span!(
                        "bus request",
                        otel.name = %format!("{prefix}{label}"),
                        otel.kind = "server",
                        service,
                        operation = label,
                        request_id,
                        trace_id = kms_telemetry::trace::trace_id(&traceparent).unwrap_or_default(),
                    );
                    kms_telemetry::trace::continue_trace(&span, &traceparent);
                    let metrics = kms_telemetry::metrics::global();
                    let _in_flight = metrics.map(|m| m.bus_in_flight(service));
                    let start = Instant::now();
                    let reply = router.dispatch(state, &operation, message.payload).instrument(span).await;
                    if let Some(metrics) = metrics {
                        metrics.bus_served(service, label, reply_error_code(&reply), start.elapsed());
                    }
                    if let Err(e) = client.publish(reply_to, reply.encode_to_vec().into()).await {
                        tracing::warn!(error = %e, "could not send reply");
                    }
                });
            }
        }
    }
    let _ = subscription.unsubscribe().await;
    let drained =
        tokio::time::timeout(grace, async { while in_flight.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(service, "grace period over with requests still in flight");
    }
    let _ = bus.client().flush().await;
    tracing::info!(service, "stopped");
    Ok(())
}

fn deadline_passed(headers: Option<&async_nats::HeaderMap>) -> bool {
    let Some(deadline) =
        headers.and_then(|h| h.get(HEADER_DEADLINE)).and_then(|v| v.as_str().parse::<u128>().ok())
    else {
        return false;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    now > deadline
}

/// Resolves on SIGTERM or Ctrl-C: the signal a binary passes to `run` as its shutdown.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
}
