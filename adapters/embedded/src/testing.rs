//! A disk that fills up, for outage tests: a store opened on a [`LimitedDisk`]
//! ([`EmbeddedStore::open_on`](crate::EmbeddedStore::open_on)) writes through to its file until the
//! disk's room is used up, and then every write fails with `ENOSPC`, as on a full filesystem,
//! until room is given back. A write that does not fit fails whole, so a commit can fail halfway.

use std::{
    fmt,
    ops::Bound,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use redb::{BackendError, StorageBackend, backends::FileBackend};

/// `ENOSPC`: no space left on device.
const NO_SPACE: i32 = 28;

/// The room left on a disk, shared by every file opened on it; cheap to clone.
#[derive(Clone, Default)]
pub struct LimitedDisk {
    /// Bytes that may still be written; `None` is no limit.
    room: Arc<std::sync::Mutex<Option<u64>>>,
    refused: Arc<AtomicU64>,
}

impl fmt::Debug for LimitedDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitedDisk")
            .field(
                "room",
                &*self.room.lock().unwrap_or_else(|p| p.into_inner()),
            )
            .finish_non_exhaustive()
    }
}

impl LimitedDisk {
    /// A disk with no limit until [`Self::fill_after`].
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on `bytes` more may be written; every write after that fails (`0`: full now).
    pub fn fill_after(&self, bytes: u64) {
        *self.room.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
    }

    /// Space freed: no limit any more.
    pub fn free(&self) {
        *self.room.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Writes refused for want of space so far.
    pub fn refused_writes(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    fn take(&self, bytes: usize) -> Result<(), std::io::Error> {
        let mut room = self.room.lock().unwrap_or_else(|p| p.into_inner());
        match room.as_mut() {
            None => Ok(()),
            Some(left) if *left >= bytes as u64 => {
                *left -= bytes as u64;
                Ok(())
            }
            Some(_) => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                Err(std::io::Error::from_raw_os_error(NO_SPACE))
            }
        }
    }

    /// The file at `path` on this disk, as a redb backend.
    pub(crate) fn backend(
        &self,
        path: &std::path::Path,
    ) -> Result<impl StorageBackend, redb::DatabaseError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
        Ok(OnDisk {
            file: FileBackend::new(file)?,
            disk: self.clone(),
        })
    }
}

/// A nonce journal segment on a [`LimitedDisk`].
struct SegmentOnDisk {
    file: std::fs::File,
    disk: LimitedDisk,
}

impl crate::nonces::SegmentFile for SegmentOnDisk {
    fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.disk.take(data.len())?;
        crate::nonces::SegmentFile::write_at(&self.file, offset, data)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        crate::nonces::SegmentFile::sync_data(&self.file)
    }
}

impl LimitedDisk {
    /// The replay guard's journal segments on this disk.
    pub(crate) fn segments(&self) -> crate::nonces::SegmentOpener {
        let disk = self.clone();
        std::sync::Arc::new(move |path| {
            Ok(Box::new(SegmentOnDisk {
                file: crate::nonces::create_segment(path)?,
                disk: disk.clone(),
            }))
        })
    }
}

/// A file on a [`LimitedDisk`]: redb's own file backend, with writes counted against the room.
#[derive(Debug)]
struct OnDisk {
    file: FileBackend,
    disk: LimitedDisk,
}

