//! The system under test: a real `nats-server` (JetStream on, temp store, free port),
//! every service in-process with its own temp sled directory, the gateway on a free port,
//! and SDK clients configured with the dev credentials. Tests wait for readiness by
//! polling a real call; nothing sleeps for a fixed time.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use kms_auth::CredentialStore;
use kms_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

pub(crate) const ACCOUNT_A: &str = "111122223333";
pub(crate) const ACCOUNT_B: &str = "444455556666";
pub(crate) const REGION: &str = "us-east-1";

/// One account's SigV4 credentials.
#[derive(Clone)]
pub(crate) struct AccessKey {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) principal: String,
}

/// The platform operator of `start_with_users`: an admin principal with a JWT.
pub(crate) const OPERATOR: &str = "arn:aws:iam::999988887777:role/kms-operator";
const OPERATOR_ISSUER: &str = "https://operator.test";
const OPERATOR_SECRET: &str = "operator-hmac-secret-of-at-least-32-bytes";

pub(crate) struct Sandbox {
    pub(crate) nats: NatsServer,
    data: tempfile::TempDir,
    pub(crate) endpoint: String,
    port: u16,
    keys: Vec<AccessKey>,
    /// The clock of scheduled rotations and deletions; tests move it.
    pub(crate) clock: kms_core::ManualClock,
    running: Option<(CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>)>,
    /// A second audit service the test starts and stops on its own (see `start_audit`).
    extra_audit: Option<(CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>)>,
    /// The gateway's workload identity configuration, when a test gives one.
    workload_identity_file: Option<PathBuf>,
    /// The gateway's TLS certificate and key (PEM): it then serves HTTPS only.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Sandbox {
    pub(crate) async fn start() -> Self {
        Self::start_with(Clone::clone).await
    }

    /// Starts with the dev credentials rewritten by `credentials` (to add JWT issuers or
    /// admin principals).
    pub(crate) async fn start_with(
        credentials: impl FnOnce(&CredentialStore) -> CredentialStore,
    ) -> Self {
        Self::start_configured(credentials, None, None).await
    }

    /// Starts with the gateway serving HTTPS with `cert` and `key` (PEM files). The SDK
    /// clients of the sandbox speak plain HTTP only: a test drives this one with the `aws`
    /// CLI, and waits for the system itself.
    pub(crate) async fn start_with_tls(cert: PathBuf, key: PathBuf) -> Self {
        Self::start_configured(Clone::clone, None, Some((cert, key))).await
    }

    /// Starts with the dev credentials rewritten by `credentials` and, when given, the
    /// gateway's workload identity configuration (STS `AssumeRoleWithWebIdentity`).
    async fn start_configured(
        credentials: impl FnOnce(&CredentialStore) -> CredentialStore,
        workload_identity: Option<serde_json::Value>,
        tls: Option<(PathBuf, PathBuf)>,
    ) -> Self {
        if std::env::var_os("KMS_E2E_LOG").is_some() {
            // Service logs on stderr, for debugging a failing test (RUST_LOG filters).
            kms_telemetry::init();
        }
        let nats = NatsServer::start().await.expect("nats-server starts");
        let data = tempfile::tempdir().expect("temp dir");
        let setup =
            kms_server::dev_init(data.path(), "http://127.0.0.1:0", REGION).expect("dev-init");
        let store = CredentialStore::load(&setup.credentials_file).expect("credentials load");
        let store = credentials(&store);
        store.save(&setup.credentials_file).expect("credentials save");
        let keys = store
            .access_keys()
            .iter()
            .map(|k| AccessKey {
                id: k.access_key_id.clone(),
                secret: k.secret_access_key.to_string(),
                principal: k.principal_arn.clone(),
            })
            .collect();
        let mut sandbox = Self {
            nats,
            data,
            endpoint: String::new(),
            port: 0,
            keys,
            clock: kms_core::ManualClock::starting_now(),
            running: None,
            extra_audit: None,
            workload_identity_file: None,
            tls,
        };
        if let Some(config) = workload_identity {
            let path = sandbox.data.path().join("workload-identity.json");
            std::fs::write(&path, config.to_string()).expect("write workload identity");
            sandbox.workload_identity_file = Some(path);
        }
        sandbox.launch().await;
        sandbox
    }

