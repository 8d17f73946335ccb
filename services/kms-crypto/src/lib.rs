//! The crypto service: the only holder of key material. Material is generated here,
//! stored in sled wrapped under the root key (AES-256-GCM, bound to account, key id and
//! version), unwrapped only in memory for one operation and zeroized after. It answers
//! `kms.v1.crypto.*`: encrypt, decrypt, re-encrypt, data keys and random bytes, MACs, and
//! asymmetric keys (sign, verify, public keys, RSA-OAEP, ECDH, data key pairs), whose
//! generation and RSA private-key operations run off the async runtime.

mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kms_bus::{crypto as op, Bus, Router};
use kms_crypto_core::RootKey;
use store::CryptoStore;

/// Settings of the crypto service.
#[derive(Clone, clap::Args)]
pub struct Config {
    /// Directory of the service's sled database.
    #[arg(long = "crypto-data-dir", env = "KMS_CRYPTO_DATA_DIR", default_value = ".data/crypto")]
    pub data_dir: PathBuf,
    /// File holding the root key as 64 hex characters.
    #[arg(long = "root-key-file", env = "KMS_CRYPTO_ROOT_KEY_FILE")]
    pub root_key_file: Option<PathBuf>,
    /// The root key itself as 64 hex characters (prefer the file).
    #[arg(long = "root-key", env = "KMS_CRYPTO_ROOT_KEY", hide_env_values = true)]
    pub root_key_hex: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("root_key_file", &self.root_key_file)
            .field("root_key_hex", &self.root_key_hex.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Config {
    pub fn for_test(data_dir: PathBuf, root_key_hex: String) -> Self {
        Self { data_dir, root_key_file: None, root_key_hex: Some(root_key_hex) }
    }

    fn root_key(&self) -> anyhow::Result<RootKey> {
        let text = match (&self.root_key_file, &self.root_key_hex) {
            (Some(path), _) => {
                zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("reading root key file {}: {e}", path.display())
                })?)
            }
            (None, Some(hex)) => zeroize::Zeroizing::new(hex.clone()),
            (None, None) => anyhow::bail!(
                "no root key configured: set KMS_CRYPTO_ROOT_KEY_FILE or KMS_CRYPTO_ROOT_KEY"
            ),
        };
        Ok(RootKey::from_hex(&text)?)
    }
}

/// Serves the crypto operations until `shutdown` resolves.
pub async fn run(
    config: Config,
    bus: Bus,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = Arc::new(CryptoStore::open(&config.data_dir, config.root_key()?)?);
    let router = Router::new("crypto")
        .route::<op::CreateMaterial, _, _>(|s: Arc<CryptoStore>, r| async move {
            s.create_material(r).await
        })
        .route::<op::Encrypt, _, _>(|s: Arc<CryptoStore>, r| async move { s.encrypt(r) })
        .route::<op::Decrypt, _, _>(|s: Arc<CryptoStore>, r| async move { s.decrypt(r) })
        .route::<op::ReEncrypt, _, _>(|s: Arc<CryptoStore>, r| async move { s.re_encrypt(r).await })
        .route::<op::GenerateDataKey, _, _>(|s: Arc<CryptoStore>, r| async move {
            s.generate_data_key(r)
        })
        .route::<op::GenerateRandom, _, _>(|_s: Arc<CryptoStore>, r| async move {
            store::generate_random(r)
        })
        .route::<op::DestroyMaterial, _, _>(|s: Arc<CryptoStore>, r| async move {
            s.destroy_material(r).await
        })
        .route::<op::GetImportParameters, _, _>(|s: Arc<CryptoStore>, r| async move {
            s.get_import_parameters(r).await
        })
        .route::<op::ImportMaterial, _, _>(|s: Arc<CryptoStore>, r| async move {
            s.import_material(r).await
        })
        .route::<op::DeleteImportedMaterial, _, _>(|s: Arc<CryptoStore>, r| async move {
            s.delete_imported_material(r).await
        })
        .route::<op::GenerateMac, _, _>(|s: Arc<CryptoStore>, r| async move { s.generate_mac(r) })
        .route::<op::VerifyMac, _, _>(|s: Arc<CryptoStore>, r| async move { s.verify_mac(r) })
        .route::<op::Sign, _, _>(|s: Arc<CryptoStore>, r| async move { s.sign(r).await })
        .route::<op::Verify, _, _>(|s: Arc<CryptoStore>, r| async move { s.verify(r) })
        .route::<op::GetPublicKey, _, _>(
            |s: Arc<CryptoStore>, r| async move { s.get_public_key(r) },
        )
        .route::<op::AsymEncrypt, _, _>(|s: Arc<CryptoStore>, r| async move { s.asym_encrypt(r) })
        .route::<op::AsymDecrypt, _, _>(
            |s: Arc<CryptoStore>, r| async move { s.asym_decrypt(r).await },
        )
        .route::<op::GenerateDataKeyPair, _, _>(|s: Arc<CryptoStore>, r| async move {
            s.generate_data_key_pair(r).await
        })
        .route::<op::DeriveSharedSecret, _, _>(|s: Arc<CryptoStore>, r| async move {
            s.derive_shared_secret(r)
        });
    kms_bus::serve(&bus, store, router, Duration::from_secs(10), shutdown).await
}
