//! Input validation with AWS KMS's limits and AWS's wording, so a bad request gets the
//! same error here as from AWS, before any service is asked to do anything.

use std::collections::BTreeMap;

use crate::{ErrorCode, KmsError, KmsResult};

pub const MAX_PLAINTEXT_BYTES: usize = 4096;
pub const MAX_CIPHERTEXT_BYTES: usize = 6144;
pub const MAX_DESCRIPTION_CHARS: usize = 8192;
pub const MAX_POLICY_BYTES: usize = 32 * 1024;
pub const MAX_TAGS_PER_KEY: usize = 50;
pub const DEFAULT_POLICY_NAME: &str = "default";

/// AWS's one-line validation message: `1 validation error detected: Value ... at
/// '<field>' failed to satisfy constraint: Member must ...`.
pub fn constraint(field: &str, shown_value: Option<&str>, must: &str) -> KmsError {
    let value = match shown_value {
        Some(v) => format!("Value '{v}' at"),
        None => "Value at".to_owned(),
    };
    KmsError::validation(format!(
        "1 validation error detected: {value} '{field}' failed to satisfy constraint: Member must {must}"
    ))
}

/// A length check on a blob or string parameter whose value must not be echoed (plaintext,
/// ciphertext).
pub fn blob_length(field: &str, len: usize, min: usize, max: usize) -> KmsResult<()> {
    if len < min {
        return Err(constraint(
            field,
            None,
            &format!("have length greater than or equal to {min}"),
        ));
    }
    if len > max {
        return Err(constraint(field, None, &format!("have length less than or equal to {max}")));
    }
    Ok(())
}

pub fn plaintext(len: usize) -> KmsResult<()> {
    blob_length("plaintext", len, 1, MAX_PLAINTEXT_BYTES)
}

pub fn ciphertext(len: usize) -> KmsResult<()> {
    blob_length("ciphertextBlob", len, 1, MAX_CIPHERTEXT_BYTES)
}

pub fn number_of_bytes(n: i64) -> KmsResult<u32> {
    let shown = n.to_string();
    if n < 1 {
        return Err(constraint(
            "numberOfBytes",
            Some(&shown),
            "have value greater than or equal to 1",
        ));
    }
    if n > 1024 {
        return Err(constraint(
            "numberOfBytes",
            Some(&shown),
            "have value less than or equal to 1024",
        ));
    }
    u32::try_from(n).map_err(|_| KmsError::validation("numberOfBytes is out of range"))
}

/// GenerateDataKey takes exactly one of KeySpec (AES_128, AES_256) and NumberOfBytes.
pub fn data_key_length(key_spec: Option<&str>, number_of_bytes: Option<i64>) -> KmsResult<u32> {
    match (key_spec, number_of_bytes) {
        (Some(_), Some(_)) => {
            Err(KmsError::validation("Please specify either number of bytes or key spec."))
        }
        (None, None) => {
            Err(KmsError::validation("Please specify either number of bytes or key spec."))
        }
        (None, Some(n)) => self::number_of_bytes(n),
        (Some("AES_256"), None) => Ok(32),
        (Some("AES_128"), None) => Ok(16),
        (Some(other), None) => {
            Err(constraint("keySpec", Some(other), "satisfy enum value set: [AES_256, AES_128]"))
        }
    }
}

pub fn description(d: &str) -> KmsResult<()> {
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(constraint(
            "description",
            None,
            &format!("have length less than or equal to {MAX_DESCRIPTION_CHARS}"),
        ));
    }
    Ok(())
}

