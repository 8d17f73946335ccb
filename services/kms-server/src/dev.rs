//! `dev-init`: what a developer needs to run the system on a laptop. It creates (once)
//! a root key, a credentials file with an access key for a development user in each of
//! two accounts, identity policies that let those users use KMS (`kms:*`; the default key
//! policy delegates to them, as in AWS) and read their account's audit log
//! (`cloudtrail:LookupEvents`), an AWS shared config/credentials pair so the `aws` CLI and
//! SDKs use them against the local gateway, and a key that seals role-session tokens (STS
//! `AssumeRoleWithWebIdentity`). Existing files are kept, so keys and data survive.

use std::path::{Path, PathBuf};

use kms_auth::{generate_dev_credentials, CredentialStore};

pub const DEV_ACCOUNT: &str = "111122223333";
pub const DEV_PRINCIPAL: &str = "arn:aws:iam::111122223333:user/dev";
pub const DEV_SECOND_ACCOUNT: &str = "444455556666";
pub const DEV_SECOND_PRINCIPAL: &str = "arn:aws:iam::444455556666:user/dev";
/// The identity-policy bootstrap file under the data directory.
pub const IDENTITY_POLICIES_FILE: &str = "identity-policies.json";
/// The role-session sealing key under the data directory.
pub const SESSION_KEY_FILE: &str = "session-key.hex";

/// Where `dev_init` put things.
#[derive(Debug, Clone)]
pub struct DevSetup {
    pub root_key_file: PathBuf,
    pub credentials_file: PathBuf,
    pub aws_config_file: PathBuf,
    pub aws_credentials_file: PathBuf,
    /// Identity policies the policy service attaches at start-up.
    pub identity_policies_file: PathBuf,
    /// The key that seals role-session tokens (`KMS_GATEWAY_SESSION_KEY_FILE`).
    pub session_key_file: PathBuf,
}

impl DevSetup {
    /// The shell lines that point the `aws` CLI and SDKs at the local gateway.
    pub fn env_lines(&self, endpoint: &str, region: &str) -> String {
        format!(
            "export AWS_CONFIG_FILE={}\nexport AWS_SHARED_CREDENTIALS_FILE={}\nexport AWS_PROFILE=kms-dev\nexport AWS_DEFAULT_REGION={region}\nexport AWS_REGION={region}\nexport AWS_ENDPOINT_URL={endpoint}\n",
            self.aws_config_file.display(),
            self.aws_credentials_file.display(),
        )
    }
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file =
        options.open(path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Reading the account's audit log is a permission of its own (`LookupEvents` needs it).
fn audit_read_policy(principal: &str) -> serde_json::Value {
    serde_json::json!({
        "principal": principal,
        "name": "audit-read",
        "document": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "cloudtrail:LookupEvents", "Resource": "*"}]
        }
    })
}

/// A bootstrap file written before `LookupEvents` needed a policy gets the dev users'
/// `audit-read` added (the policy service attaches missing entries at its next start), so
/// an existing `.data/` keeps working. Anything else in the file is left as it is.
fn add_audit_read(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let Ok(mut file) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(()); // not ours to repair; the policy service reports it
    };
    let Some(policies) = file.get_mut("identity_policies").and_then(|p| p.as_array_mut()) else {
        return Ok(());
    };
    let mut changed = false;
    for principal in [DEV_PRINCIPAL, DEV_SECOND_PRINCIPAL] {
        let has = policies.iter().any(|p| p["principal"] == principal && p["name"] == "audit-read");
        if !has {
            policies.push(audit_read_policy(principal));
            changed = true;
        }
    }
    if changed {
        write_private(path, &format!("{file:#}\n"))?;
    }
    Ok(())
}

