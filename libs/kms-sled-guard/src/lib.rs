//! sled 0.34 keeps one *process-wide* concurrency-control lock. A transaction (or batch)
//! takes it exclusively; a flush holds it shared while it waits for the log to become
//! stable; and the log flusher that would make it stable needs it shared too — queued
//! behind the waiting transaction, it never gets it. With several sled databases in one
//! process (every service of `kms-server`) or concurrent writers in one service, the
//! process then hangs for good (seen under concurrent CreateKey calls).
//!
//! Every store therefore goes through this crate: flushes share one process-wide lock,
//! transactions take it alone, so a transaction never waits while a flush is part-way.
//! Flushes run on the blocking pool; a transaction blocks its thread only until the
//! flushes in progress are done. Plain inserts and reads are not ordered: they take
//! sled's lock shared and wait on nothing.
//!
//! Stores also open their database here, with a bounded page cache: sled's default of
//! 1 GiB per database let one `kms-server` (five databases) grow to ~1 GiB under load,
//! past the memory limits a service's pod is given.

use std::sync::{PoisonError, RwLock};

static ORDER: RwLock<()> = RwLock::new(());

/// Page cache of each store's database.
pub const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// Opens (creating it if needed) the sled database in `dir`, with a bounded cache.
pub fn open(dir: &std::path::Path) -> sled::Result<sled::Db> {
    sled::Config::new().path(dir).cache_capacity(CACHE_CAPACITY_BYTES).open()
}

/// Flushes `db` to disk, never while a transaction of this process runs.
pub fn flush(db: &sled::Db) -> sled::Result<usize> {
    let _shared = ORDER.read().unwrap_or_else(PoisonError::into_inner);
    db.flush()
}

/// [`flush`] on the blocking pool, for async callers.
pub async fn flush_async(db: &sled::Db) -> sled::Result<usize> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || flush(&db))
        .await
        .unwrap_or_else(|e| Err(sled::Error::ReportableBug(format!("flush task failed: {e}"))))
}

/// Runs `transaction` (a sled transaction or batch) with no flush of this process in
/// progress.
pub fn exclusively<R>(transaction: impl FnOnce() -> R) -> R {
    let _alone = ORDER.write().unwrap_or_else(PoisonError::into_inner);
    transaction()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many databases, concurrent transactions and flushes: everything completes. (With
    /// sled's own `Db::flush_async` in place of [`flush_async`] and no [`exclusively`],
    /// this test hangs.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn transactions_and_flushes_of_many_databases_complete() {
        use sled::Transactional;
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let dbs: Vec<sled::Db> = dirs.iter().map(|d| sled::open(d.path()).unwrap()).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..24u32 {
            let db = dbs[worker as usize % dbs.len()].clone();
            tasks.spawn(async move {
                let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
                for i in 0..40u32 {
                    let key = format!("{worker}/{i}");
                    exclusively(|| {
                        (&a, &b).transaction(|(a, b)| {
                            a.insert(key.as_bytes(), &[1])?;
                            b.insert(key.as_bytes(), &[2])?;
                            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                        })
                    })
                    .unwrap();
                    flush_async(&db).await.unwrap();
                }
            });
        }
        let all = tokio::time::timeout(std::time::Duration::from_secs(120), async {
            while let Some(done) = tasks.join_next().await {
                done.unwrap();
            }
        });
        all.await.expect("no deadlock");
        let total: usize = dbs.iter().map(|db| db.open_tree("b").unwrap().len()).sum();
        assert_eq!(total, 24 * 40);
    }
}
