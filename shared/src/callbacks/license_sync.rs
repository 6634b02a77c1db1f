//! What the License callbacks share (docs/protocol/openapi.md §6; docs/protocol/decisions.md §21):
//! apply one change to a license code together with its events in one versioned write (a code
//! never seen is recorded first: a renewal can precede the software's activation), queue their
//! delivery to the vendor, answer `000000`. A store failure answers a retryable `000005` with
//! nothing half-written; the repeat finds the change applied and queues the delivery again.

use std::sync::Arc;

use super::{CallbackError, Resources};
use crate::{
    clock::Clock,
    config::ConfigError,
    jobs::{Job, JobQueue},
    license::{License, LicenseChange, LicenseCode, LicenseStore, Origin, mutate_license},
    protocol::Reply,
};

pub(crate) struct LicenseSync {
    pub(crate) licenses: Arc<dyn LicenseStore>,
    queue: Arc<dyn JobQueue>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl LicenseSync {
    pub(crate) fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        Ok(Self {
            licenses: r.licenses()?,
            queue: r.queue()?,
            clock: r.clock.clone(),
        })
    }

    /// Applies `change` to the code named `license` (recording it if never seen).
    pub(crate) async fn apply(
        &self,
        license: &str,
        change: LicenseChange,
    ) -> Result<Reply, CallbackError> {
        let code = LicenseCode::parse(license).map_err(CallbackError::InvalidParameter)?;
        let now = self.clock.now();
        let new = || License::new(code.clone(), Origin::Marketplace, false, now);
        let (stored, changed) =
            mutate_license(self.licenses.as_ref(), &code, Some(&new), change, now)
                .await
                .map_err(CallbackError::License)?;
        tracing::info!(
            license = %code.masked(),
            changed,
            status = stored.status.as_str(),
            "license changed"
        );
        self.notify(&stored).await?;
        Ok(Reply::success())
    }

