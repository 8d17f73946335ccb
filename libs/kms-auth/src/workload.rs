//! Workload identity: Kubernetes service-account tokens exchanged for role sessions, the
//! server side of STS `AssumeRoleWithWebIdentity`.
//!
//! Pods get a projected service-account token (a JWT signed by the cluster's API server,
//! `aud` chosen by the pod spec, short-lived). The AWS SDKs, given
//! `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`, send that token to STS and use the
//! temporary credentials they get back; so a tenant's workloads need no long-lived secret.
//! Here the gateway plays STS: the token is verified against the cluster's JWKS (read from
//! a file: the API server's `/openid/v1/jwks`), its audience and expiry are checked, and
//! its service account (`sub` = `system:serviceaccount:<ns>:<sa>`, or the `kubernetes.io`
//! claim) must be bound in the configuration to the requested role. The binding is the
//! role's trust policy; the role's identity policies (attached to the role ARN in the
//! policy service) decide what its sessions may do.
//!
//! Role ARNs have no path here: a session ARN (`assumed-role/<name>/<session>`) does not
//! carry it, and the policy service finds the role's identity policies from the session ARN.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::identity::{is_iam_name, parse_principal_arn};
use crate::jwt::LEEWAY_SECONDS;
use crate::session::{generate_temporary_key, Session, SessionKeys};

/// AWS's bounds of `DurationSeconds`.
const MIN_DURATION_SECONDS: i64 = 900;
const MAX_DURATION_SECONDS: i64 = 43_200;
const DEFAULT_DURATION_SECONDS: i64 = 3_600;
/// `clientTokenType`: 4 to 20,000 characters.
const MAX_TOKEN_LEN: usize = 20_000;
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
const NOT_AUTHORIZED: &str = "Not authorized to perform sts:AssumeRoleWithWebIdentity";

/// The configuration file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadIdentityFile {
    issuers: Vec<IssuerFile>,
    #[serde(default)]
    roles: Vec<RoleBinding>,
    #[serde(default = "default_max_session")]
    max_session_duration_seconds: i64,
}

fn default_max_session() -> i64 {
    DEFAULT_DURATION_SECONDS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerFile {
    issuer: String,
    audience: String,
    /// Relative paths are relative to the configuration file's directory.
    jwks_file: PathBuf,
}

/// One binding: a service account of a namespace may assume a role.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBinding {
    /// The cluster's issuer the token must come from; any configured issuer when absent.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's service account, or `*` for every service account of the namespace.
    pub service_account: String,
    /// `arn:aws:iam::<account>:role/<name>`: the account and the principal of the sessions.
    pub role_arn: String,
}

/// A cluster's token issuer with its verification keys.
struct Issuer {
    issuer: String,
    audience: String,
    /// `(kid, algorithm, key)` for every RS256 / ES256 key of the JWKS.
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
}

/// The verified service account behind a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// The accepted audience.
    pub audience: String,
    pub namespace: String,
    pub name: String,
}

/// Why `AssumeRoleWithWebIdentity` was refused, as STS says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsError {
    /// A parameter is missing or out of bounds (`ValidationError`, 400).
    #[error("{0}")]
    Validation(String),
    /// The token is not acceptable (`InvalidIdentityToken`, 400). Never contains the token.
    #[error("{0}")]
    InvalidIdentityToken(String),
    /// The token has expired (`ExpiredTokenException`, 400).
    #[error("{0}")]
    ExpiredToken(String),
    /// The token's service account may not assume the role (`AccessDenied`, 403).
    #[error("{0}")]
    AccessDenied(String),
    /// The credentials could not be sealed (`InternalFailure`, 500).
    #[error("An internal error occurred")]
    Internal,
}

impl StsError {
    /// The STS error code (`<Code>`).
    pub fn code(&self) -> &'static str {
        match self {
            StsError::Validation(_) => "ValidationError",
            StsError::InvalidIdentityToken(_) => "InvalidIdentityToken",
            StsError::ExpiredToken(_) => "ExpiredTokenException",
            StsError::AccessDenied(_) => "AccessDenied",
            StsError::Internal => "InternalFailure",
        }
    }

    /// The HTTP status STS answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            StsError::AccessDenied(_) => 403,
            StsError::Internal => 500,
            _ => 400,
        }
    }

    /// `Sender` or `Receiver` (`<Type>`).
    pub fn fault(&self) -> &'static str {
        match self {
            StsError::Internal => "Receiver",
            _ => "Sender",
        }
    }
}

