//! `kmsctl audit ...`: verify the audit log (online through the audit service's gRPC API,
//! or offline from an export directory), look events up, count them, tail them and export
//! them as CloudTrail log files with their signed digests.
//!
//! Output meant for scripts goes to stdout; progress of long reads (exports and online
//! verifications read every record of an account) goes to stderr, and only when a person
//! is watching it (stderr is a terminal) or `--progress` asks for it, so a pipeline or a
//! cron job's mail is not filled with counters.
//!
//! Verification never trusts the server's verdict: it fetches records, digests and public
//! keys and runs the verifier of `kms-audit-log` locally; `--public-key` pins the key
//! instead of taking the server's (or the export's) word for it.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kms_audit_log::{
    read_export, verify, write_export, AuditRecord, DigestPublicKey, Export, SignedDigest,
    VerificationReport, VerifyInput,
};
use kms_proto::audit_v1 as pb;
use pb::audit_service_client::AuditServiceClient;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(name = "kmsctl", about = "Operate and audit the KMS", version)]
pub struct Cli {
    /// The audit service's gRPC address.
    #[arg(
        long,
        env = "KMSCTL_AUDIT_ENDPOINT",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub endpoint: String,
    /// Bearer token (a JWT from an issuer the service trusts).
    #[arg(long, env = "KMSCTL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Show progress on stderr even when it is not a terminal.
    #[arg(long, global = true)]
    pub progress: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The audit log.
    #[command(subcommand)]
    Audit(Audit),
}

#[derive(Debug, Subcommand)]
pub enum Audit {
    /// Checks records against the signed digests; names every record removed, changed,
    /// inserted or reordered and every bad digest. Exits 1 when anything is wrong.
    Verify(VerifyArgs),
    /// Events matching the filters, newest first, in the columns of CloudTrail's event
    /// history (time, user, event, resource, source IP, error), or as JSON records.
    Lookup(QueryArgs),
    /// Events matching the filters, newest first, with their store sequence and account.
    Query(QueryArgs),
    /// Counts of matching events per time bucket, grouped.
    Stats(StatsArgs),
    /// Matching events as they are stored (Ctrl-C to stop).
    Tail(TailArgs),
    /// Writes an account's records (optionally a time window) as CloudTrail log files
    /// with their digests and public keys, verifiable with `verify --dir`.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify an export directory instead of the live service.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Only this account (default: every account visible to the caller).
    #[arg(long)]
    pub account: Option<String>,
    /// Trusted public key (PEM); default: the keys the service or export publishes.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args, Default)]
pub struct FilterArgs {
    #[arg(long)]
    pub account: Option<String>,
    /// Key ARN or key id.
    #[arg(long)]
    pub key: Option<String>,
    /// Principal ARN (`userIdentity.arn`).
    #[arg(long)]
    pub principal: Option<String>,
    /// Event name (repeatable: any of them).
    #[arg(long = "event-name")]
    pub event_names: Vec<String>,
    #[arg(long)]
    pub error_code: Option<String>,
    /// Encryption context `KEY` or `KEY=VALUE`.
    #[arg(long)]
    pub context: Option<String>,
    #[arg(long)]
    pub source_ip: Option<String>,
    /// Start: a duration back from now (`90s`, `30m`, `24h`, `7d`), RFC 3339, or epoch seconds.
    #[arg(long, alias = "start")]
    pub since: Option<String>,
    /// End: same forms as `--since`.
    #[arg(long, alias = "end")]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Most events to print.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Group {
    Key,
    Principal,
    EventName,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, value_enum, default_value_t = Group::EventName)]
    pub group_by: Group,
    /// Bucket size (`1h`, `15m`, `1d`, or seconds).
    #[arg(long, default_value = "1h")]
    pub bucket: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Replay from after this record sequence first (default: only new events).
    #[arg(long, default_value_t = 0)]
    pub after_seq: u64,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub account: String,
    #[arg(long, alias = "start")]
    pub since: Option<String>,
    #[arg(long, alias = "end")]
    pub until: Option<String>,
    /// Directory to write (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Ask the service to write digests first, so the newest records are covered
    /// (platform auditors only).
    #[arg(long)]
    pub digest_first: bool,
}

