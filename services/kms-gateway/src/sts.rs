//! STS on the gateway: `AssumeRoleWithWebIdentity`, so that AWS SDKs configured only with
//! `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` (a Kubernetes pod's projected
//! service-account token) get temporary credentials here and then call KMS with them.
//!
//! STS speaks the AWS query protocol: a form-encoded `POST /` with `Action` and `Version`,
//! unsigned for this action, answered in XML (errors as `<ErrorResponse>`), which is how
//! the gateway tells it from the awsJson1_1 KMS calls (those carry `X-Amz-Target`). The
//! token checks, the role bindings and the sealing of the session live in
//! `kms_auth::WorkloadIdentity`; this module is the wire format and the audit record.
//!
//! A call whose token verified and whose `RoleArn` names an account is recorded in that
//! account (`eventSource` `sts.amazonaws.com`, the caller a `WebIdentityUser`), allowed or
//! refused; the record holds the role, session name and the issued access key id, never
//! the web identity token, the secret or the session token. A call with an unverifiable
//! token is not recorded: nobody is known to record it for (as with an unknown access
//! key).

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kms_auth::{
    AssumeRoleRequest, AuthMethod, Identity, IssuedCredentials, ServiceAccount, StsError,
    StsFailure,
};
use kms_core::{ErrorCode, KmsError};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::audit::{self, CallRecord};
use crate::App;

const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const VERSION: &str = "2011-06-15";
const EVENT_SOURCE_STS: &str = "sts.amazonaws.com";
const ACTION: &str = "AssumeRoleWithWebIdentity";

/// Whether a request is for STS: a form-encoded body and no `X-Amz-Target`.
pub(crate) fn is_sts_request(headers: &HeaderMap) -> bool {
    !headers.contains_key("x-amz-target")
        && headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded")
        })
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn xml_response(status: u16, request_id: &str, body: String) -> Response {
    let mut response =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    response
}

/// STS's error shape.
fn error_response(
    request_id: &str,
    status: u16,
    fault: &str,
    code: &str,
    message: &str,
) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{fault}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        escape(code),
        escape(message),
        escape(request_id)
    );
    xml_response(status, request_id, body)
}

fn sts_error(request_id: &str, error: &StsError) -> Response {
    error_response(request_id, error.http_status(), error.fault(), error.code(), &error.to_string())
}

