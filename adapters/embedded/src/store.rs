//! [`InstanceStore`], [`OrderNoticeStore`] and [`NonceStore`] over redb, mirroring `koogallery::testing::MemoryStore`. Records are encoded by
//! `koogallery::instance::record` (the versioned on-disk contract).

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use koogallery::failure::Detail;
use koogallery::{
    StoreError,
    instance::{
        CreateOutcome, Instance, InstanceEvent, InstanceStore, IntakeError, OrderLineIntake, record,
    },
    jobs::Job,
    order::{
        OrderId, OrderLineId,
        notice::{OrderNotice, OrderNoticeStore, record as notice_record},
    },
    security::replay::NonceStore,
};
use redb::{ReadableTable, Table, WriteTransaction};

use crate::{EVENTS, EmbeddedStore, Fault, INSTANCES, ORDER_LINES, ORDER_NOTICES, Write, millis};

pub(crate) fn decode_instance(id: &str, bytes: &[u8]) -> Result<Instance, Fault> {
    record::decode_instance(bytes).map_err(|e| Fault::Corrupt(format!("instance {id}: {e}")))
}

/// The records last decoded on queryInstance's path, by instanceId, each with the bytes it was
/// decoded from. A read still takes the record from the file every time; when its bytes are the
/// ones decoded before, the decoded instance is shared (an `Arc`) instead of the JSON parsed
/// again (that parse was a tenth of the host's CPU on polled queryInstance: BENCHMARKS.md, "Close
/// to the machine's ceiling"). The bytes decide, not any notice of a write, so nothing that
/// changes the file (another handle, a restore) can leave a stale instance answered.
#[derive(Default)]
pub(crate) struct DecodedInstances {
    by_id: std::sync::Mutex<Decoded>,
}

/// By instanceId: the bytes decoded, and what they decoded to.
type Decoded = HashMap<String, (Box<[u8]>, Arc<Instance>)>;

/// Records kept decoded; past this the cache starts afresh (a few MB at most).
const DECODED_LIMIT: usize = 4096;

impl DecodedInstances {
    fn lock(&self) -> std::sync::MutexGuard<'_, Decoded> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Instance `id` as stored in `bytes`: the one decoded before when the bytes are the same.
    pub(crate) fn decode(&self, id: &str, bytes: &[u8]) -> Result<Arc<Instance>, Fault> {
        let known = self
            .lock()
            .get(id)
            .filter(|(decoded_from, _)| **decoded_from == *bytes)
            .map(|(_, instance)| instance.clone());
        if let Some(instance) = known {
            return Ok(instance);
        }
        let instance = Arc::new(decode_instance(id, bytes)?);
        let mut cache = self.lock();
        if cache.len() >= DECODED_LIMIT && !cache.contains_key(id) {
            cache.clear();
        }
        cache.insert(id.to_owned(), (bytes.into(), instance.clone()));
        Ok(instance)
    }
}

fn corrupt(e: StoreError) -> Fault {
    Fault::Corrupt(e.to_string())
}

/// Just the optimistic-concurrency field: a compare-and-set needs nothing else from the record.
#[derive(serde::Deserialize)]
struct VersionOnly {
    version: u64,
}

/// Appends events under (instanceId, seq). History is append-only: a seq already stored is refused
/// as a conflict (the whole transaction is dropped) rather than overwriting an entry. The domain
/// hands out each seq once per version, so this only fires on a caller bug.
fn append_events(
    txn: &WriteTransaction,
    instance_id: &str,
    events: &[InstanceEvent],
) -> Result<(), Fault> {
    let mut table = txn.open_table(EVENTS)?;
    for ev in events {
        let json = record::encode_event(ev).map_err(corrupt)?;
        if table
            .insert((instance_id, ev.seq), json.as_slice())?
            .is_some()
        {
            tracing::error!(
                instance_id,
                seq = ev.seq,
                "event seq already stored; save refused"
            );
            return Err(Fault::Conflict);
        }
    }
    Ok(())
}