    /// Starts with extra SigV4 users (principal ARNs; no identity policies attached) and
    /// a platform operator (`OPERATOR`) who may call the admin API (`admin`).
    pub(crate) async fn start_with_users(principals: &[&str]) -> Self {
        Self::start_with_users_and(principals, None).await
    }

    /// Like `start_with_users`, with the gateway's workload identity configuration.
    pub(crate) async fn start_with_workload_identity(config: serde_json::Value) -> Self {
        Self::start_with_users_and(&[], Some(config)).await
    }

    async fn start_with_users_and(
        principals: &[&str],
        workload_identity: Option<serde_json::Value>,
    ) -> Self {
        Self::start_configured(
            |store| {
                let mut keys = store.access_keys().to_vec();
                for principal in principals {
                    let account = principal.split(':').nth(4).expect("account in the ARN");
                    keys.push(kms_auth::generate_dev_credentials(account, principal));
                }
                let issuer = kms_auth::JwtIssuerEntry::hmac(
                    OPERATOR_ISSUER,
                    "kms",
                    kms_auth::JwtAlgorithm::HS256,
                    zeroize::Zeroizing::new(OPERATOR_SECRET.to_owned()),
                );
                CredentialStore::new(keys, vec![issuer], vec![OPERATOR.to_owned()])
                    .expect("credentials")
            },
            workload_identity,
            None,
        )
        .await
    }

    /// A call to the identity-policy admin API (`KmsAdmin_20261101.<operation>`) as the
    /// platform operator. Returns the status and body.
    pub(crate) async fn admin(&self, operation: &str, body: serde_json::Value) -> (u16, String) {
        self.admin_as(OPERATOR, "999988887777", operation, body).await
    }

    /// An admin API call as `principal` of `account` (a bearer token of the operator's
    /// issuer, which any principal may hold; only the operator is a platform admin).
    pub(crate) async fn admin_as(
        &self,
        principal: &str,
        account: &str,
        operation: &str,
        body: serde_json::Value,
    ) -> (u16, String) {
        let target = format!("KmsAdmin_20261101.{operation}");
        self.bearer_post(principal, account, serde_json::json!({}), &target, body).await
    }

