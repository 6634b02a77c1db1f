//! The stored records against the golden files of every schema.

use super::*;
use crate::{
    ResultCode,
    instance::{Actor, Credential},
    order::ChargingMode,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn fixture(name: &str) -> Vec<serde_json::Value> {
    let path = format!("{FIXTURES}{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Records written by the release before schema 1 still load, every field intact.
#[test]
fn schema_0_records_from_the_previous_release_are_read() {
    let records = fixture("instance_records_v0.json");
    let instances: Vec<Instance> = records
        .iter()
        .map(|r| decode_instance(&bytes(r)).unwrap())
        .collect();
    let a = &instances[0];
    assert_eq!(a.instance_id, "87b94795-0603-4e24-8ae5-69420d60e3c8");
    assert_eq!(a.state, InstanceState::Frozen);
    assert_eq!(a.version, 9);
    let access = a.access.as_ref().unwrap();
    assert_eq!(
        access.password,
        Some(Credential::plain("S3cret!pass")),
        "earlier releases stored it plain"
    );
    assert_eq!(access.memo.as_deref(), Some("memo 备注"));
    let order = a.order.as_ref().unwrap();
    assert_eq!(order.charging_mode, Some(ChargingMode::Period));
    assert_eq!(order.quantity, Some(50.0));
    assert_eq!(
        order.extend_params,
        [
            ("region".to_owned(), "cn-north-4".to_owned()),
            ("emailDomainName".to_owned(), "example.com".to_owned())
        ]
    );
    assert!(a.applied.contains("refresh:CS-RENEW-1:RENEWAL"));
    assert_eq!(
        a.outbox.pending.iter().copied().collect::<Vec<_>>(),
        [4, 5, 6, 7]
    );
    assert_eq!(
        instances[1].failure.as_ref().unwrap().code,
        ResultCode::SoldOut
    );
    assert!(instances[2].test);
    let claim = instances[3].provisioning.claim.as_ref().unwrap();
    assert_eq!(claim.token, "sqs-msg-1");
    assert_eq!(instances[3].provisioning.attempts, 2);

    let events: Vec<InstanceEvent> = fixture("instance_events_v0.json")
        .iter()
        .map(|e| decode_event(&bytes(e)).unwrap())
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    for kind in [
        "created",
        "provisioning_started",
        "provisioned",
        "provisioning_failed",
        "refreshed",
        "frozen",
        "unfrozen",
        "upgraded",
        "released",
        "debug_restarted",
    ] {
        assert!(names.contains(&kind), "fixture lacks {kind}: {names:?}");
    }
    assert!(
        matches!(events[0].actor, Actor::KooGallery { ref activity } if activity == "newInstance")
    );
}

/// Re-encodes a stored record (an instance or an event) as this release writes it.
fn rewrite(v: &serde_json::Value, instance: bool) -> serde_json::Value {
    let b = if instance {
        encode_instance(&decode_instance(&bytes(v)).unwrap()).unwrap()
    } else {
        encode_event(&decode_event(&bytes(v)).unwrap()).unwrap()
    };
    serde_json::from_slice(&b).unwrap()
}

/// What this release writes is pinned (`*_v2.json`): what earlier releases wrote, schema 0 and
/// 1, comes back unchanged but for `schema` and the fields schema 2 added, at their defaults.
#[test]
fn schema_2_is_the_earlier_schemas_plus_the_outbox_and_round_trips() {
    for kind in ["instance_records", "instance_events"] {
        let instance = kind == "instance_records";
        let golden_name = format!("{kind}_v2.json");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let written: Vec<_> = fixture(&format!("{kind}_v1.json"))
                .iter()
                .map(|o| rewrite(o, instance))
                .collect();
            let text = serde_json::to_string_pretty(&written).unwrap() + "\n";
            std::fs::write(format!("{FIXTURES}{golden_name}"), text).unwrap();
        }
        let golden = fixture(&golden_name);
        for old_name in [format!("{kind}_v0.json"), format!("{kind}_v1.json")] {
            let old = fixture(&old_name);
            assert_eq!(old.len(), golden.len());
            for (o, g) in old.iter().zip(&golden) {
                let written = rewrite(o, instance);
                assert_eq!(&written, g, "{golden_name} drifted (from {old_name})");
                assert_eq!(written["schema"], SCHEMA);
                let (mut w, mut o) = (written.clone(), o.clone());
                for v in [&mut w, &mut o] {
                    let map = v.as_object_mut().unwrap();
                    map.remove("schema");
                    if instance {
                        assert!(
                            map.remove("outbox").is_none_or(|b| b
                                == serde_json::json!({"claim":null,"failing_since":null,"parked":false}))
                        );
                        assert!(
                            map["provisioning"]
                                .as_object_mut()
                                .unwrap()
                                .remove("called")
                                .is_none_or(|c| c == false)
                        );
                    }
                }
                assert_eq!(w, o, "schema 2 changed a field of {old_name}");
            }
        }
    }
}

/// A sealed password is written as `password_sealed` only, and read back sealed.
#[test]
fn a_sealed_password_is_stored_apart_from_plain_ones() {
    let mut i = decode_instance(&bytes(&fixture("instance_records_v0.json")[0])).unwrap();
    i.access.as_mut().unwrap().password = Some(Credential::Sealed("local1.AAAA".into()));
    let written: serde_json::Value = serde_json::from_slice(&encode_instance(&i).unwrap()).unwrap();
    assert_eq!(written["app_info"]["passwordSealed"], "local1.AAAA");
    assert!(written["app_info"].get("password").is_none());
    let back = decode_instance(&bytes(&written)).unwrap();
    assert_eq!(
        back.access.unwrap().password,
        Some(Credential::Sealed("local1.AAAA".into()))
    );
}

#[test]
fn a_newer_schema_is_refused_not_misread() {
    let mut r = fixture("instance_records_v0.json").remove(0);
    r["schema"] = serde_json::json!(SCHEMA + 1);
    let e = decode_instance(&bytes(&r)).unwrap_err();
    assert!(e.to_string().contains("newer"), "{e}");
    assert!(!e.is_retryable());
}

/// A refresh's order line is kept within schema 2: written when known, absent (and read as
/// unknown) in events stored before it was kept.
#[test]
fn a_refresh_keeps_its_order_line_within_the_schema() {
    let events = fixture("instance_events_v2.json");
    let old = events
        .iter()
        .find(|e| e["kind"]["type"] == "refreshed")
        .expect("the fixture has a refresh");
    let mut event = decode_event(&bytes(old)).unwrap();
    let crate::instance::EventKind::Refreshed { order_line_id, .. } = &mut event.kind else {
        panic!("not a refresh")
    };
    assert_eq!(*order_line_id, None, "stored before the line was kept");
    *order_line_id = Some("CS-RENEW-1-000001".into());
    let written: serde_json::Value =
        serde_json::from_slice(&encode_event(&event).unwrap()).unwrap();
    assert_eq!(written["kind"]["order_line_id"], "CS-RENEW-1-000001");
    assert_eq!(decode_event(&bytes(&written)).unwrap(), event);
}