    /// Queues the delivery of `license`'s pending events, if it has any.
    pub(crate) async fn notify(&self, license: &License) -> Result<(), CallbackError> {
        if !license.pending.is_empty() {
            self.queue
                .enqueue(&Job::LicenseNotice {
                    license: license.code.to_string().into(),
                })
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{
        ResultCode,
        jobs::Job,
        license::{LicenseCode, LicenseStatus, LicenseStore},
        testing::TestBed,
    };

    fn code(s: &str) -> LicenseCode {
        LicenseCode::parse(s).unwrap()
    }

    /// The code the V1 translation derives for a legacy order.
    fn legacy(order: &str) -> String {
        crate::protocol::v1::legacy_license_code("test-access-key", order)
    }

    fn renew(order: &str, expire: &str) -> serde_json::Value {
        json!({"activity":"refreshLicenseCode","scene":"RENEWAL","orderId":order,
            "orderLineId":format!("{order}-000001"),"license":"PL0000001","expireTime":expire})
    }

    /// A code never seen is recorded and answered 000000 (docs/protocol/decisions.md §21); a
    /// repeat changes nothing; each change queues one delivery of its events.
    #[tokio::test]
    async fn a_renewal_of_an_unseen_code_is_recorded_once_and_its_event_queued() {
        let bed = TestBed::default_keys();
        for _ in 0..2 {
            let r = bed
                .call("refreshLicenseCode", &renew("R1", "20271205000000"))
                .await;
            assert_eq!(r.result_code, ResultCode::Success, "{r:?}");
        }
        let l = bed.licenses.get(&code("PL0000001")).await.unwrap().unwrap();
        assert_eq!(
            l.expire_time,
            crate::protocol::time::parse_compact("20271205000000")
        );
        assert_eq!(l.pending.len(), 1, "one event for two calls");
        assert_eq!(l.version, 1);
        let jobs = bed.queue.jobs();
        assert!(jobs.contains(&Job::LicenseNotice {
            license: "PL0000001".into()
        }));
    }

    #[tokio::test]
    async fn freeze_unfreeze_and_release_and_release_is_final() {
        let bed = TestBed::default_keys();
        let status =
            |s: &str| json!({"activity":"updateLicenseCodeStatus","license":"PL2","status":s});
        let release = json!({"activity":"releaseLicenseCode","license":"PL2","orderId":"U1"});
        for (name, body, expect) in [
            (
                "updateLicenseCodeStatus",
                status("FREEZE"),
                LicenseStatus::Frozen,
            ),
            (
                "updateLicenseCodeStatus",
                status("FREEZE"),
                LicenseStatus::Frozen,
            ),
            (
                "updateLicenseCodeStatus",
                status("UNFREEZE"),
                LicenseStatus::Active,
            ),
            (
                "releaseLicenseCode",
                release.clone(),
                LicenseStatus::Released,
            ),
            ("releaseLicenseCode", release, LicenseStatus::Released),
            (
                "updateLicenseCodeStatus",
                status("UNFREEZE"),
                LicenseStatus::Released,
            ),
        ] {
            assert_eq!(bed.call(name, &body).await.result_code, ResultCode::Success);
            let l = bed.licenses.get(&code("PL2")).await.unwrap().unwrap();
            assert_eq!(l.status, expect, "{body}");
        }
        let l = bed.licenses.get(&code("PL2")).await.unwrap().unwrap();
        assert_eq!(
            l.pending.iter().map(|e| e.body.name()).collect::<Vec<_>>(),
            ["frozen", "unfrozen", "released"]
        );
    }

    /// docs/protocol/decisions.md §21: bad values are 000002 with the field named, nothing stored.
    #[tokio::test]
    async fn bad_values_are_refused_and_nothing_is_stored() {
        let bed = TestBed::default_keys();
        let mut bad_scene = renew("R1", "20271205000000");
        bad_scene["scene"] = "SOMETHING".into();
        let mut bad_time = renew("R1", "2027-12-05");
        bad_time["license"] = "PL0000001".into();
        let mut no_license = renew("R1", "20271205000000");
        no_license.as_object_mut().unwrap().remove("license");
        for (name, body, field) in [
            ("refreshLicenseCode", bad_scene, "scene"),
            ("refreshLicenseCode", bad_time, "expireTime"),
            ("refreshLicenseCode", no_license, "license"),
            (
                "updateLicenseCodeStatus",
                json!({"activity":"updateLicenseCodeStatus","license":"PL0000001","status":"PAUSE"}),
                "status",
            ),
            (
                "releaseLicenseCode",
                json!({"activity":"releaseLicenseCode","license":"PL 1"}),
                "license",
            ),
        ] {
            let r = bed.call(name, &body).await;
            assert_eq!(r.result_code, ResultCode::InvalidParameter, "{body}");
            assert!(r.result_msg.contains(field), "{r:?}");
        }
        assert!(
            bed.licenses
                .get(&code("PL0000001"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(bed.queue.jobs().is_empty());
    }

    /// docs/protocol/decisions.md §7: a debug call is answered 000000 and stores nothing.
    #[tokio::test]
    async fn debug_calls_succeed_and_store_nothing() {
        let bed = TestBed::default_keys();
        let mut body = renew("R1", "20271205000000");
        body["testFlag"] = "1".into();
        assert_eq!(
            bed.call("refreshLicenseCode", &body).await.result_code,
            ResultCode::Success
        );
        let r = bed
            .call(
                "getLicense",
                &json!({"activity":"getLicense","license":legacy("CS9"),"orderId":"CS9","businessId":"b","productId":"p","customerId":"c","testFlag":"1"}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::Success);
        assert!(
            bed.licenses
                .get(&code("PL0000001"))
                .await
                .unwrap()
                .is_none()
        );
        let issued = code(&legacy("CS9"));
        assert!(
            bed.licenses.get(&issued).await.unwrap().is_none(),
            "nothing stored"
        );
        assert!(bed.queue.jobs().is_empty());
    }

    /// The legacy getLicense issues one code per orderId, answered as license and instanceId.
    #[tokio::test]
    async fn get_license_issues_one_code_per_order() {
        let bed = TestBed::default_keys();
        let body = |order: &str, biz: &str| {
            json!({"activity":"getLicense","license":legacy(order),"orderId":order,"businessId":biz,
                "productId":"p-1","customerId":"c-1","expireTime":"20271205000000","amount":"3"})
        };
        let a = bed.call("getLicense", &body("CS1", "b-1")).await;
        let b = bed.call("getLicense", &body("CS1", "b-2")).await;
        let c = bed.call("getLicense", &body("CS2", "b-3")).await;
        assert_eq!(a.result_code, ResultCode::Success, "{a:?}");
        let code_a = a.field::<String>("license").unwrap();
        assert_eq!(a.field::<String>("instanceId"), Some(code_a.clone()));
        assert_eq!(
            b.field::<String>("license"),
            Some(code_a.clone()),
            "idempotent"
        );
        assert_ne!(c.field::<String>("license"), Some(code_a.clone()));
        let l = bed.licenses.get(&code(&code_a)).await.unwrap().unwrap();
        assert_eq!(l.origin, crate::license::Origin::Legacy);
        assert_eq!(l.amount, Some(3));
        assert_eq!(l.pending.len(), 1, "issued once");
        let bad = json!({"activity":"getLicense","license":legacy("CS3"),"orderId":"CS3","businessId":"b","productId":"p","customerId":"c","amount":"x"});
        assert_eq!(
            bed.call("getLicense", &bad).await.result_code,
            ResultCode::InvalidParameter
        );
    }
}
