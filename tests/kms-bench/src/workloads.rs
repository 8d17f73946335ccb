//! The workloads and the keys they need. Every workload comes twice: against one key, and
//! spread uniformly across many keys (so per-key caches, locks and lookups show).
//! - `encrypt`: Encrypt of 1 KB with an encryption context;
//! - `decrypt`: Decrypt of such a ciphertext (with its context);
//! - `gdk`: GenerateDataKey, AES_256;
//! - `policy-grant`: Encrypt under a key whose key policy has conditions (encryption
//!   context, source address) and which carries a grant to the caller;
//! - `sign`: ECDSA P-256 Sign of a SHA-256 digest;
//! - `mixed`: 40 % decrypt, 30 % encrypt, 20 % gdk, 10 % sign.

use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use rand::Rng;
use serde_json::{json, Value};

use crate::load::{self, Endpoint, Picker, Prepared};

pub(crate) const ALL: &[&str] = &["encrypt", "decrypt", "gdk", "policy-grant", "sign", "mixed"];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn context() -> Value {
    json!({"app": "bench", "tenant": "t-0001"})
}

fn encrypt_body(key: &str) -> Value {
    json!({"KeyId": key, "Plaintext": b64(&[7u8; 1024]), "EncryptionContext": context()})
}

/// Who calls, for the key policy and the grant of `policy-grant`.
pub(crate) struct Caller {
    pub(crate) account: String,
    pub(crate) principal: String,
}

/// Keys of one size class (one, or the spread).
#[derive(Default)]
struct Keys {
    symmetric: Vec<String>,
    ciphertexts: Vec<String>,
    signing: Vec<String>,
    policy: Vec<String>,
    /// CreateKey calls made.
    created: usize,
}

/// Creates `n` keys, `concurrency` at a time; their ids in creation-request order.
pub(crate) async fn create_keys(
    endpoint: &Endpoint,
    n: usize,
    concurrency: usize,
    label: &str,
    body: impl Fn(usize) -> Value + Send + Sync + 'static,
) -> anyhow::Result<Vec<String>> {
    let answers = load::setup_calls(endpoint, n, concurrency, Some(label), move |i| {
        ("TrentService.CreateKey", body(i))
    })
    .await?;
    answers
        .iter()
        .map(|a| {
            a["KeyMetadata"]["KeyId"].as_str().map(str::to_owned).context("CreateKey without KeyId")
        })
        .collect()
}

/// Creates `n` keys of each kind the workloads in `wanted` need (and their ciphertexts and
/// grants), `concurrency` calls in flight; `keys.created` counts the CreateKeys.
async fn keys(
    endpoint: &Endpoint,
    caller: &Caller,
    n: usize,
    wanted: &[String],
    concurrency: usize,
) -> anyhow::Result<Keys> {
    let needs = |names: &[&str]| wanted.iter().any(|w| names.contains(&w.as_str()));
    let mut keys = Keys::default();
    if needs(&["encrypt", "decrypt", "gdk", "mixed"]) {
        keys.symmetric = create_keys(
            endpoint,
            n,
            concurrency,
            "symmetric keys",
            |_| json!({"Description": "bench"}),
        )
        .await?;
        keys.created += n;
    }
    if needs(&["decrypt", "mixed"]) {
        let sym = Arc::new(keys.symmetric.clone());
        let answers = load::setup_calls(endpoint, n, concurrency, Some("ciphertexts"), move |i| {
            ("TrentService.Encrypt", encrypt_body(&sym[i]))
        })
        .await?;
        keys.ciphertexts = answers
            .iter()
            .map(|a| a["CiphertextBlob"].as_str().map(str::to_owned).context("no CiphertextBlob"))
            .collect::<anyhow::Result<_>>()?;
    }
    if needs(&["sign", "mixed"]) {
        keys.signing = create_keys(endpoint, n, concurrency, "signing keys", |_| {
            json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY", "Description": "bench"})
        })
        .await?;
        keys.created += n;
    }
    if needs(&["policy-grant"]) {
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "root", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{}:root", caller.account)},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "app", "Effect": "Allow", "Principal": {"AWS": caller.principal},
             "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:app": "bench"},
                           "IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]})
        .to_string();
        keys.policy = create_keys(endpoint, n, concurrency, "policy keys", move |_| {
            json!({"Description": "bench", "Policy": policy, "BypassPolicyLockoutSafetyCheck": true})
        })
        .await?;
        keys.created += n;
        let (policy_keys, principal) = (Arc::new(keys.policy.clone()), caller.principal.clone());
        load::setup_calls(endpoint, n, concurrency, Some("grants"), move |i| {
            (
                "TrentService.CreateGrant",
                json!({
                "KeyId": policy_keys[i], "GranteePrincipal": principal,
                "Operations": ["Encrypt", "Decrypt"],
                "Constraints": {"EncryptionContextSubset": {"app": "bench"}}}),
            )
        })
        .await?;
    }
    Ok(keys)
}