/// Alias names: `alias/` followed by letters, digits, `/`, `_`, `-` (1..=256 chars), and
/// never in the `alias/aws/` namespace, which AWS reserves for its managed keys.
pub fn alias_name(name: &str) -> KmsResult<()> {
    if name.is_empty() || name.len() > 256 {
        return Err(constraint("aliasName", Some(name), "have length between 1 and 256"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-')) {
        return Err(constraint(
            "aliasName",
            Some(name),
            "satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
        ));
    }
    let Some(rest) = name.strip_prefix("alias/") else {
        return Err(KmsError::validation(
            "Alias must start with the prefix \"alias/\". Please see \
             https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
        ));
    };
    if rest.is_empty() || rest.contains(':') {
        return Err(KmsError::validation(format!(
            "{name} contains invalid characters for an alias"
        )));
    }
    if name.starts_with("alias/aws/") {
        return Err(KmsError::new(
            ErrorCode::NotAuthorized,
            "The alias/aws/ prefix is reserved for AWS managed keys.",
        ));
    }
    Ok(())
}

/// Tag keys 1..=128 chars, values 0..=256, no `aws:` prefix, no duplicate keys in one
/// request.
pub fn tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> KmsResult<()> {
    let mut seen = std::collections::HashSet::new();
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(constraint("tagKey", Some(key), "have length between 1 and 128"));
        }
        if value.chars().count() > 256 {
            return Err(constraint("tagValue", None, "have length between 0 and 256"));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(KmsError::new(ErrorCode::Tag, "Tags beginning with aws: are reserved"));
        }
        if !seen.insert(key) {
            return Err(KmsError::new(ErrorCode::Tag, format!("Duplicate tag key {key}")));
        }
    }
    if seen.len() > MAX_TAGS_PER_KEY {
        return Err(KmsError::new(
            ErrorCode::LimitExceeded,
            format!("A key may have at most {MAX_TAGS_PER_KEY} tags"),
        ));
    }
    Ok(())
}

/// Key policy documents are at most 32 KB; their language is checked by the policy
/// engine (`kms-policy-lang`), which names what is wrong.
pub fn policy_size(doc: &str) -> KmsResult<()> {
    if doc.is_empty() || doc.len() > MAX_POLICY_BYTES {
        return Err(constraint(
            "policy",
            None,
            &format!("have length between 1 and {MAX_POLICY_BYTES}"),
        ));
    }
    Ok(())
}

pub fn policy_name(name: &str) -> KmsResult<()> {
    if name.is_empty()
        || name.len() > 128
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(constraint(
            "policyName",
            Some(name),
            "satisfy regular expression pattern: [\\w]+",
        ));
    }
    if name != DEFAULT_POLICY_NAME {
        return Err(KmsError::not_found(format!("No such policy exists: {name}")));
    }
    Ok(())
}

/// Encryption context: string keys and values, keys non-empty. Returned sorted by key,
/// which is also its canonical order.
pub fn encryption_context(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> KmsResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if k.is_empty() {
            return Err(KmsError::validation("Encryption context keys must not be empty"));
        }
        out.insert(k, v);
    }
    let total: usize = out.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > 8192 {
        return Err(KmsError::validation("Encryption context is too large"));
    }
    Ok(out)
}

pub fn pending_window_days(days: i32) -> KmsResult<()> {
    if !(7..=30).contains(&days) {
        return Err(constraint(
            "pendingWindowInDays",
            Some(&days.to_string()),
            if days < 7 {
                "have value greater than or equal to 7"
            } else {
                "have value less than or equal to 30"
            },
        ));
    }
    Ok(())
}