/// The conditional create; with `job` (JSON, visible-from millis), the job is queued in the same
/// transaction, so the record and its job are one durable commit.
fn create(
    instance: &Instance,
    events: &[InstanceEvent],
    job: Option<(&[u8], i64)>,
    txn: Write<'_>,
) -> Result<CreateOutcome, Fault> {
    let id = instance.instance_id.as_str();
    {
        let mut lines = txn.open_table(ORDER_LINES)?;
        let mut instances = txn.open_table(INSTANCES)?;
        let line_key = (instance.order_id.as_str(), instance.order_line_id.as_str());
        let existing_id = lines.get(line_key)?.map(|g| g.value().to_owned());
        if let Some(existing_id) = existing_id {
            // Nothing written: dropping the transaction aborts it.
            let bytes = instances.get(existing_id.as_str())?.ok_or_else(|| {
                Fault::Corrupt(format!(
                    "order line ({}, {}) points at missing instance {existing_id}",
                    instance.order_id, instance.order_line_id
                ))
            })?;
            let existing = decode_instance(&existing_id, bytes.value())?;
            return Ok(CreateOutcome::Existing(Box::new(existing)));
        }
        if instances.get(id)?.is_some() {
            // A businessId reused across orders: never overwrite another order's instance.
            return Ok(CreateOutcome::InstanceIdTaken);
        }
        let mut stored = instance.clone();
        stored.version = 1;
        instances.insert(
            id,
            record::encode_instance(&stored)
                .map_err(corrupt)?
                .as_slice(),
        )?;
        lines.insert(line_key, id)?;
    }
    {
        // The memory store replaces the history on create; drop any orphaned events for this id.
        let mut table: Table<(&str, u64), &[u8]> = txn.open_table(EVENTS)?;
        table.retain_in((id, 0u64)..=(id, u64::MAX), |_, _| false)?;
    }
    append_events(&txn, id, events)?;
    if let Some((json, now_ms)) = job {
        crate::queue::enqueue_in(&txn, json, now_ms)?;
    }
    txn.commit()?;
    Ok(CreateOutcome::Created)
}

fn save(
    instance: &Instance,
    expected_version: u64,
    events: &[InstanceEvent],
    txn: Write<'_>,
) -> Result<(), Fault> {
    let id = instance.instance_id.as_str();
    {
        let mut instances = txn.open_table(INSTANCES)?;
        let current = match instances.get(id)? {
            // Saving against a missing record is a conflict, never a blind create.
            None => return Err(Fault::Conflict),
            Some(bytes) => {
                serde_json::from_slice::<VersionOnly>(bytes.value())
                    .map_err(|e| Fault::Corrupt(format!("instance {id} cannot be decoded: {e}")))?
                    .version
            }
        };
        if current != expected_version {
            return Err(Fault::Conflict);
        }
        let mut stored = instance.clone();
        stored.version = expected_version + 1;
        instances.insert(
            id,
            record::encode_instance(&stored)
                .map_err(corrupt)?
                .as_slice(),
        )?;
    }
    append_events(&txn, id, events)?;
    txn.commit()?;
    Ok(())
}

#[async_trait]
impl InstanceStore for EmbeddedStore {
    async fn create_for_order_line(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
    ) -> Result<CreateOutcome, StoreError> {
        let (instance, events) = (instance.clone(), events.to_vec());
        // redb runs one write transaction at a time, so the check-then-insert is atomic and
        // exactly one of any number of concurrent creators sees the order line absent.
        Ok(self
            .blocking(move |db| create(&instance, &events, None, db.begin_write()?))
            .await?)
    }