/// Parses `90s`, `30m`, `24h`, `7d` (back from `now`), RFC 3339, or epoch seconds.
pub fn parse_time(text: &str, now: time::OffsetDateTime) -> anyhow::Result<i64> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(t) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Ok(t.unix_timestamp());
    }
    Ok(now.unix_timestamp() - parse_duration(text)?)
}

/// Parses `90s`, `30m`, `24h`, `7d` or plain seconds into seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: i64 = n.parse().with_context(|| format!("not a time or duration: {text:?}"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => anyhow::bail!("unknown duration unit in {text:?} (use s, m, h, d or w)"),
    };
    n.checked_mul(scale).context("duration too large")
}

/// Progress of a long read, on stderr: a counter rewritten in place on a terminal, one
/// line per step otherwise (with `--progress`). Silent when disabled.
pub struct Progress<W: Write> {
    out: Option<W>,
    terminal: bool,
    label: String,
    count: u64,
    last: std::time::Instant,
}

impl Progress<std::io::Stderr> {
    /// Enabled when stderr is a terminal or `forced`.
    pub fn stderr(forced: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Self::new((terminal || forced).then(std::io::stderr), terminal)
    }
}

impl<W: Write> Progress<W> {
    /// How often a counter is rewritten at most.
    const INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
    /// Without a terminal, a line per this many records.
    const LINE_EVERY: u64 = 10_000;

    pub fn new(out: Option<W>, terminal: bool) -> Self {
        Self { out, terminal, label: String::new(), count: 0, last: std::time::Instant::now() }
    }

    /// Starts counting a new step.
    pub fn start(&mut self, label: impl Into<String>) {
        self.label = label.into();
        self.count = 0;
        self.last = std::time::Instant::now();
    }

    /// One more record read.
    pub fn tick(&mut self) {
        self.count += 1;
        let due = if self.terminal {
            self.last.elapsed() >= Self::INTERVAL
        } else {
            self.count.is_multiple_of(Self::LINE_EVERY)
        };
        if due {
            self.last = std::time::Instant::now();
            self.show(false);
        }
    }

    /// The step is done: its final count.
    pub fn finish(&mut self) {
        self.show(true);
    }

    /// A line of its own (what is being done next).
    pub fn note(&mut self, line: impl std::fmt::Display) {
        if let Some(out) = self.out.as_mut() {
            let _ = writeln!(out, "{line}");
        }
    }

    fn show(&mut self, done: bool) {
        let (label, count, terminal) = (&self.label, self.count, self.terminal);
        if let Some(out) = self.out.as_mut() {
            // Progress is best effort: a closed stderr must not fail the command.
            let _ = match (terminal, done) {
                (true, false) => write!(out, "\r{label}: {count} records"),
                (true, true) => writeln!(out, "\r{label}: {count} records, done"),
                (false, false) => writeln!(out, "{label}: {count} records"),
                (false, true) => writeln!(out, "{label}: {count} records, done"),
            };
            let _ = out.flush();
        }
    }
}

impl FilterArgs {
    fn to_proto(&self, now: time::OffsetDateTime) -> anyhow::Result<pb::Filter> {
        let (context_key, context_value) = match self.context.as_deref().map(|c| c.split_once('='))
        {
            None => (String::new(), String::new()),
            Some(Some((k, v))) => (k.to_owned(), v.to_owned()),
            Some(None) => (self.context.clone().unwrap_or_default(), String::new()),
        };
        Ok(pb::Filter {
            account: self.account.clone().unwrap_or_default(),
            key_arn: self.key.clone().unwrap_or_default(),
            principal_arn: self.principal.clone().unwrap_or_default(),
            event_names: self.event_names.clone(),
            error_code: self.error_code.clone().unwrap_or_default(),
            encryption_context_key: context_key,
            encryption_context_value: context_value,
            source_ip: self.source_ip.clone().unwrap_or_default(),
            start_time: self.since.as_deref().map(|s| parse_time(s, now)).transpose()?,
            end_time: self.until.as_deref().map(|s| parse_time(s, now)).transpose()?,
        })
    }
}

