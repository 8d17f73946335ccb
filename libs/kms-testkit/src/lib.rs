//! Test sandbox pieces: a real `nats-server` with JetStream on a free port and a
//! temporary store directory, killed when dropped. Tests wait for readiness; nothing
//! sleeps for a fixed time.

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
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `nats-server` (from `$NATS_SERVER` or `PATH`) on a port it picks itself.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temp dir for nats")?;
        let store = dir.path().join("jetstream");
        let (child, port) = spawn(dir.path(), &store, None).await?;
        Ok(Self { child: Some(child), port, store, _dir: dir })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts it again on the same port with the same JetStream
    /// store, as after a crash.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let (child, port) = spawn(self._dir.path(), &self.store, Some(self.port)).await?;
        self.child = Some(child);
        self.port = port;
        Ok(())
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
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

async fn spawn(dir: &Path, store: &Path, port: Option<u16>) -> anyhow::Result<(Child, u16)> {
    let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned());
    let ports_dir = dir.join(format!("ports-{}", port.unwrap_or(0)));
    let _ = std::fs::remove_dir_all(&ports_dir);
    std::fs::create_dir_all(&ports_dir)?;
    let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
    let mut child = Command::new(&binary)
        .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
        .arg(store)
        .arg("--ports_file_dir")
        .arg(&ports_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
            bail!("nats-server exited early: {status}");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("nats-server did not start listening in time");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
