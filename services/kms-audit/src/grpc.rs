//! The gRPC `AuditService` for the security team: filtered queries, counts, a live tail,
//! and the records, digests and keys that verification and export need.
//!
//! Authentication: `authorization: Bearer <JWT>` verified against the JWT issuers of the
//! credentials file the gateway uses. Authorization: a platform auditor (a configured
//! principal or an admin principal of the credentials file) sees every account; a holder
//! of the auditor role in an account (`arn:aws:iam::<account>:role/[path/]<role>`) sees
//! that account only; anyone else is refused. A request for another account is refused,
//! never silently narrowed, so a tool cannot mistake "refused" for "no events".

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use kms_audit_log::{EventFilter, GroupBy, QueryError, QueryEvent};
use kms_auth::{Authenticator, CredentialStore};
use kms_proto::audit_v1 as pb;
use pb::audit_service_server::{AuditService, AuditServiceServer};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::{Config, State};

/// Events a tail reads from the store per step.
const TAIL_BATCH: usize = 1000;
/// Largest count scan (index entries).
const MAX_COUNT_SCAN: u64 = 5_000_000;
const DEFAULT_PAGE: u32 = 50;

/// Who may call, and what they may see.
pub(crate) struct Access {
    auth: Option<Authenticator>,
    auditor_role: String,
    platform_auditors: Vec<String>,
}

/// The caller's view.
#[derive(Debug, Clone, PartialEq, Eq)]
enum View {
    Platform,
    Account(String),
}

impl Access {
    pub(crate) fn new(config: &Config) -> anyhow::Result<Self> {
        let auth = match &config.credentials_file {
            Some(path) => Some(Authenticator::new(CredentialStore::load(path).map_err(|e| {
                anyhow::anyhow!("loading the credentials file {}: {e}", path.display())
            })?)),
            None => {
                tracing::warn!("no credentials file: every audit gRPC call will be refused");
                None
            }
        };
        Ok(Self {
            auth,
            auditor_role: config.auditor_role.clone(),
            platform_auditors: config.platform_auditors.clone(),
        })
    }

    fn view<T>(&self, request: &Request<T>) -> Result<View, Status> {
        let Some(auth) = &self.auth else {
            return Err(Status::unauthenticated("the audit API has no credentials configured"));
        };
        let value = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
        if !value.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer ")) {
            return Err(Status::unauthenticated("authorization must be a Bearer token"));
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(value)
                .map_err(|_| Status::unauthenticated("malformed authorization"))?,
        );
        let identity = auth
            .authenticate(
                &http::Method::POST,
                &http::Uri::from_static("/"),
                &headers,
                b"",
                time::OffsetDateTime::now_utc(),
            )
            .map_err(|f| Status::unauthenticated(f.error.message()))?;
        let arn = identity.principal_arn.as_str();
        if self.platform_auditors.iter().any(|p| p == arn) || auth.is_admin(arn) {
            return Ok(View::Platform);
        }
        let role = arn
            .strip_prefix(&format!("arn:aws:iam::{}:role/", identity.account_id))
            .and_then(|path| path.rsplit('/').next());
        if role == Some(self.auditor_role.as_str()) {
            return Ok(View::Account(identity.account_id));
        }
        Err(Status::permission_denied(format!(
            "{arn} may not read audit events: it needs the {} role",
            self.auditor_role
        )))
    }
}

impl View {
    /// The account a request may see: the one asked for, if allowed.
    fn scope(&self, requested: &str) -> Result<Option<String>, Status> {
        match (self, requested) {
            (View::Platform, "") => Ok(None),
            (View::Platform, a) => Ok(Some(a.to_owned())),
            (View::Account(own), "") => Ok(Some(own.clone())),
            (View::Account(own), a) if a == own => Ok(Some(own.clone())),
            (View::Account(_), a) => {
                Err(Status::permission_denied(format!("no access to account {a}'s audit events")))
            }
        }
    }

