//! NATS security as the services use it: a nats-server requiring mutual TLS (a CA and
//! certificates this test makes with openssl) and nkey authentication under the shipped
//! authorization block (`deploy/nats/auth-nkey.conf`, the chart's `nats.auth: nkey`). The
//! crypto service and the gateway, connected through the same flags their binaries take
//! (`NatsArgs`: nkey seed file, CA, client certificate), work; a connection missing any
//! of the nkey, the client certificate or the CA is refused. And the 3-node cluster's
//! routes: a node that does not know the route credentials cannot join, and with TLS on
//! routes (the chart's block: mutual TLS with the nodes' certificate) the cluster forms
//! and carries messages while a node with a certificate of another CA is turned away.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use kms_bus::CallContext;
use kms_deploy::{repo_root, Deployment, Matrix};
use kms_health::NatsArgs;
use kms_proto::v1::{CallerContext, GenerateRandomRequest};
use tokio_util::sync::CancellationToken;

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA `name` (`<name>.crt`, `<name>.key`) in `dir`.
fn ca(dir: &Path, name: &str) {
    let (key, crt, subject) = (format!("{name}.key"), format!("{name}.crt"), format!("/CN={name}"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "1",
            "-subj",
            &subject,
        ],
    );
}

/// A certificate `name` signed by CA `ca`, with the X.509 extensions `ext`.
fn leaf(dir: &Path, name: &str, ca: &str, ext: &str) {
    let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
    let (ca_crt, ca_key, ext_file) =
        (format!("{ca}.crt"), format!("{ca}.key"), format!("{name}.ext"));
    std::fs::write(dir.join(&ext_file), ext).unwrap();
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "1",
            "-extfile",
            &ext_file,
        ],
    );
}

const SERVER_EXT: &str = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n\
                          subjectAltName=IP:127.0.0.1,DNS:localhost\n";
const CLIENT_EXT: &str = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n";

/// What a service is given to reach NATS, as its binary's flags would say.
fn args(
    url: &str,
    dir: &Path,
    seed: Option<&str>,
    ca: Option<&str>,
    cert: Option<&str>,
) -> NatsArgs {
    let file = |name: &str, ext: &str| Some(dir.join(format!("{name}.{ext}")));
    NatsArgs {
        nats_url: url.to_owned(),
        nats_user: None,
        nats_password: None,
        nats_password_file: None,
        nats_nkey_seed_file: seed.and_then(|s| file(s, "seed")),
        nats_creds_file: None,
        nats_tls_ca_file: ca.and_then(|c| file(c, "crt")),
        nats_tls_cert_file: cert.and_then(|c| file(c, "crt")),
        nats_tls_key_file: cert.and_then(|c| file(c, "key")),
        nats_inbox_prefix: Some("_INBOX.kms-crypto".to_owned()),
    }
}

/// Connects once, without retrying, with the options the services use; the refusal.
async fn refusal(args: &NatsArgs) -> String {
    let options = args.auth("kms-crypto").unwrap().connect_options().await.unwrap();
    match options.connection_timeout(Duration::from_secs(3)).connect(args.nats_url.as_str()).await {
        Ok(_) => panic!("connected with {args:?}"),
        Err(e) => format!("{:?}: {e}", e.kind()),
    }
}

