//! License codes in memory ([`MemoryLicenses`]), a scripted License open API
//! ([`ScriptedLicenseMarketplace`]), and the contract every [`LicenseStore`] adapter passes
//! ([`license_store_contract`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::license::{
    DailyUsage, License, LicenseApiError, LicenseChange, LicenseCode, LicenseInfo,
    LicenseMarketplace, LicenseStore, Origin, RemoteStatus, SoftwareUsage, Upload, UsageReport,
    mutate_license,
};
use crate::storage::StoreError;

/// License codes and usage in memory.
#[derive(Default)]
pub struct MemoryLicenses {
    records: Mutex<HashMap<LicenseCode, License>>,
    /// (day, code) → (clients, reported).
    usage: Mutex<BTreeMap<(NaiveDate, LicenseCode), DayOfUse>>,
}

/// A code's clients on a day, and whether the day was reported.
type DayOfUse = (BTreeSet<String>, bool);

#[async_trait]
impl LicenseStore for MemoryLicenses {
    async fn get(&self, code: &LicenseCode) -> Result<Option<License>, StoreError> {
        Ok(self.records.lock().unwrap().get(code).cloned())
    }

    async fn put(&self, license: &License) -> Result<(), StoreError> {
        let mut records = self.records.lock().unwrap();
        let stored = records.get(&license.code).map_or(0, |l| l.version);
        if stored + 1 != license.version {
            return Err(StoreError::Conflict);
        }
        records.insert(license.code.clone(), license.clone());
        Ok(())
    }

    async fn record_use(
        &self,
        code: &LicenseCode,
        day: NaiveDate,
        client_id: &str,
    ) -> Result<(), StoreError> {
        let mut usage = self.usage.lock().unwrap();
        let entry = usage.entry((day, code.clone())).or_default();
        if !entry.1 {
            entry.0.insert(client_id.to_owned());
        }
        Ok(())
    }

    async fn usage_due(
        &self,
        before: NaiveDate,
        limit: usize,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        Ok(self
            .usage
            .lock()
            .unwrap()
            .iter()
            .filter(|((day, _), (_, reported))| *day < before && !reported)
            .take(limit)
            .map(|((day, code), (clients, _))| DailyUsage {
                code: code.clone(),
                day: *day,
                clients: clients.clone(),
            })
            .collect())
    }

    async fn usage_reported(&self, code: &LicenseCode, day: NaiveDate) -> Result<(), StoreError> {
        if let Some(e) = self.usage.lock().unwrap().get_mut(&(day, code.clone())) {
            e.1 = true;
        }
        Ok(())
    }
}

#[async_trait]
impl crate::operator::OrderLicenses for MemoryLicenses {
    async fn licenses_of_order(&self, order_id: &str) -> Result<Vec<License>, StoreError> {
        let mut found: Vec<License> = self
            .records
            .lock()
            .unwrap()
            .values()
            .filter(|l| l.order_id.as_deref() == Some(order_id))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(found)
    }
}

/// What the scripted marketplace was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenseCall {
    Activate(LicenseCode),
    ActivateBatch(Vec<LicenseCode>),
    Query(LicenseCode),
    ReportUsage(Vec<SoftwareUsage>),
    Upload(String, Upload),
}

/// A License open API with known codes and queued failures.
#[derive(Default)]
pub struct ScriptedLicenseMarketplace {
    pub known: Mutex<HashMap<LicenseCode, LicenseInfo>>,
    /// Failures handed out, one per call, before the scripted answers.
    pub failures: Mutex<VecDeque<LicenseApiError>>,
    pub calls: Mutex<Vec<LicenseCall>>,
}

impl ScriptedLicenseMarketplace {
    /// Knows `code`, alive until `expire_time`, of product `00301-1` and order `CS-TEST`.
    pub fn knowing(self, code: &str, expire_time: DateTime<Utc>) -> Self {
        self.known.lock().unwrap().insert(
            LicenseCode::parse(code).expect("code"),
            LicenseInfo {
                status: RemoteStatus::Alive,
                expire_time: Some(expire_time),
                product_id: Some("00301-1".into()),
                order_id: Some("CS-TEST".into()),
                amount: Some(1),
                activate_time: None,
            },
        );
        self
    }

    pub fn fail_next(&self, e: LicenseApiError) {
        self.failures.lock().unwrap().push_back(e);
    }

    pub fn calls(&self) -> Vec<LicenseCall> {
        self.calls.lock().unwrap().clone()
    }

    fn answer(
        &self,
        call: LicenseCall,
        code: &LicenseCode,
    ) -> Result<LicenseInfo, LicenseApiError> {
        self.calls.lock().unwrap().push(call);
        if let Some(e) = self.failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        self.known
            .lock()
            .unwrap()
            .get(code)
            .cloned()
            .ok_or(LicenseApiError::NotFound)
    }
}

