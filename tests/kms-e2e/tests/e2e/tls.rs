//! The gateway over HTTPS, driven by the `aws` CLI trusting an openssl-made CA: calls work,
//! their audit records carry `tlsDetails` (protocol, cipher suite, the Host header), and
//! plain HTTP to the TLS port gets no answer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sandbox::{aws_cli, openssl, Sandbox, ACCOUNT_A, REGION};

/// A CA, and a server certificate it signs for 127.0.0.1 and localhost.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=kms test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=kms gateway",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

async fn aws(sb: &Sandbox, ca: &Path, args: &[&str]) -> Result<String, String> {
    let home = tempfile::tempdir().unwrap();
    let key = sb.access_key(ACCOUNT_A);
    let out = tokio::process::Command::new(aws_cli())
        .args(args)
        .args(["--endpoint-url", &sb.endpoint, "--ca-bundle"])
        .arg(ca)
        .args(["--output", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("no-credentials"))
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .await
        .expect("run the aws CLI");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn https_calls_are_audited_with_their_tls_details() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let sb = Sandbox::start_with_tls(cert, key).await;
    assert!(sb.endpoint.starts_with("https://"));

    // The system comes up; then a KMS call over HTTPS.
    let mut created = Err(String::new());
    for _ in 0..60 {
        created = aws(&sb, &ca, &["kms", "create-key", "--description", "over TLS"]).await;
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let created: serde_json::Value =
        serde_json::from_str(&created.expect("create-key over HTTPS")).unwrap();
    let key_id = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();

    // Its record names the negotiated protocol and suite and the Host header sent.
    let mut record = None;
    for _ in 0..40 {
        let found = aws(
            &sb,
            &ca,
            &[
                "cloudtrail",
                "lookup-events",
                "--lookup-attributes",
                &format!("AttributeKey=ResourceName,AttributeValue={key_id}"),
            ],
        )
        .await
        .expect("lookup-events over HTTPS");
        let found: serde_json::Value = serde_json::from_str(&found).unwrap();
        record = found["Events"].as_array().and_then(|events| {
            events.iter().find(|e| e["EventName"] == "CreateKey").map(|e| {
                serde_json::from_str::<serde_json::Value>(e["CloudTrailEvent"].as_str().unwrap())
                    .unwrap()
            })
        });
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = record.expect("the CreateKey record");
    let tls = &record["tlsDetails"];
    assert!(["TLSv1.2", "TLSv1.3"].contains(&tls["tlsVersion"].as_str().unwrap()), "{tls}");
    let suite = tls["cipherSuite"].as_str().unwrap();
    assert!(suite.starts_with("TLS_") && !suite.starts_with("TLS13_"), "{tls}");
    let authority = sb.endpoint.trim_start_matches("https://");
    assert_eq!(tls["clientProvidedHostHeader"], authority, "{tls}");

    // A client that does not trust the CA is turned away, and plain HTTP gets no answer.
    let other_dir = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = certificates(other_dir.path());
    let refused = aws(&sb, &other_ca, &["kms", "list-keys"]).await.unwrap_err();
    assert!(refused.to_ascii_lowercase().contains("ssl"), "{refused}");
    let mut plain = tokio::net::TcpStream::connect(authority).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    plain.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/1.1"), "no HTTP answer on the TLS port");
}
