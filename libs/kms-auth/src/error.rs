//! Authentication failures with their AWS error codes, and credential-store errors.
//!
//! No message built here ever contains a secret: not a secret access key, an HMAC secret,
//! a derived signing key, a computed signature nor a bearer token.

use std::path::PathBuf;

use crate::identity::Identity;

/// The AWS message for a signature that does not verify.
pub(crate) const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// Why a request was not authenticated, in AWS's terms.
///
/// `Display` (and [`AuthError::message`]) is the AWS-style message to put in the response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header at all.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The `Authorization` header (or the date header it needs) is malformed or incomplete.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The SigV4 signature does not verify, or the request is outside the 5-minute window.
    #[error("{0}")]
    InvalidSignature(String),
    /// The access key id (or the JWT issuer) is unknown.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// The JWT bearer token has expired.
    #[error("{0}")]
    ExpiredToken(String),
    /// The JWT bearer token is not acceptable (bad signature, audience, claims...).
    /// The string says which check failed; it never contains the token.
    #[error("The security token included in the request is invalid: {0}")]
    InvalidToken(String),
}

impl AuthError {
    /// The AWS error code, rendered by the gateway as `__type`.
    pub fn aws_code(&self) -> &'static str {
        match self {
            AuthError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            AuthError::IncompleteSignature(_) => "IncompleteSignatureException",
            AuthError::InvalidSignature(_) => "InvalidSignatureException",
            AuthError::UnrecognizedClient | AuthError::InvalidToken(_) => {
                "UnrecognizedClientException"
            }
            AuthError::ExpiredToken(_) => "ExpiredTokenException",
        }
    }

    /// The HTTP status AWS uses for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::MissingAuthenticationToken => 403,
            AuthError::IncompleteSignature(_)
            | AuthError::InvalidSignature(_)
            | AuthError::UnrecognizedClient
            | AuthError::ExpiredToken(_)
            | AuthError::InvalidToken(_) => 400,
        }
    }

    /// The AWS-style message for the response body. Never contains a secret.
    pub fn message(&self) -> String {
        self.to_string()
    }

    pub(crate) fn signature_mismatch() -> Self {
        AuthError::InvalidSignature(SIGNATURE_MISMATCH.to_owned())
    }
}

/// A refused request: the error, and who the caller claimed to be when that is known.
///
/// The identity is boxed to keep `Result<Identity, AuthFailure>` small.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct AuthFailure {
    /// Why the request was refused.
    pub error: AuthError,
    /// Who it was, when known: the owner of a known access key whose signature failed or
    /// whose request was stale, or the subject of a correctly signed but expired JWT.
    /// This is for audit records only; it was NOT authenticated.
    pub identity: Option<Box<Identity>>,
}

impl AuthFailure {
    pub(crate) fn anonymous(error: AuthError) -> Self {
        AuthFailure { error, identity: None }
    }
}

impl From<AuthError> for AuthFailure {
    fn from(error: AuthError) -> Self {
        AuthFailure::anonymous(error)
    }
}

/// Why a credentials store could not be loaded, built or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The credentials file could not be read or written.
    #[error("credentials file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The credentials file is not JSON of the expected shape.
    #[error("credentials file is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// An account id is not 12 digits.
    #[error("{context}: account id must be 12 digits")]
    InvalidAccountId {
        /// Which entry (an access key id or an issuer, never a secret).
        context: String,
    },
    /// A principal ARN is malformed or names another account.
    #[error("{context}: principal ARN {arn:?} is invalid: {reason}")]
    InvalidPrincipalArn {
        /// Which entry.
        context: String,
        /// The offending ARN.
        arn: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An access key entry is malformed.
    #[error("access key {access_key_id:?}: {reason}")]
    InvalidAccessKey {
        /// The access key id.
        access_key_id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same access key id appears twice.
    #[error("access key {0:?} appears more than once")]
    DuplicateAccessKey(String),
    /// A JWT issuer entry is malformed or its key cannot be parsed.
    #[error("JWT issuer {issuer:?}: {reason}")]
    InvalidIssuer {
        /// The issuer.
        issuer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The same JWT issuer appears twice.
    #[error("JWT issuer {0:?} appears more than once")]
    DuplicateIssuer(String),
    /// The session key file is malformed (the message never contains key bytes).
    #[error("session key file: {0}")]
    InvalidSessionKey(String),
    /// The workload identity configuration is malformed.
    #[error("workload identity configuration: {0}")]
    InvalidWorkloadIdentity(String),
}
