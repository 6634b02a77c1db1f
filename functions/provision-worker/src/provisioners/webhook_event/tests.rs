//! Golden files pin the webhook JSON (version 2, and version 1's `webhook_v1_*`); the README must
//! show the same JSON.

use chrono::TimeZone;
use koogallery::instance::{AccessInfo, Instance, Outcome, RefreshScene};

use super::*;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/");

fn t(s: &str) -> DateTime<Utc> {
    let n = chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").unwrap();
    Utc.from_utc_datetime(&n)
}

fn order() -> OrderDetails {
    OrderDetails {
        order_type: Some("NEW".into()),
        charging_mode: Some(ChargingMode::Period),
        period_type: Some("year".into()),
        period_number: Some(1),
        product_id: Some("OFFI740586796467507200".into()),
        sku_code: Some("b5f5b0b2-pro".into()),
        product_name: Some("Pro edition".into()),
        quantity: Some(50.0),
        expire_time: Some(t("20271121000000")),
        customer_id: Some("68cbc86abc51458880d92f36422fa0e".into()),
        customer_name: Some("buyer_01".into()),
        extend_params: vec![("emailDomainName".into(), "example.com".into())],
        offline: false,
        ..Default::default()
    }
}

/// Compares with the golden file (rewritten when `UPDATE_GOLDEN` is set) and returns its text.
fn golden(name: &str, event: &impl serde::Serialize) -> String {
    let path = format!("{GOLDEN}{name}");
    let actual = serde_json::to_string_pretty(event).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(actual, expected, "the webhook contract changed: {name}");
    expected
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap()
}

#[test]
fn provision_event_is_pinned_and_documented() {
    let request = ProvisionRequest {
        instance_id: "87b94795-0603-4e24-8ae5-69420d60e3c8".into(),
        order_id: "CS2211181819B4LVS".into(),
        order_line_id: "CS2211181819B4LVS-000001".into(),
        order: order(),
    };
    let text = golden("webhook_provision.json", &WebhookEvent::provision(&request));
    assert!(
        readme().contains(text.trim_end()),
        "README must show the provision event as sent"
    );
    // A receiver written for version 1 gets the JSON version 1 always had.
    let v1 = WebhookEvent::provision(&request).in_version(1).unwrap();
    golden("webhook_v1_provision.json", &v1);
}

#[test]
fn lifecycle_notices_carry_their_own_seq_and_resulting_state() {
    let now = t("20261121000000");
    let (mut i, _) = Instance::new_provisioning(
        &"CS2211181819B4LVS".into(),
        &"CS2211181819B4LVS-000001".into(),
        "87b94795-0603-4e24-8ae5-69420d60e3c8",
        false,
        now,
    );
    i.order = Some(order());
    let access = AccessInfo {
        front_end_url: "https://app.example.com/x".into(),
        admin_url: None,
        user_name: None,
        password: None,
        memo: None,
    };
    i.activate(access, now).unwrap();
    let Outcome::Changed(refreshed) = i
        .refresh(
            RefreshScene::Renewal,
            &"CS2311181819RENEW".into(),
            Some(&"CS2311181819RENEW-000001".into()),
            None,
            t("20281121000000"),
            now,
        )
        .unwrap()
    else {
        panic!()
    };
    let Outcome::Changed(frozen) = i.freeze(now).unwrap() else {
        panic!()
    };
    let Outcome::Changed(released) = i.release(Some("CS2411181819UNSUB".into()), now) else {
        panic!()
    };
    // Sent late, after the release: still `frozen`, the state this event produced.
    let late = WebhookEvent::notice(&LifecycleNotice {
        instance: i.clone(),
        event: frozen,
    });
    assert_eq!((late.event, late.state, late.seq), ("frozen", "frozen", 3));
    let text = golden(
        "webhook_refreshed.json",
        &WebhookEvent::notice(&LifecycleNotice {
            instance: i.clone(),
            event: refreshed.clone(),
        }),
    );
    assert!(
        readme().contains(text.trim_end()),
        "README must show the refreshed event as sent"
    );
    let v1 = WebhookEvent::notice(&LifecycleNotice {
        instance: i.clone(),
        event: refreshed,
    });
    golden("webhook_v1_refreshed.json", &v1.in_version(1).unwrap());
    golden(
        "webhook_released.json",
        &WebhookEvent::notice(&LifecycleNotice {
            instance: i,
            event: released,
        }),
    );
}

