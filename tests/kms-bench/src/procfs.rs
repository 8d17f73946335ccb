//! CPU time and resident memory of the processes under test, from `/proc/<pid>/stat`
//! (utime + stime, in clock ticks) and `/proc/<pid>/status` (`VmRSS`). Linux only.

use std::sync::OnceLock;

fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds (user + system) `pid` has used so far; 0 when it cannot be read.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return 0.0 };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat(5) are utime and stime; `fields[0]` is field 3.
    (ticks(11) + ticks(12)) / ticks_per_second()
}

pub(crate) fn cpu_seconds_all(pids: &[u32]) -> f64 {
    pids.iter().map(|p| cpu_seconds(*p)).sum()
}

/// Resident set size of `pid` in MiB; 0 when it cannot be read.
pub(crate) fn rss_mib(pid: u32) -> f64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0.0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The short name of `pid` (`/proc/<pid>/comm`).
pub(crate) fn name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| pid.to_string())
}

/// Waits until `pids` together use less than `idle` of one core over half a second (at
/// most `limit`), so that work left over from a setup phase (the audit service storing
/// the setup's events) is not measured with the next workload. Returns the seconds
/// waited and whether they settled.
pub(crate) async fn settle(pids: &[u32], idle: f64, limit: std::time::Duration) -> (f64, bool) {
    let started = std::time::Instant::now();
    let window = std::time::Duration::from_millis(500);
    while started.elapsed() < limit {
        let before = cpu_seconds_all(pids);
        tokio::time::sleep(window).await;
        if (cpu_seconds_all(pids) - before) / window.as_secs_f64() < idle {
            return (started.elapsed().as_secs_f64(), true);
        }
    }
    (started.elapsed().as_secs_f64(), false)
}
