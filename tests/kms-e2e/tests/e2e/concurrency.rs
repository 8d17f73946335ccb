//! Many writers at once: concurrent CreateKey calls (each writes the crypto, policy,
//! metadata and audit stores, with transactions and flushes in every service of the one
//! process) all complete, and every key is there afterwards.

use std::time::Duration;

use futures::StreamExt;

use crate::sandbox::{Sandbox, ACCOUNT_A};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_create_keys_all_complete() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let created = tokio::time::timeout(Duration::from_secs(120), async {
        futures::stream::iter(0..96)
            .map(|i| {
                let kms = kms.clone();
                async move {
                    kms.create_key()
                        .description(format!("concurrent {i}"))
                        .send()
                        .await
                        .expect("CreateKey")
                        .key_metadata
                        .unwrap()
                        .key_id
                }
            })
            .buffer_unordered(24)
            .collect::<Vec<_>>()
            .await
    })
    .await
    .expect("every concurrent CreateKey completes (no store deadlock)");
    assert_eq!(created.len(), 96);
    let mut listed = Vec::new();
    let mut marker = None;
    loop {
        let page = kms.list_keys().set_marker(marker).limit(1000).send().await.unwrap();
        listed.extend(page.keys().iter().filter_map(|k| k.key_id().map(str::to_owned)));
        marker = page.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    for id in &created {
        assert!(listed.contains(id), "{id} is listed");
    }
}
