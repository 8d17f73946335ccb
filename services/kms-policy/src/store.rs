//! The policy service's sled database. Trees:
//! - `policies`: `<key id>/<policy name>` → key policy document;
//! - `grants`: `<key id>/<grant id>` → `Grant` (protobuf);
//! - `grant_ids`: `<grant id>` → key id (RetireGrant by token names only the grant);
//! - `retirable`: `<retiring principal>|<key id>/<grant id>` → empty (ListRetirableGrants);
//! - `identity`: `<principal arn>|<policy name>` → identity policy document.
//!
//! Every write is flushed before the caller is answered; writes touching several trees
//! are one sled transaction.

use std::path::Path;

use kms_core::{ErrorCode, KmsError, KmsResult};
use kms_proto::v1 as wire;

use crate::Service;

pub(crate) struct Store {
    pub(crate) db: sled::Db,
    pub(crate) policies: sled::Tree,
    pub(crate) grants: sled::Tree,
    pub(crate) grant_ids: sled::Tree,
    pub(crate) retirable: sled::Tree,
    pub(crate) identity: sled::Tree,
    /// Serialises read-check-write sequences (grant limits, idempotent names).
    pub(crate) write_lock: tokio::sync::Mutex<()>,
}

pub(crate) fn internal(e: impl std::fmt::Display) -> KmsError {
    tracing::error!(error = %e, "policy store failure");
    KmsError::internal()
}

pub(crate) fn caller(c: &Option<wire::CallerContext>) -> KmsResult<&wire::CallerContext> {
    c.as_ref().ok_or_else(|| KmsError::validation("missing caller context"))
}

fn entry_key(key_id: &str, name: &str) -> String {
    format!("{key_id}/{name}")
}

pub(crate) fn malformed(e: impl std::fmt::Display) -> KmsError {
    KmsError::new(ErrorCode::MalformedPolicyDocument, e.to_string())
}

impl Store {
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        let db = kms_sled_guard::open(dir)
            .map_err(|e| anyhow::anyhow!("opening policy store at {}: {e}", dir.display()))?;
        Ok(Self {
            policies: db.open_tree("policies")?,
            grants: db.open_tree("grants")?,
            grant_ids: db.open_tree("grant_ids")?,
            retirable: db.open_tree("retirable")?,
            identity: db.open_tree("identity")?,
            db,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) async fn flush(&self) -> KmsResult<()> {
        kms_sled_guard::flush_async(&self.db).await.map_err(internal)?;
        Ok(())
    }

    pub(crate) async fn put(&self, r: wire::PutPolicyRequest) -> KmsResult<wire::PolicyResponse> {
        kms_core::validate::policy_name(&r.policy_name)?;
        kms_core::validate::policy_size(&r.document)?;
        kms_policy_lang::Policy::parse(&r.document, kms_policy_lang::PolicyKind::Key)
            .map_err(malformed)?;
        self.policies
            .insert(entry_key(&r.key_id, &r.policy_name).as_bytes(), r.document.as_bytes())
            .map_err(internal)?;
        self.flush().await?;
        Ok(wire::PolicyResponse { policy_name: r.policy_name, document: r.document })
    }

    /// The key policy document of a key, if it has one.
    pub(crate) fn key_policy(&self, key_id: &str) -> KmsResult<Option<String>> {
        let name = kms_core::validate::DEFAULT_POLICY_NAME;
        match self.policies.get(entry_key(key_id, name).as_bytes()).map_err(internal)? {
            Some(stored) => Ok(Some(String::from_utf8(stored.to_vec()).map_err(internal)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn get(&self, r: wire::GetPolicyRequest) -> KmsResult<wire::PolicyResponse> {
        kms_core::validate::policy_name(&r.policy_name)?;
        let stored = self
            .policies
            .get(entry_key(&r.key_id, &r.policy_name).as_bytes())
            .map_err(internal)?
            .ok_or_else(|| KmsError::not_found("No such policy exists"))?;
        let document = String::from_utf8(stored.to_vec()).map_err(internal)?;
        Ok(wire::PolicyResponse { policy_name: r.policy_name, document })
    }

    /// Removes every policy and grant of a key whose deletion is complete.
    async fn delete_all(&self, key_id: &str) -> KmsResult<()> {
        let prefix = format!("{key_id}/");
        for entry in self.policies.scan_prefix(prefix.as_bytes()) {
            let (k, _) = entry.map_err(internal)?;
            self.policies.remove(k).map_err(internal)?;
        }
        let _guard = self.write_lock.lock().await;
        for entry in self.grants.scan_prefix(prefix.as_bytes()) {
            let (_, v) = entry.map_err(internal)?;
            let grant = crate::grants::decode(&v)?;
            self.remove_grant(&grant)?;
        }
        self.flush().await
    }

    pub(crate) fn list(
        &self,
        r: wire::ListPoliciesRequest,
    ) -> KmsResult<wire::ListPoliciesResponse> {
        let prefix = format!("{}/", r.key_id);
        let mut policy_names = Vec::new();
        for entry in self.policies.scan_prefix(prefix.as_bytes()) {
            let (k, _) = entry.map_err(internal)?;
            let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            policy_names.push(name);
        }
        Ok(wire::ListPoliciesResponse { policy_names })
    }
}

impl Service {
    pub(crate) async fn put_key_policy(
        &self,
        r: wire::PutPolicyRequest,
    ) -> KmsResult<wire::PolicyResponse> {
        let account = caller(&r.caller)?.account.clone();
        let key_id = r.key_id.clone();
        let response = self.store.put(r).await?;
        self.announce(crate::key_change_subject(&account, &key_id)).await;
        Ok(response)
    }

    pub(crate) async fn delete_key(
        &self,
        r: wire::DeletePoliciesRequest,
    ) -> KmsResult<wire::DeletePoliciesResponse> {
        self.store.delete_all(&r.key_id).await?;
        if let Ok(c) = caller(&r.caller) {
            self.announce(crate::key_change_subject(&c.account, &r.key_id)).await;
        }
        Ok(wire::DeletePoliciesResponse {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;

    fn put(key: &str, name: &str, doc: &str) -> wire::PutPolicyRequest {
        wire::PutPolicyRequest {
            caller: None,
            key_id: key.into(),
            policy_name: name.into(),
            document: doc.into(),
        }
    }

    #[tokio::test]
    async fn put_get_list_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.put(put("k1", "default", DOC)).await.unwrap();
            let bad = store.put(put("k1", "default", "{not json")).await.unwrap_err();
            assert_eq!(bad.code, kms_core::ErrorCode::MalformedPolicyDocument);
            let other = store.put(put("k1", "other", DOC)).await.unwrap_err();
            assert_eq!(other.code, kms_core::ErrorCode::NotFound);
        }
        let store = Store::open(dir.path()).unwrap();
        let get = |key: &str| {
            store.get(wire::GetPolicyRequest {
                caller: None,
                key_id: key.into(),
                policy_name: "default".into(),
            })
        };
        assert_eq!(get("k1").unwrap().document, DOC, "the refused put left the document as it was");
        assert_eq!(get("k2").unwrap_err().code, kms_core::ErrorCode::NotFound);
        let names =
            store.list(wire::ListPoliciesRequest { caller: None, key_id: "k1".into() }).unwrap();
        assert_eq!(names.policy_names, ["default"]);
        let none =
            store.list(wire::ListPoliciesRequest { caller: None, key_id: "k2".into() }).unwrap();
        assert!(none.policy_names.is_empty());
    }
}