/// Page size for a List operation: `None` gives `default`; outside 1..=max is invalid.
pub fn limit(value: Option<i64>, default: u32, max: u32) -> KmsResult<u32> {
    match value {
        None => Ok(default),
        Some(n) if n < 1 => {
            Err(constraint("limit", Some(&n.to_string()), "have value greater than or equal to 1"))
        }
        Some(n) if n > i64::from(max) => Err(constraint(
            "limit",
            Some(&n.to_string()),
            &format!("have value less than or equal to {max}"),
        )),
        Some(n) => u32::try_from(n).map_err(|_| KmsError::validation("limit is out of range")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T>(r: KmsResult<T>) -> Option<ErrorCode> {
        r.err().map(|e| e.code)
    }

    #[test]
    fn alias_names() {
        let cases = [
            ("alias/my-key", None),
            ("alias/a/b_c-d", None),
            ("alias/", Some(ErrorCode::Validation)),
            ("my-key", Some(ErrorCode::Validation)),
            ("alias/bad name", Some(ErrorCode::Validation)),
            ("alias/Service:Test", Some(ErrorCode::Validation)),
            ("alias/aws/s3", Some(ErrorCode::NotAuthorized)),
            ("", Some(ErrorCode::Validation)),
        ];
        for (name, expected) in cases {
            assert_eq!(code(alias_name(name)), expected, "{name}");
        }
        assert_eq!(
            code(alias_name(&format!("alias/{}", "a".repeat(251)))),
            Some(ErrorCode::Validation)
        );
    }

    #[test]
    fn data_key_lengths() {
        let cases = [
            (Some("AES_256"), None, Ok(32)),
            (Some("AES_128"), None, Ok(16)),
            (None, Some(1), Ok(1)),
            (None, Some(1024), Ok(1024)),
            (None, Some(0), Err(ErrorCode::Validation)),
            (None, Some(1025), Err(ErrorCode::Validation)),
            (Some("AES_256"), Some(32), Err(ErrorCode::Validation)),
            (None, None, Err(ErrorCode::Validation)),
            (Some("AES_512"), None, Err(ErrorCode::Validation)),
        ];
        for (spec, n, expected) in cases {
            assert_eq!(data_key_length(spec, n).map_err(|e| e.code), expected, "{spec:?} {n:?}");
        }
    }

    #[test]
    fn tag_rules() {
        assert_eq!(code(tags([("Env", "prod"), ("Team", "")])), None);
        assert_eq!(code(tags([("", "x")])), Some(ErrorCode::Validation));
        assert_eq!(code(tags([("aws:x", "y")])), Some(ErrorCode::Tag));
        assert_eq!(code(tags([("a", "1"), ("a", "2")])), Some(ErrorCode::Tag));
        let long = "k".repeat(129);
        assert_eq!(code(tags([(long.as_str(), "v")])), Some(ErrorCode::Validation));
        let many: Vec<String> = (0..51).map(|i| format!("k{i}")).collect();
        assert_eq!(
            code(tags(many.iter().map(|k| (k.as_str(), "v")))),
            Some(ErrorCode::LimitExceeded)
        );
    }

    #[test]
    fn policies() {
        assert_eq!(code(policy_size("{}")), None);
        assert_eq!(code(policy_size("")), Some(ErrorCode::Validation));
        assert_eq!(
            code(policy_size(&"a".repeat(MAX_POLICY_BYTES + 1))),
            Some(ErrorCode::Validation)
        );
        assert_eq!(code(policy_name("default")), None);
        assert_eq!(code(policy_name("other")), Some(ErrorCode::NotFound));
        assert_eq!(code(policy_name("bad name")), Some(ErrorCode::Validation));
    }

    #[test]
    fn sizes_and_windows() {
        assert_eq!(code(plaintext(0)), Some(ErrorCode::Validation));
        assert_eq!(code(plaintext(4096)), None);
        assert_eq!(code(plaintext(4097)), Some(ErrorCode::Validation));
        assert_eq!(code(ciphertext(6145)), Some(ErrorCode::Validation));
        assert_eq!(code(pending_window_days(7)), None);
        assert_eq!(code(pending_window_days(31)), Some(ErrorCode::Validation));
        assert_eq!(limit(None, 100, 1000).unwrap(), 100);
        assert_eq!(code(limit(Some(0), 100, 1000)), Some(ErrorCode::Validation));
        assert_eq!(code(limit(Some(1001), 100, 1000)), Some(ErrorCode::Validation));
        assert_eq!(code(description(&"d".repeat(8193))), Some(ErrorCode::Validation));
        let ctx = encryption_context([("b".into(), "2".into()), ("a".into(), "1".into())]).unwrap();
        assert_eq!(ctx.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            code(encryption_context([(String::new(), "x".into())])),
            Some(ErrorCode::Validation)
        );
    }
}
