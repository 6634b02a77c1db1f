//! In-process implementations of every port, for tests, benchmarks and examples. Not durable.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};

use crate::{
    clock::Clock,
    instance::{AccessInfo, CreateOutcome, Instance, InstanceEvent, InstanceStore},
    jobs::{Job, JobQueue, QueueError},
    order::{OrderId, OrderLineId},
    provisioning::{LifecycleNotice, ProvisionError, ProvisionRequest, Provisioner},
    security::replay::NonceStore,
    storage::StoreError,
};

#[derive(Debug, Default)]
struct Tables {
    instances: HashMap<String, Instance>,
    order_lines: HashMap<(OrderId, OrderLineId), String>,
    events: HashMap<String, Vec<InstanceEvent>>,
    nonces: HashMap<String, DateTime<Utc>>,
    /// (expiry, nonce), so expired nonces are dropped from the front in O(log n) each.
    nonce_expiry: std::collections::BTreeSet<(DateTime<Utc>, String)>,
    notices: HashMap<(OrderId, OrderLineId), crate::order::notice::OrderNotice>,
    usage_windows:
        std::collections::BTreeMap<crate::metering::WindowKey, crate::metering::UsageWindow>,
    usage_keys: HashMap<String, crate::metering::ingest::KeyRecord>,
    /// (keep until, key): the keys past their retention are dropped from the front.
    usage_key_expiry: std::collections::BTreeSet<(DateTime<Utc>, String)>,
    usage_packages: HashMap<String, crate::metering::PackageUsage>,
    usage_totals: HashMap<String, crate::metering::UsageTotal>,
    push_claim: Option<crate::metering::store::PushClaim>,
}

/// Instances, order lines, events and nonces in a mutex-guarded map.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    /// Reads of the due usage windows so far (what a push pass's reads are counted by).
    due_reads: std::sync::atomic::AtomicUsize,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Test helper: how many times the due usage windows were read (`UsageStore::due`).
    pub fn due_reads(&self) -> usize {
        self.due_reads.load(Ordering::SeqCst)
    }

    /// Test helper: the stored instance, or `None`.
    pub async fn get_instance_opt(&self, instance_id: &str) -> Option<Instance> {
        self.tables
            .lock()
            .ok()
            .and_then(|t| t.instances.get(instance_id).cloned())
    }

    /// Test helper: the stored instance; panics when it does not exist.
    pub async fn get_instance(&self, instance_id: &str) -> Instance {
        match self.get_instance_opt(instance_id).await {
            Some(i) => i,
            None => panic!("no instance {instance_id} in the memory store"),
        }
    }

    /// Test helper: everything stored, as text. Equal snapshots before and after a request: it
    /// wrote nothing (the fuzz targets hold unauthenticated requests to that).
    pub fn snapshot(&self) -> String {
        self.tables
            .lock()
            .map(|t| format!("{t:?}"))
            .unwrap_or_default()
    }

    /// Test helper: as [`Self::snapshot`], without the replay guard's nonces (a request that
    /// authenticated and was then refused has used its nonce, and must have written nothing else).
    pub fn snapshot_without_nonces(&self) -> String {
        let Ok(mut t) = self.tables.lock() else {
            return String::new();
        };
        // Moved out and back unchanged: a map's iteration order is kept by a move.
        let nonces = std::mem::take(&mut t.nonces);
        let expiry = std::mem::take(&mut t.nonce_expiry);
        let text = format!("{:?}", *t);
        t.nonces = nonces;
        t.nonce_expiry = expiry;
        text
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Tables>, StoreError> {
        self.tables
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }
}

#[async_trait]
impl InstanceStore for MemoryStore {
    async fn create_for_order_line(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
    ) -> Result<CreateOutcome, StoreError> {
        let mut t = self.lock()?;
        let key = (instance.order_id.clone(), instance.order_line_id.clone());
        if let Some(id) = t.order_lines.get(&key) {
            let existing = t.instances.get(id).cloned().ok_or_else(|| {
                StoreError::Corrupt(
                    format!(
                        "order line {:?} points at missing instance {id}",
                        (key.0.as_str(), key.1.as_str())
                    )
                    .into(),
                )
            })?;
            return Ok(CreateOutcome::Existing(Box::new(existing)));
        }
        if t.instances.contains_key(instance.instance_id.as_str()) {
            // A businessId reused across orders: never overwrite another order's instance.
            return Ok(CreateOutcome::InstanceIdTaken);
        }
        let mut stored = instance.clone();
        stored.version = 1;
        t.order_lines
            .insert(key, instance.instance_id.clone().into());
        t.instances
            .insert(instance.instance_id.clone().into(), stored);
        t.events
            .insert(instance.instance_id.clone().into(), events.to_vec());
        Ok(CreateOutcome::Created)
    }

