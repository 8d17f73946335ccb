//! The audit service against a real `nats-server`: records published on the stream are
//! queried, counted and tailed through the gRPC API with a real tonic client, account
//! auditors see only their account, digests are forced over the bus and verify, a record
//! altered in the sled store is named by the verifier, a store rebuilt from the
//! stream has the identical hash chain, and messages are acknowledged once per group
//! (cumulatively) yet never past one that is not stored: an explicit-ack consumer is
//! replaced, deliveries a previous run or another client took are stored.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a test failure with its message"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use kms_audit_log::{
    AuditStore, CloudTrailEvent, DigestPublicKey, EventResource, Problem, SignedDigest,
    UserIdentity,
};
use kms_auth::{CredentialStore, JwtAlgorithm, JwtIssuerEntry};
use kms_bus::{audit as op, Bus, CallContext};
use kms_proto::audit_v1 as pb;
use pb::audit_service_client::AuditServiceClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;

const A: &str = "111122223333";
const B: &str = "444455556666";
const ISSUER: &str = "https://issuer.test";
const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";
const PLATFORM: &str = "arn:aws:iam::000000000000:role/platform-auditor";

fn key_arn(account: &str, n: u32) -> String {
    format!("arn:aws:kms:us-east-1:{account}:key/0000000{n}-0000-4000-8000-000000000000")
}

/// Event `i`: accounts alternate A, A, B; names cycle Encrypt, Decrypt, GenerateDataKey.
fn event(i: u32) -> CloudTrailEvent {
    let account = if i % 3 == 2 { B } else { A };
    let name = ["Encrypt", "Decrypt", "GenerateDataKey"][(i % 3) as usize];
    let user = if i & 1 == 0 { "alice" } else { "bob" };
    CloudTrailEvent {
        event_version: "1.08".into(),
        user_identity: UserIdentity {
            identity_type: Some("IAMUser".into()),
            principal_id: Some("AIDA".into()),
            arn: Some(format!("arn:aws:iam::{account}:user/{user}")),
            account_id: Some(account.into()),
            access_key_id: None,
            user_name: Some(user.into()),
            ..UserIdentity::default()
        },
        event_time: time::OffsetDateTime::now_utc() - time::Duration::seconds(100 - i64::from(i)),
        event_source: "kms.amazonaws.com".into(),
        event_name: name.into(),
        aws_region: "us-east-1".into(),
        source_ip_address: if i == 4 { "198.51.100.4".into() } else { "127.0.0.1".into() },
        user_agent: "test".into(),
        error_code: (i == 7).then(|| "AccessDeniedException".into()),
        error_message: None,
        request_parameters: Some(serde_json::json!({
            "keyId": key_arn(account, i % 2),
            "encryptionContext": {"Department": if i & 1 == 0 { "Finance" } else { "Legal" }}
        })),
        response_elements: None,
        request_id: format!("req-{i}"),
        event_id: format!("00000000-0000-4000-8000-{i:012}"),
        read_only: true,
        resources: vec![EventResource::kms_key(account, key_arn(account, i % 2))],
        event_type: "AwsApiCall".into(),
        management_event: true,
        recipient_account_id: account.into(),
        shared_event_id: None,
        service_event_details: None,
        event_category: "Management".into(),
        tls_details: None,
    }
}

async fn publish(bus: &Bus, range: std::ops::Range<u32>) {
    // The stream may not be declared yet (the service declares it as it starts).
    kms_bus::ensure_audit_stream(&bus.jetstream(), &Default::default()).await.unwrap();
    for i in range {
        let e = event(i);
        kms_bus::publish_audit(
            bus,
            &e.recipient_account_id,
            &e.event_id,
            e.to_json_bytes().unwrap(),
        )
        .await
        .unwrap();
    }
}

fn token(sub: &str, account: &str) -> String {
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": "kms", "sub": sub, "account": account,
        "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn platform() -> String {
    token(PLATFORM, "000000000000")
}

fn auditor(account: &str) -> String {
    token(&format!("arn:aws:iam::{account}:role/team/kms-auditor"), account)
}