fn prepared(target: &'static str, bodies: impl Iterator<Item = Value>) -> Vec<Prepared> {
    bodies.map(|b| Prepared::new(target, &b)).collect()
}

fn pickers(keys: &Keys) -> Vec<(&'static str, Picker)> {
    let encrypt = prepared("TrentService.Encrypt", keys.symmetric.iter().map(|k| encrypt_body(k)));
    let decrypt = prepared(
        "TrentService.Decrypt",
        keys.ciphertexts
            .iter()
            .map(|c| json!({"CiphertextBlob": c, "EncryptionContext": context()})),
    );
    let gdk = prepared(
        "TrentService.GenerateDataKey",
        keys.symmetric.iter().map(|k| json!({"KeyId": k, "KeySpec": "AES_256"})),
    );
    let sign = prepared(
        "TrentService.Sign",
        keys.signing.iter().map(|k| {
            json!({"KeyId": k, "Message": b64(&[9u8; 32]), "MessageType": "DIGEST",
                   "SigningAlgorithm": "ECDSA_SHA_256"})
        }),
    );
    let policy = prepared("TrentService.Encrypt", keys.policy.iter().map(|k| encrypt_body(k)));
    let mut out: Vec<(&'static str, Picker)> = Vec::new();
    let some = |v: &Vec<Prepared>| !v.is_empty();
    if some(&encrypt) {
        out.push(("encrypt", load::uniform(encrypt.clone())));
    }
    if some(&decrypt) {
        out.push(("decrypt", load::uniform(decrypt.clone())));
    }
    if some(&gdk) {
        out.push(("gdk", load::uniform(gdk.clone())));
    }
    if some(&policy) {
        out.push(("policy-grant", load::uniform(policy)));
    }
    if some(&sign) {
        out.push(("sign", load::uniform(sign.clone())));
    }
    if some(&encrypt) && some(&decrypt) && some(&gdk) && some(&sign) {
        let (e, d, g, s) = (Arc::new(encrypt), Arc::new(decrypt), Arc::new(gdk), Arc::new(sign));
        let mixed: Picker = Arc::new(move |rng| {
            let from = match rng.gen_range(0..10) {
                0..=3 => &d,
                4..=6 => &e,
                7..=8 => &g,
                _ => &s,
            };
            from[rng.gen_range(0..from.len())].clone()
        });
        out.push(("mixed", mixed));
    }
    out
}

/// The workloads of `wanted`, each against one key and across `spread` keys, in the
/// order of `ALL`: (workload, key count, picker); and how many keys were created.
pub(crate) async fn prepare(
    endpoint: &Endpoint,
    caller: &Caller,
    spread: usize,
    wanted: &[String],
    concurrency: usize,
) -> anyhow::Result<(Vec<(String, usize, Picker)>, usize)> {
    let one = keys(endpoint, caller, 1, wanted, concurrency).await?;
    let many = if spread > 1 {
        Some(keys(endpoint, caller, spread, wanted, concurrency).await?)
    } else {
        None
    };
    let created = one.created + many.as_ref().map_or(0, |m| m.created);
    let mut out = Vec::new();
    let one = pickers(&one);
    let many = many.as_ref().map(pickers).unwrap_or_default();
    for name in ALL {
        if !wanted.iter().any(|w| w == name) {
            continue;
        }
        for (n, pick) in &one {
            if n == name {
                out.push(((*name).to_owned(), 1, pick.clone()));
            }
        }
        for (n, pick) in &many {
            if n == name {
                out.push(((*name).to_owned(), spread, pick.clone()));
            }
        }
    }
    Ok((out, created))
}
