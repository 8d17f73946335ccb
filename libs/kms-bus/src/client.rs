//! The calling side of the bus: one shared NATS connection, typed calls with deadlines.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::client::RequestErrorKind;
use async_nats::HeaderMap;
use kms_core::{ErrorCode, KmsError, KmsResult};
use kms_proto::v1::{reply, Reply};
use prost::Message;

use crate::codes::error_from_wire;
use crate::Operation;

pub(crate) const HEADER_REQUEST_ID: &str = "Kms-Request-Id";
pub(crate) const HEADER_DEADLINE: &str = "Kms-Deadline-Ms";
pub(crate) const HEADER_TRACEPARENT: &str = "traceparent";

/// What travels with every call besides the payload.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub request_id: String,
}

impl CallContext {
    /// A W3C `traceparent` for this call: the trace id is the request id (a UUID) without
    /// hyphens, so one client request is one trace across every service it reaches.
    fn traceparent(&self) -> Option<String> {
        let trace: String = self.request_id.chars().filter(char::is_ascii_hexdigit).collect();
        if trace.len() != 32 {
            return None;
        }
        let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
        Some(format!("00-{trace}-{span}-01"))
    }
}

/// One process's connection to the bus. Cheap to clone; every clone shares the same
/// NATS connection.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    timeout: Duration,
}

impl Bus {
    /// Connects to NATS. Retries the initial connection briefly so services may start
    /// before the server does.
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(timeout))
            .connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to nats at {url}: {e}"))?;
        Ok(Self { client, timeout })
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client.clone())
    }

    /// Calls operation `O`. Failures to reach a service in time become the retriable
    /// `DependencyTimeoutException`; errors the service answers with come back as sent.
    pub async fn call<O: Operation>(
        &self,
        ctx: &CallContext,
        request: &O::Request,
    ) -> KmsResult<O::Response> {
        let deadline = SystemTime::now() + self.timeout;
        let deadline_ms = deadline.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_REQUEST_ID, ctx.request_id.as_str());
        headers.insert(HEADER_DEADLINE, deadline_ms.to_string().as_str());
        if let Some(traceparent) = ctx.traceparent() {
            headers.insert(HEADER_TRACEPARENT, traceparent.as_str());
        }
        let nats_request = async_nats::Request::new()
            .payload(request.encode_to_vec().into())
            .headers(headers)
            .timeout(Some(self.timeout));
        let message = self.client.send_request(O::subject(), nats_request).await.map_err(|e| {
            let why = match e.kind() {
                RequestErrorKind::NoResponders => "is not available",
                RequestErrorKind::TimedOut => "did not answer in time",
                _ => "could not be reached",
            };
            tracing::warn!(service = O::SERVICE, operation = O::NAME, error = %e, "bus call failed");
            KmsError::new(
                ErrorCode::DependencyTimeout,
                format!("The {} service {why}. Retry the request.", O::SERVICE),
            )
        })?;
        let reply = Reply::decode(message.payload).map_err(|_| KmsError::internal())?;
        match reply.result {
            Some(reply::Result::Ok(bytes)) => {
                O::Response::decode(bytes.as_slice()).map_err(|_| KmsError::internal())
            }
            Some(reply::Result::Error(err)) => Err(error_from_wire(err)),
            None => Err(KmsError::internal()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_carries_the_request_id() {
        let ctx = CallContext { request_id: "0af76519-16cd-43dd-8448-eb211c80319c".into() };
        let tp = ctx.traceparent().unwrap();
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert_eq!(CallContext { request_id: "short".into() }.traceparent(), None);
    }
}
