//! The entry point: picks SigV4 or JWT from the `Authorization` header and returns the
//! caller's identity or an AWS-style failure. A SigV4 request carrying
//! `X-Amz-Security-Token` is signed with temporary credentials: its secret is inside the
//! sealed session token (see `session`), not in the credentials store.

use http::{HeaderMap, Method, Uri};
use time::OffsetDateTime;

use crate::error::{AuthError, AuthFailure};
use crate::identity::{parse_principal_arn, AuthMethod, Identity, SessionContext};
use crate::jwt;
use crate::session::{Session, SessionKeys};
use crate::sigv4::{self, RequestParts};
use crate::store::{AccessKeyEntry, CredentialStore};
use crate::workload::assumed_role_arn;

const SECURITY_TOKEN: &str = "x-amz-security-token";

/// Authenticates requests against a [`CredentialStore`] (and, when configured, the keys
/// that open role-session tokens).
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: CredentialStore,
    session_keys: Option<SessionKeys>,
}

impl Authenticator {
    /// An authenticator over `store`; requests with session tokens are refused.
    pub fn new(store: CredentialStore) -> Self {
        Authenticator { store, session_keys: None }
    }

    /// Also accepts temporary credentials whose session tokens `keys` open.
    #[must_use]
    pub fn with_session_keys(mut self, keys: SessionKeys) -> Self {
        self.session_keys = Some(keys);
        self
    }

    /// The credentials in use.
    pub fn store(&self) -> &CredentialStore {
        &self.store
    }

    /// Authenticates one request. `body` must be the complete body as received and `now`
    /// the server's current time (`OffsetDateTime::now_utc()` outside tests).
    pub fn authenticate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Identity, AuthFailure> {
        let parts = RequestParts {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or_default(),
            headers,
            authority: uri.authority().map(|a| a.as_str()),
            body,
        };
        self.authenticate_parts(&parts, now)
    }

    /// Whether `principal_arn` is one of the configured admin principals.
    pub fn is_admin(&self, principal_arn: &str) -> bool {
        self.store.is_admin(principal_arn)
    }

    pub(crate) fn authenticate_parts(
        &self,
        parts: &RequestParts<'_>,
        now: OffsetDateTime,
    ) -> Result<Identity, AuthFailure> {
        let mut values = parts.headers.get_all(http::header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            if is_presigned(parts.query) {
                return Err(AuthError::IncompleteSignature(
                    "Query-string (presigned) authentication is not supported; sign the Authorization header.".to_owned(),
                )
                .into());
            }
            return Err(AuthError::MissingAuthenticationToken.into());
        };
        if values.next().is_some() {
            return Err(AuthError::IncompleteSignature(
                "The request has more than one Authorization header.".to_owned(),
            )
            .into());
        }
        let value = value.to_str().map_err(|_| {
            AuthError::IncompleteSignature(
                "The Authorization header is not visible ASCII.".to_owned(),
            )
        })?;
        let value = value.trim_matches([' ', '\t']);
        if value.is_empty() {
            return Err(AuthError::MissingAuthenticationToken.into());
        }
        if let Some(token) = bearer_token(value) {
            return jwt::verify(&self.store, token, now);
        }
        if value.starts_with("AWS4-") {
            if let Some(token) = single_header(parts, SECURITY_TOKEN)? {
                return self.verify_session(value, token, parts, now);
            }
            return match sigv4::verify(&self.store, value, parts, now) {
                Ok(verified) => Ok(sigv4_identity(
                    verified.entry,
                    Some(verified.region),
                    Some(verified.service),
                )),
                Err(refused) => Err(AuthFailure {
                    error: refused.error,
                    identity: refused.entry.map(|entry| {
                        Box::new(sigv4_identity(entry, refused.region, refused.service))
                    }),
                }),
            };
        }
        Err(AuthError::IncompleteSignature(
            "Unsupported Authorization scheme: expected AWS4-HMAC-SHA256 or Bearer.".to_owned(),
        )
        .into())
    }
}

impl Authenticator {
    /// A SigV4 request signed with temporary credentials: the token must open under a
    /// session key, name the request's access key id and be unexpired; the signature is
    /// checked with the secret it holds.
    fn verify_session(
        &self,
        authorization: &str,
        token: &str,
        parts: &RequestParts<'_>,
        now: OffsetDateTime,
    ) -> Result<Identity, AuthFailure> {
        let auth = sigv4::parse_authorization(authorization)?;
        let session = self
            .session_keys
            .as_ref()
            .and_then(|keys| keys.open(token))
            .filter(|s| s.access_key_id == auth.access_key_id)
            .ok_or(AuthError::UnrecognizedClient)?;
        let identity = session_identity(&session, auth.region.to_owned(), auth.service.to_owned());
        let refused = |error| AuthFailure { error, identity: Some(Box::new(identity.clone())) };
        if session.expires_at <= now.unix_timestamp() {
            return Err(refused(AuthError::ExpiredToken(
                "The security token included in the request is expired".to_owned(),
            )));
        }
        sigv4::check_signature(&auth, &session.secret_access_key, parts, now).map_err(refused)?;
        Ok(identity)
    }
}

/// The value of a header that may appear at most once.
fn single_header<'p>(parts: &RequestParts<'p>, name: &str) -> Result<Option<&'p str>, AuthError> {
    let mut values = parts.headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::IncompleteSignature(format!(
            "The request has more than one {name} header."
        )));
    }
    value.to_str().map(Some).map_err(|_| AuthError::UnrecognizedClient)
}

fn session_identity(session: &Session, region: String, service: String) -> Identity {
    let role_name = session.role_arn.rsplit('/').next().unwrap_or_default();
    Identity {
        account_id: session.account_id.clone(),
        principal_arn: assumed_role_arn(&session.account_id, role_name, &session.session_name),
        user_name: session.session_name.clone(),
        identity_type: "AssumedRole".to_owned(),
        access_key_id: Some(session.access_key_id.clone()),
        region: Some(region),
        service: Some(service),
        method: AuthMethod::SigV4,
        principal_tags: Default::default(),
        session: Some(SessionContext {
            issuer_arn: session.role_arn.clone(),
            issuer_name: role_name.to_owned(),
            issuer_account_id: session.account_id.clone(),
            created_at_epoch_s: session.issued_at,
            federated_provider: Some(session.provider.clone()),
        }),
    }
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim_start_matches([' ', '\t']))
}

fn is_presigned(query: &str) -> bool {
    query.split('&').any(|p| {
        let name = p.split_once('=').map_or(p, |(n, _)| n);
        name.eq_ignore_ascii_case("X-Amz-Signature")
            || name.eq_ignore_ascii_case("X-Amz-Credential")
    })
}

fn sigv4_identity(
    entry: &AccessKeyEntry,
    region: Option<String>,
    service: Option<String>,
) -> Identity {
    // The store validated the ARN; the fallbacks only keep this total.
    let (identity_type, user_name) = match parse_principal_arn(&entry.principal_arn) {
        Ok(arn) => (arn.identity_type, arn.user_name.to_owned()),
        Err(_) => ("IAMUser", entry.principal_arn.clone()),
    };
    Identity {
        account_id: entry.account_id.clone(),
        principal_arn: entry.principal_arn.clone(),
        user_name,
        identity_type: identity_type.to_owned(),
        access_key_id: Some(entry.access_key_id.clone()),
        region,
        service,
        method: AuthMethod::SigV4,
        principal_tags: entry.tags.clone(),
        session: None,
    }
}

#[cfg(test)]
mod tests;
