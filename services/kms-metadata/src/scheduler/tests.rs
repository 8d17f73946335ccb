//! Two metadata replicas over copies of one key, with the real crypto and policy services
//! on a real nats-server: each transition is performed by exactly one replica and applied
//! by the other, and a replica that stopped half-way is taken over.

use std::future::pending;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kms_core::{Clock, ManualClock};
use kms_proto::v1 as wire;

use super::{run, ClaimSettings, SchedulerStats};
use crate::store::MetadataStore;

const ACCOUNT: &str = "111122223333";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn caller() -> Option<wire::CallerContext> {
    Some(wire::CallerContext {
        account: ACCOUNT.into(),
        region: "us-east-1".into(),
        principal: format!("arn:aws:iam::{ACCOUNT}:user/t"),
        request_id: "r".into(),
    })
}

struct Replica {
    store: Arc<MetadataStore>,
    stats: Arc<SchedulerStats>,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Replica {
    fn open(clock: &ManualClock) -> (Arc<MetadataStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MetadataStore::open(dir.path(), Arc::new(clock.clone())).unwrap());
        (store, dir)
    }

    fn start(
        bus: &kms_bus::Bus,
        clock: &ManualClock,
        (store, dir): (Arc<MetadataStore>, tempfile::TempDir),
        name: &str,
        stale_after: Duration,
    ) -> Self {
        let stats = Arc::new(SchedulerStats::default());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let settings = ClaimSettings { replicas: 1, replica: name.into(), stale_after };
        tokio::spawn(run(
            store.clone(),
            bus.clone(),
            Arc::new(clock.clone()),
            Duration::from_millis(20),
            settings,
            stats.clone(),
            stopped,
        ));
        Self { store, stats, stop, _dir: dir }
    }

    fn key(&self, key_id: &str) -> Option<wire::KeyRecord> {
        self.store
            .resolve_key(wire::ResolveKeyRequest {
                caller: caller(),
                key_ref: key_id.into(),
                ..Default::default()
            })
            .ok()
            .and_then(|r| r.key)
    }
}

/// The same key, with rotation every 90 days, in each store; its first material in the
/// crypto service.
/// An enabled symmetric key of `ACCOUNT`, created now by `clock`.
fn key_record(key_id: &str, clock: &ManualClock) -> wire::KeyRecord {
    wire::KeyRecord {
        arn: format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"),
        key_id: key_id.to_owned(),
        account: ACCOUNT.into(),
        region: "us-east-1".into(),
        creation_date_ms: clock.now_ms(),
        key_state: "Enabled".into(),
        key_spec: "SYMMETRIC_DEFAULT".into(),
        key_usage: "ENCRYPT_DECRYPT".into(),
        origin: "AWS_KMS".into(),
        current_material_version: 1,
        ..Default::default()
    }
}

