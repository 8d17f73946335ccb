//! Domain error codes to and from the wire enum, by exhaustive match in both directions.

use kms_core::{ErrorCode, KmsError};
use kms_proto::v1::{ErrorCode as Wire, ServiceError};

pub fn error_to_wire(err: &KmsError) -> ServiceError {
    let code = match err.code {
        ErrorCode::Internal => Wire::Internal,
        ErrorCode::NotFound => Wire::NotFound,
        ErrorCode::AlreadyExists => Wire::AlreadyExists,
        ErrorCode::Validation => Wire::Validation,
        ErrorCode::InvalidCiphertext => Wire::InvalidCiphertext,
        ErrorCode::IncorrectKey => Wire::IncorrectKey,
        ErrorCode::Disabled => Wire::Disabled,
        ErrorCode::InvalidState => Wire::InvalidState,
        ErrorCode::LimitExceeded => Wire::LimitExceeded,
        ErrorCode::MalformedPolicyDocument => Wire::MalformedPolicyDocument,
        ErrorCode::InvalidAliasName => Wire::InvalidAliasName,
        ErrorCode::InvalidArn => Wire::InvalidArn,
        ErrorCode::Tag => Wire::Tag,
        ErrorCode::InvalidMarker => Wire::InvalidMarker,
        ErrorCode::DependencyTimeout => Wire::DependencyTimeout,
        ErrorCode::AccessDenied => Wire::AccessDenied,
        ErrorCode::InvalidKeyUsage => Wire::InvalidKeyUsage,
        ErrorCode::UnsupportedOperation => Wire::UnsupportedOperation,
        ErrorCode::NotAuthorized => Wire::NotAuthorized,
        ErrorCode::IncorrectKeyMaterial => Wire::IncorrectKeyMaterial,
        ErrorCode::InvalidImportToken => Wire::InvalidImportToken,
        ErrorCode::ExpiredImportToken => Wire::ExpiredImportToken,
        ErrorCode::InvalidMac => Wire::InvalidMac,
        ErrorCode::InvalidSignature => Wire::InvalidSignature,
        ErrorCode::InvalidGrantToken => Wire::InvalidGrantToken,
        ErrorCode::InvalidGrantId => Wire::InvalidGrantId,
        ErrorCode::DryRunOperation => Wire::DryRunOperation,
        // Protocol-level codes are the gateway's own; a service never sends them.
        ErrorCode::UnknownOperation | ErrorCode::Serialization => Wire::Internal,
    };
    ServiceError { code: code.into(), message: err.message.clone() }
}

pub fn error_from_wire(err: ServiceError) -> KmsError {
    let code = match Wire::try_from(err.code).unwrap_or(Wire::Unspecified) {
        Wire::Unspecified | Wire::Internal => ErrorCode::Internal,
        Wire::NotFound => ErrorCode::NotFound,
        Wire::AlreadyExists => ErrorCode::AlreadyExists,
        Wire::Validation => ErrorCode::Validation,
        Wire::InvalidCiphertext => ErrorCode::InvalidCiphertext,
        Wire::IncorrectKey => ErrorCode::IncorrectKey,
        Wire::Disabled => ErrorCode::Disabled,
        Wire::InvalidState => ErrorCode::InvalidState,
        Wire::LimitExceeded => ErrorCode::LimitExceeded,
        Wire::MalformedPolicyDocument => ErrorCode::MalformedPolicyDocument,
        Wire::InvalidAliasName => ErrorCode::InvalidAliasName,
        Wire::InvalidArn => ErrorCode::InvalidArn,
        Wire::Tag => ErrorCode::Tag,
        Wire::InvalidMarker => ErrorCode::InvalidMarker,
        Wire::DependencyTimeout => ErrorCode::DependencyTimeout,
        Wire::AccessDenied => ErrorCode::AccessDenied,
        Wire::InvalidKeyUsage => ErrorCode::InvalidKeyUsage,
        Wire::UnsupportedOperation => ErrorCode::UnsupportedOperation,
        Wire::NotAuthorized => ErrorCode::NotAuthorized,
        Wire::IncorrectKeyMaterial => ErrorCode::IncorrectKeyMaterial,
        Wire::InvalidImportToken => ErrorCode::InvalidImportToken,
        Wire::ExpiredImportToken => ErrorCode::ExpiredImportToken,
        Wire::InvalidMac => ErrorCode::InvalidMac,
        Wire::InvalidSignature => ErrorCode::InvalidSignature,
        Wire::InvalidGrantToken => ErrorCode::InvalidGrantToken,
        Wire::InvalidGrantId => ErrorCode::InvalidGrantId,
        Wire::DryRunOperation => ErrorCode::DryRunOperation,
    };
    if code == ErrorCode::Internal {
        // Internal details never leave through the gateway.
        return KmsError::internal();
    }
    KmsError::new(code, err.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_survive_the_wire() {
        let codes = [
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::Validation,
            ErrorCode::InvalidCiphertext,
            ErrorCode::IncorrectKey,
            ErrorCode::Disabled,
            ErrorCode::InvalidState,
            ErrorCode::LimitExceeded,
            ErrorCode::MalformedPolicyDocument,
            ErrorCode::InvalidAliasName,
            ErrorCode::InvalidArn,
            ErrorCode::Tag,
            ErrorCode::InvalidMarker,
            ErrorCode::DependencyTimeout,
            ErrorCode::AccessDenied,
            ErrorCode::InvalidKeyUsage,
            ErrorCode::UnsupportedOperation,
            ErrorCode::NotAuthorized,
            ErrorCode::IncorrectKeyMaterial,
            ErrorCode::InvalidImportToken,
            ErrorCode::ExpiredImportToken,
            ErrorCode::InvalidMac,
            ErrorCode::InvalidSignature,
            ErrorCode::InvalidGrantToken,
            ErrorCode::InvalidGrantId,
            ErrorCode::DryRunOperation,
        ];
        for code in codes {
            let back = error_from_wire(error_to_wire(&KmsError::new(code, "m")));
            assert_eq!((back.code, back.message.as_str()), (code, "m"));
        }
        let internal =
            error_from_wire(error_to_wire(&KmsError::new(ErrorCode::Internal, "sled broke")));
        assert_eq!(internal, KmsError::internal());
    }
}
