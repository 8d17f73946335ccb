//! Identity policies: IAM-style policies attached to a principal (a user or role ARN),
//! stored here because this service has no IAM beside it. The gateway's admin API puts
//! and deletes them; `Authorize` reads them. A bootstrap file lets an operator (or
//! `dev-init`) attach policies before anyone can call the admin API.

use std::path::Path;

use kms_core::{ErrorCode, KmsError, KmsResult};
use kms_policy_lang::{Policy, PolicyKind};
use kms_proto::v1 as wire;
use serde::Deserialize;

use crate::store::{caller, internal, malformed, Store};
use crate::Service;

/// The bootstrap file: `{"identity_policies": [{"principal": "arn:aws:iam::...:user/x",
/// "name": "kms-full-access", "document": {...} }]}`; `document` may also be a string.
#[derive(Debug, Deserialize)]
pub struct BootstrapFile {
    pub identity_policies: Vec<BootstrapPolicy>,
}

#[derive(Debug, Deserialize)]
pub struct BootstrapPolicy {
    pub principal: String,
    pub name: String,
    pub document: serde_json::Value,
}

fn entry_key(principal: &str, name: &str) -> String {
    format!("{principal}|{name}")
}

/// IAM's policy-name rule: 1–128 characters of `[A-Za-z0-9+=,.@_-]`.
fn check_policy_name(name: &str) -> KmsResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KmsError::validation(format!(
            "Policy name '{name}' must be 1-128 characters of letters, digits and +=,.@_-"
        )))
    }
}

/// A principal identity policies attach to: a user or role of an account.
fn check_principal(arn: &str) -> KmsResult<()> {
    let ok = arn.strip_prefix("arn:aws:iam::").and_then(|rest| rest.split_once(':')).is_some_and(
        |(account, resource)| {
            account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && (resource.starts_with("user/") || resource.starts_with("role/"))
                && resource.len() > 5
        },
    );
    if ok {
        Ok(())
    } else {
        Err(KmsError::validation(format!(
            "'{arn}' is not a user or role ARN (arn:aws:iam::<account>:user/<name> or role/<name>)"
        )))
    }
}

fn check_document(document: &str) -> KmsResult<()> {
    kms_core::validate::policy_size(document)?;
    Policy::parse(document, PolicyKind::Identity).map_err(malformed)?;
    Ok(())
}

impl Store {
    /// Attaches every policy of the bootstrap file that the principal does not have yet;
    /// returns how many were attached.
    pub(crate) async fn bootstrap(&self, path: &Path) -> anyhow::Result<usize> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let file: BootstrapFile = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
        let mut applied = 0;
        for p in file.identity_policies {
            let document = match p.document {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            let invalid = |e: KmsError| {
                anyhow::anyhow!("{}: policy {} of {}: {}", path.display(), p.name, p.principal, e)
            };
            check_principal(&p.principal).map_err(invalid)?;
            check_policy_name(&p.name).map_err(invalid)?;
            check_document(&document).map_err(invalid)?;
            let key = entry_key(&p.principal, &p.name);
            if self.identity.get(key.as_bytes())?.is_none() {
                self.identity.insert(key.as_bytes(), document.as_bytes())?;
                applied += 1;
            }
        }
        kms_sled_guard::flush_async(&self.db).await?;
        Ok(applied)
    }

    /// The identity policies attached to a principal, as stored.
    pub(crate) fn identity_policies_of(&self, principal: &str) -> KmsResult<Vec<String>> {
        let mut documents = Vec::new();
        for entry in self.identity.scan_prefix(format!("{principal}|").as_bytes()) {
            let (_, v) = entry.map_err(internal)?;
            documents.push(String::from_utf8(v.to_vec()).map_err(internal)?);
        }
        Ok(documents)
    }

    pub(crate) fn get_identity_policy(
        &self,
        r: &wire::IdentityPolicyRef,
    ) -> KmsResult<wire::IdentityPolicyResponse> {
        let stored = self
            .identity
            .get(entry_key(&r.principal_arn, &r.policy_name).as_bytes())
            .map_err(internal)?
            .ok_or_else(|| no_such_policy(r))?;
        Ok(wire::IdentityPolicyResponse {
            principal_arn: r.principal_arn.clone(),
            policy_name: r.policy_name.clone(),
            document: String::from_utf8(stored.to_vec()).map_err(internal)?,
        })
    }

