//! The gateway's HTTP edge, observed: each API request gets a span (the root of its
//! trace, or the child of the caller's W3C `traceparent` when it sends one) and is
//! counted and timed by operation, HTTP status and AWS error code.
//!
//! The operation label is the `X-Amz-Target` operation when it is one of the AWS KMS or
//! CloudTrail API's own names, `unknown` otherwise: a client cannot make new series.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Target prefixes of the KMS API and of CloudTrail (long form from botocore, short form
/// from the Rust SDK).
const PREFIXES: [&str; 3] = [
    "TrentService.",
    "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.",
    "CloudTrail_20131101.",
];

/// Every operation of the AWS KMS API, and CloudTrail's LookupEvents.
const OPERATIONS: [&str; 54] = [
    "CancelKeyDeletion",
    "ConnectCustomKeyStore",
    "CreateAlias",
    "CreateCustomKeyStore",
    "CreateGrant",
    "CreateKey",
    "Decrypt",
    "DeleteAlias",
    "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial",
    "DeriveSharedSecret",
    "DescribeCustomKeyStores",
    "DescribeKey",
    "DisableKey",
    "DisableKeyRotation",
    "DisconnectCustomKeyStore",
    "EnableKey",
    "EnableKeyRotation",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "GetParametersForImport",
    "GetPublicKey",
    "ImportKeyMaterial",
    "ListAliases",
    "ListGrants",
    "ListKeyPolicies",
    "ListKeyRotations",
    "ListKeys",
    "ListResourceTags",
    "ListRetirableGrants",
    "PutKeyPolicy",
    "ReEncrypt",
    "ReplicateKey",
    "RetireGrant",
    "RevokeGrant",
    "RotateKeyOnDemand",
    "ScheduleKeyDeletion",
    "Sign",
    "TagResource",
    "UntagResource",
    "UpdateAlias",
    "UpdateCustomKeyStore",
    "UpdateKeyDescription",
    "UpdatePrimaryRegion",
    "Verify",
    "VerifyMac",
    "LookupEvents",
];

/// The operation label of a request's `X-Amz-Target`.
fn operation(target: Option<&str>) -> &'static str {
    target
        .and_then(|t| PREFIXES.iter().find_map(|p| t.strip_prefix(p)))
        .and_then(|name| OPERATIONS.iter().copied().find(|op| *op == name))
        .unwrap_or("unknown")
}

/// The AWS error code a response carries (`X-Amzn-ErrorType`), if it looks like one.
fn error_code(response: &Response) -> Option<&str> {
    let code = response.headers().get("x-amzn-errortype")?.to_str().ok()?;
    let plausible = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    Some(if plausible { code } else { "other" })
}

/// `router` with every API request (`POST /`) traced and measured; other paths
/// (`/healthz`) pass untouched.
pub fn instrument(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::from_fn(observe))
}

async fn observe(request: Request, next: Next) -> Response {
    if request.uri().path() != "/" {
        return next.run(request).await;
    }
    let headers = request.headers();
    let operation = operation(headers.get("x-amz-target").and_then(|v| v.to_str().ok()));
    let span = tracing::info_span!(
        "api request",
        otel.name = operation,
        otel.kind = "server",
        operation,
        http.response.status_code = tracing::field::Empty,
        request_id = tracing::field::Empty,
    );
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        crate::trace::continue_trace(&span, traceparent);
    }
    let start = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if let Some(id) = response.headers().get("x-amzn-requestid").and_then(|v| v.to_str().ok()) {
        span.record("request_id", id);
    }
    if let Some(metrics) = crate::metrics::global() {
        metrics.http_served(operation, status, error_code(&response), start.elapsed());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_come_from_the_api_only() {
        for (target, expected) in [
            (Some("TrentService.Encrypt"), "Encrypt"),
            (
                Some("TrentService.GenerateDataKeyWithoutPlaintext"),
                "GenerateDataKeyWithoutPlaintext",
            ),
            (Some("CloudTrail_20131101.LookupEvents"), "LookupEvents"),
            (
                Some("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"),
                "LookupEvents",
            ),
            (Some("TrentService.MadeUp"), "unknown"),
            (Some("Encrypt"), "unknown"),
            (Some("TrentService.encrypt"), "unknown"),
            (None, "unknown"),
        ] {
            assert_eq!(operation(target), expected, "{target:?}");
        }
    }

    #[test]
    fn error_codes_come_from_the_error_type_header() {
        let with = |value: &str| {
            let mut response = Response::new(axum::body::Body::empty());
            response.headers_mut().insert("x-amzn-errortype", value.parse().unwrap());
            error_code(&response).map(str::to_owned)
        };
        assert_eq!(with("NotFoundException").as_deref(), Some("NotFoundException"));
        assert_eq!(with("a b").as_deref(), Some("other"));
        assert_eq!(with(&"X".repeat(65)).as_deref(), Some("other"));
        assert_eq!(error_code(&Response::new(axum::body::Body::empty())), None);
    }
}