/// A refused `AssumeRoleWithWebIdentity`: why, and whose token it was when the token
/// verified (for the audit record).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct StsFailure {
    pub error: StsError,
    /// Boxed to keep `Result<_, StsFailure>` small.
    pub caller: Option<Box<ServiceAccount>>,
}

impl From<StsError> for StsFailure {
    fn from(error: StsError) -> Self {
        StsFailure { error, caller: None }
    }
}

/// An `AssumeRoleWithWebIdentity` request's parameters.
#[derive(Clone, Default)]
pub struct AssumeRoleRequest {
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub web_identity_token: Option<Zeroizing<String>>,
    /// As sent; parsed here so that a non-number is a `ValidationError`.
    pub duration_seconds: Option<String>,
}

impl fmt::Debug for AssumeRoleRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRoleRequest")
            .field("role_arn", &self.role_arn)
            .field("role_session_name", &self.role_session_name)
            .field("web_identity_token", &self.web_identity_token.as_ref().map(|_| "<redacted>"))
            .field("duration_seconds", &self.duration_seconds)
            .finish()
    }
}

/// Temporary credentials and who they are for.
pub struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Zeroizing<String>,
    /// Seconds since the Unix epoch.
    pub expiration_epoch_s: i64,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub assumed_role_arn: String,
    /// `AROA...:<session>`.
    pub assumed_role_id: String,
    pub account_id: String,
    pub role_arn: String,
    pub service_account: ServiceAccount,
}

impl fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration_epoch_s", &self.expiration_epoch_s)
            .field("assumed_role_arn", &self.assumed_role_arn)
            .finish()
    }
}

/// Verifies service-account tokens and issues role sessions for them.
pub struct WorkloadIdentity {
    issuers: Vec<Issuer>,
    roles: Vec<RoleBinding>,
    max_session_duration_seconds: i64,
    session_keys: SessionKeys,
}

impl fmt::Debug for WorkloadIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadIdentity")
            .field("issuers", &self.issuers.iter().map(|i| &i.issuer).collect::<Vec<_>>())
            .field("roles", &self.roles)
            .field("max_session_duration_seconds", &self.max_session_duration_seconds)
            .finish()
    }
}

fn config_error(reason: impl Into<String>) -> StoreError {
    StoreError::InvalidWorkloadIdentity(reason.into())
}

/// The RS256 / ES256 keys of a JWKS document.
fn jwks_keys(
    issuer: &str,
    jwks: &str,
) -> Result<Vec<(Option<String>, Algorithm, DecodingKey)>, StoreError> {
    let set: JwkSet = serde_json::from_str(jwks)
        .map_err(|e| config_error(format!("issuer {issuer:?}: the JWKS is not valid: {e}")))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        // A key published for encryption is not a signing key.
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            // Other key types cannot verify RS256 / ES256 tokens.
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| {
            config_error(format!("issuer {issuer:?}: a JWKS key cannot be used: {e}"))
        })?;
        keys.push((jwk.common.key_id.clone(), algorithm, key));
    }
    if keys.is_empty() {
        return Err(config_error(format!("issuer {issuer:?}: the JWKS has no RSA or P-256 key")));
    }
    Ok(keys)
}

fn validate_role_arn(arn: &str) -> Result<&str, &'static str> {
    let parsed = parse_principal_arn(arn)?;
    let name = arn.split_once(":role/").map(|(_, name)| name).ok_or("must be a role ARN")?;
    if name.contains('/') || parsed.user_name != name {
        return Err("role paths are not supported (a session ARN does not carry them)");
    }
    Ok(parsed.account_id)
}

