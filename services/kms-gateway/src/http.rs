//! The HTTP edge: reads the request, authenticates it, routes it by `X-Amz-Target`,
//! records it in the audit log and renders the answer or the AWS error shape. STS's
//! form-encoded, unsigned `AssumeRoleWithWebIdentity` goes to `sts` instead.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kms_audit_log::{EVENT_SOURCE_CLOUDTRAIL, EVENT_SOURCE_KMS};
use kms_auth::Identity;
use kms_core::{ErrorCode, KmsError, Region};
use kms_proto::v1 as wire;
use serde_json::Value;

use crate::audit::{self, CallRecord};
use crate::ops::{self, Call};
use crate::params::Params;
use crate::App;

const JSON_1_1: &str = "application/x-amz-json-1.1";
const MAX_BODY_BYTES: usize = 1024 * 1024;
const KMS_PREFIX: &str = "TrentService.";
/// The identity-policy admin API (see `ops::admin`).
const ADMIN_PREFIX: &str = "KmsAdmin_20261101.";
/// botocore (the aws CLI) sends the long CloudTrail target prefix, the Rust SDK the short.
const CLOUDTRAIL_PREFIXES: [&str; 2] =
    ["com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.", "CloudTrail_20131101."];

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new().route("/", post(handle)).route("/healthz", get(|| async { "ok" })).with_state(app)
}

/// Which API a request is for, from its `X-Amz-Target`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Kms(String),
    CloudTrail(String),
    Admin(String),
}

impl Target {
    fn parse(headers: &HeaderMap) -> Option<Self> {
        let target = headers.get("x-amz-target")?.to_str().ok()?;
        if let Some(op) = target.strip_prefix(KMS_PREFIX) {
            return Some(Self::Kms(op.to_owned()));
        }
        if let Some(op) = target.strip_prefix(ADMIN_PREFIX) {
            return Some(Self::Admin(op.to_owned()));
        }
        CLOUDTRAIL_PREFIXES
            .iter()
            .find_map(|prefix| target.strip_prefix(prefix))
            .map(|op| Self::CloudTrail(op.to_owned()))
    }

    fn name(&self) -> &str {
        match self {
            Self::Kms(op) | Self::CloudTrail(op) | Self::Admin(op) => op,
        }
    }

    fn signing_service(&self) -> &'static str {
        match self {
            Self::Kms(_) | Self::Admin(_) => "kms",
            Self::CloudTrail(_) => "cloudtrail",
        }
    }

    fn event_source(&self) -> &'static str {
        match self {
            Self::Kms(_) | Self::Admin(_) => EVENT_SOURCE_KMS,
            Self::CloudTrail(_) => EVENT_SOURCE_CLOUDTRAIL,
        }
    }
}

/// An error as AWS SDKs parse it: `{"__type": ..., "message": ...}`.
fn error_response(request_id: &str, status: u16, aws_code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "__type": aws_code, "message": message }).to_string();
    let mut response =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), body).into_response();
    decorate(&mut response, request_id);
    if let Ok(v) = HeaderValue::from_str(aws_code) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

fn decorate(response: &mut Response, request_id: &str) {
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(JSON_1_1));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
}

fn kms_error_response(request_id: &str, err: &KmsError) -> Response {
    error_response(request_id, err.code.http_status(), err.code.aws_name(), &err.message)
}

