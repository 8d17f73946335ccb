//! The credentials store: static access keys, JWT issuers and admin principals, loaded from
//! and saved to a JSON file, validated once at load time.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey};
use rand::Rng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::identity::{is_account_id, parse_principal_arn};

/// Shortest HMAC secret accepted for a JWT issuer, in bytes (RFC 7518 §3.2 for HS256).
const MIN_HMAC_SECRET_LEN: usize = 32;

/// One static access key (the `aws` CLI's `aws_access_key_id` / `aws_secret_access_key`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyEntry {
    /// The access key id, e.g. `AKIA...`.
    pub access_key_id: String,
    /// The secret access key.
    #[serde(with = "secret_string")]
    pub secret_access_key: Zeroizing<String>,
    /// The 12-digit account the key acts in.
    pub account_id: String,
    /// `arn:aws:iam::<account_id>:user/NAME` (or `role/NAME`, `root`).
    pub principal_arn: String,
    /// The principal's tags, for `aws:PrincipalTag/<key>` conditions.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
}

impl fmt::Debug for AccessKeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeyEntry")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("principal_arn", &self.principal_arn)
            .finish()
    }
}

/// The JWT signature algorithms an issuer may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared `secret`.
    HS256,
    /// HMAC-SHA384 with a shared `secret`.
    HS384,
    /// HMAC-SHA512 with a shared `secret`.
    HS512,
    /// RSASSA-PKCS1-v1_5 SHA-256 with `public_key_pem`.
    RS256,
    /// RSASSA-PKCS1-v1_5 SHA-384 with `public_key_pem`.
    RS384,
    /// RSASSA-PKCS1-v1_5 SHA-512 with `public_key_pem`.
    RS512,
    /// ECDSA P-256 SHA-256 with `public_key_pem`.
    ES256,
    /// ECDSA P-384 SHA-384 with `public_key_pem`.
    ES384,
}

impl JwtAlgorithm {
    pub(crate) fn to_jsonwebtoken(self) -> Algorithm {
        match self {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::HS384 => Algorithm::HS384,
            JwtAlgorithm::HS512 => Algorithm::HS512,
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::RS384 => Algorithm::RS384,
            JwtAlgorithm::RS512 => Algorithm::RS512,
            JwtAlgorithm::ES256 => Algorithm::ES256,
            JwtAlgorithm::ES384 => Algorithm::ES384,
        }
    }

    fn is_hmac(self) -> bool {
        matches!(self, JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512)
    }
}

/// A trusted JWT issuer.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerEntry {
    /// The token's `iss`, matched exactly.
    pub issuer: String,
    /// The required `aud`.
    pub audience: String,
    /// The only algorithm accepted from this issuer.
    pub algorithm: JwtAlgorithm,
    /// The HMAC secret (HS* algorithms only).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_secret_string")]
    pub secret: Option<Zeroizing<String>>,
    /// The PEM public key (RS*/ES* algorithms only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// The claim holding the 12-digit account id (default `account`).
    #[serde(default = "default_account_claim")]
    pub account_claim: String,
    /// The claim holding the principal: an IAM ARN, or a name that becomes
    /// `arn:aws:iam::<account>:user/<name>` (default `sub`).
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// The optional claim holding the region (default `region`).
    #[serde(default = "default_region_claim")]
    pub region_claim: String,
}

impl JwtIssuerEntry {
    /// An HMAC issuer with the default claim names.
    pub fn hmac(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        algorithm: JwtAlgorithm,
        secret: Zeroizing<String>,
    ) -> Self {
        Self::with_key(issuer, audience, algorithm, Some(secret), None)
    }

    /// A public-key (RS*/ES*) issuer with the default claim names.
    pub fn public_key(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        algorithm: JwtAlgorithm,
        public_key_pem: impl Into<String>,
    ) -> Self {
        Self::with_key(issuer, audience, algorithm, None, Some(public_key_pem.into()))
    }

    fn with_key(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        algorithm: JwtAlgorithm,
        secret: Option<Zeroizing<String>>,
        public_key_pem: Option<String>,
    ) -> Self {
        JwtIssuerEntry {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithm,
            secret,
            public_key_pem,
            account_claim: default_account_claim(),
            principal_claim: default_principal_claim(),
            region_claim: default_region_claim(),
        }
    }
}

impl fmt::Debug for JwtIssuerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtIssuerEntry")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_key_pem", &self.public_key_pem.as_ref().map(|_| "<pem>"))
            .field("account_claim", &self.account_claim)
            .field("principal_claim", &self.principal_claim)
            .field("region_claim", &self.region_claim)
            .finish()
    }
}

fn default_account_claim() -> String {
    "account".to_owned()
}
fn default_principal_claim() -> String {
    "sub".to_owned()
}
fn default_region_claim() -> String {
    "region".to_owned()
}

/// The file format.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    #[serde(default)]
    access_keys: Vec<AccessKeyEntry>,
    #[serde(default)]
    jwt_issuers: Vec<JwtIssuerEntry>,
    #[serde(default)]
    admin_principals: Vec<String>,
}