    /// A request with a bearer token (of the operator's issuer) for `principal` of
    /// `account` carrying `principal_tags`. Returns the status and body.
    pub(crate) async fn bearer_post(
        &self,
        principal: &str,
        account: &str,
        principal_tags: serde_json::Value,
        target: &str,
        body: serde_json::Value,
    ) -> (u16, String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = serde_json::json!({"iss": OPERATOR_ISSUER, "aud": "kms", "sub": principal,
            "account": account, "exp": now + 300, "principal_tags": principal_tags});
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(OPERATOR_SECRET.as_bytes()),
        )
        .expect("token");
        raw_post(
            &self.endpoint,
            target,
            &[("authorization".to_owned(), format!("Bearer {token}"))],
            &body.to_string(),
        )
        .await
    }

    /// Attaches an identity policy to a principal through the admin API.
    pub(crate) async fn attach(&self, principal: &str, name: &str, document: serde_json::Value) {
        let (status, body) = self
            .admin(
                "PutPrincipalPolicy",
                serde_json::json!({"PrincipalArn": principal, "PolicyName": name,
                    "PolicyDocument": document.to_string()}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// An SDK client signed with the access key of `principal`.
    pub(crate) fn kms_as(&self, principal: &str) -> aws_sdk_kms::Client {
        let key =
            self.keys.iter().find(|k| k.principal == principal).expect("a user of the sandbox");
        self.kms_with(key.clone(), REGION)
    }

    fn root_key_file(&self) -> PathBuf {
        self.data.path().join("root-key.hex")
    }

    /// Starts the system with its audit service replaced by one the test controls.
    pub(crate) async fn start_with_separate_audit() -> Self {
        let mut sb = Self::start().await;
        sb.running_without_audit().await;
        sb
    }

    async fn running_without_audit(&mut self) {
        if let Some((shutdown, task)) = self.running.take() {
            shutdown.cancel();
            task.await.expect("join").expect("services stop cleanly");
        }
        self.launch_with(false).await;
        self.start_audit().await;
    }

    fn audit_dir(&self) -> PathBuf {
        self.data.path().join("audit-separate")
    }

    /// Starts the separately run audit service (its store under its own directory).
    pub(crate) async fn start_audit(&mut self) {
        let bus =
            kms_bus::Bus::connect(&self.nats.url(), Duration::from_secs(5)).await.expect("bus");
        let shutdown = CancellationToken::new();
        let config = kms_audit::Config::for_test(self.audit_dir());
        let task = tokio::spawn(kms_audit::run(config, bus, shutdown.clone().cancelled_owned()));
        self.extra_audit = Some((shutdown, task));
    }

    /// Waits until the separately run audit service answers lookups.
    pub(crate) async fn wait_audit(&self) {
        let trail = self.cloudtrail(ACCOUNT_A);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while trail.lookup_events().max_results(1).send().await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "audit service did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The separately run audit service's store directory (open it only while stopped).
    pub(crate) fn separate_audit_dir(&self) -> PathBuf {
        self.audit_dir()
    }

    /// Stops the separately run audit service; with `wipe`, its store is lost too.
    pub(crate) async fn stop_audit(&mut self, wipe: bool) {
        if let Some((shutdown, task)) = self.extra_audit.take() {
            shutdown.cancel();
            task.await.expect("join").expect("audit stops cleanly");
        }
        if wipe {
            std::fs::remove_dir_all(self.audit_dir()).expect("wipe the audit store");
        }
    }

    async fn launch(&mut self) {
        self.launch_with(true).await;
    }

    async fn launch_with(&mut self, with_audit: bool) {
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("bind gateway");
        self.port = listener.local_addr().expect("local addr").port();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.endpoint = format!("{scheme}://127.0.0.1:{}", self.port);
        let mut config = kms_server::AllConfig::under(
            self.data.path(),
            self.root_key_file(),
            self.data.path().join("credentials.json"),
        );
        config.run_audit = with_audit;
        config.gateway.workload_identity_file = self.workload_identity_file.clone();
        if let Some((cert, key)) = &self.tls {
            config.gateway.tls_cert_file = Some(cert.clone());
            config.gateway.tls_key_file = Some(key.clone());
        }
        let bus = kms_bus::Bus::connect(&self.nats.url(), Duration::from_secs(5))
            .await
            .expect("bus connects");
        let shutdown = CancellationToken::new();
        let clock = std::sync::Arc::new(self.clock.clone());
        let task =
            tokio::spawn(kms_server::run_all(config, bus, listener, clock, shutdown.clone()));
        self.running = Some((shutdown, task));
        if with_audit && self.tls.is_none() {
            self.wait_ready().await;
        }
    }

    /// Polls a real call until every service answers.
    async fn wait_ready(&self) {
        let kms = self.kms(ACCOUNT_A);
        let trail = self.cloudtrail(ACCOUNT_A);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let metadata = kms.list_keys().send().await.map(|_| ());
            // GenerateRandom reaches the crypto service, lookup-events the audit service.
            let crypto = kms.generate_random().number_of_bytes(1).send().await.map(|_| ());
            let audit = trail.lookup_events().max_results(1).send().await.map(|_| ());
            if metadata.is_ok() && crypto.is_ok() && audit.is_ok() {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let finished = self.running.as_ref().is_some_and(|(_, task)| task.is_finished());
                panic!(
                    "system did not become ready (services exited: {finished}): {metadata:?} {crypto:?} {audit:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every service (as a crash would: no further requests) and starts them again
    /// on the same data, with the NATS server restarted too.
    pub(crate) async fn restart(&mut self) {
        if let Some((shutdown, task)) = self.running.take() {
            shutdown.cancel();
            task.await.expect("join").expect("services stop cleanly");
        }
        self.nats.restart().await.expect("nats restarts");
        self.launch().await;
    }

    /// Stops nats-server, then asks every service to stop; how long they took to finish
    /// and what `run_all` returned. `None` if they were still running after `patience`.
    pub(crate) async fn stop_without_nats(
        &mut self,
        patience: Duration,
    ) -> Option<(Duration, anyhow::Result<()>)> {
        let (shutdown, task) = self.running.take().expect("services running");
        self.nats.stop().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let asked = tokio::time::Instant::now();
        shutdown.cancel();
        let result = tokio::time::timeout(patience, task).await.ok()?;
        Some((asked.elapsed(), result.expect("join")))
    }

    pub(crate) fn access_key(&self, account: &str) -> AccessKey {
        let index = if account == ACCOUNT_A { 0 } else { 1 };
        self.keys[index].clone()
    }

    pub(crate) fn kms(&self, account: &str) -> aws_sdk_kms::Client {
        self.kms_with(self.access_key(account), REGION)
    }

    pub(crate) fn kms_in(&self, account: &str, region: &str) -> aws_sdk_kms::Client {
        self.kms_with(self.access_key(account), region)
    }

    pub(crate) fn kms_with(&self, key: AccessKey, region: &str) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::from_conf(self.kms_config(key, region).build())
    }

    pub(crate) fn kms_config(&self, key: AccessKey, region: &str) -> aws_sdk_kms::config::Builder {
        aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(key.id, key.secret, None, None, "e2e"))
            // Plain HTTP on loopback: no TLS stack needed (the builder is public API,
            // hidden from docs).
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
    }

    pub(crate) fn cloudtrail(&self, account: &str) -> aws_sdk_cloudtrail::Client {
        self.cloudtrail_with(self.access_key(account))
    }

    /// A CloudTrail client signed with the access key of `principal`.
    pub(crate) fn cloudtrail_as(&self, principal: &str) -> aws_sdk_cloudtrail::Client {
        let key =
            self.keys.iter().find(|k| k.principal == principal).expect("a user of the sandbox");
        self.cloudtrail_with(key.clone())
    }

    fn cloudtrail_with(&self, key: AccessKey) -> aws_sdk_cloudtrail::Client {
        let config = aws_sdk_cloudtrail::Config::builder()
            .behavior_version(aws_sdk_cloudtrail::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudtrail::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_cloudtrail::config::Credentials::new(
                key.id, key.secret, None, None, "e2e",
            ))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .retry_config(aws_sdk_cloudtrail::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_cloudtrail::Client::from_conf(config)
    }

    /// Creates a symmetric key in `account` and returns its key id.
    pub(crate) async fn create_key(&self, account: &str) -> String {
        self.kms(account)
            .create_key()
            .description("e2e")
            .send()
            .await
            .expect("create-key")
            .key_metadata
            .expect("metadata")
            .key_id
    }

    /// Every CloudTrail record of `account` (newest first), as parsed JSON.
    pub(crate) async fn events(&self, account: &str) -> Vec<serde_json::Value> {
        let trail = self.cloudtrail(account);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = trail
                .lookup_events()
                .set_next_token(token)
                .max_results(50)
                .send()
                .await
                .expect("lookup-events");
            for event in page.events() {
                let record = event.cloud_trail_event().expect("CloudTrailEvent");
                out.push(serde_json::from_str(record).expect("record is JSON"));
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return out;
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some((shutdown, _)) = self.running.take() {
            shutdown.cancel();
        }
        if let Some((shutdown, _)) = self.extra_audit.take() {
            shutdown.cancel();
        }
    }
}

/// The AWS error code of a failed SDK call (panics if it succeeded).
pub(crate) fn error_code<
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
>(
    result: Result<T, SdkError<E, R>>,
) -> String {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().map(str::to_owned).unwrap_or_else(|| panic!("no error code in {e:?}")),
    }
}

/// The error message of a failed SDK call.
pub(crate) fn error_message<
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
>(
    result: Result<T, SdkError<E, R>>,
) -> String {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.message().unwrap_or_default().to_owned(),
    }
}

/// A raw HTTP/1.1 POST of an awsJson1_1 request with the given extra headers, for what no
/// SDK sends (no credentials, bearer tokens). Returns the status and body.
pub(crate) async fn raw_post(
    endpoint: &str,
    target: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.expect("connect gateway");
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The `aws` CLI: `AWS_CLI`, or the one `make` installs into the workspace's `.venv`.
pub(crate) fn aws_cli() -> PathBuf {
    let path = std::env::var_os("AWS_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/aws"));
    assert!(
        path.exists(),
        "the aws CLI is needed: `make test-rust` installs it into .venv, or set AWS_CLI ({} is missing)",
        path.display()
    );
    path
}

/// Runs openssl in `dir`, returning its stdout; panics with its output on failure.
pub(crate) fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}