fn credentials(dir: &Path) -> PathBuf {
    let issuer = JwtIssuerEntry::hmac(
        ISSUER,
        "kms",
        JwtAlgorithm::HS256,
        zeroize::Zeroizing::new(SECRET.to_owned()),
    );
    let store = CredentialStore::new(vec![], vec![issuer], vec![PLATFORM.to_owned()]).unwrap();
    let path = dir.join("credentials.json");
    store.save(&path).unwrap();
    path
}

/// A running audit service with its gRPC API.
struct Audit {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    addr: std::net::SocketAddr,
}

impl Audit {
    async fn start(nats_url: &str, data: &Path, credentials: &Path) -> Self {
        let bus = Bus::connect(nats_url, Duration::from_secs(5)).await.unwrap();
        let mut config = kms_audit::Config::for_test(data.to_owned());
        config.credentials_file = Some(credentials.to_owned());
        config.digest_interval_secs = 0;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(kms_audit::run_with(config, bus, Some(listener), async move {
            let _ = rx.await;
        }));
        Self { stop: Some(tx), task, addr }
    }

    async fn client(&self) -> AuditServiceClient<Channel> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(c) = AuditServiceClient::connect(format!("http://{}", self.addr)).await {
                return c;
            }
            assert!(tokio::time::Instant::now() < deadline, "gRPC API did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

fn req<T>(message: T, bearer: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    r
}

fn filter(account: &str) -> pb::Filter {
    pb::Filter { account: account.into(), ..Default::default() }
}

async fn query(c: &mut AuditServiceClient<Channel>, bearer: &str, f: pb::Filter) -> Vec<pb::Event> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .query(req(
                pb::QueryRequest { filter: Some(f.clone()), page_size: 4, page_token: token },
                bearer,
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.events);
        token = page.next_page_token;
        if token.is_empty() {
            return out;
        }
    }
}

/// Waits until the store holds `n` records.
async fn wait_for(c: &mut AuditServiceClient<Channel>, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while query(c, &platform(), pb::Filter::default()).await.len() < n {
        assert!(tokio::time::Instant::now() < deadline, "records did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn force_digests(bus: &Bus) -> kms_proto::v1::WriteDigestsResponse {
    let ctx = CallContext { request_id: "00000000-0000-4000-8000-00000000d1d1".into() };
    bus.call::<op::WriteDigests>(&ctx, &Default::default()).await.unwrap()
}

#[tokio::test]
async fn grpc_queries_counts_tail_and_isolation() {
    let nats = kms_testkit::NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(dir.path());
    let audit = Audit::start(&nats.url(), &dir.path().join("audit"), &creds).await;
    let bus = Bus::connect(&nats.url(), Duration::from_secs(5)).await.unwrap();
    publish(&bus, 0..12).await;
    let mut c = audit.client().await;
    wait_for(&mut c, 12).await;

    // Filters.
    assert_eq!(query(&mut c, &platform(), pb::Filter::default()).await.len(), 12);
    let a = query(&mut c, &platform(), filter(A)).await;
    assert_eq!(a.len(), 8);
    assert!(
        a.windows(2).all(|w| (w[0].event_time, w[0].seq) > (w[1].event_time, w[1].seq)),
        "newest first"
    );
    let decrypts = query(
        &mut c,
        &platform(),
        pb::Filter { event_names: vec!["Decrypt".into()], key_arn: key_arn(A, 1), ..filter(A) },
    )
    .await;
    assert_eq!(decrypts.iter().map(|e| e.seq).collect::<Vec<_>>(), [8, 2]);
    let by_ctx = query(
        &mut c,
        &platform(),
        pb::Filter {
            encryption_context_key: "Department".into(),
            encryption_context_value: "Finance".into(),
            ..filter(A)
        },
    )
    .await;
    assert!(by_ctx.iter().all(|e| e.event_json.contains("Finance")) && by_ctx.len() == 4);
    let by_ip = query(
        &mut c,
        &platform(),
        pb::Filter { source_ip: "198.51.100.4".into(), ..Default::default() },
    )
    .await;
    assert_eq!(by_ip.len(), 1);
    let denied = query(
        &mut c,
        &platform(),
        pb::Filter { error_code: "AccessDeniedException".into(), ..Default::default() },
    )
    .await;
    assert_eq!(denied.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), [event(7).event_id]);
    let bob = query(
        &mut c,
        &platform(),
        pb::Filter { principal_arn: format!("arn:aws:iam::{A}:user/bob"), ..Default::default() },
    )
    .await;
    assert_eq!(bob.len(), 4);

    // Counts: who used key 1 of A, per event name.
    let counts = c
        .counts(req(
            pb::CountsRequest {
                filter: Some(pb::Filter { key_arn: key_arn(A, 1), ..filter(A) }),
                group_by: pb::GroupBy::Principal as i32,
                bucket_seconds: 86_400,
            },
            &platform(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counts.total, 4);
    assert_eq!(counts.buckets.iter().map(|b| b.count).sum::<u64>(), 4);
    assert!(counts.buckets.iter().all(|b| b.group == format!("arn:aws:iam::{A}:user/bob")));

    // Isolation: A's auditor sees A only, may not ask for B, and others are refused.
    let own = query(&mut c, &auditor(A), pb::Filter::default()).await;
    assert_eq!(own.len(), 8);
    assert!(own.iter().all(|e| e.account == A));
    let status = c
        .query(req(pb::QueryRequest { filter: Some(filter(B)), ..Default::default() }, &auditor(A)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let user = token(&format!("arn:aws:iam::{A}:user/dev"), A);
    let status = c.query(req(pb::QueryRequest::default(), &user)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let status = c.query(tonic::Request::new(pb::QueryRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = c.query(req(pb::QueryRequest::default(), "not-a-jwt")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let accounts = c.list_accounts(req(pb::ListAccountsRequest {}, &auditor(B))).await.unwrap();
    assert_eq!(accounts.into_inner().accounts, [B]);
    let status = c.write_digests(req(pb::WriteDigestsRequest {}, &auditor(A))).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    // Tail: A's auditor, Encrypt only, sees new matching records as they are stored.
    let mut tail = c
        .tail(req(
            pb::TailRequest {
                filter: Some(pb::Filter {
                    event_names: vec!["Encrypt".into()],
                    ..Default::default()
                }),
                after_seq: 0,
            },
            &auditor(A),
        ))
        .await
        .unwrap()
        .into_inner();
    publish(&bus, 12..18).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(20), tail.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((e.account.as_str(), e.event_name.as_str()), (A, "Encrypt"));
        seen.push(e.event_id);
    }
    assert_eq!(seen, [event(12).event_id, event(15).event_id]);
    // A tail from a past sequence replays the matches after it first.
    let mut replay = c
        .tail(req(pb::TailRequest { filter: Some(filter(B)), after_seq: 10 }, &platform()))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(20), replay.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.seq, 12);
    drop((tail, replay));
    audit.stop().await;
}

async fn online_material(
    c: &mut AuditServiceClient<Channel>,
    account: &str,
) -> (Vec<kms_audit_log::AuditRecord>, Vec<SignedDigest>, Vec<DigestPublicKey>) {
    let mut stream = c
        .list_records(req(
            pb::ListRecordsRequest { account: account.into(), ..Default::default() },
            &platform(),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut records = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        records.push(kms_audit_log::AuditRecord { seq: r.seq, event: r.event });
    }
    let digests = c
        .list_digests(req(pb::ListDigestsRequest { account: account.into() }, &platform()))
        .await
        .unwrap()
        .into_inner()
        .digests
        .into_iter()
        .map(|d| SignedDigest { body: d.body, signature: d.signature })
        .collect();
    let keys = c
        .get_public_keys(req(pb::GetPublicKeysRequest {}, &platform()))
        .await
        .unwrap()
        .into_inner()
        .keys
        .into_iter()
        .map(|k| DigestPublicKey { fingerprint: k.fingerprint, pem: k.pem })
        .collect();
    (records, digests, keys)
}

fn verify(
    account: &str,
    (records, digests, keys): &(
        Vec<kms_audit_log::AuditRecord>,
        Vec<SignedDigest>,
        Vec<DigestPublicKey>,
    ),
) -> kms_audit_log::VerificationReport {
    kms_audit_log::verify(&kms_audit_log::VerifyInput {
        account,
        records,
        digests,
        public_keys: keys,
        window: None,
        complete: true,
    })
}

#[tokio::test]
async fn digests_verify_online_and_a_record_altered_in_the_store_is_named() {
    let nats = kms_testkit::NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(dir.path());
    let data = dir.path().join("audit");
    let audit = Audit::start(&nats.url(), &data, &creds).await;
    let bus = Bus::connect(&nats.url(), Duration::from_secs(5)).await.unwrap();
    publish(&bus, 0..9).await;
    let mut c = audit.client().await;
    wait_for(&mut c, 9).await;
    let written = force_digests(&bus).await;
    assert_eq!(written.digests.len(), 2, "one digest per account");
    let ctx = CallContext { request_id: "00000000-0000-4000-8000-00000000d1d2".into() };
    let keys = bus.call::<op::GetDigestPublicKeys>(&ctx, &Default::default()).await.unwrap();
    assert_eq!(keys.keys.len(), 1);
    assert!(keys.keys[0].current && keys.keys[0].pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    publish(&bus, 9..12).await;
    wait_for(&mut c, 12).await;
    let written = c.write_digests(req(pb::WriteDigestsRequest {}, &platform())).await.unwrap();
    assert_eq!(written.into_inner().written.len(), 2);

    let material = online_material(&mut c, A).await;
    assert_eq!(material.1.len(), 2);
    let report = verify(A, &material);
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.records_verified, 8);
    audit.stop().await;

    // Alter record 5 (A's Decrypt, seq 5) directly in sled, keeping its header.
    {
        let db = sled::open(&data).unwrap();
        let records = db.open_tree("records").unwrap();
        let mut value = records.get(5u64.to_be_bytes()).unwrap().unwrap().to_vec();
        let event = String::from_utf8(value.split_off(73)).unwrap();
        assert!(event.contains("\"Decrypt\""));
        value.extend_from_slice(event.replacen("\"Decrypt\"", "\"Encrypt\"", 1).as_bytes());
        records.insert(5u64.to_be_bytes(), value).unwrap();
        db.flush().unwrap();
    }
    let audit = Audit::start(&nats.url(), &data, &creds).await;
    let mut c = audit.client().await;
    let material = online_material(&mut c, A).await;
    let report = verify(A, &material);
    assert_eq!(
        report.problems,
        [Problem::RecordChanged { seq: 5, event_id: event(4).event_id, digest: 1 }],
        "{report:#?}"
    );
    assert!(verify(B, &online_material(&mut c, B).await).is_ok());
    audit.stop().await;
}

#[tokio::test]
async fn a_store_rebuilt_from_the_stream_has_the_identical_chain() {
    let nats = kms_testkit::NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials(dir.path());
    let bus = Bus::connect(&nats.url(), Duration::from_secs(5)).await.unwrap();
    let original = dir.path().join("original");
    let audit = Audit::start(&nats.url(), &original, &creds).await;
    publish(&bus, 0..30).await;
    let mut c = audit.client().await;
    wait_for(&mut c, 30).await;
    audit.stop().await;

    // A fresh store under the same durable consumer: the service replays the stream.
    let rebuilt = dir.path().join("rebuilt");
    let audit = Audit::start(&nats.url(), &rebuilt, &creds).await;
    let mut c = audit.client().await;
    wait_for(&mut c, 30).await;
    audit.stop().await;

    let (a, b) = (AuditStore::open(&original).unwrap(), AuditStore::open(&rebuilt).unwrap());
    assert_eq!(a.len(), 30);
    assert_eq!(a.head(), b.head(), "same head hash: the same chain");
    assert_eq!(a.verify_chain().unwrap(), b.verify_chain().unwrap());
    assert_eq!(a.records_after(0, usize::MAX).unwrap(), b.records_after(0, usize::MAX).unwrap());
    assert_eq!(a.last_stream_seq(), b.last_stream_seq());
}

/// The audit service's durable consumer.
const CONSUMER: &str = "kms-audit";

async fn audit_stream(bus: &Bus) -> async_nats::jetstream::stream::Stream {
    bus.jetstream().get_stream(kms_bus::AUDIT_STREAM).await.unwrap()
}

/// Waits until the audit consumer has acknowledged everything up to stream sequence
/// `last` and has nothing unacknowledged; returns its info.
async fn wait_acked(bus: &Bus, last: u64) -> async_nats::jetstream::consumer::Info {
    let stream = audit_stream(bus).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(info) = stream.consumer_info(CONSUMER).await {
            if info.ack_floor.stream_sequence >= last && info.num_ack_pending == 0 {
                return info;
            }
            assert!(tokio::time::Instant::now() < deadline, "not all acknowledged: {info:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The event ids of the store's records, in store order; checks the chain first.
fn stored_event_ids(data: &Path) -> Vec<String> {
    let store = AuditStore::open(data).unwrap();
    let records = store.records_after(0, usize::MAX).unwrap();
    assert_eq!(store.verify_chain().unwrap(), records.len() as u64, "chain intact");
    records
        .iter()
        .map(|r| {
            let event: serde_json::Value = serde_json::from_slice(&r.event).unwrap();
            event["eventID"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// `count` deliveries of the `kms-audit` consumer taken by someone else than the service.
async fn take_deliveries(
    consumer: &async_nats::jetstream::consumer::PullConsumer,
    count: usize,
) -> Vec<async_nats::jetstream::Message> {
    use futures::StreamExt;
    let mut batch = consumer
        .batch()
        .max_messages(count)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .unwrap();
    let mut taken = Vec::new();
    while taken.len() < count {
        taken.push(batch.next().await.unwrap().unwrap());
    }
    taken
}

/// What each acknowledgement test starts from: a nats-server, the service's credentials
/// and data directory (not created yet), and a bus connection.
struct Setup {
    nats: kms_testkit::NatsServer,
    dir: tempfile::TempDir,
    creds: PathBuf,
    data: PathBuf,
    bus: Bus,
}

impl Setup {
    async fn start() -> Self {
        let nats = kms_testkit::NatsServer::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let creds = credentials(dir.path());
        let data = dir.path().join("audit");
        let bus = Bus::connect(&nats.url(), Duration::from_secs(5)).await.unwrap();
        Self { nats, dir, creds, data, bus }
    }
}

#[tokio::test]
async fn groups_are_acknowledged_with_one_cumulative_ack_each() {
    use futures::StreamExt;
    const N: u32 = 100;
    let Setup { nats, dir: _dir, creds, data, bus } = Setup::start().await;
    publish(&bus, 0..N).await;
    // Every ack the service publishes for its consumer, seen by a plain subscriber.
    let mut acks = bus
        .client()
        .subscribe(format!("$JS.ACK.{}.{CONSUMER}.>", kms_bus::AUDIT_STREAM))
        .await
        .unwrap();
    bus.client().flush().await.unwrap();

    let audit = Audit::start(&nats.url(), &data, &creds).await;
    let info = wait_acked(&bus, u64::from(N)).await;
    assert_eq!(info.config.ack_policy, async_nats::jetstream::consumer::AckPolicy::All);
    assert_eq!(info.ack_floor.stream_sequence, u64::from(N));
    assert_eq!(info.num_ack_pending, 0);
    audit.stop().await;

    let mut seen = Vec::new();
    while let Ok(Some(ack)) = tokio::time::timeout(Duration::from_millis(500), acks.next()).await {
        // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
        let stream_seq: u64 = ack.subject.split('.').nth(5).unwrap().parse().unwrap();
        seen.push((stream_seq, ack.payload.to_vec()));
    }
    assert!(seen.iter().all(|(_, payload)| payload == b"+ACK"), "only acks: {seen:?}");
    assert!(
        !seen.is_empty() && seen.len() < N as usize,
        "one ack per group, not per message: {} acks for {N} messages",
        seen.len()
    );
    assert_eq!(seen.iter().map(|(seq, _)| *seq).max(), Some(u64::from(N)));
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "acks in stream order: {seen:?}");
    let ids: Vec<String> = (0..N).map(|i| event(i).event_id).collect();
    assert_eq!(stored_event_ids(&data), ids, "every event once, in stream order");
}

#[tokio::test]
async fn an_explicit_ack_consumer_is_replaced_without_losing_or_repeating_an_event() {
    use async_nats::jetstream::consumer::{self, AckPolicy};
    let Setup { nats, dir: _dir, creds, data, bus } = Setup::start().await;
    publish(&bus, 0..10).await;

    // A previous version's consumer (explicit acks) and store: stream sequences 1-4 and 6
    // stored and acked, 5 not stored (a transient failure), 7 delivered and not stored.
    let old: consumer::PullConsumer = audit_stream(&bus)
        .await
        .create_consumer(consumer::pull::Config {
            durable_name: Some(CONSUMER.to_owned()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    {
        let store = AuditStore::open(&data).unwrap();
        for message in take_deliveries(&old, 7).await {
            let seq = message.info().unwrap().stream_sequence;
            if seq != 5 && seq != 7 {
                store.append(seq, &message.payload).unwrap();
                message.double_ack().await.unwrap();
            }
        }
        assert_eq!(store.last_stream_seq(), 6);
    }
    let before = audit_stream(&bus).await.consumer_info(CONSUMER).await.unwrap();
    assert_eq!((before.ack_floor.stream_sequence, before.num_ack_pending), (4, 2));

    let audit = Audit::start(&nats.url(), &data, &creds).await;
    let info = wait_acked(&bus, 10).await;
    assert_eq!(info.config.ack_policy, AckPolicy::All);
    audit.stop().await;

    // Store order: 1-4 and 6 as stored before, then 5 and 7-10 as delivered again.
    let ids: Vec<String> = [0, 1, 2, 3, 5, 4, 6, 7, 8, 9].map(|i| event(i).event_id).into();
    assert_eq!(stored_event_ids(&data), ids, "every event exactly once");
    assert_eq!(AuditStore::open(&data).unwrap().last_stream_seq(), 10);
}

#[tokio::test]
async fn deliveries_a_previous_run_left_unacknowledged_are_stored_before_anything_is_acked() {
    use async_nats::jetstream::consumer;
    let Setup { nats, dir: _dir, creds, data, bus } = Setup::start().await;
    publish(&bus, 0..10).await;

    // A previous run of the service (same consumer settings) had 1-5 prefetched, unstored,
    // when it stopped. Nothing redelivers them before the ack wait (30 s) runs out, and an
    // ack of 6 or later would cover them.
    let previous: consumer::PullConsumer = audit_stream(&bus)
        .await
        .create_consumer(consumer::pull::Config {
            durable_name: Some(CONSUMER.to_owned()),
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    drop(take_deliveries(&previous, 5).await);

    let audit = Audit::start(&nats.url(), &data, &creds).await;
    wait_acked(&bus, 10).await;
    audit.stop().await;
    let ids: Vec<String> = (0..10).map(|i| event(i).event_id).collect();
    assert_eq!(stored_event_ids(&data), ids);
}

#[tokio::test]
async fn a_delivery_the_service_never_saw_is_not_covered_by_its_acks() {
    use async_nats::jetstream::consumer;
    let Setup { nats, dir: _dir, creds, data, bus } = Setup::start().await;
    publish(&bus, 0..3).await;
    let audit = Audit::start(&nats.url(), &data, &creds).await;
    wait_acked(&bus, 3).await;

    // Another client pulls from the service's consumer: what it gets is a delivery lost
    // to the service, as in a reconnect. JetStream serves waiting pulls in turn, so
    // publish until one lands there.
    let thief: consumer::PullConsumer =
        audit_stream(&bus).await.get_consumer(CONSUMER).await.unwrap();
    let stolen = tokio::spawn(async move { take_deliveries(&thief, 1).await });
    let mut published = 3;
    while !stolen.is_finished() {
        assert!(published < 200, "no delivery reached the other client");
        publish(&bus, published..published + 1).await;
        published += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stolen = stolen.await.unwrap().remove(0);
    let stolen_seq = stolen.info().unwrap().stream_sequence;
    drop(stolen);
    publish(&bus, published..published + 5).await;
    published += 5;
    wait_acked(&bus, u64::from(published)).await;
    audit.stop().await;

    let ids = stored_event_ids(&data);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "no event twice");
    let expected: Vec<String> = (0..published).map(|i| event(i).event_id).collect();
    assert_eq!(sorted, expected, "stream sequence {stolen_seq} was stored too");
}