/// A stop-when-used-up package's last unit used; the state is unchanged (KooGallery ends
/// the package), the quota is a decimal string.
#[test]
fn a_used_up_package_is_heard_as_quota_exhausted() {
    let now = t("20261121000000");
    let (mut i, _) = Instance::new_provisioning(
        &"CS2611211200PKG01".into(),
        &"CS2611211200PKG01-000001".into(),
        "5b0d8f3e-pkg-0001",
        false,
        now,
    );
    i.order = Some(OrderDetails {
        charging_mode: Some(ChargingMode::OnDemandPkg),
        period_type: Some("month".into()),
        sku_code: Some("b5f5b0b2-pkg-1000".into()),
        product_name: Some("1000 calls".into()),
        quantity: Some(1.0),
        expire_time: None,
        extend_params: vec![],
        ..order()
    });
    let access = AccessInfo {
        front_end_url: "https://app.example.com/x".into(),
        admin_url: None,
        user_name: None,
        password: None,
        memo: None,
    };
    i.activate(access, now).unwrap();
    let Outcome::Changed(used_up) = i.quota_exhausted("1000.00".parse().unwrap(), now) else {
        panic!()
    };
    assert_eq!(
        i.quota_exhausted("1000".parse().unwrap(), now),
        Outcome::Unchanged,
        "heard once"
    );
    let event = WebhookEvent::notice(&LifecycleNotice {
        instance: i,
        event: used_up,
    });
    assert_eq!((event.event, event.state), ("quotaExhausted", "active"));
    let text = golden("webhook_quota_exhausted.json", &event);
    assert!(
        readme().contains(text.trim_end()),
        "README must show the quotaExhausted event as sent"
    );
}

/// An order that failed after a provision call was made reaches the vendor as
/// `released` with state `failed`, so it removes whatever the call may have created.
#[test]
fn a_failed_order_after_a_provision_call_is_sent_as_released_with_state_failed() {
    let now = t("20261121000000");
    let (mut i, _) =
        Instance::new_provisioning(&"CSF".into(), &"CSF-000001".into(), "f-1", false, now);
    i.claim_provisioning("token", now, chrono::Duration::minutes(2))
        .unwrap();
    let Outcome::Changed(failed) = i.fail(
        koogallery::ResultCode::InternalError,
        "deadline".into(),
        now,
    ) else {
        panic!()
    };
    assert!(
        i.outbox.pending.contains(&failed.seq),
        "queued for the vendor"
    );
    let event = WebhookEvent::notice(&LifecycleNotice {
        instance: i,
        event: failed,
    });
    assert_eq!((event.event, event.state), ("released", "failed"));
    assert_eq!(
        serde_json::to_value(&event).unwrap()["detail"],
        serde_json::json!({})
    );
}

/// A paid order line (orderNotify) reaches the vendor as an `order` event: no instance,
/// state `paid`, the order as Query Order described it, a stable `eventId`.
#[test]
fn the_order_event_is_pinned() {
    let paid = OrderPaid {
        order_id: "CS2211181819B4LVS".into(),
        order_line_id: "CS2211181819B4LVS-000001".into(),
        order: order(),
    };
    let text = golden("webhook_order.json", &WebhookEvent::order(&paid));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["event"], "order");
    assert_eq!(v["state"], "paid");
    assert_eq!(
        v["eventId"],
        "order:CS2211181819B4LVS:CS2211181819B4LVS-000001"
    );
    assert!(v.get("instanceId").is_none());
    assert_eq!(v["order"]["quantity"], 50.0);
}

/// Version 1 has no quotaExhausted, order or directory events: a provisioner set to version 1 does
/// not send them; every other event keeps its JSON, with `"version": 1`.
#[test]
fn version_1_has_only_the_first_events() {
    let paid = OrderPaid {
        order_id: "CS2211181819B4LVS".into(),
        order_line_id: "CS2211181819B4LVS-000001".into(),
        order: order(),
    };
    assert!(WebhookEvent::order(&paid).in_version(1).is_none());
    let v2 = WebhookEvent::order(&paid).in_version(2).unwrap();
    assert_eq!((v2.event, v2.version), ("order", 2));
    assert_eq!(WebhookEvent::order(&paid).version, WEBHOOK_EVENT_VERSION);
    for event in [
        "provision",
        "refreshed",
        "frozen",
        "unfrozen",
        "upgraded",
        "released",
    ] {
        let mut e = WebhookEvent::order(&paid);
        e.event = event;
        assert_eq!(e.in_version(1).map(|e| e.version), Some(1), "{event}");
    }
    let mut quota = WebhookEvent::order(&paid);
    quota.event = "quotaExhausted";
    assert!(quota.in_version(1).is_none());
}