    pub(crate) fn list_identity_policies(
        &self,
        r: &wire::ListIdentityPoliciesRequest,
    ) -> KmsResult<wire::ListIdentityPoliciesResponse> {
        let prefix = format!("{}|", r.principal_arn);
        let mut policy_names = Vec::new();
        for entry in self.identity.scan_prefix(prefix.as_bytes()) {
            let (k, _) = entry.map_err(internal)?;
            policy_names.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(wire::ListIdentityPoliciesResponse { policy_names })
    }
}

fn no_such_policy(r: &wire::IdentityPolicyRef) -> KmsError {
    KmsError::new(
        ErrorCode::NotFound,
        format!("The policy {} of {} does not exist", r.policy_name, r.principal_arn),
    )
}

impl Service {
    pub(crate) async fn put_identity_policy(
        &self,
        r: wire::PutIdentityPolicyRequest,
    ) -> KmsResult<wire::IdentityPolicyResponse> {
        let c = caller(&r.caller)?;
        check_principal(&r.principal_arn)?;
        check_policy_name(&r.policy_name)?;
        check_document(&r.document)?;
        self.store
            .identity
            .insert(entry_key(&r.principal_arn, &r.policy_name).as_bytes(), r.document.as_bytes())
            .map_err(internal)?;
        self.store.flush().await?;
        self.announce(crate::identity_change_subject(&c.account)).await;
        Ok(wire::IdentityPolicyResponse {
            principal_arn: r.principal_arn,
            policy_name: r.policy_name,
            document: r.document,
        })
    }

    pub(crate) async fn delete_identity_policy(
        &self,
        r: wire::IdentityPolicyRef,
    ) -> KmsResult<wire::IdentityPolicyResponse> {
        let c = caller(&r.caller)?;
        let existing = self.store.get_identity_policy(&r)?;
        self.store
            .identity
            .remove(entry_key(&r.principal_arn, &r.policy_name).as_bytes())
            .map_err(internal)?;
        self.store.flush().await?;
        self.announce(crate::identity_change_subject(&c.account)).await;
        Ok(existing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_and_names() {
        check_principal("arn:aws:iam::111122223333:user/alice").unwrap();
        check_principal("arn:aws:iam::111122223333:role/app").unwrap();
        for bad in ["", "arn:aws:iam::111122223333:root", "arn:aws:iam::1111:user/a", "alice"] {
            assert_eq!(check_principal(bad).unwrap_err().code, ErrorCode::Validation, "{bad}");
        }
        check_policy_name("kms-full_access.v1").unwrap();
        assert!(check_policy_name("").is_err() && check_policy_name("a b").is_err());
        assert!(check_policy_name(&"a".repeat(129)).is_err());
    }

    #[tokio::test]
    async fn bootstrap_attaches_once_and_keeps_later_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let file = dir.path().join("bootstrap.json");
        let alice = "arn:aws:iam::111122223333:user/alice";
        std::fs::write(
            &file,
            serde_json::json!({"identity_policies": [{"principal": alice, "name": "all",
                "document": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": "kms:*", "Resource": "*"}]}}]})
            .to_string(),
        )
        .unwrap();
        assert_eq!(store.bootstrap(&file).await.unwrap(), 1);
        assert_eq!(store.identity_policies_of(alice).unwrap().len(), 1);
        store.identity.insert(entry_key(alice, "all").as_bytes(), "changed".as_bytes()).unwrap();
        assert_eq!(store.bootstrap(&file).await.unwrap(), 0, "an attached policy is kept");
        assert_eq!(store.identity_policies_of(alice).unwrap(), ["changed"]);
        assert!(store
            .identity_policies_of("arn:aws:iam::111122223333:user/bob")
            .unwrap()
            .is_empty());

        std::fs::write(
            &file,
            r#"{"identity_policies": [{"principal": "x", "name": "n", "document": "{}"}]}"#,
        )
        .unwrap();
        assert!(store.bootstrap(&file).await.is_err(), "a bad principal stops start-up");
    }
}
