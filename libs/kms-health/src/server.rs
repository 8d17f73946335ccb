//! The probe server: `/healthz` (liveness: the process serves HTTP), `/readyz`
//! (readiness: every check passes: NATS connected, the service answering on the bus, the
//! audit stream reachable, as the binary chose) and `/metrics` (the process's Prometheus
//! metrics, `kms_telemetry::metrics`). A process that is shutting down reports
//! itself not ready, so no new work is routed to it while it drains.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use kms_bus::{Bus, CallContext, Operation};
use kms_core::ErrorCode;
use kms_proto::v1 as wire;
use tracing::Instrument;

/// How long one readiness check may take before it counts as failed; below the probes'
/// `timeoutSeconds`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Who the probes' bus calls say they are: an account no tenant has.
fn probe_caller() -> wire::CallerContext {
    wire::CallerContext {
        account: "000000000000".to_owned(),
        region: "us-east-1".to_owned(),
        principal: "arn:aws:iam::000000000000:role/kms-readiness-probe".to_owned(),
        request_id: "readyz".to_owned(),
    }
}

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// Where the probe server listens; no address, no server (as under `make run`).
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// Address of the `/healthz`, `/readyz` and `/metrics` server (e.g. `0.0.0.0:8081`).
    #[arg(long = "health-listen", env = "KMS_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
}