fn iso8601(epoch_s: i64) -> String {
    OffsetDateTime::from_unix_timestamp(epoch_s)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn success_body(request_id: &str, c: &IssuedCredentials) -> Zeroizing<String> {
    let mut body = Zeroizing::new(String::with_capacity(2048));
    // Writing to a String cannot fail.
    let _ = write!(
        body,
        "<AssumeRoleWithWebIdentityResponse xmlns=\"{XMLNS}\">\n  <AssumeRoleWithWebIdentityResult>\n    <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken>\n    <Audience>{}</Audience>\n    <AssumedRoleUser>\n      <Arn>{}</Arn>\n      <AssumedRoleId>{}</AssumedRoleId>\n    </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n    <Provider>{}</Provider>\n  </AssumeRoleWithWebIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</AssumeRoleWithWebIdentityResponse>\n",
        escape(&c.service_account.subject),
        escape(&c.service_account.audience),
        escape(&c.assumed_role_arn),
        escape(&c.assumed_role_id),
        escape(&c.access_key_id),
        escape(&c.secret_access_key),
        escape(&c.session_token),
        iso8601(c.expiration_epoch_s),
        escape(&c.service_account.issuer),
        escape(request_id),
    );
    body
}

/// One STS request (already read; unauthenticated by design: the token is the proof).
pub(crate) async fn handle(
    app: &App,
    headers: &HeaderMap,
    peer: &crate::tls::Peer,
    request_id: &str,
    body: &Bytes,
) -> Response {
    let mut action = None;
    let mut version = None;
    let mut request = AssumeRoleRequest::default();
    for (name, value) in form_urlencoded::parse(body) {
        match name.as_ref() {
            "Action" => action = Some(value.into_owned()),
            "Version" => version = Some(value.into_owned()),
            "RoleArn" => request.role_arn = Some(value.into_owned()),
            "RoleSessionName" => request.role_session_name = Some(value.into_owned()),
            "WebIdentityToken" => {
                request.web_identity_token = Some(Zeroizing::new(value.into_owned()))
            }
            "DurationSeconds" => request.duration_seconds = Some(value.into_owned()),
            _ => {}
        }
    }
    let Some(action) = action else {
        return error_response(request_id, 400, "Sender", "MissingAction", "Missing Action");
    };
    if version.as_deref() != Some(VERSION) || action != ACTION {
        return error_response(
            request_id,
            400,
            "Sender",
            "InvalidAction",
            &format!(
                "Could not find operation {action} for version {}",
                version.as_deref().unwrap_or("NO_VERSION_SPECIFIED")
            ),
        );
    }
    let Some(workload) = app.workload.as_ref() else {
        return sts_error(
            request_id,
            &StsError::InvalidIdentityToken("No OpenIDConnect provider is configured".to_owned()),
        );
    };
    let outcome = workload.assume_role(&request, OffsetDateTime::now_utc());
    let caller = match &outcome {
        Ok(c) => Some(&c.service_account),
        Err(failure) => failure.caller.as_deref(),
    };
    let account = request.role_arn.as_deref().and_then(role_account);
    if let (Some(caller), Some(account)) = (caller, account) {
        let mut event = record(app, headers, peer, request_id, &request, caller, account, &outcome);
        event.tls_details = crate::http::tls_details(peer, headers);
        if let Err(audit_err) = audit::publish(&app.bus, event).await {
            tracing::warn!(code = audit_err.code.aws_name(), "sts audit record not stored");
            return sts_error(request_id, &StsError::Internal);
        }
    }
    match outcome {
        Ok(credentials) => {
            tracing::info!(
                role = %credentials.role_arn,
                access_key_id = %credentials.access_key_id,
                subject = %credentials.service_account.subject,
                "role session issued"
            );
            let body = success_body(request_id, &credentials);
            xml_response(200, request_id, body.as_str().to_owned())
        }
        Err(StsFailure { error, .. }) => {
            tracing::info!(code = error.code(), "AssumeRoleWithWebIdentity refused");
            sts_error(request_id, &error)
        }
    }
}

/// The account of an `arn:aws:iam::<12 digits>:...` ARN.
fn role_account(arn: &str) -> Option<&str> {
    let account = arn.strip_prefix("arn:aws:iam::")?.split(':').next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// The CloudTrail record of an `AssumeRoleWithWebIdentity`, as AWS writes it: the caller
/// is the web identity (`<issuer>:<audience>:<subject>`), the parameters are the role and
/// session name, the response the assumed role and the access key id.
#[allow(clippy::too_many_arguments, reason = "one call site; a struct would only rename them")]
fn record(
    app: &App,
    headers: &HeaderMap,
    peer: &crate::tls::Peer,
    request_id: &str,
    request: &AssumeRoleRequest,
    caller: &ServiceAccount,
    account: &str,
    outcome: &Result<IssuedCredentials, StsFailure>,
) -> kms_audit_log::CloudTrailEvent {
    let identity = Identity {
        account_id: account.to_owned(),
        principal_arn: format!("{}:{}:{}", caller.issuer, caller.audience, caller.subject),
        user_name: caller.subject.clone(),
        identity_type: "WebIdentityUser".to_owned(),
        access_key_id: None,
        region: None,
        service: None,
        method: AuthMethod::Jwt { issuer: caller.issuer.clone() },
        principal_tags: Default::default(),
        session: None,
    };
    let mut parameters = serde_json::Map::new();
    for (name, value) in [
        ("roleArn", request.role_arn.as_deref()),
        ("roleSessionName", request.role_session_name.as_deref()),
        ("durationSeconds", request.duration_seconds.as_deref()),
    ] {
        if let Some(value) = value {
            parameters.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
    let response_elements = outcome.as_ref().ok().map(|c| {
        json!({
            "credentials": {"accessKeyId": c.access_key_id, "expiration": iso8601(c.expiration_epoch_s)},
            "assumedRoleUser": {"arn": c.assumed_role_arn, "assumedRoleId": c.assumed_role_id},
            "subjectFromWebIdentityToken": c.service_account.subject,
            "provider": c.service_account.issuer,
            "audience": c.service_account.audience,
        })
    });
    let error = outcome.as_ref().err().map(|f| {
        let code = match f.error {
            StsError::AccessDenied(_) => ErrorCode::AccessDenied,
            StsError::Internal => ErrorCode::Internal,
            _ => ErrorCode::Validation,
        };
        KmsError::new(code, f.error.to_string())
    });
    let error_code = outcome.as_ref().err().map(|f| f.error.code());
    CallRecord {
        identity: &identity,
        region: &app.default_region,
        event_source: EVENT_SOURCE_STS,
        event_name: ACTION,
        read_only: false,
        source_ip: crate::http::source_ip(app, peer, headers),
        user_agent: crate::http::user_agent(headers),
        request_id,
        request_parameters: Some(Value::Object(parameters)),
        response_elements,
        key_arns: Vec::new(),
        error: error.as_ref(),
        error_code_override: error_code,
    }
    .to_event()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_and_escaping() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        assert!(is_sts_request(&h));
        h.insert("x-amz-target", HeaderValue::from_static("TrentService.Encrypt"));
        assert!(!is_sts_request(&h));
        let mut json = HeaderMap::new();
        json.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
        assert!(!is_sts_request(&json));
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(role_account("arn:aws:iam::111122223333:role/x"), Some("111122223333"));
        assert_eq!(role_account("arn:aws:iam::1111:role/x"), None);
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
    }
}
