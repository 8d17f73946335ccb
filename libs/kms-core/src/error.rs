//! The closed set of errors a KMS caller can see, with AWS's names and HTTP statuses.
//! Every failure anywhere in the system is reduced to one of these by an exhaustive match.

use std::fmt;

/// An AWS KMS error code. The gateway renders it as `{"__type": <aws_name>, ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Internal,
    NotFound,
    AlreadyExists,
    Validation,
    InvalidCiphertext,
    IncorrectKey,
    Disabled,
    InvalidState,
    LimitExceeded,
    MalformedPolicyDocument,
    InvalidAliasName,
    InvalidArn,
    Tag,
    InvalidMarker,
    DependencyTimeout,
    AccessDenied,
    InvalidKeyUsage,
    UnsupportedOperation,
    NotAuthorized,
    IncorrectKeyMaterial,
    InvalidImportToken,
    ExpiredImportToken,
    InvalidMac,
    InvalidSignature,
    InvalidGrantToken,
    InvalidGrantId,
    DryRunOperation,
    UnknownOperation,
    Serialization,
}

impl ErrorCode {
    /// The `__type` AWS SDKs match on.
    pub fn aws_name(self) -> &'static str {
        match self {
            Self::Internal => "KMSInternalException",
            Self::NotFound => "NotFoundException",
            Self::AlreadyExists => "AlreadyExistsException",
            Self::Validation => "ValidationException",
            Self::InvalidCiphertext => "InvalidCiphertextException",
            Self::IncorrectKey => "IncorrectKeyException",
            Self::Disabled => "DisabledException",
            Self::InvalidState => "KMSInvalidStateException",
            Self::LimitExceeded => "LimitExceededException",
            Self::MalformedPolicyDocument => "MalformedPolicyDocumentException",
            Self::InvalidAliasName => "InvalidAliasNameException",
            Self::InvalidArn => "InvalidArnException",
            Self::Tag => "TagException",
            Self::InvalidMarker => "InvalidMarkerException",
            Self::DependencyTimeout => "DependencyTimeoutException",
            Self::AccessDenied => "AccessDeniedException",
            Self::InvalidKeyUsage => "InvalidKeyUsageException",
            Self::UnsupportedOperation => "UnsupportedOperationException",
            Self::NotAuthorized => "NotAuthorizedException",
            Self::IncorrectKeyMaterial => "IncorrectKeyMaterialException",
            Self::InvalidImportToken => "InvalidImportTokenException",
            Self::ExpiredImportToken => "ExpiredImportTokenException",
            Self::InvalidMac => "KMSInvalidMacException",
            Self::InvalidSignature => "KMSInvalidSignatureException",
            Self::InvalidGrantToken => "InvalidGrantTokenException",
            Self::InvalidGrantId => "InvalidGrantIdException",
            Self::DryRunOperation => "DryRunOperationException",
            Self::UnknownOperation => "UnknownOperationException",
            Self::Serialization => "SerializationException",
        }
    }

    /// The HTTP status AWS answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Internal => 500,
            Self::DependencyTimeout => 503,
            _ => 400,
        }
    }

    /// Whether a client may retry the same request and expect it to work.
    pub fn is_retriable(self) -> bool {
        matches!(self, Self::Internal | Self::DependencyTimeout)
    }
}

/// An error with the code the caller sees and a message safe to show them. Messages
/// never contain plaintext, key material or data keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsError {
    pub code: ErrorCode,
    pub message: String,
}

pub type KmsResult<T> = Result<T, KmsError>;

impl KmsError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "An internal error occurred. Retry the request.")
    }
    pub fn invalid_ciphertext() -> Self {
        Self::new(ErrorCode::InvalidCiphertext, "")
    }
    /// The message AWS uses for a key id that does not exist in the caller's account
    /// and region: it reveals nothing about other tenants.
    pub fn key_not_found(key_arn_or_ref: &str) -> Self {
        Self::not_found(format!("Key '{key_arn_or_ref}' does not exist"))
    }
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.aws_name(), self.message)
    }
}

impl std::error::Error for KmsError {}