fn out(line: impl std::fmt::Display) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{line}").context("writing to stdout")
}

struct Client {
    inner: AuditServiceClient<Channel>,
    token: Option<String>,
}

impl Client {
    async fn connect(cli: &Cli) -> anyhow::Result<Self> {
        let inner = AuditServiceClient::connect(cli.endpoint.clone())
            .await
            .with_context(|| format!("connecting to the audit service at {}", cli.endpoint))?;
        Ok(Self { inner, token: cli.token.clone() })
    }

    fn req<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut r = tonic::Request::new(message);
        if let Some(t) = &self.token {
            r.metadata_mut().insert("authorization", format!("Bearer {t}").parse()?);
        }
        Ok(r)
    }

    async fn material(
        &mut self,
        account: &str,
        window: Option<(i64, i64)>,
        progress: &mut Progress<impl Write>,
    ) -> anyhow::Result<(Vec<AuditRecord>, Vec<SignedDigest>, Vec<DigestPublicKey>)> {
        let request = pb::ListRecordsRequest {
            account: account.to_owned(),
            start_time: window.map(|w| w.0),
            end_time: window.map(|w| w.1),
        };
        let mut stream = self.inner.list_records(self.req(request)?).await?.into_inner();
        let mut records = Vec::new();
        progress.start(format!("reading {account}"));
        while let Some(r) = stream.message().await? {
            records.push(AuditRecord { seq: r.seq, event: r.event });
            progress.tick();
        }
        progress.finish();
        let digests = self
            .inner
            .list_digests(self.req(pb::ListDigestsRequest { account: account.to_owned() })?)
            .await?
            .into_inner()
            .digests
            .into_iter()
            .map(|d| SignedDigest { body: d.body, signature: d.signature })
            .collect();
        let keys = self
            .inner
            .get_public_keys(self.req(pb::GetPublicKeysRequest {})?)
            .await?
            .into_inner()
            .keys
            .into_iter()
            .map(|k| DigestPublicKey { fingerprint: k.fingerprint, pem: k.pem })
            .collect();
        Ok((records, digests, keys))
    }
}

fn trusted_key(path: &Option<PathBuf>) -> anyhow::Result<Option<Vec<DigestPublicKey>>> {
    path.as_ref()
        .map(|p| {
            let pem =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(vec![DigestPublicKey::from_pem(&pem)?])
        })
        .transpose()
}

fn print_report(report: &VerificationReport, json: bool) -> anyhow::Result<()> {
    if json {
        return out(serde_json::to_string(report)?);
    }
    let verdict = if report.is_ok() { "OK" } else { "TAMPERED" };
    out(format_args!(
        "account {}: {verdict}: {} records ({} verified, {} not yet digested), {} digests ({} valid)",
        report.account,
        report.records_checked,
        report.records_verified,
        report.records_undigested,
        report.digests_checked,
        report.digests_valid,
    ))?;
    for p in &report.problems {
        out(format_args!("  {p}"))?;
    }
    Ok(())
}

