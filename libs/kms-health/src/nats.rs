//! The NATS connection flags every service binary takes, each with its environment
//! variable, turned into [`NatsAuth`] and a connected [`Bus`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kms_bus::{Bus, NatsAuth};

/// How a service binary reaches NATS. At most one of user/password, nkey seed and
/// credentials file; TLS when a CA or a client certificate is given.
#[derive(Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server to connect to (several of a cluster may be given, comma-separated).
    #[arg(long, env = "KMS_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// NATS user this service connects as.
    #[arg(long, env = "KMS_NATS_USER")]
    pub nats_user: Option<String>,
    /// Password of the NATS user (prefer the file).
    #[arg(long, env = "KMS_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// File holding the password of the NATS user.
    #[arg(long, env = "KMS_NATS_PASSWORD_FILE")]
    pub nats_password_file: Option<PathBuf>,
    /// File holding this service's nkey seed (`SU...`).
    #[arg(long, env = "KMS_NATS_NKEY_SEED_FILE")]
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// NATS credentials file (user JWT and seed) for operator-mode servers.
    #[arg(long, env = "KMS_NATS_CREDS_FILE")]
    pub nats_creds_file: Option<PathBuf>,
    /// CA bundle of the NATS server's certificate; setting it requires TLS.
    #[arg(long, env = "KMS_NATS_TLS_CA_FILE")]
    pub nats_tls_ca_file: Option<PathBuf>,
    /// Client certificate for NATS servers that verify clients.
    #[arg(long, env = "KMS_NATS_TLS_CERT_FILE", requires = "nats_tls_key_file")]
    pub nats_tls_cert_file: Option<PathBuf>,
    /// Key of the client certificate.
    #[arg(long, env = "KMS_NATS_TLS_KEY_FILE", requires = "nats_tls_cert_file")]
    pub nats_tls_key_file: Option<PathBuf>,
    /// Prefix of this process's reply subjects; the subject permissions give each service
    /// its own (`_INBOX.kms-<service>`). Default `_INBOX`.
    #[arg(long, env = "KMS_NATS_INBOX_PREFIX")]
    pub nats_inbox_prefix: Option<String>,
}

impl std::fmt::Debug for NatsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsArgs")
            .field("nats_url", &self.nats_url)
            .field("nats_user", &self.nats_user)
            .field("nats_password", &self.nats_password.as_ref().map(|_| "<redacted>"))
            .field("nats_password_file", &self.nats_password_file)
            .field("nats_nkey_seed_file", &self.nats_nkey_seed_file)
            .field("nats_creds_file", &self.nats_creds_file)
            .field("nats_tls_ca_file", &self.nats_tls_ca_file)
            .field("nats_tls_cert_file", &self.nats_tls_cert_file)
            .field("nats_tls_key_file", &self.nats_tls_key_file)
            .field("nats_inbox_prefix", &self.nats_inbox_prefix)
            .finish()
    }
}

impl NatsArgs {
    /// The authentication and TLS settings, reading the password and seed files.
    /// `name` is the connection name the server shows (`kms-<service>`).
    pub fn auth(&self, name: &str) -> anyhow::Result<NatsAuth> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .with_context(|| format!("reading the nats {what} file {}", path.display()))
        };
        let password = match (&self.nats_password, &self.nats_password_file) {
            (Some(_), Some(_)) => {
                anyhow::bail!("give the nats password or its file, not both")
            }
            (Some(password), None) => Some(password.clone()),
            (None, Some(path)) => Some(read(path, "password")?),
            (None, None) => None,
        };
        let nkey_seed =
            self.nats_nkey_seed_file.as_ref().map(|p| read(p, "nkey seed")).transpose()?;
        Ok(NatsAuth {
            name: Some(name.to_owned()),
            user: self.nats_user.clone(),
            password,
            nkey_seed,
            creds_file: self.nats_creds_file.clone(),
            tls_ca_file: self.nats_tls_ca_file.clone(),
            tls_cert_file: self.nats_tls_cert_file.clone(),
            tls_key_file: self.nats_tls_key_file.clone(),
            inbox_prefix: self.nats_inbox_prefix.clone(),
        })
    }

    /// Connects to the bus as `name`, with calls timing out after `timeout`.
    pub async fn connect(&self, name: &str, timeout: Duration) -> anyhow::Result<Bus> {
        Bus::connect_with(&self.nats_url, timeout, &self.auth(name)?).await
    }
}