fn caller() -> CallerContext {
    CallerContext {
        account: "111122223333".to_owned(),
        region: "us-east-1".to_owned(),
        principal: "arn:aws:iam::111122223333:user/security-test".to_owned(),
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_need_their_nkey_and_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca(d, "ca");
    ca(d, "rogue-ca");
    leaf(d, "server", "ca", SERVER_EXT);
    leaf(d, "crypto", "ca", CLIENT_EXT);
    leaf(d, "gateway", "ca", CLIENT_EXT);
    leaf(d, "stranger", "rogue-ca", CLIENT_EXT);

    // One nkey per service; the server knows their public keys, each service its seed.
    let matrix = Matrix::load().unwrap();
    let mut env = Vec::new();
    for user in &matrix.users {
        let pair = nkeys::KeyPair::new_user();
        std::fs::write(d.join(format!("{}.seed", user.service)), pair.seed().unwrap()).unwrap();
        env.push((format!("KMS_NATS_NKEY_{}", user.service.to_uppercase()), pair.public_key()));
    }
    let unknown = nkeys::KeyPair::new_user();
    std::fs::write(d.join("unknown.seed"), unknown.seed().unwrap()).unwrap();

    let auth = std::fs::read_to_string(repo_root().join("deploy/nats/auth-nkey.conf")).unwrap();
    let path = |name: &str| d.join(name).display().to_string();
    let config = format!(
        "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, verify: true, timeout: 5 }}\n{auth}",
        path("server.crt"),
        path("server.key"),
        path("ca.crt"),
    );
    let nats = kms_testkit::NatsServer::start_with(&config, &env).await.unwrap();
    let url = format!("tls://127.0.0.1:{}", nats.port());

    // The crypto service and the gateway, each with its own nkey and certificate.
    let crypto = args(&url, d, Some("crypto"), Some("ca"), Some("crypto"));
    let crypto_bus = crypto.connect("kms-crypto", Duration::from_secs(3)).await.unwrap();
    let mut gateway = args(&url, d, Some("gateway"), Some("ca"), Some("gateway"));
    gateway.nats_inbox_prefix = Some("_INBOX.kms-gateway".to_owned());
    let gateway_bus = gateway.connect("kms-gateway", Duration::from_secs(3)).await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let service = tokio::spawn(kms_crypto::run(
        kms_crypto::Config::for_test(store.path().join("crypto"), "33".repeat(32)),
        crypto_bus,
        stop.clone().cancelled_owned(),
    ));
    let request = GenerateRandomRequest { caller: Some(caller()), number_of_bytes: 24 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let random = loop {
        let ctx = CallContext { request_id: uuid::Uuid::new_v4().to_string() };
        match gateway_bus.call::<kms_bus::crypto::GenerateRandom>(&ctx, &request).await {
            Ok(random) => break random,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "{e:?}\n{}", nats.log()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(random.plaintext.len(), 24);

    // Without its nkey, or with one the server does not know: not authorized.
    for seed in [None, Some("unknown")] {
        let refused = refusal(&args(&url, d, seed, Some("ca"), Some("crypto"))).await;
        assert!(refused.starts_with("AuthorizationViolation"), "{seed:?}: {refused}");
    }
    // The right nkey, but no client certificate, or one of another CA: the TLS
    // handshake fails, on the server's word.
    for cert in [None, Some("stranger")] {
        let before = nats.log().matches("TLS handshake error").count();
        let refused = refusal(&args(&url, d, Some("crypto"), Some("ca"), cert)).await;
        assert!(!refused.starts_with("AuthorizationViolation"), "{cert:?}: {refused}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while nats.log().matches("TLS handshake error").count() == before {
            assert!(tokio::time::Instant::now() < deadline, "{cert:?}: {}", nats.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Without the CA, the client does not trust the server.
    let refused = refusal(&args(&url, d, Some("crypto"), None, Some("crypto"))).await;
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    // A nats:// URL without TLS settings sends nothing in plain text: the client follows
    // the server to TLS and, without the CA, does not trust it.
    let plain = format!("nats://127.0.0.1:{}", nats.port());
    let refused = refusal(&args(&plain, d, Some("crypto"), None, None)).await;
    assert!(refused.contains("UnknownIssuer"), "{refused}");

    stop.cancel();
    service.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_route_credentials_cannot_join() {
    let d = Deployment::start().await.unwrap();
    // The cluster formed (its JetStream elected a leader): its routes authenticated.
    // A rogue node routing to it without the credentials is turned away.
    let config = format!(
        "server_name: rogue\ncluster {{ name: kms-test, listen: \"127.0.0.1:-1\", routes: [\"{}\"] }}\n",
        d.cluster.route_url(0)
    );
    let rogue = kms_testkit::NatsServer::start_with(&config, &[]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !rogue.log().to_lowercase().contains("authorization violation") {
        assert!(tokio::time::Instant::now() < deadline, "{}", rogue.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Nothing published in the cluster reaches a subscriber on the rogue node, while a
    // subscriber on another node of the cluster gets it.
    let spy = async_nats::connect(rogue.url()).await.unwrap();
    let mut spied = spy.subscribe("kms.v1.crypto.>").await.unwrap();
    spy.flush().await.unwrap();
    let (crypto, _) = d.raw("crypto", 1).await.unwrap();
    let mut served = crypto.queue_subscribe("kms.v1.crypto.>", "kms-crypto".into()).await.unwrap();
    crypto.flush().await.unwrap();
    let gateway = d.bus("gateway", 0).await.unwrap();
    let received = loop {
        gateway.client().publish("kms.v1.crypto.GenerateRandom", "probe".into()).await.unwrap();
        gateway.client().flush().await.unwrap();
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(200), served.next()).await
        {
            break msg;
        }
        assert!(tokio::time::Instant::now() < deadline, "the cluster did not route the message");
    };
    assert_eq!(received.payload.as_ref(), b"probe");
    let leaked = tokio::time::timeout(Duration::from_millis(500), spied.next()).await;
    assert!(leaked.is_err(), "the rogue node received {leaked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_run_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca(d, "ca");
    ca(d, "rogue-ca");
    // A node's certificate serves both ends of a route, as in the chart.
    let node_ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n\
                    subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    leaf(d, "node", "ca", node_ext);
    leaf(d, "rogue", "rogue-ca", node_ext);
    let path = |name: &str| d.join(name).display().to_string();
    let tls = |name: &str, ca: &str| {
        format!(
            "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, timeout: 5 }}",
            path(&format!("{name}.crt")),
            path(&format!("{name}.key")),
            path(&format!("{ca}.crt")),
        )
    };
    // The cluster forms (every node knows the JetStream leader) over TLS routes that
    // also authenticate with the route password.
    let cluster =
        kms_testkit::NatsCluster::start_with(3, "", &[], &tls("node", "ca")).await.unwrap();
    let sub = async_nats::connect(cluster.url(2)).await.unwrap();
    let mut inbox = sub.subscribe("routed").await.unwrap();
    sub.flush().await.unwrap();
    let publisher = async_nats::connect(cluster.url(0)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        publisher.publish("routed", "over tls".into()).await.unwrap();
        publisher.flush().await.unwrap();
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(200), inbox.next()).await
        {
            assert_eq!(msg.payload.as_ref(), b"over tls");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no message across the TLS routes");
    }

    // A node with a certificate of another CA fails the TLS handshake of its route.
    let config = format!(
        "server_name: rogue\ncluster {{ name: kms-test, listen: \"127.0.0.1:-1\", \
         routes: [\"{}\"]\n{} }}\n",
        cluster.route_url(0),
        tls("rogue", "rogue-ca"),
    );
    let rogue = kms_testkit::NatsServer::start_with(&config, &[]).await.unwrap();
    while !rogue.log().contains("TLS route handshake error") {
        assert!(tokio::time::Instant::now() < deadline, "{}", rogue.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!rogue.log().to_lowercase().contains("route connection created"), "{}", rogue.log());
}