async fn verify_cmd(cli: &Cli, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let trusted = trusted_key(&args.public_key)?;
    let mut progress = Progress::stderr(cli.progress);
    let mut reports = Vec::new();
    if let Some(dir) = &args.dir {
        for export in read_export(dir)? {
            if args.account.as_ref().is_some_and(|a| *a != export.account) {
                continue;
            }
            progress.note(format_args!(
                "verifying {} ({} records)",
                export.account,
                export.records.len()
            ));
            reports.push(export.verify(trusted.as_deref()));
        }
    } else {
        let mut client = Client::connect(cli).await?;
        let accounts = match &args.account {
            Some(a) => vec![a.clone()],
            None => {
                client
                    .inner
                    .list_accounts(client.req(pb::ListAccountsRequest {})?)
                    .await?
                    .into_inner()
                    .accounts
            }
        };
        for account in accounts {
            let (records, digests, keys) = client.material(&account, None, &mut progress).await?;
            progress.note(format_args!("verifying {account} ({} records)", records.len()));
            reports.push(verify(&VerifyInput {
                account: &account,
                records: &records,
                digests: &digests,
                public_keys: trusted.as_deref().unwrap_or(&keys),
                window: None,
                complete: true,
            }));
        }
    }
    if reports.is_empty() {
        anyhow::bail!("nothing to verify");
    }
    for r in &reports {
        print_report(r, args.json)?;
    }
    Ok(if reports.iter().all(VerificationReport::is_ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_event(e: &pb::Event, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => out(&e.event_json),
        Format::Table => {
            let v: serde_json::Value = serde_json::from_str(&e.event_json).unwrap_or_default();
            let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap_or("-").to_owned();
            out(format_args!(
                "{:<8} {:<20} {:<12} {:<22} {:<45} {:<15} {}",
                e.seq,
                s("/eventTime"),
                e.account,
                e.event_name,
                s("/userIdentity/arn"),
                s("/sourceIPAddress"),
                s("/errorCode"),
            ))
        }
    }
}

/// A row of `audit lookup`'s table: the columns of CloudTrail's event history.
fn lookup_row(event_json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(event_json).unwrap_or_default();
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_owned);
    // Who: the user name, else the ARN, else the account (service events, other accounts).
    let user = s("/userIdentity/userName")
        .or_else(|| s("/userIdentity/arn"))
        .or_else(|| s("/userIdentity/invokedBy"))
        .or_else(|| s("/userIdentity/accountId"))
        .unwrap_or_else(|| "-".to_owned());
    format!(
        "{:<20}  {:<24}  {:<34}  {:<78}  {:<15}  {}",
        s("/eventTime").unwrap_or_else(|| "-".to_owned()),
        user,
        s("/eventName").unwrap_or_else(|| "-".to_owned()),
        s("/resources/0/ARN").unwrap_or_else(|| "-".to_owned()),
        s("/sourceIPAddress").unwrap_or_else(|| "-".to_owned()),
        s("/errorCode").unwrap_or_else(|| "-".to_owned()),
    )
}

const LOOKUP_HEADER: &str = "EVENT TIME            USER                      EVENT NAME                          RESOURCE                                                                        SOURCE IP        ERROR";

async fn lookup_cmd(cli: &Cli, args: &QueryArgs) -> anyhow::Result<ExitCode> {
    if matches!(args.output, Format::Table) {
        out(LOOKUP_HEADER)?;
    }
    events(cli, args, |e| match args.output {
        Format::Json => out(&e.event_json),
        Format::Table => out(lookup_row(&e.event_json)),
    })
    .await
}

async fn query_cmd(cli: &Cli, args: &QueryArgs) -> anyhow::Result<ExitCode> {
    events(cli, args, |e| print_event(e, args.output)).await
}

/// Pages through the events `args` select, newest first, up to `--limit`.
async fn events(
    cli: &Cli,
    args: &QueryArgs,
    mut print: impl FnMut(&pb::Event) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(cli).await?;
    let filter = args.filter.to_proto(time::OffsetDateTime::now_utc())?;
    let mut token = String::new();
    let mut printed = 0;
    while printed < args.limit {
        let request = pb::QueryRequest {
            filter: Some(filter.clone()),
            page_size: (args.limit - printed).min(1000) as u32,
            page_token: token,
        };
        let page = client.inner.query(client.req(request)?).await?.into_inner();
        for e in page.events.iter().take(args.limit - printed) {
            print(e)?;
            printed += 1;
        }
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn stats_cmd(cli: &Cli, args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(cli).await?;
    let group_by = match args.group_by {
        Group::Key => pb::GroupBy::Key,
        Group::Principal => pb::GroupBy::Principal,
        Group::EventName => pb::GroupBy::EventName,
    };
    let request = pb::CountsRequest {
        filter: Some(args.filter.to_proto(time::OffsetDateTime::now_utc())?),
        group_by: group_by as i32,
        bucket_seconds: parse_duration(&args.bucket)?,
    };
    let counts = client.inner.counts(client.req(request)?).await?.into_inner();
    for b in &counts.buckets {
        let start = time::OffsetDateTime::from_unix_timestamp(b.bucket_start)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| b.bucket_start.to_string());
        match args.output {
            Format::Json => {
                out(serde_json::json!({"bucketStart": start, "group": b.group, "count": b.count}))?
            }
            Format::Table => out(format_args!("{start:<22} {:<60} {}", b.group, b.count))?,
        }
    }
    eprintln!(
        "{} events{}",
        counts.total,
        if counts.truncated { " (scan limit reached)" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

async fn tail_cmd(cli: &Cli, args: &TailArgs) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(cli).await?;
    let request = pb::TailRequest {
        filter: Some(args.filter.to_proto(time::OffsetDateTime::now_utc())?),
        after_seq: args.after_seq,
    };
    let mut stream = client.inner.tail(client.req(request)?).await?.into_inner();
    while let Some(e) = stream.message().await? {
        print_event(&e, args.output)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn export_cmd(cli: &Cli, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(cli).await?;
    if args.digest_first {
        client.inner.write_digests(client.req(pb::WriteDigestsRequest {})?).await?;
    }
    let now = time::OffsetDateTime::now_utc();
    let window = match (&args.since, &args.until) {
        (None, None) => None,
        (s, u) => Some((
            s.as_deref().map(|s| parse_time(s, now)).transpose()?.unwrap_or(i64::MIN),
            u.as_deref().map(|u| parse_time(u, now)).transpose()?.unwrap_or(i64::MAX),
        )),
    };
    let mut progress = Progress::stderr(cli.progress);
    let (records, digests, public_keys) =
        client.material(&args.account, window, &mut progress).await?;
    progress.note(format_args!("writing {} records to {}", records.len(), args.out.display()));
    let export = Export {
        account: args.account.clone(),
        window,
        digests: Export::select_digests(&digests, window),
        records,
        public_keys,
        missing_files: Vec::new(),
    };
    let summary = write_export(&args.out, &export)?;
    out(format_args!(
        "exported {} records in {} log files with {} digest files to {}",
        summary.records,
        summary.log_files,
        summary.digest_files,
        args.out.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs one command; the exit code says whether verification found problems.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Command::Audit(audit) = &cli.command;
    match audit {
        Audit::Verify(a) => verify_cmd(&cli, a).await,
        Audit::Lookup(a) => lookup_cmd(&cli, a).await,
        Audit::Query(a) => query_cmd(&cli, a).await,
        Audit::Stats(a) => stats_cmd(&cli, a).await,
        Audit::Tail(a) => tail_cmd(&cli, a).await,
        Audit::Export(a) => export_cmd(&cli, a).await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn times_and_durations() {
        let now = time::macros::datetime!(2026-11-23 10:00:00 UTC);
        let n = now.unix_timestamp();
        assert_eq!(parse_time("24h", now).unwrap(), n - 86_400);
        assert_eq!(parse_time("30m", now).unwrap(), n - 1800);
        assert_eq!(parse_time("7d", now).unwrap(), n - 7 * 86_400);
        assert_eq!(parse_time("1700000000", now).unwrap(), 1_700_000_000);
        assert_eq!(parse_time("2026-11-23T09:00:00Z", now).unwrap(), n - 3600);
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("5y", now).is_err());
        assert_eq!(parse_duration("1h").unwrap(), 3600);
        assert_eq!(parse_duration("90").unwrap(), 90);
    }

    #[test]
    fn filters_map_to_the_wire() {
        let now = time::macros::datetime!(2026-11-23 10:00:00 UTC);
        let f = FilterArgs {
            context: Some("Department=Finance".into()),
            event_names: vec!["Decrypt".into()],
            since: Some("1h".into()),
            ..Default::default()
        }
        .to_proto(now)
        .unwrap();
        assert_eq!(
            (f.encryption_context_key.as_str(), f.encryption_context_value.as_str()),
            ("Department", "Finance")
        );
        assert_eq!(f.start_time, Some(now.unix_timestamp() - 3600));
        let f = FilterArgs { context: Some("Department".into()), ..Default::default() }
            .to_proto(now)
            .unwrap();
        assert_eq!(
            (f.encryption_context_key.as_str(), f.encryption_context_value.as_str()),
            ("Department", "")
        );
    }

    #[test]
    fn progress_is_silent_unless_enabled_and_counts_when_it_is() {
        let mut silent = Progress::<Vec<u8>>::new(None, false);
        silent.start("reading 111122223333");
        for _ in 0..25_000 {
            silent.tick();
        }
        silent.finish();
        assert!(silent.out.is_none());

        let mut lines = Progress::new(Some(Vec::new()), false);
        lines.start("reading 111122223333");
        for _ in 0..25_000 {
            lines.tick();
        }
        lines.finish();
        lines.note("writing 25000 records to ./export");
        assert_eq!(
            String::from_utf8(lines.out.unwrap()).unwrap(),
            "reading 111122223333: 10000 records\nreading 111122223333: 20000 records\n\
             reading 111122223333: 25000 records, done\nwriting 25000 records to ./export\n"
        );

        let mut terminal = Progress::new(Some(Vec::new()), true);
        terminal.start("reading 111122223333");
        terminal.tick();
        terminal.finish();
        assert_eq!(
            String::from_utf8(terminal.out.unwrap()).unwrap(),
            "\rreading 111122223333: 1 records, done\n"
        );
    }

    #[test]
    fn lookup_rows_name_who_did_what_to_which_key() {
        let row = lookup_row(
            &serde_json::json!({
                "eventTime": "2026-11-23T10:00:00Z", "eventName": "Decrypt",
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/dev",
                                 "userName": "dev"},
                "resources": [{"ARN": "arn:aws:kms:us-east-1:111122223333:key/k1"}],
                "sourceIPAddress": "192.0.2.1", "errorCode": "AccessDenied"
            })
            .to_string(),
        );
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "2026-11-23T10:00:00Z",
                "dev",
                "Decrypt",
                "arn:aws:kms:us-east-1:111122223333:key/k1",
                "192.0.2.1",
                "AccessDenied"
            ]
        );
        let service = lookup_row(
            &serde_json::json!({"eventTime": "2026-11-23T10:00:00Z", "eventName": "RotateKey",
                "userIdentity": {"accountId": "111122223333", "invokedBy": "AWS Internal"}})
            .to_string(),
        );
        assert!(service.contains("AWS Internal"), "{service}");
        assert_eq!(LOOKUP_HEADER.split_whitespace().next(), Some("EVENT"));
    }

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from(["kmsctl", "audit", "verify", "--dir", "/tmp/x", "--json"])
            .unwrap();
        assert!(matches!(
            cli.command,
            Command::Audit(Audit::Verify(VerifyArgs { json: true, .. }))
        ));
        let cli = Cli::try_parse_from([
            "kmsctl",
            "--token",
            "t",
            "audit",
            "query",
            "--key",
            "k",
            "--event-name",
            "Decrypt",
            "--event-name",
            "Encrypt",
            "--since",
            "24h",
        ])
        .unwrap();
        let Command::Audit(Audit::Query(q)) = cli.command else { panic!("query") };
        assert_eq!(q.filter.event_names, ["Decrypt", "Encrypt"]);
        let cli = Cli::try_parse_from([
            "kmsctl",
            "audit",
            "lookup",
            "--since",
            "24h",
            "--output",
            "json",
            "--progress",
        ])
        .unwrap();
        assert!(cli.progress);
        let Command::Audit(Audit::Lookup(l)) = cli.command else { panic!("lookup") };
        assert_eq!(l.filter.since.as_deref(), Some("24h"));
        assert!(matches!(l.output, Format::Json));
    }
}
