//! The policy service: key policies in sled (`policies`: `<key id>/<policy name>` →
//! document). It answers `kms.v1.policy.*`. Documents are validated for shape and size
//! here as at the gateway; evaluating them against requests comes with the policy engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kms_bus::{policy as op, Bus, Router};
use kms_core::{KmsError, KmsResult};
use kms_proto::v1 as wire;

/// Settings of the policy service.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Directory of the service's sled database.
    #[arg(long = "policy-data-dir", env = "KMS_POLICY_DATA_DIR", default_value = ".data/policy")]
    pub data_dir: PathBuf,
}

impl Config {
    pub fn for_test(data_dir: PathBuf) -> Self {
        Self { data_dir }
    }
}

/// Serves the policy operations until `shutdown` resolves.
pub async fn run(
    config: Config,
    bus: Bus,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = Arc::new(PolicyStore::open(&config.data_dir)?);
    let router = Router::new("policy")
        .route::<op::PutPolicy, _, _>(|s: Arc<PolicyStore>, r| async move { s.put(r).await })
        .route::<op::GetPolicy, _, _>(|s: Arc<PolicyStore>, r| async move { s.get(r) })
        .route::<op::ListPolicies, _, _>(|s: Arc<PolicyStore>, r| async move { s.list(r) })
        .route::<op::DeletePolicies, _, _>(|s: Arc<PolicyStore>, r| async move {
            s.delete_all(r).await
        });
    kms_bus::serve(&bus, store, router, Duration::from_secs(10), shutdown).await
}

struct PolicyStore {
    db: sled::Db,
    policies: sled::Tree,
}

fn internal(e: impl std::fmt::Display) -> KmsError {
    tracing::error!(error = %e, "policy store failure");
    KmsError::internal()
}

fn entry_key(key_id: &str, name: &str) -> String {
    format!("{key_id}/{name}")
}

impl PolicyStore {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let db = sled::open(dir)
            .map_err(|e| anyhow::anyhow!("opening policy store at {}: {e}", dir.display()))?;
        Ok(Self { policies: db.open_tree("policies")?, db })
    }

    async fn put(&self, r: wire::PutPolicyRequest) -> KmsResult<wire::PolicyResponse> {
        kms_core::validate::policy_name(&r.policy_name)?;
        kms_core::validate::policy_size(&r.document)?;
        kms_policy_lang::Policy::parse(&r.document, kms_policy_lang::PolicyKind::Key).map_err(
            |e| KmsError::new(kms_core::ErrorCode::MalformedPolicyDocument, e.to_string()),
        )?;
        self.policies
            .insert(entry_key(&r.key_id, &r.policy_name).as_bytes(), r.document.as_bytes())
            .map_err(internal)?;
        self.db.flush_async().await.map_err(internal)?;
        Ok(wire::PolicyResponse { policy_name: r.policy_name, document: r.document })
    }

    fn get(&self, r: wire::GetPolicyRequest) -> KmsResult<wire::PolicyResponse> {
        kms_core::validate::policy_name(&r.policy_name)?;
        let stored = self
            .policies
            .get(entry_key(&r.key_id, &r.policy_name).as_bytes())
            .map_err(internal)?
            .ok_or_else(|| KmsError::not_found("No such policy exists"))?;
        let document = String::from_utf8(stored.to_vec()).map_err(internal)?;
        Ok(wire::PolicyResponse { policy_name: r.policy_name, document })
    }

    /// Removes every policy of a key whose deletion is complete.
    async fn delete_all(
        &self,
        r: wire::DeletePoliciesRequest,
    ) -> KmsResult<wire::DeletePoliciesResponse> {
        let prefix = format!("{}/", r.key_id);
        for entry in self.policies.scan_prefix(prefix.as_bytes()) {
            let (k, _) = entry.map_err(internal)?;
            self.policies.remove(k).map_err(internal)?;
        }
        self.db.flush_async().await.map_err(internal)?;
        Ok(wire::DeletePoliciesResponse {})
    }

    fn list(&self, r: wire::ListPoliciesRequest) -> KmsResult<wire::ListPoliciesResponse> {
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
            let store = PolicyStore::open(dir.path()).unwrap();
            store.put(put("k1", "default", DOC)).await.unwrap();
            let bad = store.put(put("k1", "default", "{not json")).await.unwrap_err();
            assert_eq!(bad.code, kms_core::ErrorCode::MalformedPolicyDocument);
            let other = store.put(put("k1", "other", DOC)).await.unwrap_err();
            assert_eq!(other.code, kms_core::ErrorCode::NotFound);
        }
        let store = PolicyStore::open(dir.path()).unwrap();
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
