//! Reading an awsJson1_1 request body: typed getters over the JSON object that fail with
//! the errors AWS gives (`SerializationException` for wrong types or bad base64,
//! `ValidationException` for a missing required member).

use std::collections::BTreeMap;

use base64::Engine;
use kms_core::{validate, ErrorCode, KmsError, KmsResult};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// The members of one request.
pub(crate) struct Params(Map<String, Value>);

fn serialization(message: impl Into<String>) -> KmsError {
    KmsError::new(ErrorCode::Serialization, message)
}

/// `Value null at 'keyId' failed to satisfy constraint: Member must not be null`
fn missing(member: &str) -> KmsError {
    KmsError::validation(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        wire_field(member)
    ))
}

/// AWS names members in messages with a lower-case first letter.
pub(crate) fn wire_field(member: &str) -> String {
    let mut chars = member.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

impl Params {
    pub(crate) fn parse(body: &[u8]) -> KmsResult<Self> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(serialization("Start of structure or map found where not expected")),
            Err(_) => Err(serialization("The request body is not valid JSON")),
        }
    }

    /// The request as received, for the audit record's allow-listed parameters.
    pub(crate) fn raw(&self) -> &Map<String, Value> {
        &self.0
    }

    fn get(&self, member: &str) -> Option<&Value> {
        self.0.get(member).filter(|v| !v.is_null())
    }

    pub(crate) fn opt_str(&self, member: &str) -> KmsResult<Option<&str>> {
        match self.get(member) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(serialization(format!("STRING_VALUE can not be converted to {member}"))),
        }
    }

    pub(crate) fn str(&self, member: &str) -> KmsResult<&str> {
        self.opt_str(member)?.ok_or_else(|| missing(member))
    }

    pub(crate) fn opt_i64(&self, member: &str) -> KmsResult<Option<i64>> {
        match self.get(member) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| serialization(format!("{member} must be an integer"))),
            Some(_) => Err(serialization(format!("{member} must be an integer"))),
        }
    }

    pub(crate) fn opt_bool(&self, member: &str) -> KmsResult<Option<bool>> {
        match self.get(member) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(serialization(format!("{member} must be a boolean"))),
        }
    }

    pub(crate) fn opt_f64(&self, member: &str) -> KmsResult<Option<f64>> {
        match self.get(member) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(serialization(format!("{member} must be a timestamp"))),
        }
    }

    /// A base64 blob member, decoded into memory that is zeroized when dropped.
    pub(crate) fn blob(&self, member: &str) -> KmsResult<Zeroizing<Vec<u8>>> {
        let text = self.str(member)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Zeroizing::new)
            .map_err(|_| serialization(format!("{member} is not valid base64")))
    }

    /// A string-to-string map (an encryption context); absent means empty.
    pub(crate) fn context(&self, member: &str) -> KmsResult<BTreeMap<String, String>> {
        match self.get(member) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => {
                let mut pairs = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let Value::String(v) = v else {
                        return Err(serialization(format!("{member} values must be strings")));
                    };
                    pairs.push((k.clone(), v.clone()));
                }
                validate::encryption_context(pairs)
            }
            Some(_) => Err(serialization(format!("{member} must be a map"))),
        }
    }

    pub(crate) fn str_list(&self, member: &str) -> KmsResult<Option<Vec<String>>> {
        match self.get(member) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(serialization(format!("{member} must be a list of strings"))),
                })
                .collect::<KmsResult<Vec<_>>>()
                .map(Some),
            Some(_) => Err(serialization(format!("{member} must be a list"))),
        }
    }

    /// `[{"TagKey": .., "TagValue": ..}]`
    pub(crate) fn tags(&self, member: &str) -> KmsResult<Option<Vec<(String, String)>>> {
        match self.get(member) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let mut tags = Vec::with_capacity(items.len());
                for item in items {
                    let key = item.get("TagKey").and_then(Value::as_str);
                    let value = item.get("TagValue").and_then(Value::as_str);
                    match (key, value) {
                        (Some(k), Some(v)) => tags.push((k.to_owned(), v.to_owned())),
                        (None, _) => return Err(missing("TagKey")),
                        (_, None) => return Err(missing("TagValue")),
                    }
                }
                Ok(Some(tags))
            }
            Some(_) => Err(serialization(format!("{member} must be a list"))),
        }
    }

    /// `[{"AttributeKey": .., "AttributeValue": ..}]` (CloudTrail)
    pub(crate) fn lookup_attributes(&self) -> KmsResult<Vec<(String, String)>> {
        match self.get("LookupAttributes") {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    let key = item.get("AttributeKey").and_then(Value::as_str);
                    let value = item.get("AttributeValue").and_then(Value::as_str);
                    match (key, value) {
                        (Some(k), Some(v)) => Ok((k.to_owned(), v.to_owned())),
                        _ => Err(serialization(
                            "LookupAttributes need AttributeKey and AttributeValue",
                        )),
                    }
                })
                .collect(),
            Some(_) => Err(serialization("LookupAttributes must be a list")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        Params::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn shapes_and_errors() {
        assert_eq!(Params::parse(b"[1]").err().map(|e| e.code), Some(ErrorCode::Serialization));
        assert_eq!(Params::parse(b"{").err().map(|e| e.code), Some(ErrorCode::Serialization));
        assert!(Params::parse(b"").is_ok());
        let p = params(
            r#"{"KeyId": 5, "Plaintext": "aGk=", "Bad": "!!", "N": 3, "Ctx": {"a": "1"}, "BadCtx": {"a": 1}}"#,
        );
        assert_eq!(p.str("KeyId").unwrap_err().code, ErrorCode::Serialization);
        let missing = p.str("AliasName").unwrap_err();
        assert_eq!(missing.code, ErrorCode::Validation);
        assert!(missing.message.contains("'aliasName'"), "{}", missing.message);
        assert_eq!(p.blob("Plaintext").unwrap().as_slice(), b"hi");
        assert_eq!(p.blob("Bad").unwrap_err().code, ErrorCode::Serialization);
        assert_eq!(p.opt_i64("N").unwrap(), Some(3));
        assert_eq!(p.context("Ctx").unwrap().get("a").map(String::as_str), Some("1"));
        assert_eq!(p.context("BadCtx").unwrap_err().code, ErrorCode::Serialization);
        assert!(p.context("Absent").unwrap().is_empty());
        let t =
            params(r#"{"Tags": [{"TagKey": "k", "TagValue": "v"}], "NoVal": [{"TagKey": "k"}]}"#);
        assert_eq!(t.tags("Tags").unwrap(), Some(vec![("k".into(), "v".into())]));
        assert_eq!(t.tags("NoVal").unwrap_err().code, ErrorCode::Validation);
    }
}