/// Creates what is missing under `data_dir` and returns where everything is.
pub fn dev_init(data_dir: &Path, endpoint: &str, region: &str) -> anyhow::Result<DevSetup> {
    std::fs::create_dir_all(data_dir)?;
    let setup = DevSetup {
        root_key_file: data_dir.join("root-key.hex"),
        credentials_file: data_dir.join("credentials.json"),
        aws_config_file: data_dir.join("aws-config"),
        aws_credentials_file: data_dir.join("aws-credentials"),
        identity_policies_file: data_dir.join(IDENTITY_POLICIES_FILE),
        session_key_file: data_dir.join(SESSION_KEY_FILE),
    };
    if !setup.session_key_file.exists() {
        write_private(&setup.session_key_file, &kms_auth::SessionKeys::generate_hex())?;
    }
    if !setup.root_key_file.exists() {
        let hex = kms_crypto_core::RootKey::generate_hex();
        write_private(&setup.root_key_file, &hex)?;
    }
    if !setup.credentials_file.exists() {
        let mut store = CredentialStore::new(Vec::new(), Vec::new(), Vec::new())?;
        store.add_access_key(generate_dev_credentials(DEV_ACCOUNT, DEV_PRINCIPAL))?;
        store.add_access_key(generate_dev_credentials(DEV_SECOND_ACCOUNT, DEV_SECOND_PRINCIPAL))?;
        store.save(&setup.credentials_file)?;
    }
    if !setup.identity_policies_file.exists() {
        let policies: Vec<serde_json::Value> = [DEV_PRINCIPAL, DEV_SECOND_PRINCIPAL]
            .iter()
            .flat_map(|principal| {
                [
                    serde_json::json!({
                        "principal": principal,
                        "name": "kms-full-access",
                        "document": {
                            "Version": "2012-10-17",
                            "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]
                        }
                    }),
                    audit_read_policy(principal),
                ]
            })
            .collect();
        let file = serde_json::json!({ "identity_policies": policies });
        write_private(&setup.identity_policies_file, &format!("{file:#}\n"))?;
    } else {
        add_audit_read(&setup.identity_policies_file)?;
    }
    let store = CredentialStore::load(&setup.credentials_file)?;
    let mut credentials = String::new();
    let mut config = String::new();
    for (i, key) in store.access_keys().iter().enumerate() {
        let profile =
            if i == 0 { "kms-dev".to_owned() } else { format!("kms-dev-{}", key.account_id) };
        credentials.push_str(&format!(
            "[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n",
            key.access_key_id,
            key.secret_access_key.as_str()
        ));
        let section = format!("profile {profile}");
        config.push_str(&format!(
            "[{section}]\nregion = {region}\nendpoint_url = {endpoint}\noutput = json\n\n"
        ));
    }
    write_private(&setup.aws_credentials_file, &credentials)?;
    write_private(&setup.aws_config_file, &config)?;
    Ok(setup)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    struct TempDir(std::path::PathBuf);
    impl TempDir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn audit_read_entries(dir: &Path) -> usize {
        let text = std::fs::read_to_string(dir.join(IDENTITY_POLICIES_FILE)).unwrap();
        let file: serde_json::Value = serde_json::from_str(&text).unwrap();
        file["identity_policies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "audit-read")
            .count()
    }

    #[test]
    fn dev_users_may_read_their_audit_log_also_in_an_older_data_dir() {
        // (std's temp dir: this crate has no dev-dependencies to pull in for one test)
        let path = std::env::temp_dir().join(format!("kms-dev-init-{}", std::process::id()));
        let dir = TempDir(path);
        dev_init(dir.path(), "http://127.0.0.1:4566", "us-east-1").unwrap();
        assert_eq!(audit_read_entries(dir.path()), 2);

        // A file from before: kms:* only. dev-init adds audit-read once, keeps the rest.
        let old = serde_json::json!({"identity_policies": [{"principal": DEV_PRINCIPAL,
            "name": "kms-full-access", "document": {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}}]});
        std::fs::write(dir.path().join(IDENTITY_POLICIES_FILE), old.to_string()).unwrap();
        dev_init(dir.path(), "http://127.0.0.1:4566", "us-east-1").unwrap();
        dev_init(dir.path(), "http://127.0.0.1:4566", "us-east-1").unwrap();
        assert_eq!(audit_read_entries(dir.path()), 2);
        let text = std::fs::read_to_string(dir.path().join(IDENTITY_POLICIES_FILE)).unwrap();
        assert!(text.contains("kms-full-access"));
    }
}