    async fn get(&self, instance_id: &str) -> Result<Option<Instance>, StoreError> {
        let id = instance_id.to_owned();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(INSTANCES)?;
                let found = table.get(id.as_str())?;
                found.map(|b| decode_instance(&id, b.value())).transpose()
            })
            .await?)
    }

    /// queryInstance's read, KooGallery's hot path: inline on the runtime, without the hop to a
    /// blocking thread that writes take. A redb read never waits for a writer (it reads the last
    /// committed snapshot), and the records it touches are recent, hence in the page cache.
    async fn get_many(&self, instance_ids: &[&str]) -> Result<Vec<Arc<Instance>>, StoreError> {
        let read = || -> Result<Vec<Arc<Instance>>, Fault> {
            // One snapshot for the whole batch; unknown IDs are left out, order kept.
            let table = self.database_ref().begin_read()?.open_table(INSTANCES)?;
            let mut out = Vec::with_capacity(instance_ids.len());
            for id in instance_ids {
                if let Some(bytes) = table.get(*id)? {
                    out.push(self.decoded.decode(id, bytes.value())?);
                }
            }
            Ok(out)
        };
        Ok(read()?)
    }

    async fn save(
        &self,
        instance: &Instance,
        expected_version: u64,
        events: &[InstanceEvent],
    ) -> Result<(), StoreError> {
        let (instance, events) = (instance.clone(), events.to_vec());
        Ok(self
            .blocking(move |db| save(&instance, expected_version, &events, db.begin_write()?))
            .await?)
    }

    async fn events(&self, instance_id: &str) -> Result<Vec<InstanceEvent>, StoreError> {
        let id = instance_id.to_owned();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(EVENTS)?;
                let mut out = Vec::new();
                for entry in table.range((id.as_str(), 0u64)..=(id.as_str(), u64::MAX))? {
                    let (key, bytes) = entry?;
                    let seq = key.value().1;
                    out.push(
                        record::decode_event(bytes.value())
                            .map_err(|e| Fault::Corrupt(format!("event {id}#{seq}: {e}")))?,
                    );
                }
                Ok(out)
            })
            .await?)
    }

    /// A scan of the instances: the embedded store serves one host (`make run`), where a periodic
    /// pass over every record is cheap; the DynamoDB adapter uses a sparse index instead.
    async fn unsettled(&self) -> Result<Vec<Instance>, StoreError> {
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(INSTANCES)?;
                let mut out = Vec::new();
                for entry in table.iter()? {
                    let (id, bytes) = entry?;
                    let instance = decode_instance(id.value(), bytes.value())?;
                    if instance.is_unsettled() {
                        out.push(instance);
                    }
                }
                Ok(out)
            })
            .await?)
    }
}

/// newInstance's write as one durable commit: the record, its order line, its events and its
/// provisioning job in one redb transaction (the queue lives in the same file).
#[async_trait]
impl OrderLineIntake for EmbeddedStore {
    async fn create_and_enqueue(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
        job: &Job,
    ) -> Result<CreateOutcome, IntakeError> {
        let json = serde_json::to_vec(job)
            .map_err(|e| StoreError::Corrupt(Detail::caused_by("cannot encode job", e)))?;
        // Visible from the order's own time: the instance's clock is the callbacks' (injected in
        // tests), as the consumer's is.
        let now_ms = millis(instance.created_at);
        let (instance, events) = (instance.clone(), events.to_vec());
        let outcome = self
            .blocking(move |db| {
                create(&instance, &events, Some((&json, now_ms)), db.begin_write()?)
            })
            .await
            .map_err(StoreError::from)?;
        if outcome == CreateOutcome::Created {
            self.database_ref().jobs_queued.notify_one();
        }
        Ok(outcome)
    }
}

#[async_trait]
impl OrderNoticeStore for EmbeddedStore {
    async fn record_notice(&self, notice: &OrderNotice) -> Result<bool, StoreError> {
        let notice = notice.clone();
        Ok(self
            .blocking(move |db| {
                let bytes = notice_record::encode(&notice).map_err(corrupt)?;
                // One write transaction at a time: the check and the insert are atomic.
                let txn = db.begin_write()?;
                let created = {
                    let mut table = txn.open_table(ORDER_NOTICES)?;
                    let key = (notice.order_id.as_str(), notice.order_line_id.as_str());
                    if table.get(key)?.is_some() {
                        false
                    } else {
                        table.insert(key, bytes.as_slice())?;
                        true
                    }
                };
                txn.commit()?;
                Ok(created)
            })
            .await?)
    }

