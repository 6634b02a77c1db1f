//! Debug calls (`testFlag=1`; docs/protocol/callbacks.md §1, docs/protocol/decisions.md §7): the
//! seller console's interface debugger and KooGallery's twice-daily probes, which replay the
//! seller's debug cases in their own order. Every debug call answers `000000` with stable,
//! plausible data, whatever state its debug record is in and for IDs never seen, and nothing
//! outside the table is created: no provisioning, no notice to the vendor.
//!
//! Debug records live in their own [`Keyspace`]: `debug:` precedes every instance, order and
//! order-line ID they are stored under (a stored form, kept across releases). A debug call therefore
//! can neither read nor change a real record, whatever ID it names, and a real call never meets a
//! debug record. Only [`Keyspace`] writes or reads that prefix.

use crate::instance::{AccessInfo, Credential};

const PREFIX: &str = "debug:";

/// Where a call's records live: KooGallery's real calls, or the debugger's and the probes'
/// (`testFlag=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyspace {
    Real,
    Debug,
}

impl Keyspace {
    /// The keyspace of a call with this `testFlag`.
    pub(crate) fn of(test_flag: bool) -> Self {
        if test_flag { Self::Debug } else { Self::Real }
    }

    /// The ID a record (instance, order or order line) is stored under for the ID on the wire.
    pub(crate) fn record_id(self, wire_id: &str) -> String {
        match self {
            Self::Real => wire_id.to_owned(),
            Self::Debug => format!("{PREFIX}{wire_id}"),
        }
    }

    /// The keyspace of a stored ID, and the ID KooGallery knows for it.
    pub(crate) fn of_record(record_id: &str) -> (Self, &str) {
        match record_id.strip_prefix(PREFIX) {
            Some(wire_id) => (Self::Debug, wire_id),
            None => (Self::Real, record_id),
        }
    }
}

/// The ID KooGallery knows for a stored record, of either keyspace.
pub(crate) fn wire_id(record_id: &str) -> &str {
    Keyspace::of_record(record_id).1
}

/// Plausible access information for a debug instance, built like the static provisioner's from the
/// `frontEndUrl` template (`{instanceId}` filled in).
pub(crate) fn access(front_end_url: &str, instance_id: &str) -> AccessInfo {
    AccessInfo {
        front_end_url: front_end_url.replace("{instanceId}", instance_id),
        admin_url: None,
        user_name: Some("debug-admin".into()),
        password: Some(Credential::plain("Debug-Only-Not-A-Real-Account-1")),
        memo: Some("debug call (testFlag=1): no resources were created".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::{
        ResultCode,
        protocol::v2_basic::InstanceInfo,
        testing::{TestBed, sample_access},
    };

    /// The stored form of a debug ID is kept across releases: `debug:` and the wire ID; a real ID is
    /// stored as sent, and each reads back to its keyspace.
    #[test]
    fn the_keyspaces_store_ids_apart_and_read_back() {
        assert_eq!(Keyspace::Debug.record_id("i-1"), "debug:i-1");
        assert_eq!(Keyspace::Real.record_id("i-1"), "i-1");
        assert_eq!(Keyspace::of(true), Keyspace::Debug);
        assert_eq!(Keyspace::of(false), Keyspace::Real);
        assert_eq!(Keyspace::of_record("debug:i-1"), (Keyspace::Debug, "i-1"));
        assert_eq!(Keyspace::of_record("i-1"), (Keyspace::Real, "i-1"));
        assert_eq!(wire_id("debug:i-1"), "i-1");
    }

    fn debug(mut body: Value) -> Value {
        body["testFlag"] = json!("1");
        body
    }

    /// Replayed debug cases that name a real instance change nothing and tell
    /// the vendor nothing, and still pass.
    #[tokio::test]
    async fn debug_calls_never_change_a_real_instance() {
        let bed = TestBed::default_keys();
        let before = bed.seed("r1", true).await;
        for (activity, body) in [
            (
                "updateInstanceStatus",
                json!({"instanceId":"r1","status":"FREEZE"}),
            ),
            (
                "refreshInstance",
                json!({"instanceId":"r1","orderId":"R","scene":"RENEWAL","expireTime":"20300101000000"}),
            ),
            (
                "upgradeInstance",
                json!({"instanceId":"r1","orderId":"U","orderLineId":"U-1"}),
            ),
            ("releaseInstance", json!({"instanceId":"r1"})),
        ] {
            let r = bed.call(activity, &debug(body)).await;
            assert_eq!(
                r.result_code,
                ResultCode::Success,
                "{activity}: {}",
                r.result_msg
            );
        }
        assert_eq!(
            bed.store.get_instance("r1").await,
            before,
            "the real record is untouched"
        );
        assert!(bed.queue.is_empty(), "the vendor hears nothing");
    }

    /// Whatever order the probes replay the seller's debug cases in, every
    /// debug call answers `000000`, for released debug instances and IDs never seen too; and a
    /// debug query never reveals a real instance's credentials.
    #[tokio::test]
    async fn debug_calls_succeed_whatever_the_state_and_never_read_real_records() {
        let bed = TestBed::default_keys();
        bed.seed("r2", true).await;
        let created = bed
            .call(
                "newInstance",
                &debug(json!({"orderId":"D","orderLineId":"D-1","businessId":"d1"})),
            )
            .await;
        assert_eq!(created.field::<String>("instanceId").as_deref(), Some("d1"));
        let release = debug(json!({"instanceId":"d1"}));
        assert_eq!(
            bed.call("releaseInstance", &release).await.result_code,
            ResultCode::Success
        );
        for (activity, body) in [
            ("releaseInstance", json!({"instanceId":"d1"})),
            (
                "updateInstanceStatus",
                json!({"instanceId":"d1","status":"UNFREEZE"}),
            ),
            (
                "refreshInstance",
                json!({"instanceId":"d1","orderId":"R","scene":"RENEWAL","expireTime":"20300101000000"}),
            ),
            (
                "updateInstanceStatus",
                json!({"instanceId":"never-seen","status":"FREEZE"}),
            ),
            (
                "changeInstanceCheck",
                json!({"instanceId":"never-seen","productInfo":{"skuCode":"s"}}),
            ),
        ] {
            let r = bed.call(activity, &debug(body)).await;
            assert_eq!(
                r.result_code,
                ResultCode::Success,
                "{activity}: {}",
                r.result_msg
            );
        }
        let r = bed
            .call(
                "queryInstance",
                &debug(json!({"instanceId":"d1,never-seen,r2"})),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::Success, "{}", r.result_msg);
        let info: Vec<InstanceInfo> = r.field("info").unwrap();
        let ids: Vec<&str> = info.iter().map(|i| i.instance_id.as_str()).collect();
        assert_eq!(
            ids,
            ["d1", "never-seen", "r2"],
            "plausible appInfo for every ID"
        );
        let real_password = sample_access("r2")
            .password
            .and_then(|p| p.as_plain().map(str::to_owned));
        for i in &info {
            let app = i.app_info.as_ref().expect("appInfo");
            assert!(app.front_end_url.contains(&i.instance_id), "{app:?}");
            assert_ne!(app.password, real_password, "a real credential leaked");
        }
    }

    #[test]
    fn debug_ids_round_trip_and_never_equal_a_wire_id() {
        let stored = Keyspace::Debug.record_id("87b94795-0603-4e24-8ae5-69420d60e3c8");
        assert_ne!(stored, "87b94795-0603-4e24-8ae5-69420d60e3c8");
        assert_eq!(wire_id(&stored), "87b94795-0603-4e24-8ae5-69420d60e3c8");
    }
}