    /// As `scope`, but one account is required.
    fn account(&self, requested: &str) -> Result<String, Status> {
        self.scope(requested)?.ok_or_else(|| Status::invalid_argument("an account is required"))
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn filter_of(view: &View, f: Option<pb::Filter>) -> Result<EventFilter, Status> {
    let f = f.unwrap_or_default();
    Ok(EventFilter {
        account: view.scope(&f.account)?,
        key: non_empty(f.key_arn),
        principal: non_empty(f.principal_arn),
        event_names: f.event_names.into_iter().filter(|n| !n.is_empty()).collect(),
        error_code: non_empty(f.error_code),
        context_key: non_empty(f.encryption_context_key),
        context_value: non_empty(f.encryption_context_value),
        source_ip: non_empty(f.source_ip),
        start: f.start_time,
        end: f.end_time,
    })
}

fn query_status(e: QueryError) -> Status {
    if e.is_client_error() {
        Status::invalid_argument(e.to_string())
    } else {
        tracing::error!(error = %e, "audit query failed");
        Status::internal("internal error")
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "audit gRPC call failed");
    Status::internal("internal error")
}

fn event(e: QueryEvent) -> pb::Event {
    pb::Event {
        seq: e.seq,
        event_time: e.event_time,
        event_id: e.event_id,
        event_name: e.event_name,
        account: e.account,
        event_json: String::from_utf8_lossy(&e.event).into_owned(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

struct Service {
    state: Arc<State>,
    access: Arc<Access>,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;
type RecordStream = Pin<Box<dyn Stream<Item = Result<pb::Record, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for Service {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let view = self.access.view(&request)?;
        let r = request.into_inner();
        let filter = filter_of(&view, r.filter)?;
        let size = if r.page_size == 0 { DEFAULT_PAGE } else { r.page_size } as usize;
        let token = non_empty(r.page_token);
        let store = self.state.store.clone();
        let page =
            blocking(move || store.query(&filter, size, token.as_deref()).map_err(query_status))
                .await?;
        Ok(Response::new(pb::QueryResponse {
            events: page.events.into_iter().map(event).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
            scanned: page.scanned,
        }))
    }

    async fn counts(
        &self,
        request: Request<pb::CountsRequest>,
    ) -> Result<Response<pb::CountsResponse>, Status> {
        let view = self.access.view(&request)?;
        let r = request.into_inner();
        let group_by = match pb::GroupBy::try_from(r.group_by) {
            Ok(pb::GroupBy::Key) => GroupBy::Key,
            Ok(pb::GroupBy::Principal) => GroupBy::Principal,
            Ok(pb::GroupBy::EventName) => GroupBy::EventName,
            _ => {
                return Err(Status::invalid_argument(
                    "group_by must be KEY, PRINCIPAL or EVENT_NAME",
                ))
            }
        };
        let filter = filter_of(&view, r.filter)?;
        let bucket = if r.bucket_seconds == 0 { 3600 } else { r.bucket_seconds };
        let store = self.state.store.clone();
        let counts = blocking(move || {
            store.counts(&filter, group_by, bucket, MAX_COUNT_SCAN).map_err(query_status)
        })
        .await?;
        Ok(Response::new(pb::CountsResponse {
            truncated: counts.scanned >= MAX_COUNT_SCAN,
            total: counts.total,
            buckets: counts
                .buckets
                .into_iter()
                .map(|((bucket_start, group), count)| pb::CountBucket {
                    bucket_start,
                    group,
                    count,
                })
                .collect(),
        }))
    }

    type TailStream = EventStream;

    async fn tail(
        &self,
        request: Request<pb::TailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let view = self.access.view(&request)?;
        let r = request.into_inner();
        let filter = filter_of(&view, r.filter)?;
        let state = self.state.clone();
        let start = if r.after_seq == 0 { state.store.len() } else { r.after_seq };
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut stored = state.stored.clone();
            let mut stopping = state.stopping.clone();
            let mut after = start;
            loop {
                let (store, f) = (state.store.clone(), filter.clone());
                let step = tokio::task::spawn_blocking(move || f_tail(&store, &f, after)).await;
                let (events, last) = match step {
                    Ok(Ok(step)) => step,
                    Ok(Err(status)) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(internal(e))).await;
                        return;
                    }
                };
                let caught_up = last == after;
                after = last;
                for e in events {
                    if tx.send(Ok(event(e))).await.is_err() {
                        return;
                    }
                }
                if caught_up {
                    tokio::select! {
                        changed = stored.changed() => if changed.is_err() { return },
                        _ = stopping.wait_for(|s| *s) => return,
                        () = tx.closed() => return,
                    }
                }
            }
        });
        let stream: EventStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }

    async fn get_public_keys(
        &self,
        request: Request<pb::GetPublicKeysRequest>,
    ) -> Result<Response<pb::GetPublicKeysResponse>, Status> {
        self.access.view(&request)?;
        let current = self.state.signer.public_key().fingerprint.clone();
        let keys = self.state.store.digest_public_keys().map_err(internal)?;
        Ok(Response::new(pb::GetPublicKeysResponse {
            keys: keys
                .into_iter()
                .map(|k| pb::PublicKey {
                    current: k.fingerprint == current,
                    fingerprint: k.fingerprint,
                    pem: k.pem,
                })
                .collect(),
        }))
    }

    type ListRecordsStream = RecordStream;

    async fn list_records(
        &self,
        request: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<Self::ListRecordsStream>, Status> {
        let view = self.access.view(&request)?;
        let r = request.into_inner();
        let account = view.account(&r.account)?;
        let window = match (r.start_time, r.end_time) {
            (None, None) => None,
            (s, e) => Some((s.unwrap_or(i64::MIN), e.unwrap_or(i64::MAX))),
        };
        let store = self.state.store.clone();
        let records =
            blocking(move || store.account_records(&account, window).map_err(internal)).await?;
        let items = records.into_iter().map(|r| Ok(pb::Record { seq: r.seq, event: r.event }));
        let stream: RecordStream = Box::pin(tokio_stream::iter(items.collect::<Vec<_>>()));
        Ok(Response::new(stream))
    }

    async fn list_digests(
        &self,
        request: Request<pb::ListDigestsRequest>,
    ) -> Result<Response<pb::ListDigestsResponse>, Status> {
        let view = self.access.view(&request)?;
        let account = view.account(&request.into_inner().account)?;
        let digests = self.state.store.digests(&account).map_err(internal)?;
        Ok(Response::new(pb::ListDigestsResponse {
            digests: digests
                .into_iter()
                .map(|d| pb::SignedDigest { body: d.body, signature: d.signature })
                .collect(),
        }))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let accounts = match self.access.view(&request)? {
            View::Platform => self.state.store.accounts().map_err(internal)?,
            View::Account(own) => vec![own],
        };
        Ok(Response::new(pb::ListAccountsResponse { accounts }))
    }

    async fn write_digests(
        &self,
        request: Request<pb::WriteDigestsRequest>,
    ) -> Result<Response<pb::WriteDigestsResponse>, Status> {
        if self.access.view(&request)? != View::Platform {
            return Err(Status::permission_denied("only platform auditors may write digests"));
        }
        let written = crate::write_digests(&self.state)
            .await
            .map_err(|_| Status::internal("internal error"))?;
        Ok(Response::new(pb::WriteDigestsResponse {
            written: written
                .digests
                .into_iter()
                .map(|d| format!("{}:{}:{}", d.account, d.sequence, d.records))
                .collect(),
        }))
    }
}

fn f_tail(
    store: &kms_audit_log::AuditStore,
    filter: &EventFilter,
    after: u64,
) -> Result<(Vec<QueryEvent>, u64), Status> {
    store.tail_after(filter, after, TAIL_BATCH).map_err(internal)
}

/// Serves the API on `listener` until `stop` turns true.
pub(crate) async fn serve(
    state: Arc<State>,
    access: Access,
    listener: tokio::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let service = Service { state, access: Arc::new(access) };
    tonic::transport::Server::builder()
        .add_service(AuditServiceServer::new(service))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("audit gRPC server: {e}"))
}
