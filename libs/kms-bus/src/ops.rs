//! The typed catalogue of bus operations: each names its subject and its request and
//! response messages, so a call site cannot pair the wrong messages with a subject.

use prost::Message;

/// One request/reply operation of a service.
pub trait Operation {
    /// The service that answers (`kms.v1.<SERVICE>.<NAME>`).
    const SERVICE: &'static str;
    const NAME: &'static str;
    type Request: Message + Default + Send + 'static;
    type Response: Message + Default + Send + 'static;

    fn subject() -> String {
        format!("kms.v1.{}.{}", Self::SERVICE, Self::NAME)
    }
}

macro_rules! operations {
    ($service:literal => $( $name:ident($req:ident) -> $resp:ident; )+) => {
        $(
            #[doc = concat!("`kms.v1.", $service, ".", stringify!($name), "`")]
            pub struct $name;
            impl crate::Operation for $name {
                const SERVICE: &'static str = $service;
                const NAME: &'static str = stringify!($name);
                type Request = kms_proto::v1::$req;
                type Response = kms_proto::v1::$resp;
            }
        )+
    };
}

pub mod metadata {
    //! Operations of the metadata service.
    operations!("metadata" =>
        CreateKey(CreateKeyRequest) -> KeyResponse;
        ResolveKey(ResolveKeyRequest) -> KeyResponse;
        ListKeys(ListKeysRequest) -> ListKeysResponse;
        ChangeKeyState(ChangeKeyStateRequest) -> KeyResponse;
        UpdateDescription(UpdateDescriptionRequest) -> KeyResponse;
        CreateAlias(AliasRequest) -> AliasResponse;
        UpdateAlias(AliasRequest) -> AliasResponse;
        DeleteAlias(AliasRequest) -> AliasResponse;
        ListAliases(ListAliasesRequest) -> ListAliasesResponse;
        TagResource(TagResourceRequest) -> Empty;
        UntagResource(UntagResourceRequest) -> Empty;
        ListResourceTags(ListTagsRequest) -> ListTagsResponse;
        SetKeyRotation(SetKeyRotationRequest) -> KeyResponse;
        RecordRotation(RecordRotationRequest) -> KeyResponse;
        SetImportedMaterial(SetImportedMaterialRequest) -> KeyResponse;
    );
}

pub mod crypto {
    //! Operations of the crypto service.
    operations!("crypto" =>
        CreateMaterial(CreateMaterialRequest) -> CreateMaterialResponse;
        Encrypt(EncryptRequest) -> EncryptResponse;
        Decrypt(DecryptRequest) -> DecryptResponse;
        ReEncrypt(ReEncryptRequest) -> ReEncryptResponse;
        GenerateDataKey(GenerateDataKeyRequest) -> GenerateDataKeyResponse;
        GenerateRandom(GenerateRandomRequest) -> GenerateRandomResponse;
        DestroyMaterial(DestroyMaterialRequest) -> DestroyMaterialResponse;
        GetImportParameters(GetImportParametersRequest) -> GetImportParametersResponse;
        ImportMaterial(ImportMaterialRequest) -> ImportMaterialResponse;
        DeleteImportedMaterial(DeleteImportedMaterialRequest) -> DeleteImportedMaterialResponse;
        GenerateMac(GenerateMacRequest) -> GenerateMacResponse;
        VerifyMac(VerifyMacRequest) -> VerifyMacResponse;
        Sign(SignRequest) -> SignResponse;
        Verify(VerifyRequest) -> VerifyResponse;
        GetPublicKey(GetPublicKeyRequest) -> GetPublicKeyResponse;
        AsymEncrypt(AsymEncryptRequest) -> AsymEncryptResponse;
        AsymDecrypt(AsymDecryptRequest) -> AsymDecryptResponse;
        GenerateDataKeyPair(GenerateDataKeyPairRequest) -> GenerateDataKeyPairResponse;
        DeriveSharedSecret(DeriveSharedSecretRequest) -> DeriveSharedSecretResponse;
    );
}

pub mod policy {
    //! Operations of the policy service.
    operations!("policy" =>
        PutPolicy(PutPolicyRequest) -> PolicyResponse;
        GetPolicy(GetPolicyRequest) -> PolicyResponse;
        ListPolicies(ListPoliciesRequest) -> ListPoliciesResponse;
        DeletePolicies(DeletePoliciesRequest) -> DeletePoliciesResponse;
        Authorize(AuthorizeRequest) -> AuthorizeResponse;
        CreateGrant(CreateGrantRequest) -> CreateGrantResponse;
        ListGrants(ListGrantsRequest) -> ListGrantsResponse;
        ListRetirableGrants(ListRetirableGrantsRequest) -> ListGrantsResponse;
        RetireGrant(RetireGrantRequest) -> GrantRemovedResponse;
        RevokeGrant(RevokeGrantRequest) -> GrantRemovedResponse;
        PutIdentityPolicy(PutIdentityPolicyRequest) -> IdentityPolicyResponse;
        GetIdentityPolicy(IdentityPolicyRef) -> IdentityPolicyResponse;
        DeleteIdentityPolicy(IdentityPolicyRef) -> IdentityPolicyResponse;
        ListIdentityPolicies(ListIdentityPoliciesRequest) -> ListIdentityPoliciesResponse;
    );
}

pub mod audit {
    //! Queries of the audit service.
    operations!("audit" =>
        LookupEvents(LookupEventsRequest) -> LookupEventsResponse;
        WriteDigests(WriteDigestsRequest) -> WriteDigestsResponse;
        GetDigestPublicKeys(GetDigestPublicKeysRequest) -> GetDigestPublicKeysResponse;
    );
}
