//! A consistent copy of the store taken while it serves ([`EmbeddedStore::backup_to`]): redb locks
//! its file, so a backup is made by the process that holds it, from one read transaction (a
//! snapshot of the last commit; writers go on committing meanwhile), table by table into a fresh
//! redb file.
//!
//! Every table is copied with its own definition (typed keys and values), so the copy is a store
//! file like any other, opened by [`EmbeddedStore::open`]. A table in the file that this module
//! does not know (one added to `lib.rs` and forgotten here) stops the backup instead of leaving it
//! out; the tests hold `table_names` to the tables a store creates.

use std::{collections::BTreeMap, path::Path};

use koogallery::{StoreError, failure::Detail};
use redb::{
    Database, MultimapTableHandle, ReadTransaction, TableDefinition, TableHandle, WriteTransaction,
};

use crate::{EmbeddedStore, Fault};

/// What a backup holds: the row count of every table copied, by table name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupSummary {
    pub tables: BTreeMap<String, u64>,
}

impl BackupSummary {
    /// Rows in every table together.
    pub fn rows(&self) -> u64 {
        self.tables.values().sum()
    }
}

/// Copies one table from `read` into `write` and returns its row count.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    read: &ReadTransaction,
    write: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64, Fault> {
    use redb::ReadableTable;
    let source = match read.open_table(table) {
        Ok(t) => t,
        // A file written before the table existed (the store creates it on its next open).
        Err(redb::TableError::TableDoesNotExist(_)) => {
            write.open_table(table)?;
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    let mut dest = write.open_table(table)?;
    let mut rows = 0;
    for entry in source.iter()? {
        let (key, value) = entry?;
        dest.insert(key.value(), value.value())?;
        rows += 1;
    }
    Ok(rows)
}

/// Every table of the store, each copied by its definition: one line per table of `lib.rs`.
macro_rules! tables {
    ($($table:ident),* $(,)?) => {
        /// The names of the tables a backup copies.
        pub(crate) fn table_names() -> Vec<String> {
            vec![$(crate::$table.name().to_owned()),*]
        }

        fn copy_all(
            read: &ReadTransaction,
            write: &WriteTransaction,
        ) -> Result<BTreeMap<String, u64>, Fault> {
            let mut rows = BTreeMap::new();
            $(rows.insert(
                crate::$table.name().to_owned(),
                copy_table(read, write, crate::$table)?,
            );)*
            Ok(rows)
        }
    };
}

tables!(
    INSTANCES,
    ORDER_LINES,
    EVENTS,
    JOBS,
    JOBS_DUE,
    JOBS_DEAD,
    META,
    ORDER_NOTICES,
    USAGE_WINDOWS,
    USAGE_DUE,
    USAGE_KEYS,
    USAGE_KEY_EXPIRY,
    USAGE_PACKAGES,
    USAGE_TOTALS,
    DIR_TENANTS,
    DIR_APPS,
    DIR_USERS,
    DIR_DEPARTMENTS,
    DIR_LAST_SEQ,
    DIR_EVENTS,
    SSO_SESSIONS,
    SSO_SESSION_INDEX,
    SSO_SESSION_EXPIRY,
    SSO_GRANTS,
    SSO_GRANT_EXPIRY,
    SSO_CLIENTS,
    SSO_SIGNING_KEYS,
    LICENSES,
    LICENSE_USAGE,
    LICENSE_REPORTED,
);

/// The tables in `read`'s snapshot that `table_names` does not name (multimap tables included: the
/// store has none, so any is unknown).
fn unknown_tables(read: &ReadTransaction) -> Result<Vec<String>, Fault> {
    let known = table_names();
    let mut unknown: Vec<String> = read
        .list_tables()
        .map_err(Fault::from)?
        .map(|t| t.name().to_owned())
        .filter(|name| !known.contains(name))
        .collect();
    unknown.extend(
        read.list_multimap_tables()
            .map_err(Fault::from)?
            .map(|t| format!("{} (multimap)", t.name())),
    );
    Ok(unknown)
}

fn unavailable(what: String, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Detail::caused_by(what, e))
}

impl EmbeddedStore {
    /// Copies the store, as of one moment, into a new redb file at `dest` (which must not exist
    /// yet or be empty, e.g. a fresh temporary file), while the store goes on serving: one read
    /// transaction, every table copied into one write transaction of the new file, committed
    /// durably. The file is created owner-only (0600): it holds customers' records and sealed
    /// credentials. Returns each table's row count.
    ///
    /// Fails (and writes nothing usable) if the store holds a table this version does not know.
    /// Blocking: call it from a blocking thread (`spawn_blocking`), not from the async runtime.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupSummary, StoreError> {
        match std::fs::metadata(dest) {
            Ok(m) if m.len() > 0 => {
                return Err(StoreError::Unavailable(
                    format!(
                        "{} already holds data; a backup is written to a new file",
                        dest.display()
                    )
                    .into(),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unavailable(format!("cannot read {}", dest.display()), e)),
        }
        let read = self.database_ref().begin_read()?;
        let unknown = unknown_tables(&read)?;
        if !unknown.is_empty() {
            return Err(StoreError::Corrupt(
                format!(
                    "the store holds tables a backup does not know how to copy: {}",
                    unknown.join(", ")
                )
                .into(),
            ));
        }
        crate::owner_only(dest)?;
        let copy = Database::create(dest)
            .map_err(|e| unavailable(format!("cannot create {}", dest.display()), e))?;
        let write = copy.begin_write().map_err(Fault::from)?;
        let tables = copy_all(&read, &write)?;
        write.commit().map_err(Fault::from)?;
        Ok(BackupSummary { tables })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{INSTANCES, META};
    use redb::{ReadableDatabase, ReadableTableMetadata};
    use std::{
        collections::BTreeSet,
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicU64, Ordering},
        },
    };

    /// Every table's name and row count, read without knowing its types.
    fn counts(db: &Database) -> BTreeMap<String, u64> {
        let read = db.begin_read().unwrap();
        read.list_tables()
            .unwrap()
            .map(|handle| {
                let name = handle.name().to_owned();
                let rows = read.open_untyped_table(handle).unwrap().len().unwrap();
                (name, rows)
            })
            .collect()
    }

    /// Writes through the store's own interfaces: an instance with its order line and event, a
    /// nonce, a queued job.
    async fn exercise(store: &EmbeddedStore) {
        use koogallery::{
            instance::{Instance, InstanceStore},
            jobs::{Job, JobQueue},
            security::replay::NonceStore,
        };
        let now = chrono::Utc::now();
        let (instance, event) =
            Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-backup", false, now);
        store
            .create_for_order_line(&instance, &[event])
            .await
            .unwrap();
        let later = now + chrono::Duration::minutes(5);
        assert!(store.remember("nonce-backup", now, later).await.unwrap());
        store.flush_nonces().unwrap();
        store
            .queue()
            .enqueue(&Job::Provision {
                instance_id: "inst-backup".into(),
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_backup_copies_every_table_of_the_store_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("koogallery.redb")).unwrap();
        exercise(&store).await;
        let dest = dir.path().join("copy.redb");
        let summary = store.backup_to(&dest).unwrap();
        drop(store);

        let source = counts(&Database::open(dir.path().join("koogallery.redb")).unwrap());
        let copy_db = Database::open(&dest).unwrap();
        let copy = counts(&copy_db);
        // Every table of the store is in the copy (a table the backup did not copy fails here),
        // with the same rows, and the summary says so.
        assert_eq!(
            source.keys().collect::<BTreeSet<_>>(),
            copy.keys().collect::<BTreeSet<_>>()
        );
        assert_eq!(source, copy);
        assert_eq!(summary.tables, source);
        assert_eq!(
            table_names().into_iter().collect::<BTreeSet<_>>(),
            source.keys().cloned().collect::<BTreeSet<_>>(),
            "TABLES must name exactly the tables a store creates"
        );
        assert!(
            copy_db
                .begin_read()
                .unwrap()
                .list_multimap_tables()
                .unwrap()
                .next()
                .is_none()
        );
        assert!(summary.tables["instances"] >= 1, "{summary:?}");
        assert!(summary.tables["jobs"] >= 1, "{summary:?}");
        // The nonces are in the replay guard's journal, not the store file: a backup has none
        // (they would be expired long before a restore anyway).
        assert!(
            !summary.tables.keys().any(|t| t.contains("nonce")),
            "{summary:?}"
        );
        drop(copy_db);

        // The copy is a store file: it opens as one and holds the instance.
        let reopened = EmbeddedStore::open(&dest).unwrap();
        let found = koogallery::instance::InstanceStore::get(&reopened, "inst-backup")
            .await
            .unwrap();
        assert!(found.is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_table_the_backup_does_not_know_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("koogallery.redb")).unwrap();
        let txn = store.database_ref().begin_write().unwrap();
        txn.open_table(TableDefinition::<&str, u64>::new("added_later"))
            .unwrap()
            .insert("k", 1)
            .unwrap();
        txn.commit().unwrap();
        let dest = dir.path().join("copy.redb");
        let e = store.backup_to(&dest).unwrap_err().to_string();
        assert!(e.contains("added_later"), "{e}");
    }

    #[test]
    fn a_backup_is_never_written_over_a_file_that_holds_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("koogallery.redb")).unwrap();
        let dest = dir.path().join("copy.redb");
        std::fs::write(&dest, b"something").unwrap();
        assert!(store.backup_to(&dest).is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"something");
    }

    /// A writer commits `n` instances and the counter `n` together, again and again, while the
    /// backup runs: the copy holds exactly as many instances as its counter says, i.e. one commit.
    #[test]
    fn a_backup_taken_while_another_thread_writes_holds_one_moment() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("koogallery.redb")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let writer = {
            let (store, stop, committed) = (store.clone(), stop.clone(), committed.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let txn = store.database_ref().begin_write().unwrap();
                    {
                        let mut instances = txn.open_table(INSTANCES).unwrap();
                        // Several rows per commit, so a copy torn between commits shows.
                        for k in 0..5 {
                            instances
                                .insert(format!("i-{n}-{k}").as_str(), b"{}".as_slice())
                                .unwrap();
                        }
                        txn.open_table(META).unwrap().insert("n", n + 1).unwrap();
                    }
                    txn.commit().unwrap();
                    n += 1;
                    committed.store(n, Ordering::Relaxed);
                }
                n
            })
        };
        // Some commits before the backup, and more while it runs.
        while committed.load(Ordering::Relaxed) < 20 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut copies = Vec::new();
        for i in 0..3 {
            let dest = dir.path().join(format!("copy-{i}.redb"));
            let summary = store.backup_to(&dest).unwrap();
            copies.push((dest, summary));
        }
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().unwrap();

        let mut seen = Vec::new();
        for (dest, summary) in copies {
            let db = Database::open(&dest).unwrap();
            let read = db.begin_read().unwrap();
            let n = read
                .open_table(META)
                .unwrap()
                .get("n")
                .unwrap()
                .map(|v| v.value())
                .unwrap();
            let rows = read.open_table(INSTANCES).unwrap().len().unwrap();
            assert_eq!(
                rows,
                n * 5,
                "the copy mixes commits: {n} commits, {rows} rows"
            );
            assert_eq!(summary.tables["instances"], rows);
            assert!(n >= 20 && n <= written, "{n} of {written}");
            seen.push(n);
        }
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    }
}