#[test]
fn directory_events_are_pinned_and_documented() {
    use koogallery::directory::{Department, DirectoryEvent, EventBody, EventUser, TenantKey};
    use koogallery::provisioning::DirectoryNotice;
    let notice = |seq, body| DirectoryNotice {
        tenant: TenantKey::new(
            "87b94795-0603-4e24-8ae5-69420d60e3c8",
            "68cbc86abc51458880d92f36422fa0e",
        ),
        event: DirectoryEvent {
            seq,
            at: t("20261205010203"),
            body,
        },
    };
    let users = EventBody::UsersAuthorized {
        app_id: "app-001".into(),
        users: vec![EventUser {
            user_name: "zhangsan01".into(),
            name: "张三".into(),
            org_code: "10000".into(),
            role: "admin".into(),
            enabled: true,
            position: None,
            employee_code: None,
            employee_type: Some("1".into()),
            mobile: None,
            email: Some("zhangsan@example.com".into()),
            work_place: None,
            entry_date: None,
        }],
    };
    let text = golden(
        "webhook_users_authorized.json",
        &DirectoryWebhookEvent::from_notice(&notice(3, users)),
    );
    assert!(
        readme().contains(text.trim_end()),
        "README must show usersAuthorized as sent"
    );
    let tenant = EventBody::TenantSynced {
        order_id: "CS2211181819B4LVS".into(),
        tenant_code: "huawei".into(),
        name: "华为技术有限公司".into(),
        domain_name: "https://example.tenantaccount.com".into(),
    };
    let text = golden(
        "webhook_tenant_synced.json",
        &DirectoryWebhookEvent::from_notice(&notice(1, tenant)),
    );
    assert!(
        readme().contains(text.trim_end()),
        "README must show tenantSynced as sent"
    );
    let orgs = EventBody::OrgsReplaced {
        part: 1,
        parts: 1,
        total: 2,
        departments: vec![
            Department {
                org_code: "10000".into(),
                org_name: "总部".into(),
                parent_code: None,
            },
            Department {
                org_code: "10001".into(),
                org_name: "研发部".into(),
                parent_code: Some("10000".into()),
            },
        ],
    };
    let event = DirectoryWebhookEvent::from_notice(&notice(4, orgs));
    golden("webhook_orgs_replaced.json", &event);
    let ended = EventBody::SessionsEnded {
        sessions: vec![koogallery::directory::EndedSession {
            sid: "qkltmQnUR75ExHWuPwpLsTe2edAQQ_4q23W27739BO8".into(),
            sub: koogallery::sso::session::subject("68cbc86abc51458880d92f36422fa0e", "zhangsan01"),
            app_id: "app-001".into(),
            user_name: "zhangsan01".into(),
            reason: "user_revoked".into(),
        }],
    };
    let text = golden(
        "webhook_sessions_ended.json",
        &DirectoryWebhookEvent::from_notice(&notice(5, ended)),
    );
    assert!(
        readme().contains(text.trim_end()),
        "README must show sessionsEnded as sent"
    );
    assert_eq!(event.version, WEBHOOK_EVENT_VERSION);
    assert!(
        event.clone().in_version(1).is_none(),
        "version 1 has no directory events"
    );
    assert_eq!(event.in_version(2).map(|e| e.version), Some(2));
}

#[test]
fn license_events_are_pinned() {
    use koogallery::license::{LicenseCode, LicenseEvent, LicenseEventBody, RenewScene};
    use koogallery::provisioning::LicenseNotice;
    let notice = LicenseNotice {
        license: LicenseCode::parse("PL0000001").unwrap(),
        event: LicenseEvent {
            seq: 2,
            at: t("20261205010203"),
            body: LicenseEventBody::Renewed {
                order_id: "CS2211181819B4LVS".into(),
                order_line_id: Some("CS2211181819B4LVS-000001".into()),
                scene: RenewScene::Renewal,
                product_id: None,
                expire_time: t("20271205000000"),
            },
        },
    };
    let event = super::LicenseWebhookEvent::from_notice(&notice);
    golden("webhook_license_renewed.json", &event);
    assert!(
        event.clone().in_version(1).is_none(),
        "version 1 has no license events"
    );
    assert_eq!(
        event.in_version(2).map(|e| e.event_id),
        Some("lic:PL0000001:2".into())
    );
}