    async fn notice(
        &self,
        order_id: &OrderId,
        order_line_id: &OrderLineId,
    ) -> Result<Option<OrderNotice>, StoreError> {
        let (order, line) = (order_id.clone(), order_line_id.clone());
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(ORDER_NOTICES)?;
                let found = table.get((order.as_str(), line.as_str()))?;
                found
                    .map(|b| notice_record::decode(b.value()).map_err(corrupt))
                    .transpose()
            })
            .await?)
    }

    async fn update_notice(&self, notice: &OrderNotice) -> Result<(), StoreError> {
        let notice = notice.clone();
        Ok(self
            .blocking(move |db| {
                let bytes = notice_record::encode(&notice).map_err(corrupt)?;
                let txn = db.begin_write()?;
                {
                    let mut table = txn.open_table(ORDER_NOTICES)?;
                    table.insert(
                        (notice.order_id.as_str(), notice.order_line_id.as_str()),
                        bytes.as_slice(),
                    )?;
                }
                txn.commit()?;
                Ok(())
            })
            .await?)
    }
}

#[async_trait]
impl NonceStore for EmbeddedStore {
    /// Expiries are compared at millisecond resolution (the stored unit); a nonce counts as
    /// remembered while its expiry is strictly after `now`, as in the memory store.
    async fn remember(
        &self,
        nonce: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // In memory, persisted by the next group commit (`nonces`): no disk write on this path.
        // Refused (retryable) while the guard cannot persist what it takes.
        self.nonce_guard()
            .remember(nonce, millis(now), millis(expires_at))
    }
}

#[cfg(test)]
mod tests {

    use koogallery::{instance::InstanceStore, security::replay::NonceStore};

    use super::*;

    fn t0() -> DateTime<Utc> {
        koogallery::protocol::time::parse_compact("20260101000000").unwrap()
    }

