//! AWS Signature Version 4 verification (the `Authorization` header form), server side.
//!
//! The canonical request is rebuilt from what arrived on the wire, the way AWS SDKs build
//! it for non-S3 services: the path is normalized (dot segments removed, repeated slashes
//! collapsed) and each segment is URI-encoded again (so `%20` on the wire signs as `%2520`);
//! the query is percent-decoded then re-encoded and sorted.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};
use zeroize::Zeroizing;

use crate::error::AuthError;
use crate::store::{AccessKeyEntry, CredentialStore};

pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far the request's timestamp may be from the server clock, either way.
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

const AMZ_DATE: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
/// RFC 7231 IMF-fixdate, the `Date` header's format.
const HTTP_DATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

type HmacSha256 = Hmac<Sha256>;

/// The parts of a request that SigV4 covers, as they arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestParts<'a> {
    pub(crate) method: &'a str,
    /// The raw (still percent-encoded) path.
    pub(crate) path: &'a str,
    /// The raw query, without `?`.
    pub(crate) query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    /// The URI's authority, used for `host` when there is no `Host` header (HTTP/2).
    pub(crate) authority: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

/// `Credential=AKID/date/region/service/aws4_request, SignedHeaders=..., Signature=...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedAuthorization<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) scope_date: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
    /// As given, lowercased, in the given order.
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: &'a str,
}

impl ParsedAuthorization<'_> {
    fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.scope_date, self.region, self.service)
    }
}

/// A verified request.
#[derive(Debug)]
pub(crate) struct Verified<'s> {
    pub(crate) entry: &'s AccessKeyEntry,
    pub(crate) region: String,
    pub(crate) service: String,
}

/// A refused request, with the access key entry when the key id was known.
#[derive(Debug)]
pub(crate) struct Refused<'s> {
    pub(crate) error: AuthError,
    pub(crate) entry: Option<&'s AccessKeyEntry>,
    pub(crate) region: Option<String>,
    pub(crate) service: Option<String>,
}

fn incomplete(message: impl Into<String>) -> AuthError {
    AuthError::IncompleteSignature(message.into())
}