impl WorkloadIdentity {
    /// Parses a configuration (JSON, see the README) whose relative `jwks_file` paths are
    /// under `base_dir`.
    pub fn from_json(
        json: &str,
        base_dir: &Path,
        session_keys: SessionKeys,
    ) -> Result<Self, StoreError> {
        let file: WorkloadIdentityFile = serde_json::from_str(json)?;
        let mut issuers = Vec::with_capacity(file.issuers.len());
        let mut seen = HashSet::new();
        for entry in file.issuers {
            if entry.issuer.is_empty() || entry.audience.is_empty() {
                return Err(config_error("every issuer needs `issuer` and `audience`"));
            }
            if !seen.insert(entry.issuer.clone()) {
                return Err(config_error(format!("issuer {:?} appears twice", entry.issuer)));
            }
            let path = base_dir.join(&entry.jwks_file);
            let jwks = std::fs::read_to_string(&path)
                .map_err(|source| StoreError::Io { path: path.clone(), source })?;
            let keys = jwks_keys(&entry.issuer, &jwks)?;
            issuers.push(Issuer { issuer: entry.issuer, audience: entry.audience, keys });
        }
        if issuers.is_empty() {
            return Err(config_error("no issuer is configured"));
        }
        for role in &file.roles {
            let context = format!("role {:?}", role.role_arn);
            if let Some(issuer) = &role.issuer {
                if !seen.contains(issuer) {
                    return Err(config_error(format!(
                        "{context}: issuer {issuer:?} is not configured"
                    )));
                }
            }
            if role.namespace.is_empty() || role.service_account.is_empty() {
                return Err(config_error(format!(
                    "{context}: needs `namespace` and `service_account`"
                )));
            }
            validate_role_arn(&role.role_arn)
                .map_err(|reason| config_error(format!("{context}: {reason}")))?;
        }
        let max = file.max_session_duration_seconds;
        if !(DEFAULT_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&max) {
            return Err(config_error(
                "max_session_duration_seconds must be between 3600 and 43200",
            ));
        }
        Ok(WorkloadIdentity {
            issuers,
            roles: file.roles,
            max_session_duration_seconds: max,
            session_keys,
        })
    }

