//! Condition operators one table row at a time: each row is a Condition block, the
//! request details, and whether the block holds.

use super::*;

/// A single statement allowing everything to everyone under `condition`.
fn with_condition(condition: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Sid":"C","Effect":"Allow","Principal":"*",
        "Action":"kms:*","Resource":"*","Condition":{condition}}}}}"#
    )
}

fn holds(rows: &[(&str, Extra, bool)]) {
    for (i, (condition, extra, want)) in rows.iter().enumerate() {
        let policy = parse(&with_condition(condition), PolicyKind::Key);
        let ctx = extra(call(&user(ACCT, "alice"), "kms:Decrypt")).build();
        let got = matches!(evaluate_policy(&policy, &ctx), Decision::Allow { .. });
        assert_eq!(got, *want, "row {i}: {condition}");
    }
}

#[test]
fn string_operators() {
    holds(&[
        (
            r#"{"StringEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}"#,
            |b| b.condition("kms:ViaService", "s3.us-east-1.amazonaws.com"),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}"#,
            |b| b.condition("kms:ViaService", "S3.us-east-1.amazonaws.com"),
            false,
        ),
        (
            r#"{"StringEquals":{"kms:ViaService":"s3.*.amazonaws.com"}}"#,
            |b| b.condition("kms:ViaService", "s3.us-east-1.amazonaws.com"),
            false,
        ),
        (
            r#"{"StringEquals":{"kms:ViaService":["a","b"]}}"#,
            |b| b.condition("kms:ViaService", "b"),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:ViaService":["a","b"]}}"#,
            |b| b.condition("kms:ViaService", "c"),
            false,
        ),
        (r#"{"StringEquals":{"kms:ViaService":"a"}}"#, plain, false),
        // Key names are case-insensitive.
        (
            r#"{"StringEquals":{"KMS:VIASERVICE":"a"}}"#,
            |b| b.condition("kms:viaservice", "a"),
            true,
        ),
        (
            r#"{"StringNotEquals":{"kms:ViaService":"a"}}"#,
            |b| b.condition("kms:ViaService", "b"),
            true,
        ),
        (
            r#"{"StringNotEquals":{"kms:ViaService":"a"}}"#,
            |b| b.condition("kms:ViaService", "a"),
            false,
        ),
        // Negated operators with several values are NOR.
        (
            r#"{"StringNotEquals":{"kms:ViaService":["a","b"]}}"#,
            |b| b.condition("kms:ViaService", "b"),
            false,
        ),
        (
            r#"{"StringNotEquals":{"kms:ViaService":["a","b"]}}"#,
            |b| b.condition("kms:ViaService", "c"),
            true,
        ),
        // A negated operator on a missing key holds.
        (r#"{"StringNotEquals":{"kms:ViaService":"a"}}"#, plain, true),
        (
            r#"{"StringEqualsIgnoreCase":{"kms:KeySpec":"symmetric_default"}}"#,
            |b| b.condition("kms:KeySpec", "SYMMETRIC_DEFAULT"),
            true,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"kms:KeySpec":"rsa_2048"}}"#,
            |b| b.condition("kms:KeySpec", "SYMMETRIC_DEFAULT"),
            false,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"kms:KeyUsage":"sign_verify"}}"#,
            |b| b.condition("kms:KeyUsage", "SIGN_VERIFY"),
            false,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"kms:KeyUsage":"sign_verify"}}"#,
            |b| b.condition("kms:KeyUsage", "ENCRYPT_DECRYPT"),
            true,
        ),
        (
            r#"{"StringLike":{"kms:RequestAlias":"alias/app-*"}}"#,
            |b| b.condition("kms:RequestAlias", "alias/app-prod"),
            true,
        ),
        (
            r#"{"StringLike":{"kms:RequestAlias":"alias/app-*"}}"#,
            |b| b.condition("kms:RequestAlias", "alias/other"),
            false,
        ),
        (
            r#"{"StringLike":{"kms:RequestAlias":"alias/app-??"}}"#,
            |b| b.condition("kms:RequestAlias", "alias/app-01"),
            true,
        ),
        (
            r#"{"StringLike":{"kms:RequestAlias":"alias/app-??"}}"#,
            |b| b.condition("kms:RequestAlias", "alias/app-001"),
            false,
        ),
        (
            r#"{"StringLike":{"kms:RequestAlias":"alias/App-*"}}"#,
            |b| b.condition("kms:RequestAlias", "alias/app-1"),
            false,
        ),
        (
            r#"{"StringNotLike":{"kms:RequestAlias":"alias/test-*"}}"#,
            |b| b.condition("kms:RequestAlias", "alias/prod"),
            true,
        ),
        (
            r#"{"StringNotLike":{"kms:RequestAlias":"alias/test-*"}}"#,
            |b| b.condition("kms:RequestAlias", "alias/test-1"),
            false,
        ),
        (r#"{"StringNotLike":{"kms:RequestAlias":"alias/test-*"}}"#, plain, true),
        (
            r#"{"StringEquals":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}"#,
            |b| b.condition("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT"),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:KeyOrigin":"AWS_KMS"}}"#,
            |b| b.condition("kms:KeyOrigin", "EXTERNAL"),
            false,
        ),
        // Multiple keys are AND'ed, multiple operators too.
        (
            r#"{"StringEquals":{"kms:KeySpec":"SYMMETRIC_DEFAULT","kms:KeyUsage":"ENCRYPT_DECRYPT"}}"#,
            |b| {
                b.condition("kms:KeySpec", "SYMMETRIC_DEFAULT")
                    .condition("kms:KeyUsage", "ENCRYPT_DECRYPT")
            },
            true,
        ),
        (
            r#"{"StringEquals":{"kms:KeySpec":"SYMMETRIC_DEFAULT","kms:KeyUsage":"ENCRYPT_DECRYPT"}}"#,
            |b| b.condition("kms:KeySpec", "SYMMETRIC_DEFAULT"),
            false,
        ),
        (
            r#"{"StringEquals":{"kms:KeySpec":"SYMMETRIC_DEFAULT"},"StringLike":{"kms:RequestAlias":"alias/x*"}}"#,
            |b| {
                b.condition("kms:KeySpec", "SYMMETRIC_DEFAULT")
                    .condition("kms:RequestAlias", "alias/y")
            },
            false,
        ),
        (
            r#"{"StringEquals":{"kms:KeySpec":"SYMMETRIC_DEFAULT"},"StringLike":{"kms:RequestAlias":"alias/x*"}}"#,
            |b| {
                b.condition("kms:KeySpec", "SYMMETRIC_DEFAULT")
                    .condition("kms:RequestAlias", "alias/x1")
            },
            true,
        ),
        // Tags.
        (
            r#"{"StringEquals":{"aws:ResourceTag/Project":"Alpha"}}"#,
            |b| b.resource_tag("Project", "Alpha"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:resourcetag/project":"Alpha"}}"#,
            |b| b.resource_tag("Project", "Alpha"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:RequestTag/Env":"prod"}}"#,
            |b| b.request_tag("Env", "dev"),
            false,
        ),
        (
            r#"{"StringEquals":{"aws:PrincipalTag/team":"crypto"}}"#,
            |b| b.principal_tag("team", "crypto"),
            true,
        ),
        (r#"{"StringEquals":{"kms:CallerAccount":"123456789012"}}"#, plain, true),
        (r#"{"StringEquals":{"kms:CallerAccount":"999999999999"}}"#, plain, false),
        (
            r#"{"StringEquals":{"aws:PrincipalAccount":"123456789012","aws:PrincipalType":"User","aws:username":"alice"}}"#,
            plain,
            true,
        ),
        (
            r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/alice"}}"#,
            plain,
            true,
        ),
    ]);
}

#[test]
fn numeric_date_bool_null_binary() {
    holds(&[
        (r#"{"NumericEquals":{"kms:Size":"10"}}"#, |b| b.condition("kms:Size", "10"), true),
        (r#"{"NumericEquals":{"kms:Size":10}}"#, |b| b.condition("kms:Size", "10.0"), true),
        (r#"{"NumericEquals":{"kms:Size":"10"}}"#, |b| b.condition("kms:Size", "11"), false),
        (r#"{"NumericEquals":{"kms:Size":"10"}}"#, |b| b.condition("kms:Size", "ten"), false),
        (r#"{"NumericNotEquals":{"kms:Size":"10"}}"#, |b| b.condition("kms:Size", "11"), true),
        (r#"{"NumericNotEquals":{"kms:Size":"10"}}"#, plain, true),
        (r#"{"NumericLessThan":{"kms:Size":"10"}}"#, |b| b.condition("kms:Size", "9"), true),
        (r#"{"NumericLessThan":{"kms:Size":"10"}}"#, |b| b.condition("kms:Size", "10"), false),
        (r#"{"NumericLessThanEquals":{"kms:Size":"10"}}"#, |b| b.condition("kms:Size", "10"), true),
        (r#"{"NumericGreaterThan":{"kms:Size":"10"}}"#, |b| b.condition("kms:Size", "10.5"), true),
        (r#"{"NumericGreaterThan":{"kms:Size":"-1"}}"#, |b| b.condition("kms:Size", "-2"), false),
        (
            r#"{"NumericGreaterThanEquals":{"kms:Size":["100","10"]}}"#,
            |b| b.condition("kms:Size", "50"),
            true,
        ),
        (r#"{"NumericLessThan":{"kms:Size":"10"}}"#, plain, false),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#, plain, true),
        (r#"{"DateLessThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#, plain, false),
        (r#"{"DateLessThan":{"aws:CurrentTime":"2024-06-01T12:00:01Z"}}"#, plain, true),
        (r#"{"DateLessThanEquals":{"aws:CurrentTime":"2024-06-01T12:00:00Z"}}"#, plain, true),
        (r#"{"DateEquals":{"aws:CurrentTime":"2024-06-01T14:00:00+02:00"}}"#, plain, true),
        (r#"{"DateEquals":{"aws:CurrentTime":"1717243200"}}"#, plain, true),
        (r#"{"DateNotEquals":{"aws:CurrentTime":"1717243200"}}"#, plain, false),
        (r#"{"DateGreaterThanEquals":{"aws:EpochTime":"2024-06-01"}}"#, plain, true),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":1893456000}}"#, plain, false),
        (r#"{"DateGreaterThan":{"aws:TokenIssueTime":"2020-01-01T00:00:00Z"}}"#, plain, false),
        (
            r#"{"DateLessThan":{"kms:ValidTo":"2030-01-01"}}"#,
            |b| b.condition("kms:ValidTo", "2029-12-31T23:59:59Z"),
            true,
        ),
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, |b| b.secure_transport(true), true),
        (r#"{"Bool":{"aws:SecureTransport":true}}"#, |b| b.secure_transport(true), true),
        (r#"{"Bool":{"aws:SecureTransport":"false"}}"#, |b| b.secure_transport(true), false),
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, plain, false),
        (
            r#"{"Bool":{"kms:GrantIsForAWSResource":"true"}}"#,
            |b| b.condition("kms:GrantIsForAWSResource", "yes"),
            false,
        ),
        (r#"{"BoolIfExists":{"aws:SecureTransport":"true"}}"#, plain, true),
        (
            r#"{"BoolIfExists":{"aws:SecureTransport":"true"}}"#,
            |b| b.secure_transport(false),
            false,
        ),
        (r#"{"Null":{"kms:ViaService":"true"}}"#, plain, true),
        (r#"{"Null":{"kms:ViaService":"true"}}"#, |b| b.condition("kms:ViaService", "x"), false),
        (r#"{"Null":{"kms:ViaService":"false"}}"#, |b| b.condition("kms:ViaService", "x"), true),
        (r#"{"Null":{"kms:ViaService":false}}"#, plain, false),
        (
            r#"{"Null":{"aws:TagKeys":"true"}}"#,
            |b| b.condition_values("aws:TagKeys", Vec::<String>::new()),
            true,
        ),
        (
            r#"{"Null":{"kms:EncryptionContextKeys":"false"}}"#,
            |b| b.encryption_context([("a", "b")]),
            true,
        ),
        (
            r#"{"Null":{"kms:EncryptionContext:Dept":"false"}}"#,
            |b| b.encryption_context([("dept", "b")]),
            false,
        ),
        (
            r#"{"BinaryEquals":{"kms:Blob":"QmluYXJ5VmFsdWU="}}"#,
            |b| b.condition("kms:Blob", "QmluYXJ5VmFsdWU="),
            true,
        ),
        (
            r#"{"BinaryEquals":{"kms:Blob":"QmluYXJ5VmFsdWU="}}"#,
            |b| b.condition("kms:Blob", "QmluYXJ5VmFsdWU"),
            true,
        ),
        (
            r#"{"BinaryEquals":{"kms:Blob":"QmluYXJ5VmFsdWU="}}"#,
            |b| b.condition("kms:Blob", "T3RoZXI="),
            false,
        ),
        (r#"{"BinaryEqualsIfExists":{"kms:Blob":"QQ=="}}"#, plain, true),
    ]);
}

#[test]
fn ip_and_arn_operators() {
    holds(&[
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            |b| b.source_ip("203.0.113.77"),
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            |b| b.source_ip("203.0.112.77"),
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","203.0.113.0/24"]}}"#,
            |b| b.source_ip("10.200.0.1"),
            true,
        ),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.9"}}"#, |b| b.source_ip("203.0.113.9"), true),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.9/32"}}"#,
            |b| b.source_ip("203.0.113.10"),
            false,
        ),
        (r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, |b| b.source_ip("198.51.100.1"), true),
        (r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, |b| b.source_ip("2001:db8::1"), false),
        (
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8:1234::/48"}}"#,
            |b| b.source_ip("2001:db8:1234:ffff::1"),
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8:1234::/48"}}"#,
            |b| b.source_ip("2001:db8:1235::1"),
            false,
        ),
        (r#"{"IpAddress":{"aws:SourceIp":"2001:DB8::/32"}}"#, |b| b.source_ip("2001:db8::5"), true),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, |b| b.source_ip("not-an-ip"), false),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, plain, false),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            |b| b.source_ip("198.51.100.1"),
            true,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            |b| b.source_ip("203.0.113.1"),
            false,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:db8::/32"]}}"#,
            |b| b.source_ip("2001:db8::1"),
            false,
        ),
        (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, plain, true),
        (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/ali*"}}"#, plain, true),
        (r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}}"#, plain, false),
        (r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/*"}}"#, plain, true),
        (
            r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/ALICE"}}"#,
            plain,
            false,
        ),
        (
            r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/admin-*"}}"#,
            plain,
            true,
        ),
        (
            r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/alice"}}"#,
            plain,
            false,
        ),
        (r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:s3:::bucket"}}"#, plain, true),
        (
            r#"{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::bucket*"}}"#,
            |b| b.condition("aws:SourceArn", "arn:aws:s3:::bucket-logs"),
            true,
        ),
        (
            r#"{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::bucket*"}}"#,
            |b| b.condition("aws:SourceArn", "bucket-logs"),
            false,
        ),
        (r#"{"ArnLikeIfExists":{"aws:SourceArn":"arn:aws:s3:::bucket*"}}"#, plain, true),
    ]);
}

#[test]
fn set_qualifiers() {
    fn keys_ab(b: RequestContextBuilder) -> RequestContextBuilder {
        b.encryption_context([("a", "1"), ("b", "2")])
    }
    fn keys_ac(b: RequestContextBuilder) -> RequestContextBuilder {
        b.encryption_context([("a", "1"), ("c", "3")])
    }
    fn keys_empty(b: RequestContextBuilder) -> RequestContextBuilder {
        b.encryption_context(Vec::<(String, String)>::new())
    }
    let all = r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["a","b"]}}"#;
    let any = r#"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":["b","z"]}}"#;
    let all_not = r#"{"ForAllValues:StringNotEquals":{"kms:EncryptionContextKeys":["secret"]}}"#;
    let any_not = r#"{"ForAnyValue:StringNotEquals":{"kms:EncryptionContextKeys":["a"]}}"#;
    let all_if = r#"{"ForAllValues:StringEqualsIfExists":{"kms:EncryptionContextKeys":["a"]}}"#;
    let any_if = r#"{"ForAnyValue:StringEqualsIfExists":{"kms:EncryptionContextKeys":["a"]}}"#;
    let any_like = r#"{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/finance-*"}}"#;
    let all_like = r#"{"ForAllValues:StringLike":{"kms:GrantOperations":["Decrypt","Encrypt","GenerateDataKey*"]}}"#;
    holds(&[
        (all, keys_ab, true),
        (all, keys_ac, false),
        (all, plain, true),
        (all, keys_empty, true),
        (any, keys_ab, true),
        (any, keys_ac, false),
        (any, plain, false),
        (any, keys_empty, false),
        (all_not, keys_ab, true),
        (all_not, |b| b.encryption_context([("a", "1"), ("secret", "2")]), false),
        (all_not, plain, true),
        (any_not, keys_ab, true),
        (any_not, |b| b.encryption_context([("a", "1")]), false),
        (any_not, plain, false),
        (all_if, plain, true),
        (any_if, plain, false),
        (any_if, keys_ac, true),
        (
            any_like,
            |b| b.condition_values("kms:ResourceAliases", ["alias/x", "alias/finance-prod"]),
            true,
        ),
        (any_like, |b| b.condition_values("kms:ResourceAliases", ["alias/x"]), false),
        (any_like, |b| b.condition_values("kms:ResourceAliases", Vec::<String>::new()), false),
        (
            all_like,
            |b| {
                b.condition_values(
                    "kms:GrantOperations",
                    ["Decrypt", "GenerateDataKeyWithoutPlaintext"],
                )
            },
            true,
        ),
        (
            all_like,
            |b| b.condition_values("kms:GrantOperations", ["Decrypt", "RetireGrant"]),
            false,
        ),
        (all_like, plain, true),
        // Without a qualifier a multi-valued key passes if any value matches...
        (
            r#"{"StringEquals":{"aws:TagKeys":"Env"}}"#,
            |b| b.request_tag("Owner", "x").request_tag("Env", "y"),
            true,
        ),
        // ... and a negated operator fails if any value matches.
        (
            r#"{"StringNotEquals":{"aws:TagKeys":"Env"}}"#,
            |b| b.request_tag("Owner", "x").request_tag("Env", "y"),
            false,
        ),
        (r#"{"StringNotEquals":{"aws:TagKeys":"Env"}}"#, |b| b.request_tag("Owner", "x"), true),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["Env","Owner"]}}"#,
            |b| b.request_tag("Owner", "x").request_tag("Env", "y"),
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["Env"]}}"#,
            |b| b.request_tag("Owner", "x").request_tag("Env", "y"),
            false,
        ),
        // A single-valued key behaves as a one-element set.
        (
            r#"{"ForAnyValue:StringEquals":{"kms:ViaService":"a"}}"#,
            |b| b.condition("kms:ViaService", "a"),
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"kms:ViaService":"a"}}"#,
            |b| b.condition("kms:ViaService", "b"),
            false,
        ),
        (
            r#"{"ForAnyValue:IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            |b| b.source_ip("10.1.1.1"),
            true,
        ),
    ]);
}

#[test]
fn if_exists() {
    holds(&[
        (r#"{"StringEqualsIfExists":{"kms:ViaService":"a"}}"#, plain, true),
        (
            r#"{"StringEqualsIfExists":{"kms:ViaService":"a"}}"#,
            |b| b.condition("kms:ViaService", "a"),
            true,
        ),
        (
            r#"{"StringEqualsIfExists":{"kms:ViaService":"a"}}"#,
            |b| b.condition("kms:ViaService", "b"),
            false,
        ),
        (
            r#"{"StringNotEqualsIfExists":{"kms:ViaService":"a"}}"#,
            |b| b.condition("kms:ViaService", "a"),
            false,
        ),
        (r#"{"StringNotEqualsIfExists":{"kms:ViaService":"a"}}"#, plain, true),
        (r#"{"NumericLessThanIfExists":{"kms:Size":"5"}}"#, plain, true),
        (
            r#"{"NumericLessThanIfExists":{"kms:Size":"5"}}"#,
            |b| b.condition("kms:Size", "6"),
            false,
        ),
        (r#"{"DateLessThanIfExists":{"kms:ValidTo":"2030-01-01T00:00:00Z"}}"#, plain, true),
        (r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#, plain, true),
        (
            r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            |b| b.source_ip("11.0.0.1"),
            false,
        ),
        (
            r#"{"StringLikeIfExists":{"kms:EncryptionContext:Dept":"Fin*"}}"#,
            |b| b.encryption_context([("Dept", "Finance")]),
            true,
        ),
        (
            r#"{"StringLikeIfExists":{"kms:EncryptionContext:Dept":"Fin*"}}"#,
            |b| b.encryption_context([("Other", "x")]),
            true,
        ),
    ]);
}

#[test]
fn encryption_context_keys() {
    holds(&[
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Department":"Finance"}}"#,
            |b| b.encryption_context([("Department", "Finance")]),
            true,
        ),
        // The prefix is case-insensitive ...
        (
            r#"{"StringEquals":{"KMS:ENCRYPTIONCONTEXT:Department":"Finance"}}"#,
            |b| b.encryption_context([("Department", "Finance")]),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:encryptioncontext:Department":"Finance"}}"#,
            |b| b.condition("Kms:EncryptionContext:Department", "Finance"),
            true,
        ),
        // ... the context key after it is not.
        (
            r#"{"StringEquals":{"kms:EncryptionContext:department":"Finance"}}"#,
            |b| b.encryption_context([("Department", "Finance")]),
            false,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:Department":"finance"}}"#,
            |b| b.encryption_context([("Department", "FINANCE")]),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Department":["Finance","Legal"]}}"#,
            |b| b.encryption_context([("Department", "Legal")]),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Department":"Finance"}}"#,
            |b| b.encryption_context([("Project", "Alpha")]),
            false,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department","Project"]}}"#,
            |b| b.encryption_context([("Department", "Finance"), ("Project", "Alpha")]),
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department","Project"]}}"#,
            |b| b.encryption_context([("Department", "Finance"), ("FilePath", "/x")]),
            false,
        ),
        (
            r#"{"StringLike":{"kms:EncryptionContext:FilePath":"/secure/*"}}"#,
            |b| b.encryption_context([("FilePath", "/secure/financial-data.csv")]),
            true,
        ),
        (
            r#"{"StringLike":{"kms:EncryptionContext:aws:s3:arn":"arn:aws:s3:::bucket/*"}}"#,
            |b| b.encryption_context([("aws:s3:arn", "arn:aws:s3:::bucket/o")]),
            true,
        ),
    ]);
}

#[test]
fn policy_variables() {
    holds(&[
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Owner":"${aws:username}"}}"#,
            |b| b.encryption_context([("Owner", "alice")]),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Owner":"${aws:username}"}}"#,
            |b| b.encryption_context([("Owner", "bob")]),
            false,
        ),
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Owner":"${AWS:UserName}"}}"#,
            |b| b.encryption_context([("Owner", "alice")]),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Owner":"user-${aws:username}-x"}}"#,
            |b| b.encryption_context([("Owner", "user-alice-x")]),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Owner":"${aws:userid}"}}"#,
            |b| b.user_id("AIDAEXAMPLE").encryption_context([("Owner", "AIDAEXAMPLE")]),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Owner":"${aws:userid}"}}"#,
            |b| b.encryption_context([("Owner", "AIDAEXAMPLE")]),
            false,
        ),
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Team":"${aws:PrincipalTag/team}"}}"#,
            |b| b.principal_tag("team", "crypto").encryption_context([("Team", "crypto")]),
            true,
        ),
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Team":"${aws:PrincipalTag/team}"}}"#,
            |b| b.encryption_context([("Team", "")]),
            false,
        ),
        // One unresolved value does not spoil the others.
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Team":["${aws:PrincipalTag/team}","shared"]}}"#,
            |b| b.encryption_context([("Team", "shared")]),
            true,
        ),
        // A default value applies when the key is missing.
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Team":"${aws:PrincipalTag/team, 'none'}"}}"#,
            |b| b.encryption_context([("Team", "none")]),
            true,
        ),
        // A substituted value is literal in StringLike: a name with `*` is not a wildcard.
        (
            r#"{"StringLike":{"kms:EncryptionContext:Path":"home/${aws:username}/*"}}"#,
            |b| b.encryption_context([("Path", "home/alice/docs")]),
            true,
        ),
        (
            r#"{"StringLike":{"kms:EncryptionContext:Path":"home/${aws:username}/*"}}"#,
            |b| b.username("*").encryption_context([("Path", "home/alice/docs")]),
            false,
        ),
        (
            r#"{"StringLike":{"kms:EncryptionContext:Path":"home/${aws:username}/*"}}"#,
            |b| b.username("*").encryption_context([("Path", "home/*/docs")]),
            true,
        ),
        // Escapes are literal characters.
        (
            r#"{"StringLike":{"kms:EncryptionContext:Note":"a${*}b"}}"#,
            |b| b.encryption_context([("Note", "a*b")]),
            true,
        ),
        (
            r#"{"StringLike":{"kms:EncryptionContext:Note":"a${*}b"}}"#,
            |b| b.encryption_context([("Note", "axxb")]),
            false,
        ),
        (
            r#"{"StringLike":{"kms:EncryptionContext:Note":"a${?}b"}}"#,
            |b| b.encryption_context([("Note", "axb")]),
            false,
        ),
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Note":"${$}{x}"}}"#,
            |b| b.encryption_context([("Note", "${x}")]),
            true,
        ),
        // Multi-valued keys never substitute.
        (
            r#"{"StringEquals":{"kms:EncryptionContext:Keys":"${kms:EncryptionContextKeys}"}}"#,
            |b| b.encryption_context([("Keys", "Keys")]),
            false,
        ),
        // In a negated operator the unresolved value matches nothing, so "not equal" holds.
        (
            r#"{"StringNotEquals":{"kms:EncryptionContext:Owner":"${aws:PrincipalTag/owner}"}}"#,
            |b| b.encryption_context([("Owner", "alice")]),
            true,
        ),
        (
            r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:user/${aws:username}"}}"#,
            plain,
            true,
        ),
    ]);
}

#[test]
fn resource_element() {
    let policy = |resource: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":{resource}}}}}"#
        )
    };
    let alice = user(ACCT, "alice");
    for (resource, want) in [
        (r#""*""#, "allow:#0"),
        (&format!("\"{KEY}\"") as &str, "allow:#0"),
        (r#""arn:aws:kms:us-east-1:123456789012:key/*""#, "allow:#0"),
        (r#""arn:aws:kms:*:123456789012:key/1234abcd-*""#, "allow:#0"),
        (r#""arn:aws:kms:*:${aws:PrincipalAccount}:key/*""#, "allow:#0"),
        (r#""arn:aws:kms:*:${aws:username}:key/*""#, "none"),
        (r#""arn:aws:kms:*:${aws:PrincipalTag/missing}:key/*""#, "none"),
        (
            r#"["arn:aws:kms:us-west-2:123456789012:key/*","arn:aws:kms:us-east-1:123456789012:key/*"]"#,
            "allow:#0",
        ),
        (r#""arn:aws:kms:us-west-2:123456789012:key/*""#, "none"),
        (r#""arn:aws:kms:us-east-1:123456789012:alias/*""#, "none"),
        (r#""arn:aws:kms:us-east-1:123456789012:KEY/*""#, "none"),
        (
            r#""arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890a?""#,
            "allow:#0",
        ),
    ] {
        check(&policy(resource), call(&alice, "kms:Decrypt"), want);
    }
    let not_resource = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"kms:*","NotResource":"arn:aws:kms:us-east-1:123456789012:key/*"}}"#;
    check(not_resource, call(&alice, "kms:Decrypt"), "none");
    let other_key = RequestContext::builder(
        &alice,
        PrincipalType::User,
        "kms:Decrypt",
        "arn:aws:kms:eu-west-1:123456789012:key/k",
    );
    check(not_resource, other_key, "deny:#0");
}