async fn same_key(bus: &kms_bus::Bus, clock: &ManualClock, stores: &[&MetadataStore]) -> String {
    let key_id = uuid::Uuid::new_v4().to_string();
    let ctx = kms_bus::CallContext { request_id: "setup".into() };
    let request = wire::CreateMaterialRequest {
        caller: caller(),
        key_id: key_id.clone(),
        key_spec: "SYMMETRIC_DEFAULT".into(),
        material_version: 1,
    };
    // The crypto service may still be subscribing.
    for attempt in 0.. {
        match bus.call::<kms_bus::crypto::CreateMaterial>(&ctx, &request).await {
            Ok(_) => break,
            Err(e) if attempt < 50 => {
                assert_eq!(e.code, kms_core::ErrorCode::DependencyTimeout, "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("crypto service never answered: {e:?}"),
        }
    }
    for store in stores {
        store
            .create_key(wire::CreateKeyRequest {
                caller: caller(),
                key: Some(key_record(&key_id, clock)),
                managed_alias: String::new(),
            })
            .await
            .unwrap();
        store
            .set_key_rotation(wire::SetKeyRotationRequest {
                caller: caller(),
                key_id: key_id.clone(),
                enabled: true,
                rotation_period_days: 90,
            })
            .await
            .unwrap();
    }
    key_id
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

struct Mesh {
    _nats: kms_testkit::NatsServer,
    bus: kms_bus::Bus,
    _dirs: Vec<tempfile::TempDir>,
}

/// nats-server, the audit stream, and the real crypto and policy services.
async fn mesh() -> Mesh {
    let nats = kms_testkit::NatsServer::start().await.unwrap();
    let bus = kms_bus::Bus::connect(&nats.url(), Duration::from_secs(5)).await.unwrap();
    kms_bus::ensure_audit_stream(&bus.jetstream(), &Default::default()).await.unwrap();
    let (crypto_dir, policy_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let root = kms_crypto_core::RootKey::generate_hex().to_string();
    let crypto = kms_crypto::Config::for_test(crypto_dir.path().to_owned(), root);
    tokio::spawn(kms_crypto::run(crypto, bus.clone(), pending()));
    let policy = kms_policy::Config::for_test(policy_dir.path().to_owned());
    tokio::spawn(kms_policy::run(policy, bus.clone(), pending()));
    Mesh { _nats: nats, bus, _dirs: vec![crypto_dir, policy_dir] }
}

#[tokio::test]
async fn two_replicas_rotate_and_delete_once() {
    let mesh = mesh().await;
    let clock = ManualClock::starting_now();
    let (a, b) = (Replica::open(&clock), Replica::open(&clock));
    let key_id = same_key(&mesh.bus, &clock, &[&a.0, &b.0]).await;
    let stale = Duration::from_secs(60);
    let a = Replica::start(&mesh.bus, &clock, a, "replica-a", stale);
    let b = Replica::start(&mesh.bus, &clock, b, "replica-b", stale);

    clock.advance_ms(91 * DAY_MS);
    eventually("both replicas show the rotation", || {
        [&a, &b].iter().all(|r| r.key(&key_id).unwrap().current_material_version == 2)
    })
    .await;
    let performed = |r: &Replica| r.stats.performed.load(Ordering::Relaxed);
    let applied = |r: &Replica| r.stats.applied.load(Ordering::Relaxed);
    // A replica counts a transition once its claim is marked done, after its store moved.
    let counted = || performed(&a) + applied(&a) + performed(&b) + applied(&b);
    eventually("both replicas counted the rotation", || counted() >= 2).await;
    assert_eq!(performed(&a) + performed(&b), 1, "one replica rotated");
    assert_eq!(applied(&a) + applied(&b), 1, "the other applied its outcome");

    for replica in [&a, &b] {
        replica
            .store
            .change_key_state(wire::ChangeKeyStateRequest {
                caller: caller(),
                key_id: key_id.clone(),
                change: Some(wire::change_key_state_request::Change::ScheduleDeletionDays(7)),
            })
            .await
            .unwrap();
    }
    clock.advance_ms(8 * DAY_MS);
    eventually("both replicas forgot the key", || {
        a.key(&key_id).is_none() && b.key(&key_id).is_none()
    })
    .await;
    eventually("both replicas counted the deletion", || counted() >= 4).await;
    assert_eq!(performed(&a) + performed(&b), 2, "one replica deleted");
    assert_eq!(applied(&a) + applied(&b), 2);
    // The deletion really shredded the material, once: no version of it remains.
    let ctx = kms_bus::CallContext { request_id: "check".into() };
    let destroyed = mesh
        .bus
        .call::<kms_bus::crypto::DestroyMaterial>(
            &ctx,
            &wire::DestroyMaterialRequest { caller: caller(), key_id: key_id.clone() },
        )
        .await
        .unwrap();
    assert_eq!(destroyed.versions_destroyed, 0);
    let _ = (a.stop.send(true), b.stop.send(true));
}

#[tokio::test]
async fn a_stale_claim_is_taken_over() {
    let mesh = mesh().await;
    let clock = ManualClock::starting_now();
    let b_store = Replica::open(&clock);
    let key_id = same_key(&mesh.bus, &clock, &[&b_store.0]).await;
    // A replica that claimed the rotation and stopped before finishing it.
    let claims = super::Claims::open(
        &mesh.bus.jetstream(),
        1,
        "replica-gone".into(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(claims.claim(&format!("rotate.{key_id}.2")).await.unwrap(), super::Claim::Mine);
    let b = Replica::start(&mesh.bus, &clock, b_store, "replica-b", Duration::from_millis(300));
    clock.advance_ms(91 * DAY_MS);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(b.key(&key_id).unwrap().current_material_version, 1, "a fresh claim is respected");
    eventually("the stale claim is taken over", || {
        b.key(&key_id).unwrap().current_material_version == 2
    })
    .await;
    eventually("the claim is marked done", || b.stats.performed.load(Ordering::Relaxed) == 1).await;
    let _ = b.stop.send(true);
}

/// Listing the due transitions reads and decodes every stored key (about 110 ms for
/// 100,000 keys in release), so it runs on the blocking pool: the runtime goes on serving
/// meanwhile. On a worker thread it held up every call the process was serving; on the
/// single-threaded runtime of this test, nothing else would run until it finished.
#[tokio::test(flavor = "current_thread")]
async fn listing_due_transitions_leaves_the_runtime_serving() {
    let clock = ManualClock::starting_now();
    let (store, _dir) = Replica::open(&clock);
    for _ in 0..5_000 {
        store.save_key(&key_record(&uuid::Uuid::new_v4().to_string(), &clock)).unwrap();
    }
    let served = Arc::new(AtomicBool::new(false));
    tokio::spawn({
        let served = served.clone();
        async move { served.store(true, Ordering::SeqCst) }
    });
    let due = super::list_due(&store).await.unwrap();
    assert!(due.is_empty(), "no key has a transition due");
    assert!(served.load(Ordering::SeqCst), "another task ran while the keys were listed");
}
