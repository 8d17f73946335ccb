//! Malformed documents of every kind, each with the error (and AWS-style message) it must
//! produce.

use super::*;
use crate::{PolicyError, MAX_POLICY_BYTES};

/// A key-policy statement with `field` replaced (or removed when `value` is empty).
fn statement_with(field: &str, value: &str) -> String {
    let mut fields = vec![
        ("Effect", r#""Allow""#),
        ("Principal", r#"{"AWS":"arn:aws:iam::123456789012:root"}"#),
        ("Action", r#""kms:*""#),
        ("Resource", r#""*""#),
    ];
    fields.retain(|(name, _)| *name != field);
    if !value.is_empty() {
        fields.push((field, value));
    }
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!(r#"{{"Version":"2012-10-17","Statement":[{{{}}}]}}"#, body.join(","))
}

fn err(text: &str, kind: PolicyKind) -> PolicyError {
    match Policy::parse(text, kind) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    }
}

#[test]
fn document_level() {
    use PolicyError as E;
    let cases: Vec<(String, PolicyError)> = vec![
        ("".to_owned(), E::InvalidJson),
        ("{".to_owned(), E::InvalidJson),
        ("{\"Statement\": []".to_owned(), E::InvalidJson),
        ("not json".to_owned(), E::InvalidJson),
        ("[]".to_owned(), E::NotAnObject),
        ("\"policy\"".to_owned(), E::NotAnObject),
        (r#"{"Version":"2012-10-17"}"#.to_owned(), E::MissingStatement),
        (r#"{"Version":"2012-10-17","Statement":[]}"#.to_owned(), E::MissingStatement),
        (
            r#"{"Version":"2012-10-17","Statement":"Allow"}"#.to_owned(),
            E::InvalidElement { element: "Statement" },
        ),
        (
            r#"{"Version":"2012-10-17","Statement":["Allow"]}"#.to_owned(),
            E::InvalidElement { element: "Statement" },
        ),
        (
            r#"{"Version":"2012-10-18","Statement":[]}"#.to_owned(),
            E::UnsupportedVersion("2012-10-18".to_owned()),
        ),
        (r#"{"Version":2012,"Statement":[]}"#.to_owned(), E::UnsupportedVersion("2012".to_owned())),
        (r#"{"Id":7,"Statement":[]}"#.to_owned(), E::InvalidElement { element: "Id" }),
        (
            r#"{"Version":"2012-10-17","Statements":[]}"#.to_owned(),
            E::UnsupportedElement("Statements".to_owned()),
        ),
        (
            r#"{"version":"2012-10-17","Statement":[]}"#.to_owned(),
            E::UnsupportedElement("version".to_owned()),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(&text, PolicyKind::Key), want, "{text}");
    }
}

#[test]
fn size_limit() {
    let base = statement_with("Resource", r#""*""#);
    let pad = MAX_POLICY_BYTES - base.len();
    let exact = format!("{base}{}", " ".repeat(pad));
    assert_eq!(exact.len(), MAX_POLICY_BYTES);
    assert!(Policy::parse(&exact, PolicyKind::Key).is_ok());
    let over = format!("{exact} ");
    let e = err(&over, PolicyKind::Key);
    assert_eq!(e, PolicyError::TooLarge { size: MAX_POLICY_BYTES + 1, max: MAX_POLICY_BYTES });
    assert_eq!(
        e.to_string(),
        "The policy document exceeds the maximum length of 32768 bytes: it is 32769 bytes."
    );
}

#[test]
fn statement_level() {
    use PolicyError as E;
    let cases: Vec<(String, PolicyError)> = vec![
        (statement_with("Effect", ""), E::MissingEffect),
        (statement_with("Effect", r#""allow""#), E::InvalidEffect("allow".to_owned())),
        (statement_with("Effect", r#""Permit""#), E::InvalidEffect("Permit".to_owned())),
        (statement_with("Effect", "true"), E::InvalidEffect("true".to_owned())),
        (statement_with("Principal", ""), E::MissingPrincipal),
        (
            statement_with("NotPrincipal", r#""*""#),
            E::ConflictingElements("Principal", "NotPrincipal"),
        ),
        (statement_with("Action", ""), E::MissingAction),
        (
            statement_with("NotAction", r#""kms:Decrypt""#),
            E::ConflictingElements("Action", "NotAction"),
        ),
        (statement_with("Action", "[]"), E::InvalidElement { element: "Action" }),
        (statement_with("Action", "5"), E::InvalidElement { element: "Action" }),
        (statement_with("Action", r#""Decrypt""#), E::InvalidAction("Decrypt".to_owned())),
        (statement_with("Action", r#""kms:""#), E::InvalidAction("kms:".to_owned())),
        (
            statement_with("Action", r#"["kms:Decrypt","kms Encrypt"]"#),
            E::InvalidAction("kms Encrypt".to_owned()),
        ),
        (statement_with("Action", r#"":Decrypt""#), E::InvalidAction(":Decrypt".to_owned())),
        (statement_with("Resource", ""), E::MissingResource),
        (
            statement_with("NotResource", r#""*""#),
            E::ConflictingElements("Resource", "NotResource"),
        ),
        (statement_with("Resource", r#""key/1234""#), E::InvalidResource("key/1234".to_owned())),
        (
            statement_with("Resource", r#""arn:aws:kms""#),
            E::InvalidResource("arn:aws:kms".to_owned()),
        ),
        (statement_with("Resource", "[]"), E::InvalidElement { element: "Resource" }),
        (statement_with("Sid", "1"), E::InvalidElement { element: "Sid" }),
        (statement_with("Principals", r#""*""#), E::UnsupportedElement("Principals".to_owned())),
        (statement_with("Condition", r#""none""#), E::InvalidElement { element: "Condition" }),
        (
            statement_with("Condition", r#"{"StringEquals":"x"}"#),
            E::InvalidElement { element: "Condition" },
        ),
        (
            statement_with("Condition", r#"{"StringEquals":{}}"#),
            E::InvalidElement { element: "Condition" },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(&text, PolicyKind::Key), want, "{text}");
    }
    let dup = r#"{"Statement":[
        {"Sid":"A","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
        {"Sid":"B","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
        {"Sid":"A","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}]}"#;
    assert_eq!(err(dup, PolicyKind::Key), PolicyError::DuplicateSid("A".to_owned()));
    // Statements without Sid never collide.
    let no_sids = r#"{"Statement":[
        {"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
        {"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#;
    assert!(Policy::parse(no_sids, PolicyKind::Key).is_ok());
}

#[test]
fn principals() {
    for principal in [
        r#""arn:aws:iam::123456789012:root""#,
        r#""**""#,
        r#"{}"#,
        r#"[]"#,
        r#"{"AWS":[]}"#,
        r#"{"AWS":""}"#,
        r#"{"AWS":"12345678901"}"#,
        r#"{"AWS":"ACCOUNT-B"}"#,
        r#"{"AWS":"arn:aws:iam::ACCOUNT-B:root"}"#,
        r#"{"AWS":"arn:aws:iam::123456789012:user/*"}"#,
        r#"{"AWS":"arn:aws:iam::*:root"}"#,
        r#"{"AWS":"arn:aws:iam::123456789012:group/Admins"}"#,
        r#"{"AWS":"arn:aws:iam::123456789012:user/"}"#,
        r#"{"AWS":"arn:aws:iam:us-east-1:123456789012:root"}"#,
        r#"{"AWS":"arn:aws:s3:::bucket"}"#,
        r#"{"AWS":"arn:foo:iam::123456789012:root"}"#,
        r#"{"AWS":"arn:aws:sts::123456789012:assumed-role/OnlyRole"}"#,
        r#"{"AWS":"arn:aws:iam::123456789012:user/bad name"}"#,
        r#"{"AWS":5}"#,
        r#"{"aws":"*"}"#,
        r#"{"CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}"#,
        r#"{"Federated":"cognito-identity.amazonaws.com"}"#,
        r#"{"Service":"*"}"#,
        r#"{"Service":"s3"}"#,
        r#"{"Service":["s3.amazonaws.com", ""]}"#,
        r#"{"AWS":"*","Service":"bad service"}"#,
    ] {
        let text = statement_with("Principal", principal);
        let e = err(&text, PolicyKind::Key);
        assert_eq!(e, PolicyError::InvalidPrincipal, "{principal}");
        assert_eq!(
            e.to_string(),
            "Policy contains a statement with one or more invalid principals."
        );
    }
    for principal in [
        r#""*""#,
        r#"{"AWS":"*"}"#,
        r#"{"AWS":"123456789012"}"#,
        r#"{"AWS":["arn:aws:iam::123456789012:root","arn:aws:iam::999999999999:user/x"]}"#,
        r#"{"AWS":"arn:aws:iam::123456789012:role/path/to/name"}"#,
        r#"{"AWS":"arn:aws:sts::123456789012:assumed-role/Role/session@example.com"}"#,
        r#"{"AWS":"arn:aws:sts::123456789012:federated-user/bob"}"#,
        r#"{"AWS":"arn:aws-us-gov:iam::123456789012:root"}"#,
        r#"{"Service":"s3.amazonaws.com"}"#,
        r#"{"Service":["logs.us-east-1.amazonaws.com","delivery.logs.amazonaws.com"]}"#,
        r#"{"AWS":"*","Service":"s3.amazonaws.com"}"#,
    ] {
        let text = statement_with("Principal", principal);
        assert!(Policy::parse(&text, PolicyKind::Key).is_ok(), "{principal}");
    }
}

#[test]
fn identity_policies() {
    let with_principal = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}"#;
    assert_eq!(err(with_principal, PolicyKind::Identity), PolicyError::PrincipalInIdentityPolicy);
    let with_not_principal = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotPrincipal":"*","Action":"kms:*","Resource":"*"}}"#;
    assert_eq!(
        err(with_not_principal, PolicyKind::Identity),
        PolicyError::PrincipalInIdentityPolicy
    );
    let no_resource = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:*"}}"#;
    assert_eq!(err(no_resource, PolicyKind::Identity), PolicyError::MissingResource);
    let fine = r#"{"Statement":{"Effect":"Deny","NotAction":["kms:Decrypt"],"NotResource":"arn:aws:kms:*:*:key/*"}}"#;
    let policy = parse(fine, PolicyKind::Identity);
    assert_eq!(policy.version(), None);
    assert_eq!(policy.id(), None);
}

#[test]
fn conditions() {
    use PolicyError as E;
    let value = |op: &str, key: &str, value: &str| E::InvalidConditionValue {
        operator: op.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let cases: Vec<(&str, PolicyError)> = vec![
        (
            r#"{"StringEqualz":{"kms:ViaService":"x"}}"#,
            E::UnsupportedConditionOperator("StringEqualz".to_owned()),
        ),
        (
            r#"{"ForSome:StringEquals":{"kms:ViaService":"x"}}"#,
            E::UnsupportedConditionOperator("ForSome:StringEquals".to_owned()),
        ),
        (
            r#"{"NullIfExists":{"kms:ViaService":"true"}}"#,
            E::UnsupportedConditionOperator("NullIfExists".to_owned()),
        ),
        (
            r#"{"ForAllValues:Null":{"kms:ViaService":"true"}}"#,
            E::UnsupportedConditionOperator("ForAllValues:Null".to_owned()),
        ),
        (r#"{"StringEquals":{"ViaService":"x"}}"#, E::InvalidConditionKey("ViaService".to_owned())),
        (r#"{"StringEquals":{":x":"x"}}"#, E::InvalidConditionKey(":x".to_owned())),
        (r#"{"StringEquals":{"kms:":"x"}}"#, E::InvalidConditionKey("kms:".to_owned())),
        (
            r#"{"StringEquals":{"kms:ViaService":[]}}"#,
            value("StringEquals", "kms:ViaService", "[]"),
        ),
        (
            r#"{"StringEquals":{"kms:ViaService":null}}"#,
            value("StringEquals", "kms:ViaService", "null"),
        ),
        (
            r#"{"StringEquals":{"kms:ViaService":{"a":"b"}}}"#,
            value("StringEquals", "kms:ViaService", r#"{"a":"b"}"#),
        ),
        (
            r#"{"StringEquals":{"kms:ViaService":["a",["b"]]}}"#,
            value("StringEquals", "kms:ViaService", r#"["a",["b"]]"#),
        ),
        (r#"{"NumericLessThan":{"kms:Size":"ten"}}"#, value("NumericLessThan", "kms:Size", "ten")),
        (
            r#"{"NumericLessThan":{"kms:Size":["1","2x"]}}"#,
            value("NumericLessThan", "kms:Size", "2x"),
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}"#,
            value("DateLessThan", "aws:CurrentTime", "tomorrow"),
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2023-13-01T00:00:00Z"}}"#,
            value("DateLessThan", "aws:CurrentTime", "2023-13-01T00:00:00Z"),
        ),
        (r#"{"Bool":{"aws:SecureTransport":"yes"}}"#, value("Bool", "aws:SecureTransport", "yes")),
        (r#"{"Null":{"kms:ViaService":"1"}}"#, value("Null", "kms:ViaService", "1")),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/33"}}"#,
            value("IpAddress", "aws:SourceIp", "203.0.113.0/33"),
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"example.com"}}"#,
            value("NotIpAddress", "aws:SourceIp", "example.com"),
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/200"}}"#,
            value("IpAddress", "aws:SourceIp", "2001:db8::/200"),
        ),
        (
            r#"{"BinaryEquals":{"kms:Blob":"not base64!"}}"#,
            value("BinaryEquals", "kms:Blob", "not base64!"),
        ),
    ];
    for (condition, want) in cases {
        let text = statement_with("Condition", condition);
        assert_eq!(err(&text, PolicyKind::Key), want, "{condition}");
    }
    assert_eq!(
        E::UnsupportedConditionOperator("StringEqualz".to_owned()).to_string(),
        "Policy contains a statement with an unsupported condition operator: StringEqualz."
    );
}

#[test]
fn messages() {
    assert_eq!(PolicyError::InvalidJson.to_string(), "The policy document is not valid JSON.");
    assert_eq!(
        PolicyError::MissingEffect.to_string(),
        "Policy contains a statement with no Effect."
    );
    assert_eq!(
        PolicyError::DuplicateSid("A".to_owned()).to_string(),
        "Statement IDs (SID) in a single policy must be unique: A is duplicated."
    );
    assert_eq!(
        PolicyError::ConflictingElements("Action", "NotAction").to_string(),
        "Policy contains a statement with both Action and NotAction."
    );
}