impl StorageBackend for OnDisk {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.file.read(offset, out)
    }

    /// Growing a file makes a hole, as on a real filesystem: only writes take room.
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.disk.take(data.len())?;
        self.file.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use koogallery::{
        StoreError,
        instance::{Instance, InstanceStore},
        metering::{IngestError, PackageQuotas, UsageReport, UsageStore},
        security::replay::NonceStore,
    };

    use super::LimitedDisk;
    use crate::EmbeddedStore;

    fn order(n: u32) -> (Instance, koogallery::instance::InstanceEvent) {
        Instance::new_provisioning(
            &format!("O{n}").into(),
            &format!("O{n}-1").into(),
            &format!("inst-{n}"),
            false,
            Utc::now(),
        )
    }

    async fn eventually<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) {
        for _ in 0..500 {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out");
    }

    /// A full disk: every write fails with a retryable error, and once space is freed the same
    /// store (no restart) takes writes again and holds exactly what was committed. redb refuses
    /// every transaction after an I/O failure until its file is reopened; the store reopens it.
    #[tokio::test]
    async fn a_full_disk_fails_writes_retryably_and_the_store_recovers_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let disk = LimitedDisk::new();
        let store = EmbeddedStore::open_on(&path, &disk).unwrap();
        let (one, ev) = order(1);
        store.create_for_order_line(&one, &[ev]).await.unwrap();

        disk.fill_after(0);
        for n in 2..5 {
            let (inst, ev) = order(n);
            let refused = store.create_for_order_line(&inst, &[ev]).await;
            assert!(
                matches!(&refused, Err(e @ StoreError::Unavailable(_)) if e.is_retryable()),
                "{refused:?}"
            );
        }
        assert!(disk.refused_writes() > 0, "the disk was full");

        disk.free();
        let (two, ev) = order(2);
        eventually(|| {
            let (two, ev) = (two.clone(), ev.clone());
            let store = store.clone();
            async move { store.create_for_order_line(&two, &[ev]).await.is_ok() }
        })
        .await;
        let (three, ev) = order(3);
        store.create_for_order_line(&three, &[ev]).await.unwrap();
        let ids: Vec<String> = store
            .unsettled()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.instance_id.into_string())
            .collect();
        assert_eq!(ids, ["inst-1", "inst-2", "inst-3"]);
        drop(store);
        // And the file opens as any other.
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(store.events("inst-2").await.unwrap().len(), 1);
        assert!(store.get("inst-4").await.unwrap().is_none());
    }

    /// A batch whose commit runs out of space halfway leaves nothing of itself: after recovery
    /// its keys are unknown and its window unchanged, and its retry is applied once.
    #[tokio::test]
    async fn a_batch_cut_short_by_a_full_disk_leaves_nothing_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let disk = LimitedDisk::new();
        let store = EmbeddedStore::open_on(dir.path().join("s.redb"), &disk).unwrap();
        let now = Utc::now();
        let batch = |tag: &str| -> Vec<UsageReport> {
            (0..500)
                .map(|i| UsageReport {
                    instance_id: "i-1".into(),
                    quantity: "2".parse().unwrap(),
                    occurred_at: now,
                    idempotency_key: format!("{tag}-{i}"),
                    package_instance_id: None,
                })
                .collect()
        };
        let none = PackageQuotas::new();
        store.ingest(&batch("first"), &none, now).await.unwrap();
        // Room for part of the next commit only.
        disk.fill_after(8 * 1024);
        let cut = store.ingest(&batch("second"), &none, now).await;
        assert!(
            matches!(&cut, Err(IngestError::Store(e)) if e.is_retryable()),
            "{cut:?}"
        );
        assert!(disk.refused_writes() > 0);
        disk.free();
        let total = |store: EmbeddedStore| async move {
            let windows = store.windows_of("i-1").await?;
            Ok::<_, StoreError>((windows[0].total.to_string(), windows[0].reports))
        };
        eventually(|| {
            let store = store.clone();
            async move { total(store).await.is_ok() }
        })
        .await;
        assert_eq!(total(store.clone()).await.unwrap(), ("1000".into(), 500));
        let retried = store.ingest(&batch("second"), &none, now).await.unwrap();
        assert_eq!((retried.applied, retried.duplicates), (500, 0));
        assert_eq!(total(store.clone()).await.unwrap(), ("2000".into(), 1000));
    }

    /// The replay guard on a full disk: its commit fails, so it takes no new nonce (a retryable
    /// error: the edge's signed `000005`) instead of accepting ones it cannot persist, still
    /// tells a replay apart, and takes new ones again once a commit goes through. What it had
    /// accepted reaches the disk.
    #[tokio::test]
    async fn the_replay_guard_takes_no_new_nonce_while_it_cannot_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let disk = LimitedDisk::new();
        let store = EmbeddedStore::open_on(&path, &disk).unwrap();
        let now = Utc::now();
        let exp = now + chrono::Duration::seconds(300);
        assert!(store.remember("a", now, exp).await.unwrap());
        eventually(|| std::future::ready(store.unflushed_nonces() == 0)).await;

        disk.fill_after(0);
        assert!(store.remember("b", now, exp).await.unwrap());
        assert!(store.flush_nonces().is_err(), "the disk is full");
        for n in ["c", "d"] {
            let refused = store.remember(n, now, exp).await;
            assert!(
                matches!(&refused, Err(e @ StoreError::Unavailable(_)) if e.is_retryable()),
                "{refused:?}"
            );
        }
        assert!(!store.remember("a", now, exp).await.unwrap(), "a replay");
        assert!(!store.remember("b", now, exp).await.unwrap(), "a replay");
        assert_eq!(store.unflushed_nonces(), 1, "b, kept for the next commit");

        disk.free();
        eventually(|| std::future::ready(store.unflushed_nonces() == 0)).await;
        assert!(store.remember("c", now, exp).await.unwrap());
        drop(store);
        let store = EmbeddedStore::open(&path).unwrap();
        for n in ["a", "b", "c"] {
            assert!(!store.remember(n, now, exp).await.unwrap(), "{n} on disk");
        }
    }
}