/// A JWT issuer with its verification key parsed once.
#[derive(Clone)]
pub(crate) struct PreparedIssuer {
    pub(crate) entry: JwtIssuerEntry,
    pub(crate) key: DecodingKey,
}

/// Validated credentials: access keys by id, JWT issuers by `iss`, and admin principals.
#[derive(Clone)]
pub struct CredentialStore {
    access_keys: Vec<AccessKeyEntry>,
    by_access_key: HashMap<String, usize>,
    issuers: Vec<PreparedIssuer>,
    by_issuer: HashMap<String, usize>,
    admin_principals: Vec<String>,
    admin_set: HashSet<String>,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialStore")
            .field("access_keys", &self.access_keys)
            .field("jwt_issuers", &self.issuers.iter().map(|i| &i.entry).collect::<Vec<_>>())
            .field("admin_principals", &self.admin_principals)
            .finish()
    }
}

impl CredentialStore {
    /// Builds and validates a store: 12-digit accounts, principal ARNs in the entry's own
    /// account, no duplicate access keys or issuers, parseable issuer keys.
    pub fn new(
        access_keys: Vec<AccessKeyEntry>,
        jwt_issuers: Vec<JwtIssuerEntry>,
        admin_principals: Vec<String>,
    ) -> Result<Self, StoreError> {
        let mut store = CredentialStore {
            access_keys: Vec::with_capacity(access_keys.len()),
            by_access_key: HashMap::with_capacity(access_keys.len()),
            issuers: Vec::with_capacity(jwt_issuers.len()),
            by_issuer: HashMap::with_capacity(jwt_issuers.len()),
            admin_principals: Vec::with_capacity(admin_principals.len()),
            admin_set: HashSet::with_capacity(admin_principals.len()),
        };
        for entry in access_keys {
            store.add_access_key(entry)?;
        }
        for entry in jwt_issuers {
            let key = prepare_issuer(&entry)?;
            if store.by_issuer.contains_key(&entry.issuer) {
                return Err(StoreError::DuplicateIssuer(entry.issuer));
            }
            store.by_issuer.insert(entry.issuer.clone(), store.issuers.len());
            store.issuers.push(PreparedIssuer { entry, key });
        }
        for arn in admin_principals {
            if let Err(reason) = parse_principal_arn(&arn) {
                return Err(StoreError::InvalidPrincipalArn {
                    context: "admin_principals".to_owned(),
                    arn,
                    reason,
                });
            }
            if store.admin_set.insert(arn.clone()) {
                store.admin_principals.push(arn);
            }
        }
        Ok(store)
    }

    /// Parses and validates the JSON file format.
    pub fn from_json(json: &str) -> Result<Self, StoreError> {
        let file: StoreFile = serde_json::from_str(json)?;
        Self::new(file.access_keys, file.jwt_issuers, file.admin_principals)
    }

    /// Reads, parses and validates a credentials file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|source| StoreError::Io { path: path.to_owned(), source })?,
        );
        Self::from_json(&text)
    }

    /// The store as pretty JSON in the file format (contains secrets).
    pub fn to_json_pretty(&self) -> Result<Zeroizing<String>, StoreError> {
        #[derive(Serialize)]
        struct View<'a> {
            access_keys: &'a [AccessKeyEntry],
            jwt_issuers: Vec<&'a JwtIssuerEntry>,
            admin_principals: &'a [String],
        }
        let view = View {
            access_keys: &self.access_keys,
            jwt_issuers: self.issuers.iter().map(|i| &i.entry).collect(),
            admin_principals: &self.admin_principals,
        };
        let mut text = Zeroizing::new(serde_json::to_string_pretty(&view)?);
        text.push('\n');
        Ok(text)
    }

    /// Writes the store as pretty JSON: to a temporary file beside `path` (mode 0600 on
    /// Unix), then renamed over `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), StoreError> {
        let path = path.as_ref();
        let text = self.to_json_pretty()?;
        let io_err = |source| StoreError::Io { path: path.to_owned(), source };
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io_err)?;
        file.write_all(text.as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io_err)
    }

    /// Adds an access key after validating it.
    pub fn add_access_key(&mut self, entry: AccessKeyEntry) -> Result<(), StoreError> {
        validate_access_key(&entry)?;
        if self.by_access_key.contains_key(&entry.access_key_id) {
            return Err(StoreError::DuplicateAccessKey(entry.access_key_id));
        }
        self.by_access_key.insert(entry.access_key_id.clone(), self.access_keys.len());
        self.access_keys.push(entry);
        Ok(())
    }

    /// All access keys, in file order.
    pub fn access_keys(&self) -> &[AccessKeyEntry] {
        &self.access_keys
    }

    /// Whether `principal_arn` is listed in `admin_principals` (exact match).
    pub fn is_admin(&self, principal_arn: &str) -> bool {
        self.admin_set.contains(principal_arn)
    }

    pub(crate) fn access_key(&self, access_key_id: &str) -> Option<&AccessKeyEntry> {
        self.by_access_key.get(access_key_id).and_then(|&i| self.access_keys.get(i))
    }

    pub(crate) fn issuer(&self, issuer: &str) -> Option<&PreparedIssuer> {
        self.by_issuer.get(issuer).and_then(|&i| self.issuers.get(i))
    }
}