    /// Reads the configuration file.
    pub fn load(path: impl AsRef<Path>, session_keys: SessionKeys) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| StoreError::Io { path: path.to_owned(), source })?;
        Self::from_json(&text, path.parent().unwrap_or(Path::new(".")), session_keys)
    }

    /// The keys sessions are sealed with (the authenticator opens them).
    pub fn session_keys(&self) -> &SessionKeys {
        &self.session_keys
    }

    /// Verifies a service-account token: signature by a key of its issuer's JWKS (RS256
    /// or ES256), `aud`, `exp` / `nbf` against `now`, and the service account it names.
    pub fn verify_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<ServiceAccount, StsError> {
        let invalid = |m: &str| StsError::InvalidIdentityToken(m.to_owned());
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("The web identity token is not a well-formed JWT"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(invalid("The web identity token must be signed with RS256 or ES256"));
        }
        let iss = unverified_issuer(token)?;
        let issuer = self.issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| {
            StsError::InvalidIdentityToken(format!(
                "No OpenIDConnect provider found in your account for {iss}"
            ))
        })?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_audience(&[&issuer.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let candidates = issuer.keys.iter().filter(|(kid, alg, _)| {
            *alg == header.alg && (header.kid.is_none() || kid.as_deref() == header.kid.as_deref())
        });
        let mut claims = None;
        let mut failure =
            invalid("The web identity token's signing key is not in the issuer's JWKS");
        for (_, _, key) in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    failure = match e.kind() {
                        ErrorKind::InvalidAudience => invalid("Incorrect token audience"),
                        ErrorKind::InvalidSignature => {
                            invalid("The web identity token's signature does not verify")
                        }
                        ErrorKind::MissingRequiredClaim(claim) => StsError::InvalidIdentityToken(
                            format!("The web identity token has no valid '{claim}' claim"),
                        ),
                        _ => invalid("The web identity token is not valid"),
                    };
                    // Audience and claim errors are the same under every key.
                    if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                        break;
                    }
                }
            }
        }
        let claims = claims.ok_or(failure)?;
        let now_s = now.unix_timestamp();
        let exp = numeric(&claims, "exp")?
            .ok_or_else(|| invalid("The web identity token has no valid 'exp' claim"))?;
        if exp.saturating_add(LEEWAY_SECONDS) < now_s {
            return Err(StsError::ExpiredToken(format!(
                "Token expired: current date/time {now_s} must be before the expiration date/time {exp}"
            )));
        }
        if let Some(nbf) = numeric(&claims, "nbf")? {
            if nbf.saturating_sub(LEEWAY_SECONDS) > now_s {
                return Err(invalid("The web identity token is not valid yet"));
            }
        }
        let (namespace, name) = service_account_of(&claims)?;
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(ServiceAccount {
            issuer: issuer.issuer.clone(),
            subject,
            audience: issuer.audience.clone(),
            namespace,
            name,
        })
    }

    /// Whether `account` may assume `role_arn`.
    fn may_assume(&self, account: &ServiceAccount, role_arn: &str) -> bool {
        self.roles.iter().any(|b| {
            b.role_arn == role_arn
                && b.namespace == account.namespace
                && (b.service_account == "*" || b.service_account == account.name)
                && b.issuer.as_deref().is_none_or(|i| i == account.issuer)
        })
    }

    /// `AssumeRoleWithWebIdentity`: validates the parameters as STS does, verifies the
    /// token, checks the binding and issues sealed temporary credentials.
    pub fn assume_role(
        &self,
        request: &AssumeRoleRequest,
        now: OffsetDateTime,
    ) -> Result<IssuedCredentials, StsFailure> {
        let (role_arn, session_name, token, duration) = validate(request)?;
        if duration > self.max_session_duration_seconds {
            return Err(StsError::Validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                    .to_owned(),
            )
            .into());
        }
        let account = self.verify_token(token, now)?;
        // An ARN that is not a role, or a role nobody bound, is just not assumable.
        let account_id = match validate_role_arn(role_arn) {
            Ok(account_id) if self.may_assume(&account, role_arn) => account_id,
            _ => {
                return Err(StsFailure {
                    error: StsError::AccessDenied(NOT_AUTHORIZED.to_owned()),
                    caller: Some(Box::new(account)),
                })
            }
        };
        let role_name = role_arn.rsplit('/').next().unwrap_or_default();
        let (access_key_id, secret_access_key) = generate_temporary_key();
        let issued_at = now.unix_timestamp();
        let expires_at = issued_at + duration;
        let session = Session {
            access_key_id: access_key_id.clone(),
            secret_access_key: secret_access_key.clone(),
            account_id: account_id.to_owned(),
            role_arn: role_arn.to_owned(),
            session_name: session_name.to_owned(),
            issued_at,
            expires_at,
            provider: account.issuer.clone(),
            subject: account.subject.clone(),
        };
        let session_token = Zeroizing::new(self.session_keys.seal(&session).map_err(|_| {
            StsFailure { error: StsError::Internal, caller: Some(Box::new(account.clone())) }
        })?);
        Ok(IssuedCredentials {
            access_key_id,
            secret_access_key,
            session_token,
            expiration_epoch_s: expires_at,
            assumed_role_arn: assumed_role_arn(account_id, role_name, session_name),
            assumed_role_id: format!("{}:{session_name}", role_id(role_arn)),
            account_id: account_id.to_owned(),
            role_arn: role_arn.to_owned(),
            service_account: account,
        })
    }
}

pub(crate) fn assumed_role_arn(account_id: &str, role_name: &str, session_name: &str) -> String {
    format!("arn:aws:sts::{account_id}:assumed-role/{role_name}/{session_name}")
}

/// A stable role id in AWS's shape (`AROA` + 17 characters of `[A-Z2-7]`), derived from
/// the role ARN since there is no IAM here to assign one.
pub(crate) fn role_id(role_arn: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(role_arn.as_bytes());
    let mut id = String::from("AROA");
    id.extend(digest.iter().take(17).map(|b| char::from(ALPHABET[usize::from(b & 31)])));
    id
}