#[async_trait]
impl LicenseMarketplace for ScriptedLicenseMarketplace {
    async fn activate(
        &self,
        code: &LicenseCode,
        _real_effect_time: Option<DateTime<Utc>>,
    ) -> Result<LicenseInfo, LicenseApiError> {
        // A network call yields: concurrent first activations overlap here, as they would.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        self.answer(LicenseCall::Activate(code.clone()), code)
    }

    async fn activate_batch(
        &self,
        codes: &[LicenseCode],
        _real_effect_time: Option<DateTime<Utc>>,
    ) -> Result<Vec<(LicenseCode, Result<LicenseInfo, LicenseApiError>)>, LicenseApiError> {
        self.calls
            .lock()
            .unwrap()
            .push(LicenseCall::ActivateBatch(codes.to_vec()));
        let known = self.known.lock().unwrap();
        Ok(codes
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    known.get(c).cloned().ok_or(LicenseApiError::NotFound),
                )
            })
            .collect())
    }

    async fn query(&self, code: &LicenseCode) -> Result<LicenseInfo, LicenseApiError> {
        self.answer(LicenseCall::Query(code.clone()), code)
    }

    async fn report_usage(&self, usage: &[SoftwareUsage]) -> Result<UsageReport, LicenseApiError> {
        self.calls
            .lock()
            .unwrap()
            .push(LicenseCall::ReportUsage(usage.to_vec()));
        if let Some(e) = self.failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        Ok(UsageReport::default())
    }

    async fn upload(&self, event_id: &str, upload: &Upload) -> Result<(), LicenseApiError> {
        self.calls
            .lock()
            .unwrap()
            .push(LicenseCall::Upload(event_id.to_owned(), upload.clone()));
        Ok(())
    }
}

/// The behaviour every [`LicenseStore`] adapter must have. `fresh` builds an empty store.
pub async fn license_store_contract<S, F, Fut>(fresh: F)
where
    S: LicenseStore + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let t = |h: u32| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
    let code = LicenseCode::parse("PL-CONTRACT-1").unwrap();

    // Absent until written; the first write is version 1; a stale version is a conflict.
    let store = fresh().await;
    assert!(store.get(&code).await.unwrap().is_none());
    let mut l = License::new(code.clone(), Origin::Marketplace, false, t(0));
    l.version = 2;
    assert!(matches!(store.put(&l).await, Err(StoreError::Conflict)));
    l.version = 1;
    store.put(&l).await.unwrap();
    assert!(
        matches!(store.put(&l).await, Err(StoreError::Conflict)),
        "same version twice"
    );
    assert_eq!(store.get(&code).await.unwrap().as_ref(), Some(&l));

    // A whole record with events round-trips.
    let (stored, changed) = mutate_license(&store, &code, None, LicenseChange::Freeze, t(1))
        .await
        .unwrap();
    assert!(changed);
    assert_eq!(stored.version, 2);
    assert_eq!(store.get(&code).await.unwrap(), Some(stored.clone()));

    // Concurrent changes all land, each once.
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let store = store.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            mutate_license(
                store.as_ref(),
                &code,
                None,
                LicenseChange::Renew {
                    order_id: format!("R{i}"),
                    order_line_id: None,
                    scene: crate::license::RenewScene::Renewal,
                    product_id: None,
                    expire_time: t(10 + i),
                },
                t(2),
            )
            .await
            .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let l = store.get(&code).await.unwrap().unwrap();
    assert_eq!(l.applied.len(), 8);
    assert_eq!(l.pending.len(), 9, "the freeze and eight renewals");
    assert_eq!(l.version, 10);

    // Usage: idempotent per (code, day, client); due only before the given day; reported once.
    let d1 = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let d2 = d1.succ_opt().unwrap();
    let other = LicenseCode::parse("PL-CONTRACT-2").unwrap();
    for (c, d, client) in [
        (&code, d1, "a"),
        (&code, d1, "b"),
        (&code, d1, "a"),
        (&other, d1, "a"),
        (&code, d2, "c"),
    ] {
        store.record_use(c, d, client).await.unwrap();
    }
    let due = store.usage_due(d2, 100).await.unwrap();
    assert_eq!(due.len(), 2, "{due:?}");
    let mine = due.iter().find(|u| u.code == code).unwrap();
    assert_eq!(mine.clients, BTreeSet::from(["a".into(), "b".into()]));
    assert_eq!(store.usage_due(d2, 1).await.unwrap().len(), 1, "limit");
    store.usage_reported(&code, d1).await.unwrap();
    let due = store.usage_due(d2.succ_opt().unwrap(), 100).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|u| (u.code.as_str(), u.day))
            .collect::<Vec<_>>(),
        [("PL-CONTRACT-2", d1), ("PL-CONTRACT-1", d2)],
        "oldest day first; a reported day is never due again"
    );
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_memory_store_passes_the_contract() {
        super::license_store_contract(|| async { super::MemoryLicenses::default() }).await;
    }
}
