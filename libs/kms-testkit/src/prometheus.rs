//! A real Prometheus server (Debian's `prometheus` package, or `$PROMETHEUS`) for tests:
//! it scrapes the given `/metrics` targets every second, evaluates the given rule files
//! every second, keeps its TSDB in a temporary directory, and answers PromQL through its
//! HTTP API (`/api/v1/query`), as a platform team's Prometheus would. Killed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// A running Prometheus owned by a test.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// One sample of a query's instant vector: its labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: serde_json::Map<String, serde_json::Value>,
    pub value: f64,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (job `kms`) and evaluating `rule_files`, and
    /// waits until it is ready.
    pub async fn start(targets: &[SocketAddr], rule_files: &[PathBuf]) -> anyhow::Result<Self> {
        // The port is picked free, then released for Prometheus to bind (it cannot report
        // a port it chose itself): another process may take it in between, so a server
        // that does not come up is tried anew.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(targets, rule_files).await {
                Ok(server) => return Ok(server),
                Err(e) if attempt < 3 => eprintln!("prometheus did not start ({e:#}); retrying"),
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_once(targets: &[SocketAddr], rule_files: &[PathBuf]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temp dir for prometheus")?;
        let port = crate::free_ports(1)?.first().copied().context("no free port")?;
        let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
        let config = serde_json::json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": rule_files,
            "scrape_configs": [{
                "job_name": "kms",
                "static_configs": [{"targets": targets}],
            }],
        });
        // JSON is YAML: Prometheus reads it as its configuration.
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let binary = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".to_owned());
        let log = dir.path().join("prometheus.log");
        let mut child = Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {binary} (install Debian's prometheus)"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if crate::http_get(port, "/-/ready").await.is_ok_and(|body| body.contains("Ready")) {
                return Ok(Self { child, port, dir });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let last: Vec<&str> = text.lines().rev().take(3).collect();
                bail!("prometheus exited early ({status}): {last:?}");
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.start_kill();
                bail!("prometheus was not ready in time");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The base URL of its HTTP API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Evaluates `promql` now: the instant vector's samples (an error for a query
    /// Prometheus refuses).
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let body = crate::http_get(self.port, &path).await?;
        let answer: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("prometheus answered {body}"))?;
        if answer["status"] != "success" {
            bail!("query {promql} failed: {body}");
        }
        let results = answer["data"]["result"].as_array().cloned().unwrap_or_default();
        results
            .into_iter()
            .map(|r| {
                let labels = r["metric"].as_object().cloned().unwrap_or_default();
                let value = r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .with_context(|| format!("a sample without value: {r}"))?;
                Ok(Sample { labels, value })
            })
            .collect()
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `text` as a URL query value: everything but unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode(r#"sum(x{a="b c"}) > 0"#),
            "sum%28x%7Ba%3D%22b%20c%22%7D%29%20%3E%200"
        );
        assert_eq!(percent_encode("rate(m[5m])"), "rate%28m%5B5m%5D%29");
    }
}