    fn fresh() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("db.redb")).unwrap();
        (dir, store)
    }

    fn write_raw(store: &EmbeddedStore, f: impl FnOnce(&WriteTransaction)) {
        let txn = store.database_ref().begin_write().unwrap();
        f(&txn);
        txn.commit().unwrap();
    }

    /// queryInstance's reads keep the instances they decoded, but answer what the file holds:
    /// after every kind of change (a save through the store, a write straight to the file, a
    /// damaged record) the next read answers the change, never the instance decoded before.
    #[tokio::test]
    async fn a_read_answers_what_the_file_holds_not_what_it_decoded_before() {
        let (_dir, store) = fresh();
        let (mut inst, ev) =
            Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, t0());
        store.create_for_order_line(&inst, &[ev]).await.unwrap();
        let first = store.get_many(&["inst-1"]).await.unwrap();
        assert_eq!(first[0].version, 1);
        // Answered again from what was decoded: the same instance, shared, not a copy.
        let again = store.get_many(&["inst-1"]).await.unwrap();
        assert!(Arc::ptr_eq(&again[0], &first[0]));

        inst.version = 1;
        let Ok(koogallery::instance::Outcome::Changed(active)) =
            inst.activate(koogallery::testing::sample_access("inst-1"), t0())
        else {
            panic!("activated")
        };
        store.save(&inst, 1, &[active]).await.unwrap();
        let saved = store.get_many(&["inst-1"]).await.unwrap();
        assert_eq!(saved[0].version, 2);
        assert_eq!(saved[0].state, inst.state);
        assert!(!Arc::ptr_eq(&saved[0], &first[0]));

        // A write that bypasses the store's methods (another handle, a restore).
        let mut other = Instance::clone(&saved[0]);
        other.version = 7;
        write_raw(&store, |txn| {
            let mut t = txn.open_table(INSTANCES).unwrap();
            let bytes = record::encode_instance(&other).unwrap();
            t.insert("inst-1", bytes.as_slice()).unwrap();
        });
        assert_eq!(store.get_many(&["inst-1"]).await.unwrap()[0].version, 7);

        write_raw(&store, |txn| {
            let mut t = txn.open_table(INSTANCES).unwrap();
            t.insert("inst-1", b"{not json".as_slice()).unwrap();
        });
        assert!(matches!(
            store.get_many(&["inst-1"]).await,
            Err(StoreError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn corrupt_instance_json_is_a_corrupt_error_not_a_panic() {
        let (_dir, store) = fresh();
        let (inst, ev) =
            Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, t0());
        store.create_for_order_line(&inst, &[ev]).await.unwrap();
        write_raw(&store, |txn| {
            let mut t = txn.open_table(INSTANCES).unwrap();
            t.insert("inst-1", b"{not json".as_slice()).unwrap();
        });

        assert!(matches!(
            store.get("inst-1").await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.get_many(&["inst-1"]).await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.save(&inst, 1, &[]).await,
            Err(StoreError::Corrupt(_))
        ));
        // A retried newInstance for the same order line meets the damaged record too.
        let (dup, dup_ev) =
            Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-2", false, t0());
        assert!(matches!(
            store.create_for_order_line(&dup, &[dup_ev]).await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(
            !StoreError::Corrupt(Detail::new("")).is_retryable(),
            "callers stop retrying a corrupt record"
        );
    }

    #[tokio::test]
    async fn corrupt_event_json_is_a_corrupt_error() {
        let (_dir, store) = fresh();
        let (inst, ev) =
            Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, t0());
        store.create_for_order_line(&inst, &[ev]).await.unwrap();
        write_raw(&store, |txn| {
            let mut t = txn.open_table(EVENTS).unwrap();
            t.insert(("inst-1", 7u64), [0xffu8, 0x00].as_slice())
                .unwrap();
        });
        assert!(matches!(
            store.events("inst-1").await,
            Err(StoreError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn order_line_pointing_at_a_missing_instance_is_corrupt() {
        let (_dir, store) = fresh();
        write_raw(&store, |txn| {
            let mut t = txn.open_table(ORDER_LINES).unwrap();
            t.insert(("O", "O-1"), "gone").unwrap();
        });
        let (inst, ev) =
            Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, t0());
        assert!(matches!(
            store.create_for_order_line(&inst, &[ev]).await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(
            store.get("inst-1").await.unwrap().is_none(),
            "nothing written"
        );
    }

    #[tokio::test]
    async fn a_duplicate_event_seq_is_refused_without_touching_history() {
        let (_dir, store) = fresh();
        let (inst, ev) =
            Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, t0());
        store
            .create_for_order_line(&inst, std::slice::from_ref(&ev))
            .await
            .unwrap();
        let mut stale = ev.clone();
        stale.kind = koogallery::instance::EventKind::Provisioned;
        assert!(matches!(
            store.save(&inst, 1, &[stale]).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.events("inst-1").await.unwrap(), [ev]);
        assert_eq!(store.get("inst-1").await.unwrap().unwrap().version, 1);
    }

    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    /// A replay is refused across a clean restart (the last group is written when the
    /// store closes), and a crash forgets at most the group not yet appended: what is on disk is
    /// exactly what was accepted up to the last group appended to the journal.
    #[tokio::test]
    async fn a_replay_is_refused_across_a_restart_and_a_crash_forgets_only_the_last_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let now = chrono::Utc::now();
        let exp = now + chrono::Duration::seconds(120);
        {
            let store = EmbeddedStore::open_with(&path, HOUR).unwrap();
            assert!(store.remember("committed", now, exp).await.unwrap());
            store.flush_nonces().unwrap();
            assert!(store.remember("last-group", now, exp).await.unwrap());
            assert_eq!(store.unflushed_nonces(), 1);
            // A crash now would lose only "last-group": the disk holds "committed".
            let on_disk = crate::nonces::on_disk(&crate::nonces::journal_dir(&path));
            assert!(on_disk.iter().any(|(n, _)| n == "committed"));
            assert!(!on_disk.iter().any(|(n, _)| n == "last-group"));
        }
        // A clean close wrote the last group.
        let store = EmbeddedStore::open(&path).unwrap();
        assert!(!store.remember("committed", now, exp).await.unwrap());
        assert!(!store.remember("last-group", now, exp).await.unwrap());
        assert!(store.remember("new", now, exp).await.unwrap());
        // The flusher appends a group by itself (no close, no explicit flush). It gathers for
        // 2 ms (NONCE_GROUP_EVERY), then appends with an fdatasync; the bound is far beyond that so
        // that only a flusher that never commits reaches it, not a slow disk on a loaded machine.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.unflushed_nonces() != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the flusher never appended the group by itself"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
