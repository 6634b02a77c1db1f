//! Debug calls (`testFlag=1`; docs/protocol/callbacks.md §1, docs/protocol/decisions.md §7): the
//! seller console's interface debugger and KooGallery's twice-daily probes, which replay the
//! seller's debug cases in their own order. Every debug call answers `000000` with stable,
//! plausible data, whatever state its debug record is in and for IDs never seen, and nothing
//! outside the table is created: no provisioning, no notice to the vendor.
//!
//! Debug records live in their own keyspace: `debug:` precedes every instance, order and order-line
//! ID they are stored under. A debug call therefore can neither read nor change a real record,
//! whatever ID it names, and a real call never meets a debug record.

use crate::instance::{AccessInfo, Credential};

const PREFIX: &str = "debug:";

/// The stored ID of a debug record (instance, order or order line) for the ID on the wire.
pub(crate) fn record_id(wire_id: &str) -> String {
    format!("{PREFIX}{wire_id}")
}

/// The ID KooGallery knows for a stored debug record.
pub(crate) fn wire_id(record_id: &str) -> &str {
    record_id.strip_prefix(PREFIX).unwrap_or(record_id)
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
        let stored = record_id("87b94795-0603-4e24-8ae5-69420d60e3c8");
        assert_ne!(stored, "87b94795-0603-4e24-8ae5-69420d60e3c8");
        assert_eq!(wire_id(&stored), "87b94795-0603-4e24-8ae5-69420d60e3c8");
    }
}
