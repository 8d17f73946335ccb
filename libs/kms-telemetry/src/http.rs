//! The gateway's HTTP edge, observed: each API request gets a span (the root of its
//! trace, or the child of the caller's W3C `traceparent` when it sends one) and is
//! counted and timed by operation, HTTP status and AWS error code.
//!
//! The operation label is the `X-Amz-Target` operation when it is one of the AWS KMS or
//! CloudTrail API's own names, `unknown` otherwise: a client cannot make new series.
//!
//! The operation is also known, for the length of the request, to code deep in the
//! gateway that counts something per operation without being handed its name
//! ([`pending_deletion_key_used`]): a task-local, set around the handler.

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

/// Operations that refuse a key pending deletion as cryptographic use: their
/// `kms_gateway_pending_deletion_key_requests_total` series exist from the start at 0, so
/// the first refusal is an increase Prometheus sees (a series born at 1 has none).
const CRYPTOGRAPHIC: [&str; 13] = [
    "Decrypt",
    "DeriveSharedSecret",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GetPublicKey",
    "ReEncrypt",
    "Sign",
    "Verify",
    "VerifyMac",
];

tokio::task_local! {
    /// The API operation of the request the current task serves.
    static OPERATION: &'static str;
}

/// Counts a cryptographic request refused because its key is pending deletion, under the
/// operation of the request being served (`unknown` outside one).
pub fn pending_deletion_key_used() {
    let operation = OPERATION.try_with(|op| *op).unwrap_or("unknown");
    if let Some(metrics) = crate::metrics::global() {
        metrics.pending_deletion_key_used(operation);
    }
}

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
    if let Some(metrics) = crate::metrics::global() {
        metrics.pending_deletion_key_series(&CRYPTOGRAPHIC);
    }
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
    let response = OPERATION.scope(operation, next.run(request)).instrument(span.clone()).await;
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
    fn cryptographic_operations_are_api_operations() {
        for op in CRYPTOGRAPHIC {
            assert!(OPERATIONS.contains(&op), "{op}");
        }
    }

    #[tokio::test]
    async fn pending_deletion_uses_count_under_the_request_operation() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let router = instrument(axum::Router::new().route(
            "/",
            axum::routing::post(|| async {
                pending_deletion_key_used();
                "refused"
            }),
        ));
        let series = |op: &str| {
            let needle =
                format!("kms_gateway_pending_deletion_key_requests_total{{operation=\"{op}\"}} ");
            crate::metrics::render()
                .lines()
                .find_map(|l| l.strip_prefix(&needle).map(|v| v.parse::<u64>().unwrap()))
        };
        // Every cryptographic operation's series exists before any refusal.
        assert_eq!(series("GenerateMac"), Some(0));
        let before = series("Sign").unwrap_or_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.Sign\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(series("Sign"), Some(before + 1));
        pending_deletion_key_used();
        assert!(series("unknown").unwrap_or_default() >= 1, "outside a request");
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
