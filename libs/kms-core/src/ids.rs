//! Accounts, regions, ARNs and the four ways a caller may name a key (key id, key ARN,
//! alias name, alias ARN).

use crate::{ErrorCode, KmsError, KmsResult};

/// A tenant: a 12-digit AWS-style account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> KmsResult<Self> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(KmsError::validation(format!("'{s}' is not a 12-digit account id")))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A region name such as `us-east-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> KmsResult<Self> {
        let shape_ok = (1..=32).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if shape_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(KmsError::validation(format!("'{s}' is not a valid region name")))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `arn:aws:kms:<region>:<account>:key/<key id>`
pub fn key_arn(region: &str, account: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{key_id}")
}

/// `arn:aws:kms:<region>:<account>:alias/<name>` for an alias name `alias/<name>`.
pub fn alias_arn(region: &str, account: &str, alias_name: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:{alias_name}")
}

/// How a request names a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A bare key id (a UUID).
    KeyId(String),
    KeyArn {
        region: String,
        account: String,
        key_id: String,
    },
    /// `alias/<name>`
    AliasName(String),
    AliasArn {
        region: String,
        account: String,
        alias_name: String,
    },
}

impl KeyRef {
    /// Parses a `KeyId` parameter. Shape errors are `NotFoundException` for bare ids (as
    /// AWS answers "Invalid keyId") and `InvalidArnException`-free: a malformed ARN is
    /// simply a key that does not exist.
    pub fn parse(input: &str) -> KmsResult<Self> {
        if input.is_empty() || input.len() > 2048 {
            return Err(KmsError::validation(format!(
                "1 validation error detected: Value at 'keyId' failed to satisfy constraint: \
                 Member must have length between 1 and 2048 (got {})",
                input.len()
            )));
        }
        if let Some(rest) = input.strip_prefix("arn:") {
            return parse_arn(input, rest);
        }
        if input.starts_with("alias/") {
            return Ok(Self::AliasName(input.to_owned()));
        }
        if is_key_id(input) {
            Ok(Self::KeyId(input.to_ascii_lowercase()))
        } else {
            Err(KmsError::not_found(format!("Invalid keyId '{input}'")))
        }
    }

    /// The account and region the reference pins, if it is an ARN.
    pub fn pinned_scope(&self) -> Option<(&str, &str)> {
        match self {
            Self::KeyArn { region, account, .. } | Self::AliasArn { region, account, .. } => {
                Some((account, region))
            }
            Self::KeyId(_) | Self::AliasName(_) => None,
        }
    }
}

fn parse_arn(input: &str, rest: &str) -> KmsResult<KeyRef> {
    let invalid = || KmsError::new(ErrorCode::NotFound, format!("Invalid arn {input}"));
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [partition, service, region, account, resource] = parts[..] else {
        return Err(invalid());
    };
    if partition.is_empty() || service != "kms" {
        return Err(invalid());
    }
    if Region::parse(region).is_err() || AccountId::parse(account).is_err() {
        return Err(invalid());
    }
    let (region, account) = (region.to_owned(), account.to_owned());
    if let Some(key_id) = resource.strip_prefix("key/") {
        if !is_key_id(key_id) {
            return Err(invalid());
        }
        return Ok(KeyRef::KeyArn { region, account, key_id: key_id.to_ascii_lowercase() });
    }
    if resource.starts_with("alias/") && resource.len() > "alias/".len() {
        return Ok(KeyRef::AliasArn { region, account, alias_name: resource.to_owned() });
    }
    Err(invalid())
}

/// A key id is a UUID in its hyphenated form.
pub(crate) fn is_key_id(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    fn check(input: &str, expected: Result<KeyRef, ErrorCode>) {
        let got = KeyRef::parse(input).map_err(|e| e.code);
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn key_refs() {
        check(ID, Ok(KeyRef::KeyId(ID.into())));
        check(&ID.to_uppercase(), Ok(KeyRef::KeyId(ID.into())));
        check(
            &format!("arn:aws:kms:us-east-1:111122223333:key/{ID}"),
            Ok(KeyRef::KeyArn {
                region: "us-east-1".into(),
                account: "111122223333".into(),
                key_id: ID.into(),
            }),
        );
        check("alias/my-key", Ok(KeyRef::AliasName("alias/my-key".into())));
        check(
            "arn:aws:kms:eu-west-1:111122223333:alias/my-key",
            Ok(KeyRef::AliasArn {
                region: "eu-west-1".into(),
                account: "111122223333".into(),
                alias_name: "alias/my-key".into(),
            }),
        );
        check("not-a-key", Err(ErrorCode::NotFound));
        check("", Err(ErrorCode::Validation));
        check(&"a".repeat(2049), Err(ErrorCode::Validation));
        check("arn:aws:s3:us-east-1:111122223333:key/x", Err(ErrorCode::NotFound));
        check("arn:aws:kms:us-east-1:1111:key/{ID}", Err(ErrorCode::NotFound));
        check("arn:aws:kms:us-east-1:111122223333:key/nope", Err(ErrorCode::NotFound));
        check("arn:aws:kms:us-east-1:111122223333:alias/", Err(ErrorCode::NotFound));
        check("arn:aws:kms:us-east-1", Err(ErrorCode::NotFound));
    }

    #[test]
    fn accounts_and_regions() {
        assert!(AccountId::parse("111122223333").is_ok());
        assert!(AccountId::parse("11112222333").is_err());
        assert!(AccountId::parse("11112222333a").is_err());
        assert!(Region::parse("us-east-1").is_ok());
        assert!(Region::parse("US-EAST-1").is_err());
        assert!(Region::parse("-x").is_err());
        assert!(Region::parse("").is_err());
    }

    #[test]
    fn arns() {
        assert_eq!(
            key_arn("us-east-1", "111122223333", ID),
            format!("arn:aws:kms:us-east-1:111122223333:key/{ID}")
        );
        assert_eq!(
            alias_arn("us-east-1", "111122223333", "alias/a"),
            "arn:aws:kms:us-east-1:111122223333:alias/a"
        );
    }
}
