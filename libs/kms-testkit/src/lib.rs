//! Test sandbox pieces: a real `nats-server` with JetStream on a free port and a
//! temporary store directory (or a 3-node cluster), and a real Prometheus scraping and
//! alerting ([`Prometheus`]), each killed when dropped. Tests wait for readiness;
//! nothing sleeps for a fixed time.

mod prometheus;

pub use prometheus::{Prometheus, Sample};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// A running `nats-server` owned by a test.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `nats-server` (from `$NATS_SERVER` or `PATH`) on a port it picks itself.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with("", &[]).await
    }

    /// Starts `nats-server` with `config` added to its configuration (a `tls` block, an
    /// `authorization` block, a `cluster` to join...) and `env` set on its process
    /// (nats-server resolves `$NAME` in its configuration from there).
    pub async fn start_with(config: &str, env: &[(String, String)]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temp dir for nats")?;
        let store = dir.path().join("jetstream");
        let config = if config.is_empty() {
            None
        } else {
            let path = dir.path().join("nats.conf");
            std::fs::write(&path, config)?;
            Some(path)
        };
        let mut server = Self { child: None, port: 0, store, config, env: env.to_vec(), _dir: dir };
        let (child, port) = server.spawn(None).await?;
        server.child = Some(child);
        server.port = port;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port (for `tls://127.0.0.1:<port>` when the server requires TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the server and starts it again on the same port with the same JetStream
    /// store, as after a crash.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let (child, port) = self.spawn(Some(self.port)).await?;
        self.child = Some(child);
        self.port = port;
        Ok(())
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    async fn spawn(&self, port: Option<u16>) -> anyhow::Result<(Child, u16)> {
        let dir = self._dir.path();
        let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned());
        let ports_dir = dir.join(format!("ports-{}", port.unwrap_or(0)));
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)?;
        let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let mut command = Command::new(&binary);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let mut child = command
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(&self.store)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log"))?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {binary} (install nats-server)"))?;
        // The server writes `<name>_<pid>.ports` once it listens.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(port) = read_port(&ports_dir) {
                return Ok((child, port));
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = self.log();
                bail!(
                    "nats-server exited early: {status}: {}",
                    log.lines().last().unwrap_or_default()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!("nats-server did not start listening in time");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

fn read_port(dir: &Path) -> Option<u16> {
    let entry = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "ports"))?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = json.get("nats")?.as_array()?.first()?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

/// A real NATS cluster owned by a test: `nodes` `nats-server`s on loopback, routed to
/// each other, JetStream on with a temporary store each, every node including the same
/// extra configuration (an `authorization` block, say). Routes authenticate, as in the
/// chart: each node accepts a route only with the cluster's user and password (random
/// per cluster). Killed when dropped.
pub struct NatsCluster {
    children: Vec<Child>,
    ports: Vec<u16>,
    cluster_ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts the cluster and waits until its JetStream has a meta leader. `include` is
    /// written beside each node's configuration and included by it; `env` is set on each
    /// server process (nats-server resolves `$NAME` in its configuration from there).
    pub async fn start(
        nodes: usize,
        include: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        Self::start_with(nodes, include, env, "").await
    }