    async fn get(&self, instance_id: &str) -> Result<Option<Instance>, StoreError> {
        Ok(self.lock()?.instances.get(instance_id).cloned())
    }

    async fn get_many(&self, instance_ids: &[&str]) -> Result<Vec<Arc<Instance>>, StoreError> {
        let t = self.lock()?;
        Ok(instance_ids
            .iter()
            .filter_map(|id| t.instances.get(*id).cloned().map(Arc::new))
            .collect())
    }

    async fn save(
        &self,
        instance: &Instance,
        expected_version: u64,
        events: &[InstanceEvent],
    ) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        let current = t
            .instances
            .get(instance.instance_id.as_str())
            .map(|i| i.version);
        if current != Some(expected_version) {
            return Err(StoreError::Conflict);
        }
        let mut stored = instance.clone();
        stored.version = expected_version + 1;
        t.instances
            .insert(instance.instance_id.clone().into(), stored);
        t.events
            .entry(instance.instance_id.clone().into())
            .or_default()
            .extend_from_slice(events);
        Ok(())
    }

    async fn events(&self, instance_id: &str) -> Result<Vec<InstanceEvent>, StoreError> {
        Ok(self
            .lock()?
            .events
            .get(instance_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn unsettled(&self) -> Result<Vec<Instance>, StoreError> {
        Ok(self
            .lock()?
            .instances
            .values()
            .filter(|i| i.is_unsettled())
            .cloned()
            .collect())
    }
}

#[async_trait]
impl crate::order::notice::OrderNoticeStore for MemoryStore {
    async fn record_notice(
        &self,
        notice: &crate::order::notice::OrderNotice,
    ) -> Result<bool, StoreError> {
        let mut t = self.lock()?;
        let key = (notice.order_id.clone(), notice.order_line_id.clone());
        if t.notices.contains_key(&key) {
            return Ok(false);
        }
        t.notices.insert(key, notice.clone());
        Ok(true)
    }

    async fn notice(
        &self,
        order_id: &OrderId,
        order_line_id: &OrderLineId,
    ) -> Result<Option<crate::order::notice::OrderNotice>, StoreError> {
        Ok(self
            .lock()?
            .notices
            .get(&(order_id.clone(), order_line_id.clone()))
            .cloned())
    }

    async fn update_notice(
        &self,
        notice: &crate::order::notice::OrderNotice,
    ) -> Result<(), StoreError> {
        self.lock()?.notices.insert(
            (notice.order_id.clone(), notice.order_line_id.clone()),
            notice.clone(),
        );
        Ok(())
    }
}

#[async_trait]
impl crate::metering::UsageStore for MemoryStore {
    async fn ingest(
        &self,
        reports: &[crate::metering::UsageReport],
        quotas: &crate::metering::PackageQuotas,
        now: DateTime<Utc>,
    ) -> Result<crate::metering::IngestOutcome, crate::metering::IngestError> {
        use crate::metering::ingest;
        let mut t = self.lock()?;
        let (windows, keys, packages) = ingest::touched(reports, quotas);
        let mut loaded = ingest::Loaded {
            windows: windows
                .into_iter()
                .filter_map(|k| t.usage_windows.get(&k).cloned().map(|w| (k, w)))
                .collect(),
            keys: keys
                .into_iter()
                .filter_map(|k| t.usage_keys.get(&k).cloned().map(|r| (k, r)))
                .collect(),
            packages: packages
                .into_iter()
                .filter_map(|p| t.usage_packages.get(&p).cloned().map(|u| (p, u)))
                .collect(),
            totals: ingest::instances_of(reports)
                .into_iter()
                .filter_map(|i| t.usage_totals.get(&i).cloned().map(|u| (i, u)))
                .collect(),
        };
        let applied = ingest::apply(reports, quotas, &mut loaded, now)?;
        for key in applied.changed {
            if let Some(mut w) = loaded.windows.remove(&key) {
                w.version += 1;
                t.usage_windows.insert(key, w);
            }
        }
        for id in applied.changed_packages {
            if let Some(mut p) = loaded.packages.remove(&id) {
                p.version += 1;
                t.usage_packages.insert(id, p);
            }
        }
        for id in applied.changed_totals {
            if let Some(mut total) = loaded.totals.remove(&id) {
                total.version += 1;
                t.usage_totals.insert(id, total);
            }
        }
        // As many expired keys go as the batch adds, and a few more: purging keeps pace.
        let purge = applied.new_keys.len() + crate::metering::ingest::KEY_PURGE_BATCH;
        for (key, record) in applied.new_keys {
            t.usage_key_expiry
                .insert((record.keep_until(), key.clone()));
            t.usage_keys.insert(key, record);
        }
        for _ in 0..purge {
            match t.usage_key_expiry.first() {
                Some((until, _)) if *until <= now => {}
                _ => break,
            }
            if let Some((_, key)) = t.usage_key_expiry.pop_first() {
                t.usage_keys.remove(&key);
            }
        }
        Ok(applied.outcome)
    }

    async fn due(
        &self,
        ended_by: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<crate::metering::UsageWindow>, StoreError> {
        self.due_reads.fetch_add(1, Ordering::SeqCst);
        let t = self.lock()?;
        let mut due: Vec<_> = t
            .usage_windows
            .values()
            .filter(|w| w.is_unsettled() && w.end() <= ended_by)
            .cloned()
            .collect();
        due.sort_by(|a, b| (a.start, &a.instance_id).cmp(&(b.start, &b.instance_id)));
        due.truncate(limit);
        Ok(due)
    }

    async fn save_window(&self, window: &crate::metering::UsageWindow) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        let key = window.key();
        match t.usage_windows.get(&key) {
            Some(stored) if stored.version == window.version && stored.same_usage(window) => {
                let mut w = window.clone();
                w.version += 1;
                t.usage_windows.insert(key, w);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn window(
        &self,
        key: &crate::metering::WindowKey,
    ) -> Result<Option<crate::metering::UsageWindow>, StoreError> {
        Ok(self.lock()?.usage_windows.get(key).cloned())
    }

    async fn windows_of(
        &self,
        instance_id: &str,
    ) -> Result<Vec<crate::metering::UsageWindow>, StoreError> {
        let mut out: Vec<_> = self
            .lock()?
            .usage_windows
            .values()
            .filter(|w| w.instance_id == instance_id)
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.start, &a.package).cmp(&(b.start, &b.package)));
        Ok(out)
    }

    async fn package(
        &self,
        package_instance_id: &str,
    ) -> Result<Option<crate::metering::PackageUsage>, StoreError> {
        Ok(self
            .lock()?
            .usage_packages
            .get(package_instance_id)
            .cloned())
    }

    async fn usage_totals(
        &self,
        instance_ids: &[&str],
    ) -> Result<Vec<crate::metering::UsageTotal>, StoreError> {
        let t = self.lock()?;
        Ok(instance_ids
            .iter()
            .filter_map(|id| t.usage_totals.get(*id).cloned())
            .collect())
    }

    async fn claim_push(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut t = self.lock()?;
        Ok(crate::metering::store::PushClaim::claim(
            &mut t.push_claim,
            holder,
            now,
            until,
        ))
    }

    async fn release_push(&self, holder: &str) -> Result<(), StoreError> {
        crate::metering::store::PushClaim::release(&mut self.lock()?.push_claim, holder);
        Ok(())
    }
}

#[async_trait]
impl NonceStore for MemoryStore {
    async fn remember(
        &self,
        nonce: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut t = self.lock()?;
        while let Some((exp, old)) = t.nonce_expiry.first().cloned() {
            if exp > now {
                break;
            }
            t.nonce_expiry.pop_first();
            if t.nonces.get(&old) == Some(&exp) {
                t.nonces.remove(&old);
            }
        }
        if t.nonces.get(nonce).is_some_and(|exp| *exp > now) {
            return Ok(false);
        }
        t.nonces.insert(nonce.to_owned(), expires_at);
        t.nonce_expiry.insert((expires_at, nonce.to_owned()));
        Ok(true)
    }
}

/// A FIFO of jobs; tests drain it by hand. `fail_next` makes the next enqueue fail (outage).
#[derive(Default)]
pub struct MemoryQueue {
    jobs: Mutex<VecDeque<Job>>,
    fail_next: std::sync::atomic::AtomicBool,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn take_all(&self) -> Vec<Job> {
        self.jobs
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.jobs.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// The queued jobs, left in the queue.
    pub fn jobs(&self) -> Vec<Job> {
        self.jobs
            .lock()
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn fail_next_enqueue(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(QueueError::Unavailable("simulated outage".into()));
        }
        self.jobs
            .lock()
            .map_err(|_| QueueError::Unavailable("poisoned".into()))?
            .push_back(job.clone());
        Ok(())
    }
}

/// The access information seeded instances get.
pub fn sample_access(instance_id: &str) -> AccessInfo {
    AccessInfo {
        front_end_url: format!("https://app.example.com/{instance_id}"),
        admin_url: None,
        user_name: Some("admin".into()),
        password: Some("S3cret!pass".into()),
        memo: None,
    }
}

/// A clock tests move by hand. Starts at the given instant.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    pub fn at(t: DateTime<Utc>) -> Self {
        Self {
            millis: AtomicI64::new(t.timestamp_millis()),
        }
    }

    pub fn advance(&self, d: chrono::Duration) {
        self.millis
            .fetch_add(d.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.millis.load(Ordering::SeqCst))
            .single()
            .unwrap_or_default()
    }
}

/// What a [`ScriptedProvisioner`] answers next.
#[derive(Debug, Clone)]
pub enum Scripted {
    Succeed,
    Transient,
    /// HTTP 401/403/404 without a result code.
    Misconfigured,
    Reject(crate::ResultCode),
}

/// A provisioner that answers from a script (then succeeds) and records every call.
#[derive(Default)]
pub struct ScriptedProvisioner {
    script: Mutex<VecDeque<Scripted>>,
    pub provisioned: Mutex<Vec<String>>,
    pub notices: Mutex<Vec<LifecycleNotice>>,
    pub paid: Mutex<Vec<crate::provisioning::OrderPaid>>,
}

impl ScriptedProvisioner {
    pub fn new(script: impl IntoIterator<Item = Scripted>) -> Self {
        Self {
            script: Mutex::new(script.into_iter().collect()),
            ..Default::default()
        }
    }

    pub fn provision_calls(&self) -> usize {
        self.provisioned.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// The next scripted answer: success, or the scripted failure.
    fn answer(&self) -> Result<(), ProvisionError> {
        match self.next() {
            Scripted::Succeed => Ok(()),
            Scripted::Transient => Err(ProvisionError::Transient("scripted outage".into())),
            Scripted::Misconfigured => Err(ProvisionError::Misconfigured("scripted 403".into())),
            Scripted::Reject(code) => Err(ProvisionError::Rejected {
                code,
                message: "scripted rejection".into(),
            }),
        }
    }

    fn next(&self) -> Scripted {
        self.script
            .lock()
            .ok()
            .and_then(|mut s| s.pop_front())
            .unwrap_or(Scripted::Succeed)
    }
}

#[async_trait]
impl Provisioner for ScriptedProvisioner {
    async fn provision(&self, request: &ProvisionRequest) -> Result<AccessInfo, ProvisionError> {
        if let Ok(mut v) = self.provisioned.lock() {
            v.push(request.instance_id.clone());
        }
        self.answer()?;
        Ok(AccessInfo {
            front_end_url: format!("https://app.example.com/{}", request.instance_id),
            admin_url: None,
            user_name: Some("admin".into()),
            password: Some("scripted-Password-1".into()),
            memo: None,
        })
    }

    async fn notify(&self, notice: &LifecycleNotice) -> Result<(), ProvisionError> {
        self.answer()?;
        if let Ok(mut v) = self.notices.lock() {
            v.push(notice.clone());
        }
        Ok(())
    }

    async fn order_paid(
        &self,
        paid: &crate::provisioning::OrderPaid,
    ) -> Result<(), ProvisionError> {
        self.answer()?;
        if let Ok(mut v) = self.paid.lock() {
            v.push(paid.clone());
        }
        Ok(())
    }
}

/// Keeps every metric recorded, for assertions.
#[derive(Default)]
pub struct RecordedMetrics(Mutex<Vec<crate::metrics::Metric>>);

impl RecordedMetrics {
    pub fn all(&self) -> Vec<crate::metrics::Metric> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// How many times `metric` was recorded.
    pub fn count(&self, metric: &crate::metrics::Metric) -> usize {
        self.all().iter().filter(|m| *m == metric).count()
    }
}

impl crate::metrics::Metrics for RecordedMetrics {
    fn record(&self, metric: crate::metrics::Metric) {
        if let Ok(mut v) = self.0.lock() {
            v.push(metric);
        }
    }
}

#[cfg(test)]
mod tests;

#[async_trait]
impl crate::operator::InstanceListing for MemoryStore {
    async fn list_instances(
        &self,
        filter: &crate::operator::InstanceFilter,
    ) -> Result<Vec<Instance>, StoreError> {
        let t = self.lock()?;
        Ok(filter.select(t.instances.values().cloned()))
    }
}