fn validation_error(value: &str, member: &str, constraint: &str) -> StsError {
    StsError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

fn missing(member: &str) -> StsError {
    StsError::Validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

/// The parameters, checked against STS's shapes.
fn validate(request: &AssumeRoleRequest) -> Result<(&str, &str, &str, i64), StsError> {
    let role_arn = request.role_arn.as_deref().ok_or_else(|| missing("roleArn"))?;
    let session = request.role_session_name.as_deref().ok_or_else(|| missing("roleSessionName"))?;
    let token = request.web_identity_token.as_deref().ok_or_else(|| missing("webIdentityToken"))?;
    if !(20..=2048).contains(&role_arn.len()) {
        return Err(validation_error(
            role_arn,
            "roleArn",
            "Member must have length between 20 and 2048",
        ));
    }
    if !role_arn.starts_with("arn:") {
        return Err(StsError::Validation(format!("{role_arn} is invalid")));
    }
    if !(2..=64).contains(&session.len()) {
        return Err(validation_error(
            session,
            "roleSessionName",
            "Member must have length greater than or equal to 2 and less than or equal to 64",
        ));
    }
    if !is_iam_name(session) {
        return Err(validation_error(
            session,
            "roleSessionName",
            "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
        ));
    }
    if !(4..=MAX_TOKEN_LEN).contains(&token.len()) {
        // The token itself is never echoed.
        return Err(StsError::Validation(
            "1 validation error detected: Value at 'webIdentityToken' failed to satisfy constraint: Member must have length between 4 and 20000"
                .to_owned(),
        ));
    }
    let duration = match request.duration_seconds.as_deref() {
        None => DEFAULT_DURATION_SECONDS,
        Some(text) => {
            let value: i64 = text.parse().map_err(|_| {
                validation_error(text, "durationSeconds", "Member must be a number")
            })?;
            if !(MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&value) {
                return Err(validation_error(
                    text,
                    "durationSeconds",
                    "Member must have value between 900 and 43200",
                ));
            }
            value
        }
    };
    Ok((role_arn, session, token, duration))
}

fn unverified_issuer(token: &str) -> Result<String, StsError> {
    let mut validation = Validation::default();
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let data = jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(&[]),
        &validation,
    )
    .map_err(|_| {
        StsError::InvalidIdentityToken("The web identity token is not a well-formed JWT".to_owned())
    })?;
    match data.claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        _ => Err(StsError::InvalidIdentityToken(
            "The web identity token has no 'iss' claim".to_owned(),
        )),
    }
}

fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, StsError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            StsError::InvalidIdentityToken(format!(
                "The web identity token's '{name}' claim is not an integer"
            ))
        }),
    }
}

/// `(namespace, service account)` from `sub` and/or the `kubernetes.io` claim; when both
/// are present they must agree.
fn service_account_of(claims: &Map<String, Value>) -> Result<(String, String), StsError> {
    let invalid = |m: &str| StsError::InvalidIdentityToken(m.to_owned());
    let from_sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|sub| sub.strip_prefix(SERVICE_ACCOUNT_PREFIX))
        .map(|rest| {
            rest.split_once(':')
                .filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains(':'))
                .map(|(ns, sa)| (ns.to_owned(), sa.to_owned()))
                .ok_or_else(|| invalid("The web identity token's 'sub' is not system:serviceaccount:<namespace>:<name>"))
        })
        .transpose()?;
    let from_claim = match claims.get("kubernetes.io") {
        None => None,
        Some(k8s) => {
            let ns = k8s.get("namespace").and_then(Value::as_str);
            let sa = k8s.get("serviceaccount").and_then(|s| s.get("name")).and_then(Value::as_str);
            match (ns, sa) {
                (Some(ns), Some(sa)) if !ns.is_empty() && !sa.is_empty() => {
                    Some((ns.to_owned(), sa.to_owned()))
                }
                _ => {
                    return Err(invalid(
                        "The web identity token's 'kubernetes.io' claim names no namespace and service account",
                    ))
                }
            }
        }
    };
    match (from_sub, from_claim) {
        (Some(a), Some(b)) if a != b => Err(invalid(
            "The web identity token's 'sub' and 'kubernetes.io' claims name different service accounts",
        )),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err(invalid("The web identity token is not a Kubernetes service-account token")),
    }
}

#[cfg(test)]
mod tests;
