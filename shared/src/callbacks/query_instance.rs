//! `queryInstance` (docs/protocol/callbacks.md §6.2): up to 100 comma-separated instance IDs, one
//! batched read.
//!
//! One ID: `000004` while provisioning (docs/protocol/decisions.md §5), the failure's own code
//! after a permanent failure, `000003` when unknown or released, else `000000` with `info[]`.
//! Several IDs: `info[]` holds the ready ones; if none is ready the answer is that of the first
//! requested ID, so a poll for a single order behaves the same whether or not KooGallery batches
//! it.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::{Callback, CallbackError, Resources, debug};
use crate::{
    ResultCode,
    config::ConfigError,
    instance::{AccessInfo, Credential, DomainError, Instance, InstanceState, InstanceStore},
    protocol::{
        Reply,
        v2_basic::{AppInfo, InstanceInfo, QueryInstanceRequest, query_instance::UsageInfo},
    },
    security::KeyUsed,
    security::{
        KeyRing,
        at_rest::{CredentialSealer, SealError},
        credential_cipher::{EncryptType, encrypt_credential},
    },
};

pub struct QueryInstance {
    store: Arc<dyn InstanceStore>,
    /// Set when credentials are sent encrypted (docs/protocol/decisions.md §4): the kind, and the
    /// basic key ring (a request verified with the previous key is answered with it,
    /// docs/protocol/decisions.md §13).
    cipher: Option<(EncryptType, KeyRing)>,
    /// V1 calls always get credentials encrypted, with the V1 key ring
    /// (docs/protocol/decisions.md §4, §20).
    v1_cipher: Option<(EncryptType, KeyRing)>,
    /// `frontEndUrl` template of the plausible appInfo debug calls get
    /// (docs/protocol/decisions.md §7).
    debug_front_end_url: String,
    /// Opens passwords sealed at rest.
    sealer: Option<Arc<dyn CredentialSealer>>,
    /// Usage windows, for the `usageInfo` of on-demand and package instances.
    usage: Option<Arc<dyn crate::metering::UsageStore>>,
    usage_dashboard_url: Option<String>,
}

#[async_trait]
impl Callback for QueryInstance {
    type Request = QueryInstanceRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        let cipher = match r.settings.credential_encryption {
            None => None,
            Some(kind) => Some((kind, r.keys()?.basic.clone())),
        };
        Ok(Self {
            store: r.store.clone(),
            cipher,
            v1_cipher: v1_cipher(r),
            debug_front_end_url: r.settings.debug_front_end_url.clone(),
            sealer: r.sealer.clone(),
            usage: r.usage.clone(),
            usage_dashboard_url: r.settings.usage_dashboard_url.clone(),
        })
    }

    async fn handle(
        &self,
        req: QueryInstanceRequest,
        key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        let ids = req.instance_ids();
        let cipher = self.cipher_for(&req);
        let found = self.store.get_many(&ids).await.map_err(DomainError::from)?;
        // Answer in request order, whatever order the store returned.
        let in_order: Vec<Option<&Instance>> = ids
            .iter()
            .map(|id| found.iter().find(|i| i.instance_id == *id).map(Arc::as_ref))
            .collect();

        let ready: Vec<&Instance> = in_order
            .iter()
            .flatten()
            .copied()
            .filter(|i| i.is_ready())
            .collect();
        let mut usage = self.usage_of(&ready).await?;
        let mut info = Vec::with_capacity(ready.len());
        for inst in ready {
            let app_info = match &inst.access {
                Some(a) => {
                    Some(present(&inst.instance_id, a, key, cipher, self.sealer.as_deref()).await?)
                }
                None => None,
            };
            info.push(InstanceInfo {
                instance_id: inst.instance_id.clone().into(),
                app_info,
                usage_info: usage.remove(inst.instance_id.as_str()),
            });
        }
        if info.is_empty() {
            return Ok(not_ready_reply(ids[0], in_order[0]));
        }
        let mut reply = Reply::success();
        if let Some((kind, _)) = cipher {
            reply = reply.with("encryptType", kind.wire());
        }
        Ok(reply.with("info", info))
    }

    /// docs/protocol/decisions.md §7: `000000` with appInfo for every requested ID: the debug
    /// record's when there is one (whatever its state), plausible values otherwise. Real records
    /// are never read.
    async fn handle_debug(&self, req: QueryInstanceRequest, key: KeyUsed) -> Reply {
        let ids = req.instance_ids();
        let cipher = self.cipher_for(&req);
        let record_ids: Vec<String> = ids
            .iter()
            .map(|id| debug::Keyspace::Debug.record_id(id))
            .collect();
        let refs: Vec<&str> = record_ids.iter().map(String::as_str).collect();
        let found = self.store.get_many(&refs).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "debug records unreadable; answering plausible appInfo");
            Vec::new()
        });
        let mut info = Vec::with_capacity(ids.len());
        for (id, record_id) in ids.iter().zip(&record_ids) {
            let access = found
                .iter()
                .find(|i| &i.instance_id == record_id)
                .and_then(|i| i.access.clone())
                .unwrap_or_else(|| debug::access(&self.debug_front_end_url, id));
            info.push(InstanceInfo {
                instance_id: (*id).to_owned(),
                app_info: present(record_id, &access, key, cipher, self.sealer.as_deref())
                    .await
                    .ok(),
                usage_info: None,
            });
        }
        let mut reply = Reply::success();
        if let Some((kind, _)) = cipher {
            reply = reply.with("encryptType", kind.wire());
        }
        reply.with("info", info)
    }
}