fn validate_access_key(entry: &AccessKeyEntry) -> Result<(), StoreError> {
    let id = &entry.access_key_id;
    let invalid = |reason| StoreError::InvalidAccessKey { access_key_id: id.clone(), reason };
    if id.is_empty()
        || id.len() > 128
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(invalid("access key id must be 1-128 characters of [A-Za-z0-9_]"));
    }
    if entry.secret_access_key.is_empty() {
        return Err(invalid("secret access key must not be empty"));
    }
    if !is_account_id(&entry.account_id) {
        return Err(StoreError::InvalidAccountId { context: format!("access key {id:?}") });
    }
    match parse_principal_arn(&entry.principal_arn) {
        Err(reason) => Err(StoreError::InvalidPrincipalArn {
            context: format!("access key {id:?}"),
            arn: entry.principal_arn.clone(),
            reason,
        }),
        Ok(arn) if arn.account_id != entry.account_id => Err(StoreError::InvalidPrincipalArn {
            context: format!("access key {id:?}"),
            arn: entry.principal_arn.clone(),
            reason: "the ARN's account is not the entry's account_id",
        }),
        Ok(_) => Ok(()),
    }
}

fn prepare_issuer(entry: &JwtIssuerEntry) -> Result<DecodingKey, StoreError> {
    let invalid =
        |reason: String| StoreError::InvalidIssuer { issuer: entry.issuer.clone(), reason };
    if entry.issuer.is_empty() {
        return Err(invalid("issuer must not be empty".to_owned()));
    }
    if entry.audience.is_empty() {
        return Err(invalid("audience must not be empty".to_owned()));
    }
    for (name, claim) in [
        ("account_claim", &entry.account_claim),
        ("principal_claim", &entry.principal_claim),
        ("region_claim", &entry.region_claim),
    ] {
        if claim.is_empty() {
            return Err(invalid(format!("{name} must not be empty")));
        }
    }
    if entry.algorithm.is_hmac() {
        if entry.public_key_pem.is_some() {
            return Err(invalid(format!(
                "{:?} uses `secret`, not `public_key_pem`",
                entry.algorithm
            )));
        }
        let Some(secret) = &entry.secret else {
            return Err(invalid(format!("{:?} needs `secret`", entry.algorithm)));
        };
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(invalid(format!("`secret` must be at least {MIN_HMAC_SECRET_LEN} bytes")));
        }
        Ok(DecodingKey::from_secret(secret.as_bytes()))
    } else {
        if entry.secret.is_some() {
            return Err(invalid(format!(
                "{:?} uses `public_key_pem`, not `secret`",
                entry.algorithm
            )));
        }
        let Some(pem) = &entry.public_key_pem else {
            return Err(invalid(format!("{:?} needs `public_key_pem`", entry.algorithm)));
        };
        let parsed = match entry.algorithm {
            JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => DecodingKey::from_ec_pem(pem.as_bytes()),
            _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
        };
        parsed.map_err(|e| invalid(format!("`public_key_pem` cannot be parsed: {e}")))
    }
}

/// Characters of a generated access key id after `AKIA` (base32, as AWS uses).
const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Characters of a generated secret access key (base64, as AWS uses).
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Makes a random access key for development: `AKIA` + 16 characters of `[A-Z2-7]`, and a
/// 40-character secret. Not validated here: [`CredentialStore::add_access_key`] validates.
pub fn generate_dev_credentials(account_id: &str, principal_arn: &str) -> AccessKeyEntry {
    let mut rng = rand::thread_rng();
    let mut access_key_id = String::with_capacity(20);
    access_key_id.push_str("AKIA");
    for _ in 0..16 {
        let i = rng.gen_range(0..KEY_ID_ALPHABET.len());
        access_key_id.push(char::from(KEY_ID_ALPHABET[i]));
    }
    let mut secret = Zeroizing::new(String::with_capacity(40));
    for _ in 0..40 {
        let i = rng.gen_range(0..SECRET_ALPHABET.len());
        secret.push(char::from(SECRET_ALPHABET[i]));
    }
    AccessKeyEntry {
        access_key_id,
        secret_access_key: secret,
        account_id: account_id.to_owned(),
        principal_arn: principal_arn.to_owned(),
        tags: Default::default(),
    }
}

/// Serde for `Zeroizing<String>` (zeroize's own serde support is not enabled).
mod secret_string {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub(super) fn serialize<S: Serializer>(
        value: &Zeroizing<String>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Zeroizing<String>, D::Error> {
        String::deserialize(deserializer).map(Zeroizing::new)
    }
}

/// Serde for `Option<Zeroizing<String>>`.
mod optional_secret_string {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Zeroizing<String>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(secret) => serializer.serialize_some(secret.as_str()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Zeroizing<String>>, D::Error> {
        Option::<String>::deserialize(deserializer).map(|v| v.map(Zeroizing::new))
    }
}

#[cfg(test)]
mod tests;