async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<crate::tls::Peer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let err = KmsError::validation("The request body is too large");
            return kms_error_response(&request_id, &err);
        }
    };
    if crate::sts::is_sts_request(&headers) {
        return crate::sts::handle(&app, &headers, &peer, &request_id, &body).await;
    }
    let target = Target::parse(&headers);
    let identity = match app.auth.authenticate(
        &method,
        &uri,
        &headers,
        &body,
        time::OffsetDateTime::now_utc(),
    ) {
        Ok(identity) => identity,
        Err(failure) => {
            let e = &failure.error;
            tracing::info!(code = e.aws_code(), "authentication failed");
            let response = error_response(&request_id, e.http_status(), e.aws_code(), &e.message());
            if let Some(identity) = failure.identity.as_deref() {
                // Who it claims to be is known: the attempt goes on record.
                let err = KmsError::new(ErrorCode::AccessDenied, e.message());
                let record =
                    Recorder::new(&app, identity, &headers, &peer, &request_id, target.as_ref());
                let event = record.record(None, None, Vec::new(), Some(&err), Some(e.aws_code()));
                if let Err(audit_err) = audit::publish(&app.bus, event).await {
                    return kms_error_response(&request_id, &audit_err);
                }
            }
            return response;
        }
    };
    let recorder = Recorder::new(&app, &identity, &headers, &peer, &request_id, target.as_ref());
    let outcome = serve_call(&app, &identity, &recorder, target.as_ref(), &body).await;
    let event = recorder.record(
        outcome.request_parameters,
        outcome.result.as_ref().ok().and_then(|o| o.response_elements.clone()),
        outcome.touched,
        outcome.result.as_ref().err(),
        outcome.error_code_override.as_deref(),
    );
    if let Err(audit_err) = audit::publish(&app.bus, event).await {
        return kms_error_response(&request_id, &audit_err);
    }
    match outcome.result {
        Ok(output) => {
            let mut response = (StatusCode::OK, output.body.to_string()).into_response();
            decorate(&mut response, &request_id);
            response
        }
        Err(err) => match outcome.error_code_override {
            Some(code) => error_response(&request_id, 400, &code, &err.message),
            None => kms_error_response(&request_id, &err),
        },
    }
}

/// The result of one authenticated call, with what its audit record needs.
struct Outcome {
    result: Result<ops::Output, KmsError>,
    request_parameters: Option<Value>,
    touched: Vec<String>,
    /// A CloudTrail error name that has no KMS error code.
    error_code_override: Option<String>,
}

async fn serve_call(
    app: &App,
    identity: &Identity,
    recorder: &Recorder<'_>,
    target: Option<&Target>,
    body: &[u8],
) -> Outcome {
    let fail = |err: KmsError| Outcome {
        result: Err(err),
        request_parameters: None,
        touched: Vec::new(),
        error_code_override: None,
    };
    let Some(target) = target else {
        return fail(KmsError::new(ErrorCode::UnknownOperation, "Operation is not supported"));
    };
    if identity.service.as_deref().is_some_and(|s| s != target.signing_service()) {
        return fail(KmsError::new(
            ErrorCode::Validation,
            format!(
                "Credential should be scoped to correct service: '{}'.",
                target.signing_service()
            ),
        ));
    }
    let params = match Params::parse(body) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let request_parameters = audit::recorded(params.raw());
    let call = Call {
        bus: &app.bus,
        caller: wire::CallerContext {
            account: identity.account_id.clone(),
            region: recorder.region.clone(),
            principal: identity.principal_arn.clone(),
            request_id: recorder.request_id.to_owned(),
        },
        touched: Mutex::new(Vec::new()),
        source_ip: recorder.source_ip.clone(),
        decisions: &app.decisions,
        changes: &app.changes,
        freshness: crate::changes::Freshness::default(),
        principal_tags: &identity.principal_tags,
    };
    if let Err(e) = Region::parse(&recorder.region) {
        return Outcome { request_parameters, ..fail(e) };
    }
    let (result, error_code_override) = match target {
        Target::Kms(name) => match ops::dispatch(&call, name, &params).await {
            Some(result) => (result, None),
            None => (
                Err(KmsError::new(
                    ErrorCode::UnknownOperation,
                    format!("Operation {name} is not supported"),
                )),
                None,
            ),
        },
        Target::CloudTrail(name) if name == "LookupEvents" => {
            match crate::cloudtrail::lookup_events(
                &call,
                &params,
                app.auth.is_admin(&identity.principal_arn),
            )
            .await
            {
                Ok(output) => (Ok(output), None),
                Err(crate::cloudtrail::LookupFailure::Kms(e)) => (Err(e), None),
                Err(crate::cloudtrail::LookupFailure::CloudTrail { code, message }) => {
                    (Err(KmsError::validation(message)), Some(code))
                }
            }
        }
        Target::Admin(name) => {
            let is_admin = app.auth.is_admin(&identity.principal_arn);
            match ops::admin::dispatch(&call, name, &params, is_admin).await {
                Some(result) => (result, None),
                None => (
                    Err(KmsError::new(
                        ErrorCode::UnknownOperation,
                        format!("Operation {name} is not supported"),
                    )),
                    None,
                ),
            }
        }
        Target::CloudTrail(name) => (
            Err(KmsError::new(
                ErrorCode::UnknownOperation,
                format!("Operation {name} is not supported"),
            )),
            None,
        ),
    };
    let touched = call.touched.into_inner().unwrap_or_default();
    Outcome { result, request_parameters, touched, error_code_override }
}