impl QueryInstance {
    /// docs/protocol/callbacks.md §6.2, §8.2: an on-demand instance reports its cumulative usage:
    /// the sum of every report applied, at the time of the last one (the order's time before any).
    /// A package reports what was used of it, one entry per on-demand instance it served
    /// (`relatedInstanceId`). Other instances, or a process without a usage store, report none.
    ///
    /// Read from the running sums the store keeps (the instances' usage totals in one batched
    /// read, the packages' usage concurrently), never from the hourly windows: a poll costs the
    /// same whatever an instance's age.
    async fn usage_of(
        &self,
        instances: &[&Instance],
    ) -> Result<HashMap<String, Vec<UsageInfo>>, CallbackError> {
        use crate::metering::package::is_package;
        let Some(usage) = self.usage.as_ref() else {
            return Ok(HashMap::new());
        };
        let on_demand: Vec<&Instance> = instances
            .iter()
            .copied()
            .filter(|i| is_on_demand(i))
            .collect();
        if on_demand.is_empty() {
            return Ok(HashMap::new());
        }
        let mut ids: Vec<&str> = on_demand.iter().map(|i| i.instance_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let packages: Vec<&str> = on_demand
            .iter()
            .filter(|i| is_package(i))
            .map(|i| i.instance_id.as_str())
            .collect();
        let (totals, used) = tokio::join!(
            usage.usage_totals(&ids),
            futures_util::future::try_join_all(packages.iter().map(|id| usage.package(id)))
        );
        let totals: HashMap<String, crate::metering::UsageTotal> = totals
            .map_err(DomainError::from)?
            .into_iter()
            .map(|t| (t.instance_id.clone(), t))
            .collect();
        let used: HashMap<&str, crate::metering::PackageUsage> = packages
            .iter()
            .copied()
            .zip(used.map_err(DomainError::from)?)
            .filter_map(|(id, p)| Some((id, p.filter(|p| !p.used.is_empty())?)))
            .collect();
        let entry = |inst: &Instance, related: Option<&str>, value: Decimal, at| {
            self.usage_info(inst, related, value, at)
        };
        let mut out = HashMap::with_capacity(on_demand.len());
        for inst in on_demand {
            let id = inst.instance_id.as_str();
            let entries = match (used.get(id), totals.get(id)) {
                (Some(p), _) => p
                    .used
                    .iter()
                    .map(|(related, v)| entry(inst, Some(related), *v, p.last_reported_at))
                    .collect(),
                (None, Some(t)) => vec![entry(inst, None, t.total, t.last_reported_at)],
                (None, None) => vec![entry(inst, None, Decimal::ZERO, inst.created_at)],
            };
            out.insert(id.to_owned(), entries);
        }
        Ok(out)
    }

    /// One `usageInfo` entry: `value` used by `inst` (for `related`, a package's consumer) as of
    /// `at`, with the vendor's dashboard link when one is configured.
    fn usage_info(
        &self,
        inst: &Instance,
        related: Option<&str>,
        value: Decimal,
        at: chrono::DateTime<chrono::Utc>,
    ) -> UsageInfo {
        UsageInfo {
            related_instance_id: related.map(str::to_owned),
            usage_value: rust_decimal::prelude::ToPrimitive::to_f64(&value).unwrap_or_default(),
            statistical_time: crate::protocol::time::format_17(at),
            dashboard_url: self
                .usage_dashboard_url
                .as_ref()
                .map(|u| u.replace("{instanceId}", &inst.instance_id)),
        }
    }

    /// The credential cipher of this call: V1's (always encrypted) or V2's setting.
    fn cipher_for(&self, req: &QueryInstanceRequest) -> Option<&(EncryptType, KeyRing)> {
        if req.v1.is_some() {
            self.v1_cipher.as_ref()
        } else {
            self.cipher.as_ref()
        }
    }
}

/// V1's credential cipher (docs/protocol/decisions.md §4, §20): the configured size (AES-256 when
/// unset) with the V1 key ring; `None` in a process without the callback keys.
pub(crate) fn v1_cipher(r: &Resources) -> Option<(EncryptType, KeyRing)> {
    let keys = r.keys.as_ref()?;
    Some((
        r.settings.credential_encryption.unwrap_or_default(),
        keys.v1_ring().clone(),
    ))
}

/// Credentials as sent: plain text by default for V2, AES-CBC with `cipher` when set
/// (docs/protocol/decisions.md §4). An encrypted value over 128 characters is refused rather than
/// sent truncated. A password sealed at rest is opened first (for `instance_id`, the record it was
/// read from); the plain text exists only for this answer.
pub(crate) async fn present(
    instance_id: &str,
    access: &AccessInfo,
    key: KeyUsed,
    cipher: Option<&(EncryptType, KeyRing)>,
    sealer: Option<&dyn CredentialSealer>,
) -> Result<AppInfo, CallbackError> {
    let password = match &access.password {
        None => None,
        Some(Credential::Plain(p)) => Some(p.clone()),
        Some(Credential::Sealed(sealed)) => {
            let sealer = sealer.ok_or_else(|| {
                SealError::Key(
                    "a stored password is sealed but no credential key is configured".into(),
                )
            })?;
            Some(sealer.open(instance_id, sealed).await?)
        }
    };
    let secret = |v: &Option<String>| -> Result<Option<String>, CallbackError> {
        match (cipher, v.as_deref()) {
            (Some((kind, ring)), Some(plain)) => Ok(Some(encrypt_credential(
                ring.key(key).expose(),
                plain,
                *kind,
            )?)),
            (_, plain) => Ok(plain.map(str::to_owned)),
        }
    };
    Ok(AppInfo {
        front_end_url: access.front_end_url.clone(),
        admin_url: access.admin_url.clone(),
        user_name: secret(&access.user_name)?,
        password: secret(&password)?,
        memo: access.memo.clone(),
    })
}

/// KooGallery's limits on `appInfo` (docs/protocol/callbacks.md §6.2), in characters as sent.
pub const MAX_URL_LEN: usize = 512;
pub const MAX_MEMO_LEN: usize = 1024;
pub const MAX_CREDENTIAL_LEN: usize = 128;

/// Whether `access` can be presented to KooGallery as queryInstance's `appInfo`: URLs at most 512
/// characters, memo 1024, userName and password 128 as sent (encrypted, when `encryption` is set:
/// then at most 79 bytes of plain text). The worker checks this when the vendor answers, so an
/// over-long value refuses the order clearly at provisioning time instead of failing every poll.
pub fn check_presentable(
    access: &AccessInfo,
    encryption: Option<EncryptType>,
) -> Result<(), String> {
    let chars = |v: &str| v.chars().count();
    let check = |field: &str, value: Option<&str>, len: usize, max: usize| match value {
        Some(_) if len > max => Err(format!(
            "appInfo {field} is {len} characters; KooGallery accepts at most {max}"
        )),
        _ => Ok(()),
    };
    check(
        "frontEndUrl",
        Some(&access.front_end_url),
        chars(&access.front_end_url),
        MAX_URL_LEN,
    )?;
    if let Some(url) = &access.admin_url {
        check("adminUrl", Some(url), chars(url), MAX_URL_LEN)?;
    }
    if let Some(memo) = &access.memo {
        check("memo", Some(memo), chars(memo), MAX_MEMO_LEN)?;
    }
    // A sealed password was checked before it was sealed.
    let password = access.password.as_ref().and_then(Credential::as_plain);
    for (field, value) in [
        ("userName", access.user_name.as_deref()),
        ("password", password),
    ] {
        if let Some(v) = value {
            let (len, how) = match encryption {
                Some(_) => (
                    crate::security::credential_cipher::encrypted_len(v),
                    " once encrypted",
                ),
                None => (chars(v), ""),
            };
            if len > MAX_CREDENTIAL_LEN {
                return Err(format!(
                    "appInfo {field} is {len} characters{how}; KooGallery accepts at most {MAX_CREDENTIAL_LEN}"
                ));
            }
        }
    }
    Ok(())
}

fn not_ready_reply(id: &str, inst: Option<&Instance>) -> Reply {
    let Some(i) = inst else {
        return CallbackError::from(DomainError::NotFound(id.to_owned().into())).to_reply();
    };
    if let Err(released) = i.ensure_not_released() {
        return CallbackError::from(released).to_reply();
    }
    match (i.state, &i.failure) {
        (InstanceState::Provisioning, _) => {
            Reply::new(ResultCode::Processing, "instance is being provisioned")
        }
        (InstanceState::Failed, Some(f)) => Reply::new(f.code, f.message.clone()),
        _ => Reply::code(ResultCode::InternalError),
    }
}

/// Paid by use (with or without a package): the instances whose `usageInfo` queryInstance
/// reports.
fn is_on_demand(instance: &Instance) -> bool {
    use crate::order::ChargingMode;
    instance.order.as_ref().is_some_and(|o| {
        matches!(
            o.charging_mode,
            Some(ChargingMode::OnDemand | ChargingMode::OnDemandPkg)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        protocol::v2_basic::InstanceInfo,
        security::credential_cipher::{EncryptType, decrypt_field},
        testing::TestBed,
    };
    use serde_json::json;

    async fn seed(bed: &TestBed, id: &str, ready: bool) {
        bed.seed(id, ready).await;
    }

    /// The password is kept sealed at rest and opened only for the answer,
    /// which carries it as before; a sealed password with no key to open it is a retryable
    /// `000005`, never a leak of the sealed text.
    #[tokio::test]
    async fn a_password_sealed_at_rest_is_opened_for_the_answer() {
        use crate::security::at_rest::CredentialSealer;
        let bed = TestBed::default_keys();
        seed(&bed, "s1", true).await;
        let sealed = bed.sealer.seal("s1", "Opened-Only-Here-1").await.unwrap();
        crate::instance::mutate(bed.store.as_ref(), "s1", |i| {
            i.access.as_mut().unwrap().password = Some(Credential::Sealed(sealed.clone()));
            Ok(crate::instance::Outcome::Quiet)
        })
        .await
        .unwrap();
        let r = bed
            .call(
                "queryInstance",
                &json!({"activity":"queryInstance","instanceId":"s1"}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::Success);
        let info: Vec<crate::protocol::v2_basic::query_instance::InstanceInfo> =
            r.field("info").unwrap();
        assert_eq!(
            info[0].app_info.as_ref().unwrap().password.as_deref(),
            Some("Opened-Only-Here-1")
        );

        // The same sealed value copied into another instance's record does not open there.
        seed(&bed, "s2", true).await;
        crate::instance::mutate(bed.store.as_ref(), "s2", |i| {
            i.access.as_mut().unwrap().password = Some(Credential::Sealed(sealed.clone()));
            Ok(crate::instance::Outcome::Quiet)
        })
        .await
        .unwrap();
        let copied = bed
            .call(
                "queryInstance",
                &json!({"activity":"queryInstance","instanceId":"s2"}),
            )
            .await;
        assert_eq!(copied.result_code, ResultCode::InternalError);
        assert!(copied.field::<serde_json::Value>("info").is_none());

        let without_key = QueryInstance {
            sealer: None,
            ..QueryInstance::from_resources(&Resources::from_config(
                bed.store.clone(),
                bed.queue.clone(),
                bed.clock.clone(),
                &bed.config,
            ))
            .unwrap()
        };
        let e = without_key
            .handle(
                serde_json::from_value(json!({"activity":"queryInstance","instanceId":"s1"}))
                    .unwrap(),
                KeyUsed::Current,
            )
            .await
            .unwrap_err();
        assert_eq!(e.result_code(), ResultCode::InternalError);
        assert!(!e.to_reply().result_msg.contains("local1."));
    }

    #[tokio::test]
    async fn provisioning_answers_000004_without_info() {
        let bed = TestBed::default_keys();
        seed(&bed, "p1", false).await;
        let r = bed
            .call(
                "queryInstance",
                &json!({"activity":"queryInstance","instanceId":"p1"}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::Processing);
        assert!(!r.has_field("info"));
    }

    /// An active instance whose order was bought in `mode`.
    async fn seed_charged(bed: &TestBed, id: &str, mode: crate::order::ChargingMode) {
        bed.seed(id, true).await;
        crate::instance::mutate(bed.store.as_ref(), id, |i| {
            i.order = Some(crate::order::OrderDetails {
                charging_mode: Some(mode),
                ..Default::default()
            });
            Ok(crate::instance::Outcome::Quiet)
        })
        .await
        .unwrap();
    }

    /// docs/protocol/callbacks.md §6.2: an on-demand instance reports its cumulative usage at the
    /// last report's time; a yearly/monthly one reports none.
    #[tokio::test]
    async fn on_demand_instances_report_cumulative_usage() {
        use crate::metering::{UsageReport, UsageStore};
        use crate::order::ChargingMode;
        let bed = TestBed::default_keys();
        for (id, mode) in [
            ("od-1", ChargingMode::OnDemand),
            ("per-1", ChargingMode::Period),
        ] {
            seed_charged(&bed, id, mode).await;
        }
        let now = crate::clock::Clock::now(bed.clock.as_ref());
        let at = |m: i64| now + chrono::Duration::minutes(m);
        let reports: Vec<UsageReport> = [("1.25", 0), ("2.5", 70), ("0.0001", 130)]
            .iter()
            .enumerate()
            .map(|(n, (q, m))| UsageReport {
                instance_id: "od-1".into(),
                quantity: q.parse().unwrap(),
                occurred_at: at(*m),
                idempotency_key: format!("k{n}"),
                package_instance_id: None,
            })
            .collect();
        bed.store
            .ingest(&reports, &Default::default(), at(131))
            .await
            .unwrap();
        let r = bed
            .call(
                "queryInstance",
                &json!({"activity":"queryInstance","instanceId":"od-1,per-1"}),
            )
            .await;
        let info: Vec<InstanceInfo> = r.field("info").unwrap();
        let usage = info[0]
            .usage_info
            .as_ref()
            .expect("on-demand reports usage");
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].usage_value, 3.7501);
        assert_eq!(
            usage[0].statistical_time,
            crate::protocol::time::format_17(at(131))
        );
        assert!(
            info[1].usage_info.is_none(),
            "a period instance reports none"
        );
    }

    /// docs/protocol/callbacks.md §6.2, §8.2: a package reports what was used of it, one entry per
    /// on-demand instance it served; before any use, one entry of 0.
    #[tokio::test]
    async fn packages_report_their_usage_per_related_instance() {
        use crate::metering::{UsageReport, UsageStore};
        use crate::order::ChargingMode;
        let bed = TestBed::default_keys();
        for (id, mode) in [
            ("od-a", ChargingMode::OnDemand),
            ("od-b", ChargingMode::OnDemand),
            ("pkg-1", ChargingMode::OnDemandPkg),
            ("pkg-2", ChargingMode::OnDemandPkg),
        ] {
            seed_charged(&bed, id, mode).await;
        }
        let now = crate::clock::Clock::now(bed.clock.as_ref());
        let reports: Vec<UsageReport> = [("od-a", "2"), ("od-b", "0.5"), ("od-a", "1")]
            .iter()
            .enumerate()
            .map(|(n, (id, q))| UsageReport {
                instance_id: (*id).into(),
                quantity: q.parse().unwrap(),
                occurred_at: now,
                idempotency_key: format!("p{n}"),
                package_instance_id: Some("pkg-1".into()),
            })
            .collect();
        let quotas = [("pkg-1".to_owned(), None)].into();
        bed.store.ingest(&reports, &quotas, now).await.unwrap();
        let r = bed
            .call(
                "queryInstance",
                &json!({"activity":"queryInstance","instanceId":"pkg-1,pkg-2,od-a"}),
            )
            .await;
        let info: Vec<InstanceInfo> = r.field("info").unwrap();
        let per = |i: usize| -> Vec<(Option<String>, f64)> {
            info[i]
                .usage_info
                .as_ref()
                .unwrap()
                .iter()
                .map(|u| (u.related_instance_id.clone(), u.usage_value))
                .collect()
        };
        assert_eq!(
            per(0),
            [(Some("od-a".into()), 3.0), (Some("od-b".into()), 0.5)]
        );
        assert_eq!(per(1), [(None, 0.0)], "an unused package reports 0");
        assert_eq!(
            per(2),
            [(None, 3.0)],
            "an on-demand package's usage stays the on-demand instance's"
        );
    }

    /// The memory store with its window reads refused, and its usage-total reads counted.
    struct NoWindowReads {
        store: Arc<crate::testing::MemoryStore>,
        total_reads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl crate::metering::UsageStore for NoWindowReads {
        async fn ingest(
            &self,
            reports: &[crate::metering::UsageReport],
            quotas: &crate::metering::PackageQuotas,
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<crate::metering::IngestOutcome, crate::metering::IngestError> {
            self.store.ingest(reports, quotas, now).await
        }
        async fn due(
            &self,
            ended_by: chrono::DateTime<chrono::Utc>,
            limit: usize,
        ) -> Result<Vec<crate::metering::UsageWindow>, crate::StoreError> {
            self.store.due(ended_by, limit).await
        }
        async fn save_window(
            &self,
            window: &crate::metering::UsageWindow,
        ) -> Result<(), crate::StoreError> {
            self.store.save_window(window).await
        }
        async fn window(
            &self,
            key: &crate::metering::WindowKey,
        ) -> Result<Option<crate::metering::UsageWindow>, crate::StoreError> {
            self.store.window(key).await
        }
        async fn windows_of(
            &self,
            instance_id: &str,
        ) -> Result<Vec<crate::metering::UsageWindow>, crate::StoreError> {
            Err(crate::StoreError::Unavailable(
                format!("queryInstance read every window of {instance_id}").into(),
            ))
        }
        async fn windows_at(
            &self,
            instance_id: &str,
            _: chrono::DateTime<chrono::Utc>,
        ) -> Result<Vec<crate::metering::UsageWindow>, crate::StoreError> {
            self.windows_of(instance_id).await
        }
        async fn package(
            &self,
            id: &str,
        ) -> Result<Option<crate::metering::PackageUsage>, crate::StoreError> {
            self.store.package(id).await
        }
        async fn usage_totals(
            &self,
            ids: &[&str],
        ) -> Result<Vec<crate::metering::UsageTotal>, crate::StoreError> {
            self.total_reads
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.store.usage_totals(ids).await
        }
        async fn claim_push(
            &self,
            holder: &str,
            now: chrono::DateTime<chrono::Utc>,
            until: chrono::DateTime<chrono::Utc>,
        ) -> Result<bool, crate::StoreError> {
            self.store.claim_push(holder, now, until).await
        }
        async fn release_push(&self, holder: &str) -> Result<(), crate::StoreError> {
            self.store.release_push(holder).await
        }
    }

    /// A poll never reads an instance's hourly windows (they grow by one an
    /// hour for ever), only the running totals, in one batched read for all the IDs.
    #[tokio::test]
    async fn usage_info_reads_running_totals_never_the_windows() {
        use crate::metering::{UsageReport, UsageStore};
        use crate::order::ChargingMode;
        let bed = TestBed::default_keys();
        let ids: Vec<String> = (0..100).map(|i| format!("od-{i}")).collect();
        for id in &ids {
            seed_charged(&bed, id, ChargingMode::OnDemand).await;
        }
        seed_charged(&bed, "pkg-1", ChargingMode::OnDemandPkg).await;
        let now = crate::clock::Clock::now(bed.clock.as_ref());
        // 48 hours of usage for the first ten, one report an hour.
        let reports: Vec<UsageReport> = ids[..10]
            .iter()
            .flat_map(|id| {
                (0..48).map(move |h| UsageReport {
                    instance_id: id.clone(),
                    quantity: "0.5".parse().unwrap(),
                    occurred_at: now + chrono::Duration::hours(h),
                    idempotency_key: format!("{id}/{h}"),
                    package_instance_id: (h == 0).then(|| "pkg-1".to_owned()),
                })
            })
            .collect();
        let quotas = [("pkg-1".to_owned(), None)].into();
        bed.store
            .ingest(&reports, &quotas, now + chrono::Duration::days(3))
            .await
            .unwrap();
        let counted = Arc::new(NoWindowReads {
            store: bed.store.clone(),
            total_reads: Default::default(),
        });
        let query = QueryInstance {
            usage: Some(counted.clone()),
            ..QueryInstance::from_resources(&Resources::from_config(
                bed.store.clone(),
                bed.queue.clone(),
                bed.clock.clone(),
                &bed.config,
            ))
            .unwrap()
        };
        let mut all = ids.clone();
        all.push("pkg-1".into());
        let reply = query
            .handle(
                serde_json::from_value(
                    json!({"activity":"queryInstance","instanceId":all[1..].join(",")}),
                )
                .unwrap(),
                KeyUsed::Current,
            )
            .await
            .unwrap();
        assert_eq!(reply.result_code, ResultCode::Success);
        let info: Vec<InstanceInfo> = reply.field("info").unwrap();
        assert_eq!(info.len(), 100);
        let value = |i: usize| info[i].usage_info.as_ref().unwrap()[0].usage_value;
        assert_eq!(value(0), 24.0, "od-1: 48 half units");
        assert_eq!(value(10), 0.0, "od-11 reported nothing");
        let pkg = info[99].usage_info.as_ref().unwrap();
        assert_eq!(pkg.len(), 10, "one entry per instance the package served");
        assert_eq!(
            counted
                .total_reads
                .load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one batched read of the totals"
        );
    }

    #[tokio::test]
    async fn active_answers_app_info_in_request_order_and_skips_unknown() {
        let bed = TestBed::default_keys();
        seed(&bed, "a1", true).await;
        seed(&bed, "a2", true).await;
        let r = bed
            .call(
                "queryInstance",
                &json!({"activity":"queryInstance","instanceId":"a2,zzz,a1"}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::Success);
        let info: Vec<InstanceInfo> = r.field("info").unwrap();
        let ids: Vec<&str> = info.iter().map(|i| i.instance_id.as_str()).collect();
        assert_eq!(ids, ["a2", "a1"]);
        assert_eq!(
            info[0].app_info.as_ref().unwrap().password.as_deref(),
            Some("S3cret!pass")
        );
        assert!(!r.has_field("encryptType"));
    }

    #[tokio::test]
    async fn unknown_answers_000003_and_too_many_ids_000002() {
        let bed = TestBed::default_keys();
        let r = bed
            .call(
                "queryInstance",
                &json!({"activity":"queryInstance","instanceId":"nope"}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::InstanceNotFound);
        let ids: Vec<String> = (0..101).map(|i| format!("i{i}")).collect();
        let r = bed
            .call(
                "queryInstance",
                &json!({"activity":"queryInstance","instanceId":ids.join(",")}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
    }

    #[tokio::test]
    async fn permanent_failure_answers_its_own_code() {
        let bed = TestBed::default_keys();
        seed(&bed, "f1", false).await;
        crate::instance::mutate(bed.store.as_ref(), "f1", |i| {
            Ok(i.fail(
                ResultCode::NoResource,
                "no capacity left".into(),
                chrono::Utc::now(),
            ))
        })
        .await
        .unwrap();
        let r = bed
            .call(
                "queryInstance",
                &json!({"activity":"queryInstance","instanceId":"f1"}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::NoResource);
        assert_eq!(r.result_msg, "no capacity left");
    }

    #[tokio::test]
    async fn encryption_setting_encrypts_credentials_that_decrypt_with_the_basic_key() {
        let mut config = Config::with_keys("basic-key", "kit-key");
        config.settings.callbacks.credential_encryption = Some(EncryptType::Aes128);
        let bed = TestBed::new(config);
        seed(&bed, "e1", true).await;
        let r = bed
            .call(
                "queryInstance",
                &json!({"activity":"queryInstance","instanceId":"e1"}),
            )
            .await;
        assert_eq!(r.field::<String>("encryptType").as_deref(), Some("2"));
        let info: Vec<InstanceInfo> = r.field("info").unwrap();
        let app = info[0].app_info.as_ref().unwrap();
        let pw = app.password.as_deref().unwrap();
        assert_ne!(pw, "S3cret!pass");
        assert!(pw.len() <= 128);
        assert_eq!(
            decrypt_field("basic-key", pw, EncryptType::Aes128).unwrap(),
            "S3cret!pass"
        );
        assert_eq!(
            decrypt_field(
                "basic-key",
                app.user_name.as_deref().unwrap(),
                EncryptType::Aes128
            )
            .unwrap(),
            "admin"
        );
    }

    /// docs/protocol/decisions.md §13: during a key rotation, a request
    /// verified with the previous key gets its credentials encrypted with that key, which the
    /// platform can still decrypt.
    #[tokio::test]
    async fn credentials_are_encrypted_with_the_key_that_verified_the_request() {
        use crate::security::{KeyRing, KeyUsed, SecretKey};
        let mut config = Config::with_keys("new-key", "kit-key");
        config.secrets.keys.basic =
            KeyRing::new(SecretKey::new("new-key"), Some(SecretKey::new("old-key")));
        config.settings.callbacks.credential_encryption = Some(EncryptType::Aes256);
        let bed = TestBed::new(config);
        seed(&bed, "k1", true).await;
        let body = json!({"activity":"queryInstance","instanceId":"k1"});
        for (used, key) in [
            (KeyUsed::Previous, "old-key"),
            (KeyUsed::Current, "new-key"),
        ] {
            let r = bed.call_verified_with("queryInstance", &body, used).await;
            let info: Vec<InstanceInfo> = r.field("info").unwrap();
            let pw = info[0].app_info.as_ref().unwrap().password.clone().unwrap();
            assert_eq!(
                decrypt_field(key, &pw, EncryptType::Aes256).unwrap(),
                "S3cret!pass",
                "{used:?}"
            );
        }
    }

    /// The limits KooGallery puts on appInfo, encrypted lengths included.
    #[test]
    fn presentable_app_info_respects_koogallery_limits() {
        let ok = crate::testing::sample_access("i");
        assert!(check_presentable(&ok, None).is_ok());
        assert!(check_presentable(&ok, Some(EncryptType::Aes256)).is_ok());
        let long_url = AccessInfo {
            front_end_url: format!("https://x/{}", "a".repeat(520)),
            ..ok.clone()
        };
        let e = check_presentable(&long_url, None).unwrap_err();
        assert!(e.contains("frontEndUrl") && e.contains("512"), "{e}");
        let password = AccessInfo {
            password: Some("p".repeat(100).into()),
            ..ok.clone()
        };
        assert!(
            check_presentable(&password, None).is_ok(),
            "100 plain characters fit"
        );
        let e = check_presentable(&password, Some(EncryptType::Aes128)).unwrap_err();
        assert!(
            e.contains("password") && e.contains("once encrypted"),
            "{e}"
        );
        let memo = AccessInfo {
            memo: Some("m".repeat(1025)),
            ..ok
        };
        assert!(check_presentable(&memo, None).unwrap_err().contains("memo"));
    }
}