    /// [`start`](Self::start), with `cluster_extra` added inside each node's `cluster`
    /// block (a `tls` block for the routes, say).
    pub async fn start_with(
        nodes: usize,
        include: &str,
        env: &[(String, String)],
        cluster_extra: &str,
    ) -> anyhow::Result<Self> {
        // The cluster ports are picked free, then released for the servers to bind: another
        // process may take one in between, so a cluster that fails to start is tried anew.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(nodes, include, env, cluster_extra).await {
                Ok(cluster) => return Ok(cluster),
                Err(e) if attempt < 3 => eprintln!("nats cluster did not start ({e:#}); retrying"),
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_once(
        nodes: usize,
        include: &str,
        env: &[(String, String)],
        cluster_extra: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temp dir for the nats cluster")?;
        let cluster_ports = free_ports(nodes)?;
        // The route credentials reach each node as the chart passes them: the password
        // and the route URLs in the environment, the configuration naming the variables.
        let route_password = random_hex(16)?;
        let mut route_env = vec![("KMS_NATS_ROUTE_PASSWORD".to_owned(), route_password.clone())];
        let mut routes = Vec::new();
        for (i, p) in cluster_ports.iter().enumerate() {
            let url = format!("nats-route://{ROUTE_USER}:{route_password}@127.0.0.1:{p}");
            route_env.push((format!("KMS_NATS_ROUTE_{i}"), url));
            routes.push(format!("$KMS_NATS_ROUTE_{i}"));
        }
        let routes = routes.join(", ");
        let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned());
        let mut children = Vec::new();
        let mut ports_dirs = Vec::new();
        for (i, cluster_port) in cluster_ports.iter().enumerate() {
            let node = dir.path().join(format!("n{i}"));
            let ports_dir = node.join("ports");
            std::fs::create_dir_all(&ports_dir)?;
            std::fs::write(node.join("include.conf"), include)?;
            let config = format!(
                "server_name: n{i}\nlisten: \"127.0.0.1:-1\"\nhttp: \"127.0.0.1:-1\"\n\
                 jetstream {{ store_dir: {store:?} }}\n\
                 cluster {{ name: kms-test, listen: \"127.0.0.1:{cluster_port}\", routes: [{routes}],\n\
                   authorization {{ user: {ROUTE_USER}, password: $KMS_NATS_ROUTE_PASSWORD }}\n\
                   {cluster_extra}\n}}\n\
                 include ./include.conf\n",
                store = node.join("jetstream").display().to_string(),
            );
            let config_path = node.join("nats.conf");
            std::fs::write(&config_path, config)?;
            let child = Command::new(&binary)
                .arg("-c")
                .arg(&config_path)
                .arg("--ports_file_dir")
                .arg(&ports_dir)
                .envs(env.iter().chain(&route_env).map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(node.join("server.log"))?)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {binary} (install nats-server)"))?;
            children.push(child);
            ports_dirs.push(ports_dir);
        }
        let mut cluster =
            Self { children, ports: Vec::new(), cluster_ports: cluster_ports.clone(), _dir: dir };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut monitors = Vec::new();
        for ports_dir in &ports_dirs {
            loop {
                if let (Some(port), Some(monitor)) =
                    (read_port(ports_dir), read_named_port(ports_dir, "monitoring"))
                {
                    cluster.ports.push(port);
                    monitors.push(monitor);
                    break;
                }
                for (i, child) in cluster.children.iter_mut().enumerate() {
                    if let Ok(Some(status)) = child.try_wait() {
                        let log = std::fs::read_to_string(
                            cluster._dir.path().join(format!("n{i}/server.log")),
                        )
                        .unwrap_or_default();
                        let last = log.lines().last().unwrap_or_default().to_owned();
                        bail!("nats-server n{i} of the cluster exited early ({status}): {last}");
                    }
                }
                if tokio::time::Instant::now() > deadline {
                    bail!("the nats cluster did not start listening in time");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Ready once every node knows the JetStream meta leader.
        for monitor in monitors {
            loop {
                let jsz = http_get(monitor, "/jsz").await.unwrap_or_default();
                let leader = serde_json::from_str::<serde_json::Value>(&jsz)
                    .ok()
                    .and_then(|v| v.get("meta_cluster")?.get("leader")?.as_str().map(str::to_owned))
                    .unwrap_or_default();
                if !leader.is_empty() {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!("the nats cluster elected no JetStream leader in time");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(cluster)
    }

    /// The route URL of node `i`, without the cluster's credentials.
    pub fn route_url(&self, i: usize) -> String {
        format!("nats-route://127.0.0.1:{}", self.cluster_ports.get(i).copied().unwrap_or(0))
    }

    /// The client URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.ports.get(i).copied().unwrap_or(0))
    }

    /// Every node's client URL, comma-separated.
    pub fn urls(&self) -> String {
        (0..self.ports.len()).map(|i| self.url(i)).collect::<Vec<_>>().join(",")
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
    }
}

/// The user the cluster's nodes authenticate their routes as.
const ROUTE_USER: &str = "kms-route";

/// `bytes` random bytes as hex (a password that starts with a letter: nats-server would
/// read one that starts with a digit as a number).
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(format!("r{}", buf.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// `count` distinct loopback ports free at the time of asking.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports")?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

fn read_named_port(dir: &Path, name: &str) -> Option<u16> {
    let entry = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "ports"))?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = json.get(name)?.as_array()?.first()?.as_str()?;
    url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}