/// What the audit record of a call knows before the call runs.
struct Recorder<'a> {
    identity: &'a Identity,
    region: String,
    source_ip: String,
    user_agent: String,
    request_id: &'a str,
    event_name: String,
    event_source: &'static str,
    read_only: bool,
    tls: Option<kms_audit_log::TlsDetails>,
}

/// The record's `sourceIPAddress`: the peer, or what a trusted proxy says it forwards.
pub(crate) fn source_ip(app: &App, peer: &crate::tls::Peer, headers: &HeaderMap) -> String {
    crate::client_ip::client_ip(
        peer.addr.ip(),
        headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
        &app.trusted_proxies,
    )
    .to_string()
}

/// The record's `userAgent`, at most 1,024 characters.
pub(crate) fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(1024)
        .collect()
}

/// The record's `tlsDetails` for a call that came over TLS.
pub(crate) fn tls_details(
    peer: &crate::tls::Peer,
    headers: &HeaderMap,
) -> Option<kms_audit_log::TlsDetails> {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
    peer.tls.as_ref().map(|tls| tls.details(host))
}

impl<'a> Recorder<'a> {
    fn new(
        app: &App,
        identity: &'a Identity,
        headers: &HeaderMap,
        peer: &crate::tls::Peer,
        request_id: &'a str,
        target: Option<&Target>,
    ) -> Self {
        let event_name =
            target.map_or_else(|| "UnknownOperation".to_owned(), |t| t.name().to_owned());
        let read_only = match target {
            Some(Target::Kms(name)) => ops::is_read_only(name),
            Some(Target::CloudTrail(_)) => true,
            Some(Target::Admin(name)) => name.starts_with("Get") || name.starts_with("List"),
            None => false,
        };
        Self {
            identity,
            region: identity.region.clone().unwrap_or_else(|| app.default_region.clone()),
            source_ip: source_ip(app, peer, headers),
            user_agent: user_agent(headers),
            request_id,
            event_source: target.map_or(EVENT_SOURCE_KMS, Target::event_source),
            event_name,
            read_only,
            tls: tls_details(peer, headers),
        }
    }

    fn record(
        &self,
        request_parameters: Option<Value>,
        response_elements: Option<Value>,
        key_arns: Vec<String>,
        error: Option<&KmsError>,
        error_code_override: Option<&str>,
    ) -> kms_audit_log::CloudTrailEvent {
        let mut event = CallRecord {
            identity: self.identity,
            region: &self.region,
            event_source: self.event_source,
            event_name: &self.event_name,
            read_only: self.read_only,
            source_ip: self.source_ip.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id,
            request_parameters,
            response_elements,
            key_arns,
            error,
            error_code_override,
        }
        .to_event();
        event.tls_details = self.tls.clone();
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(value: &str) -> Option<Target> {
        let mut h = HeaderMap::new();
        h.insert("x-amz-target", HeaderValue::from_str(value).unwrap());
        Target::parse(&h)
    }

    #[test]
    fn targets() {
        assert_eq!(target("TrentService.Encrypt"), Some(Target::Kms("Encrypt".into())));
        assert_eq!(
            target("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"),
            Some(Target::CloudTrail("LookupEvents".into()))
        );
        assert_eq!(
            target("CloudTrail_20131101.LookupEvents"),
            Some(Target::CloudTrail("LookupEvents".into()))
        );
        assert_eq!(target("DynamoDB_20120810.GetItem"), None);
        assert_eq!(Target::parse(&HeaderMap::new()), None);
    }
}
