//! Deployment test support: the NATS permission matrix of `deploy/nats/permissions.json`,
//! the authorization block rendered from it (`deploy/nats/auth-password.conf`, the file
//! the chart and the kustomize base ship), and a real 3-node NATS cluster running that
//! block with one random password per service, to connect to as each service.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use kms_bus::{Bus, NatsAuth};
use kms_testkit::NatsCluster;
use serde::Deserialize;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `deploy/nats/permissions.json`.
#[derive(Debug, Deserialize)]
pub struct Matrix {
    pub stream: String,
    pub users: Vec<User>,
}

/// One service's NATS user and what it may do.
#[derive(Debug, Deserialize)]
pub struct User {
    pub service: String,
    pub user: String,
    pub inbox_prefix: String,
    pub allow_responses: bool,
    pub publish: Vec<Entry>,
    pub subscribe: Vec<Entry>,
}

/// One allowed subject (for subscriptions, optionally followed by a queue group).
#[derive(Debug, Deserialize)]
pub struct Entry {
    pub subject: String,
    pub why: String,
}

impl Matrix {
    pub fn load() -> anyhow::Result<Self> {
        let path = repo_root().join("deploy/nats/permissions.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).context("parsing deploy/nats/permissions.json")
    }

    pub fn user(&self, service: &str) -> anyhow::Result<&User> {
        self.users
            .iter()
            .find(|u| u.service == service)
            .with_context(|| format!("no NATS user for the {service} service"))
    }
}

impl User {
    /// Whether the matrix lets this user publish to the literal `subject`.
    pub fn may_publish(&self, subject: &str) -> bool {
        self.publish.iter().any(|e| covers(&e.subject, subject))
    }

