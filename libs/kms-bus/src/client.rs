//! The calling side of the bus: one shared NATS connection, typed calls with deadlines.
//! Each call is a client span whose W3C `traceparent` travels in the headers, and is
//! counted and timed (`kms_bus_client_*`, see `kms_telemetry::metrics`).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::client::RequestErrorKind;
use async_nats::HeaderMap;
use kms_core::{ErrorCode, KmsError, KmsResult};
use kms_proto::v1::{reply, Reply};
use prost::Message;
use tracing::Instrument;

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

/// How a process proves who it is to NATS, and how it protects the connection. At most
/// one of user/password, nkey seed and credentials file; TLS is independent of them.
#[derive(Clone, Default)]
pub struct NatsAuth {
    /// Connection name the server shows in its monitoring (`connz`).
    pub name: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// An nkey seed (`SU...`); the server knows the matching public key.
    pub nkey_seed: Option<String>,
    /// A `.creds` file (user JWT and nkey seed) for operator/JWT-based servers.
    pub creds_file: Option<PathBuf>,
    /// CA bundle that signs the server's certificate; setting it requires TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate and key, for servers that verify clients (mutual TLS).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Prefix of this connection's reply subjects (default `_INBOX`). Give each service
    /// its own (`_INBOX.kms-gateway`) so subject permissions can keep one service from
    /// reading another's replies.
    pub inbox_prefix: Option<String>,
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsAuth")
            .field("name", &self.name)
            .field("user", &self.user)
            .field("password", &redacted(&self.password))
            .field("nkey_seed", &redacted(&self.nkey_seed))
            .field("creds_file", &self.creds_file)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

impl NatsAuth {
    /// The connect options these settings make, or why they are inconsistent. The
    /// connection's events are logged: a server that refuses the credentials or the
    /// certificate says so in the service's log while the client keeps retrying.
    pub async fn connect_options(&self) -> anyhow::Result<async_nats::ConnectOptions> {
        let methods = [self.user.is_some(), self.nkey_seed.is_some(), self.creds_file.is_some()];
        if methods.iter().filter(|m| **m).count() > 1 {
            anyhow::bail!(
                "nats: give at most one of user/password, nkey seed and credentials file"
            );
        }
        if self.password.is_some() && self.user.is_none() {
            anyhow::bail!("nats: a password needs a user");
        }
        let mut options = async_nats::ConnectOptions::new().event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("nats connected"),
                async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                async_nats::Event::ServerError(e) => {
                    tracing::warn!(error = %e, "nats server error")
                }
                async_nats::Event::ClientError(e) => {
                    tracing::warn!(error = %e, "nats client error")
                }
                other => tracing::debug!(event = %other, "nats event"),
            }
        });
        if let Some(name) = &self.name {
            options = options.name(name);
        }
        if let Some(user) = &self.user {
            options =
                options.user_and_password(user.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(seed) = &self.nkey_seed {
            options = options.nkey(seed.trim().to_owned());
        }
        if let Some(path) = &self.creds_file {
            options = options.credentials_file(path).await.map_err(|e| {
                anyhow::anyhow!("nats: reading credentials file {}: {e}", path.display())
            })?;
        }
        if let Some(ca) = &self.tls_ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => {
                options =
                    options.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
            }
            (None, None) => {}
            _ => {
                anyhow::bail!("nats: a client certificate needs both its certificate and key file")
            }
        }
        if let Some(prefix) = &self.inbox_prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        Ok(options)
    }
}

impl Bus {
    /// Connects to NATS without credentials. Retries the initial connection briefly so
    /// services may start before the server does.
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        Self::connect_with(url, timeout, &NatsAuth::default()).await
    }

    /// Connects to NATS as the user `auth` names, over TLS when it gives a CA or a client
    /// certificate. `url` may list several servers of a cluster, comma-separated.
    pub async fn connect_with(
        url: &str,
        timeout: Duration,
        auth: &NatsAuth,
    ) -> anyhow::Result<Self> {
        let servers = url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect::<Vec<_>>();
        let client = auth
            .connect_options()
            .await?
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(timeout))
            .connect(servers)
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
        let span = tracing::info_span!(
            "bus call",
            otel.name = %O::subject(),
            otel.kind = "client",
            service = O::SERVICE,
            operation = O::NAME,
            request_id = %ctx.request_id,
        );
        let traceparent = kms_telemetry::trace::outgoing(&span, ctx.traceparent());
        let start = Instant::now();
        let result = self.exchange::<O>(ctx, request, traceparent).instrument(span).await;
        if let Some(metrics) = kms_telemetry::metrics::global() {
            let code = result.as_ref().err().map(|e| e.code.aws_name());
            metrics.bus_called(O::SERVICE, O::NAME, code, start.elapsed());
        }
        result
    }

    /// One request and its reply, `traceparent` in the headers.
    async fn exchange<O: Operation>(
        &self,
        ctx: &CallContext,
        request: &O::Request,
        traceparent: Option<String>,
    ) -> KmsResult<O::Response> {
        let deadline = SystemTime::now() + self.timeout;
        let deadline_ms = deadline.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_REQUEST_ID, ctx.request_id.as_str());
        headers.insert(HEADER_DEADLINE, deadline_ms.to_string().as_str());
        if let Some(traceparent) = traceparent {
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