/// Parses the value of an `Authorization: AWS4-HMAC-SHA256 ...` header.
pub(crate) fn parse_authorization(value: &str) -> Result<ParsedAuthorization<'_>, AuthError> {
    let rest =
        value.strip_prefix(ALGORITHM).filter(|rest| rest.starts_with([' ', '\t'])).ok_or_else(
            || incomplete("Unsupported signing algorithm: only AWS4-HMAC-SHA256 is accepted."),
        )?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim_matches([' ', '\t']);
        if part.is_empty() {
            continue;
        }
        let (name, value) = part.split_once('=').ok_or_else(|| {
            incomplete("Authorization header parameters must be of the form name=value.")
        })?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => {
                return Err(incomplete(
                    "Authorization header has an unknown parameter; expected Credential, SignedHeaders and Signature.",
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(incomplete(format!(
                "Authorization header has more than one '{name}' parameter."
            )));
        }
    }
    let mut missing = Vec::new();
    for (name, slot) in
        [("Credential", &credential), ("Signature", &signature), ("SignedHeaders", &signed_headers)]
    {
        if slot.is_none() {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(incomplete(missing.join(" ")));
    };

    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, scope_date, region, service, terminator] = parts[..] else {
        return Err(incomplete(
            "Credential must have the form ACCESS_KEY_ID/YYYYMMDD/region/service/aws4_request.",
        ));
    };
    if terminator != "aws4_request" {
        return Err(incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    if access_key_id.is_empty() {
        return Err(incomplete("Credential must name an access key id."));
    }
    if scope_date.len() != 8 || !scope_date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete(format!(
            "Credential should be scoped to a valid date (YYYYMMDD), not '{scope_date}'."
        )));
    }
    if region.is_empty() || service.is_empty() {
        return Err(incomplete("Credential should be scoped to a region and a service."));
    }

    let signed_headers: Vec<String> =
        signed_headers.split(';').map(str::to_ascii_lowercase).collect();
    if signed_headers.iter().any(|h| {
        h.is_empty() || (http::HeaderName::from_bytes(h.as_bytes()).is_err() && h != ":authority")
    }) {
        return Err(incomplete("SignedHeaders contains an empty or invalid header name."));
    }
    if !signed_headers.iter().any(|h| h == "host" || h == ":authority") {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    if signature.is_empty() {
        return Err(incomplete("Signature must not be empty."));
    }
    Ok(ParsedAuthorization {
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// The request time from `x-amz-date` (or `Date`), and its ISO 8601 basic form.
pub(crate) fn request_time(headers: &HeaderMap) -> Result<(OffsetDateTime, String), AuthError> {
    if let Some(value) = headers.get("x-amz-date") {
        let text = value.to_str().unwrap_or_default();
        let time = PrimitiveDateTime::parse(text, AMZ_DATE)
            .map_err(|_| {
                incomplete(format!(
                    "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
                    text.escape_debug()
                ))
            })?
            .assume_utc();
        return Ok((time, text.to_owned()));
    }
    if let Some(value) = headers.get(http::header::DATE) {
        let text = value.to_str().unwrap_or_default();
        let time = PrimitiveDateTime::parse(text, HTTP_DATE)
            .or_else(|_| PrimitiveDateTime::parse(text, AMZ_DATE))
            .map_err(|_| {
                incomplete(format!(
                    "Date header must be an HTTP date or ISO-8601 basic format. Got '{}'.",
                    text.escape_debug()
                ))
            })?
            .assume_utc();
        return Ok((time, format_amz(time)));
    }
    Err(incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    ))
}

pub(crate) fn format_amz(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC).format(AMZ_DATE).unwrap_or_default()
}

/// Refuses a request time more than 5 minutes from `now`, with AWS's messages.
pub(crate) fn check_clock(request: OffsetDateTime, now: OffsetDateTime) -> Result<(), AuthError> {
    let earliest = now - MAX_CLOCK_SKEW;
    let latest = now + MAX_CLOCK_SKEW;
    if request < earliest {
        return Err(AuthError::InvalidSignature(format!(
            "Signature expired: {} is now earlier than {} ({} - 5 min.)",
            format_amz(request),
            format_amz(earliest),
            format_amz(now)
        )));
    }
    if request > latest {
        return Err(AuthError::InvalidSignature(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            format_amz(request),
            format_amz(latest),
            format_amz(now)
        )));
    }
    Ok(())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn uri_encode_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

fn percent_decode(text: &str) -> Vec<u8> {
    fn hex_val(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            ) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Removes `.` and `..` segments and collapses repeated slashes, keeping a trailing slash.
pub(crate) fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

/// The canonical URI: the normalized raw path with each segment URI-encoded (again).
pub(crate) fn canonical_uri(raw_path: &str) -> String {
    let normalized = normalize_path(raw_path);
    let mut out = String::with_capacity(normalized.len() * 3);
    for (i, segment) in normalized.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode_into(&mut out, segment.as_bytes());
    }
    out
}

/// The canonical query: each name and value decoded then URI-encoded, sorted by name then
/// value. A parameter without `=` has an empty value.
pub(crate) fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            let mut n = String::new();
            uri_encode_into(&mut n, &percent_decode(name));
            let mut v = String::new();
            uri_encode_into(&mut v, &percent_decode(value));
            (n, v)
        })
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(n);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// A header value trimmed, with runs of spaces and tabs collapsed to one space.
fn push_trimmed_value(out: &mut Vec<u8>, value: &[u8]) {
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if b == b' ' || b == b'\t' {
            pending_space = started;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
            started = true;
        }
    }
}