    /// Whether the matrix lets this user subscribe to `subject` (wildcards allowed) in
    /// `queue`: an allow entry must cover the whole subject, and an entry naming a queue
    /// group admits that group only.
    pub fn may_subscribe(&self, subject: &str, queue: Option<&str>) -> bool {
        self.subscribe.iter().any(|e| {
            let mut parts = e.subject.split(' ');
            let pattern = parts.next().unwrap_or_default();
            let allowed_queue = parts.next();
            covers(pattern, subject)
                && match allowed_queue {
                    None => true,
                    Some(q) => queue == Some(q),
                }
        })
    }
}

/// Whether every subject `subject` can stand for is one `pattern` matches (NATS `*` is
/// one token, `>` the rest).
pub fn covers(pattern: &str, subject: &str) -> bool {
    let mut pattern = pattern.split('.');
    let mut subject = subject.split('.');
    loop {
        match (pattern.next(), subject.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(s)) if s != ">" => {}
            (Some(p), Some(s)) if p == s && p != "*" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The server errors a raw connection received: permission violations among them.
#[derive(Clone, Default)]
pub struct ServerErrors(Arc<Mutex<Vec<String>>>);

impl ServerErrors {
    pub fn all(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The subjects of `Permissions Violation for <kind> to "<subject>"` errors, with
    /// ` using queue "<queue>"` kept as ` <queue>`.
    pub fn violations(&self, kind: &str) -> Vec<String> {
        let prefix = format!("Permissions Violation for {kind} to ");
        self.all()
            .iter()
            .filter_map(|e| {
                let rest = e.split_once(&prefix)?.1;
                let mut quoted = rest.split('"').skip(1).step_by(2);
                let subject = quoted.next()?.to_owned();
                Some(match quoted.next() {
                    Some(queue) => format!("{subject} {queue}"),
                    None => subject,
                })
            })
            .collect()
    }
}

/// A 3-node cluster running the rendered authorization block.
pub struct Deployment {
    pub cluster: NatsCluster,
    pub matrix: Matrix,
    passwords: HashMap<String, String>,
}

impl Deployment {
    pub async fn start() -> anyhow::Result<Self> {
        let matrix = Matrix::load()?;
        let block = std::fs::read_to_string(repo_root().join("deploy/nats/auth-password.conf"))
            .context("reading deploy/nats/auth-password.conf")?;
        let passwords: HashMap<String, String> = matrix
            .users
            .iter()
            // nats-server parses a referenced variable's value as a configuration value:
            // a password must start with a letter, or a leading digit makes it a number.
            .map(|u| (u.service.clone(), format!("kms{}", uuid::Uuid::new_v4().simple())))
            .collect();
        let env: Vec<(String, String)> = passwords
            .iter()
            .map(|(service, pw)| {
                (format!("KMS_NATS_PASSWORD_{}", service.to_uppercase()), pw.clone())
            })
            .collect();
        let cluster = NatsCluster::start(3, &block, &env).await?;
        Ok(Self { cluster, matrix, passwords })
    }

    /// How `service` connects: its user and password, its own inbox prefix.
    pub fn auth(&self, service: &str) -> anyhow::Result<NatsAuth> {
        let user = self.matrix.user(service)?;
        Ok(NatsAuth {
            name: Some(user.user.clone()),
            user: Some(user.user.clone()),
            password: self.passwords.get(service).cloned(),
            inbox_prefix: Some(user.inbox_prefix.clone()),
            ..NatsAuth::default()
        })
    }

    /// `service`'s bus, connected to node `node`.
    pub async fn bus(&self, service: &str, node: usize) -> anyhow::Result<Bus> {
        let bus = Bus::connect_with(
            &self.cluster.url(node),
            Duration::from_secs(3),
            &self.auth(service)?,
        )
        .await?;
        bus.client().flush().await.context("first flush")?;
        Ok(bus)
    }

    /// A plain client as `service` on node `node`, recording the server's errors.
    pub async fn raw(
        &self,
        service: &str,
        node: usize,
    ) -> anyhow::Result<(async_nats::Client, ServerErrors)> {
        let user = self.matrix.user(service)?;
        let errors = ServerErrors::default();
        let sink = errors.0.clone();
        let client = async_nats::ConnectOptions::new()
            .user_and_password(
                user.user.clone(),
                self.passwords.get(service).cloned().unwrap_or_default(),
            )
            .custom_inbox_prefix(&user.inbox_prefix)
            .request_timeout(Some(Duration::from_millis(1000)))
            .event_callback(move |event| {
                let sink = sink.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        if let Ok(mut v) = sink.lock() {
                            v.push(e.to_string());
                        }
                    }
                }
            })
            .connect(self.cluster.url(node))
            .await
            .with_context(|| format!("connecting as {}", user.user))?;
        client.flush().await.context("first flush")?;
        Ok((client, errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_follows_nats_wildcards() {
        let check = |pattern: &str, subject: &str, expected: bool| {
            assert_eq!(covers(pattern, subject), expected, "{pattern} covers {subject}");
        };
        check("kms.v1.metadata.>", "kms.v1.metadata.CreateKey", true);
        check("kms.v1.metadata.>", "kms.v1.metadata.>", true);
        check("kms.v1.metadata.>", "kms.v1.metadata", false);
        check("kms.v1.metadata.>", "kms.v1.>", false);
        check("kms.v1.metadata.>", "kms.v1.*.CreateKey", false);
        check("kms.v1.*.CreateKey", "kms.v1.metadata.CreateKey", true);
        check("kms.v1.*.CreateKey", "kms.v1.*.CreateKey", true);
        check("kms.v1.*.CreateKey", "kms.v1.>", false);
        check("kms.v1.audit.>", "kms.v1.audit-events.1", false);
        check("$JS.API.STREAM.INFO.KMS_AUDIT", "$JS.API.STREAM.INFO.KMS_AUDIT", true);
        check("$JS.API.STREAM.INFO.KMS_AUDIT", "$JS.API.STREAM.INFO.OTHER", false);
        check(">", "anything.at.all", true);
    }
}