/// The readiness checks of one process, and whether it is shutting down.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
    draining: Arc<AtomicBool>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named check.
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name, Arc::new(move || Box::pin(check()) as CheckFuture)));
        self
    }

    /// Ready while the NATS connection is up.
    pub fn nats(self, bus: &Bus) -> Self {
        let client = bus.client().clone();
        self.check("nats", move || {
            let state = client.connection_state();
            async move {
                match state {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("nats connection is {other}")),
                }
            }
        })
    }

    /// Ready while a call of `O` gets an answer: any reply but an internal error or a
    /// timeout. A service subscribes only after its store is open, so an answer means
    /// both. In a queue group another replica may answer; the sled-backed services run
    /// one replica each.
    pub fn answers<O>(self, name: &'static str, bus: &Bus, request: O::Request) -> Self
    where
        O: Operation,
        O::Request: Clone + Sync,
    {
        let bus = bus.clone();
        self.check(name, move || {
            let bus = bus.clone();
            let request = request.clone();
            // Probes run every few seconds: their calls make no traces.
            let span = kms_telemetry::trace::unsampled("readiness probe");
            async move {
                let ctx = CallContext { request_id: format!("readyz-{}", O::NAME) };
                match bus.call::<O>(&ctx, &request).instrument(span).await {
                    Ok(_) => Ok(()),
                    Err(e)
                        if matches!(e.code, ErrorCode::Internal | ErrorCode::DependencyTimeout) =>
                    {
                        Err(format!("{} {}: {}", O::SERVICE, O::NAME, e.message))
                    }
                    Err(_) => Ok(()),
                }
            }
        })
    }

    /// Ready while the crypto service answers (a one-byte GenerateRandom).
    pub fn crypto_answers(self, bus: &Bus) -> Self {
        let request =
            wire::GenerateRandomRequest { caller: Some(probe_caller()), number_of_bytes: 1 };
        self.answers::<kms_bus::crypto::GenerateRandom>("crypto", bus, request)
    }

    /// Ready while the metadata service answers a read of its store (ListKeys).
    pub fn metadata_answers(self, bus: &Bus) -> Self {
        let request =
            wire::ListKeysRequest { caller: Some(probe_caller()), limit: 1, marker: String::new() };
        self.answers::<kms_bus::metadata::ListKeys>("metadata", bus, request)
    }

    /// Ready while the policy service answers a read of its store (ListPolicies).
    pub fn policy_answers(self, bus: &Bus) -> Self {
        let request = wire::ListPoliciesRequest {
            caller: Some(probe_caller()),
            key_id: "00000000-0000-0000-0000-000000000000".to_owned(),
        };
        self.answers::<kms_bus::policy::ListPolicies>("policy", bus, request)
    }

    /// Ready while the audit service answers a query of its store (LookupEvents).
    pub fn audit_answers(self, bus: &Bus) -> Self {
        let request = wire::LookupEventsRequest {
            caller: Some(probe_caller()),
            max_results: 1,
            ..Default::default()
        };
        self.answers::<kms_bus::audit::LookupEvents>("audit", bus, request)
    }

    /// Ready while the `KMS_AUDIT` stream answers (it has a leader in a cluster).
    pub fn audit_stream(self, bus: &Bus) -> Self {
        let js = bus.jetstream();
        self.check("audit-stream", move || {
            let js = js.clone();
            async move {
                js.get_stream(kms_bus::AUDIT_STREAM)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("audit stream: {e}"))
            }
        })
    }

    /// Runs every check; the body names each check's outcome.
    async fn evaluate(&self) -> (bool, serde_json::Value) {
        let mut ready = !self.draining.load(Ordering::Relaxed);
        let mut outcomes = serde_json::Map::new();
        if !ready {
            outcomes.insert("shutdown".into(), "draining".into());
        }
        for (name, check) in &self.checks {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(why)) => why,
                Err(_) => "timed out".to_owned(),
            };
            ready &= outcome == "ok";
            outcomes.insert((*name).into(), outcome.into());
        }
        let status = if ready { "ready" } else { "not ready" };
        (ready, serde_json::json!({ "status": status, "checks": outcomes }))
    }

    /// Resolves with `shutdown`, marking the process not ready first, so the binary can
    /// hand the result to its service's `run`.
    pub fn on_shutdown(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let draining = self.draining.clone();
        async move {
            shutdown.await;
            draining.store(true, Ordering::Relaxed);
        }
    }

    /// Binds `args`' address, if any, and serves the probes there in the background for
    /// the life of the process. Fails only when the address cannot be bound.
    pub async fn spawn(&self, args: &HealthArgs) -> anyhow::Result<Option<SocketAddr>> {
        let Some(address) = args.health_listen else { return Ok(None) };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("binding the health address {address}: {e}"))?;
        let local = listener.local_addr()?;
        let router = axum::Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "health server stopped");
            }
        });
        tracing::info!(address = %local, "health probes listening");
        Ok(Some(local))
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, kms_telemetry::metrics::CONTENT_TYPE)],
        kms_telemetry::metrics::render(),
    )
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let (ready, body) = readiness.evaluate().await;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(address: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (status, body)
    }

    fn local() -> HealthArgs {
        HealthArgs { health_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))) }
    }

    #[tokio::test]
    async fn no_address_no_server() {
        let spawned = Readiness::new().spawn(&HealthArgs { health_listen: None }).await.unwrap();
        assert_eq!(spawned, None);
    }

    #[tokio::test]
    async fn ready_follows_the_checks_and_shutdown() {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        let readiness = Readiness::new().check("store", move || {
            let ok = seen.load(Ordering::Relaxed);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err("store closed".to_owned())
                }
            }
        });
        let address = readiness.spawn(&local()).await.unwrap().unwrap();
        assert_eq!(get(address, "/healthz").await, (200, "ok".to_owned()));
        let (status, body) = get(address, "/readyz").await;
        assert_eq!(status, 503);
        assert!(body.contains("store closed"), "{body}");

        flag.store(true, Ordering::Relaxed);
        let (status, body) = get(address, "/readyz").await;
        assert_eq!((status, body.as_str()), (200, r#"{"checks":{"store":"ok"},"status":"ready"}"#));

        readiness.on_shutdown(async {}).await;
        let (status, body) = get(address, "/readyz").await;
        assert_eq!(status, 503);
        assert!(body.contains("draining"), "{body}");
        assert_eq!(get(address, "/healthz").await.0, 200, "liveness ignores readiness");
    }

    #[tokio::test]
    async fn nats_and_bus_checks_against_a_real_server() {
        let nats = kms_testkit::NatsServer::start().await.unwrap();
        let bus = Bus::connect(&nats.url(), Duration::from_millis(500)).await.unwrap();
        bus.client().flush().await.unwrap();
        let readiness = Readiness::new().nats(&bus).crypto_answers(&bus).audit_stream(&bus);
        let (ready, body) = readiness.evaluate().await;
        assert!(!ready);
        assert_eq!(body["checks"]["nats"], "ok");
        assert_ne!(body["checks"]["crypto"], "ok", "nobody answers on the bus yet");
        assert_ne!(body["checks"]["audit-stream"], "ok", "no stream yet");

        kms_bus::ensure_audit_stream(&bus.jetstream(), &kms_bus::AuditStreamConfig::default())
            .await
            .unwrap();
        let (_, body) = readiness.evaluate().await;
        assert_eq!(body["checks"]["audit-stream"], "ok");
    }
}