/// The payload hash: `x-amz-content-sha256` when present (it must match the body), else
/// hex SHA-256 of the body.
fn payload_hash(parts: &RequestParts<'_>) -> Result<String, AuthError> {
    let computed = hex::encode(Sha256::digest(parts.body));
    match parts.headers.get("x-amz-content-sha256") {
        None => Ok(computed),
        Some(value) => match value.to_str() {
            Ok(given) if given.eq_ignore_ascii_case(&computed) => Ok(given.to_owned()),
            _ => Err(AuthError::InvalidSignature(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .to_owned(),
            )),
        },
    }
}

/// The canonical request, as bytes (header values need not be UTF-8).
pub(crate) fn canonical_request(
    parts: &RequestParts<'_>,
    signed_headers: &[String],
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(parts.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(parts.path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(parts.query).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let is_host = name == "host" || name == ":authority";
        let lookup = if name == ":authority" { "host" } else { name };
        let mut values = parts.headers.get_all(lookup).iter().peekable();
        if values.peek().is_none() {
            match (is_host, parts.authority) {
                (true, Some(authority)) => push_trimmed_value(&mut out, authority.as_bytes()),
                _ => return Err(AuthError::signature_mismatch()),
            }
        }
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed_value(&mut out, value.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash(parts)?.as_bytes());
    Ok(out)
}

pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request)))
}

/// HMAC-SHA256. HMAC accepts keys of any length, so `None` never happens in practice; it
/// is still propagated (as a refusal) rather than papered over with a fixed key.
fn hmac(key: &[u8], data: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(data);
    Some(Zeroizing::new(mac.finalize().into_bytes().into()))
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub(crate) fn signing_key(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
) -> Option<Zeroizing<[u8; 32]>> {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.as_bytes());
    let k_date = hmac(&k_secret, date.as_bytes())?;
    let k_region = hmac(k_date.as_ref(), region.as_bytes())?;
    let k_service = hmac(k_region.as_ref(), service.as_bytes())?;
    hmac(k_service.as_ref(), b"aws4_request")
}

/// Verifies a SigV4-signed request whose `Authorization` value is `authorization`.
pub(crate) fn verify<'s>(
    store: &'s CredentialStore,
    authorization: &str,
    parts: &RequestParts<'_>,
    now: OffsetDateTime,
) -> Result<Verified<'s>, Refused<'s>> {
    let refused = |error| Refused { error, entry: None, region: None, service: None };
    let auth = parse_authorization(authorization).map_err(refused)?;
    let entry = store
        .access_key(auth.access_key_id)
        .ok_or_else(|| refused(AuthError::UnrecognizedClient))?;
    let known = |error| Refused {
        error,
        entry: Some(entry),
        region: Some(auth.region.to_owned()),
        service: Some(auth.service.to_owned()),
    };

    check_signature(&auth, &entry.secret_access_key, parts, now).map_err(known)?;
    Ok(Verified { entry, region: auth.region.to_owned(), service: auth.service.to_owned() })
}

/// Checks the request's time and its signature under `secret`.
pub(crate) fn check_signature(
    auth: &ParsedAuthorization<'_>,
    secret: &str,
    parts: &RequestParts<'_>,
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    let (time, amz_date) = request_time(parts.headers)?;
    let amz_day = amz_date.get(..8).unwrap_or_default();
    if auth.scope_date != amz_day {
        return Err(AuthError::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            auth.scope_date, amz_day, amz_date
        )));
    }
    check_clock(time, now)?;

    let creq = canonical_request(parts, &auth.signed_headers)?;
    let sts = string_to_sign(&amz_date, &auth.scope(), &creq);
    let expected = signing_key(secret, auth.scope_date, auth.region, auth.service)
        .and_then(|key| hmac(key.as_ref(), sts.as_bytes()))
        .ok_or_else(AuthError::signature_mismatch)?;
    let provided = match hex::decode(auth.signature) {
        Ok(bytes) => bytes,
        Err(_) => return Err(AuthError::signature_mismatch()),
    };
    if !bool::from(expected.as_slice().ct_eq(&provided)) {
        return Err(AuthError::signature_mismatch());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
