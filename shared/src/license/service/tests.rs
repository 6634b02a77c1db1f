//! Tests of the license service: activation once, daily queries, tokens the software verifies
//! offline, unknown codes refused with nothing stored, the daily usage statistics.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use koogallery_license_token::{PublicKey, Status, keys_from_jwks, verify};

use super::*;
use crate::{
    license::{LicenseApiError, LicenseCode, LicenseStatus, usage::SoftwareUsage},
    testing::{
        ManualClock, MemoryQueue,
        license::{LicenseCall, MemoryLicenses, ScriptedLicenseMarketplace},
    },
};

struct Bed {
    service: Arc<LicenseService>,
    store: Arc<MemoryLicenses>,
    market: Arc<ScriptedLicenseMarketplace>,
    clock: Arc<ManualClock>,
    queue: Arc<MemoryQueue>,
}

fn bed() -> Bed {
    let clock = Arc::new(ManualClock::at(
        Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap(),
    ));
    let store = Arc::new(MemoryLicenses::default());
    let market = Arc::new(ScriptedLicenseMarketplace::default().knowing(
        "PLTEST1",
        Utc.with_ymd_and_hms(2027, 12, 1, 0, 0, 0).unwrap(),
    ));
    let queue = Arc::new(MemoryQueue::new());
    let service = Arc::new(LicenseService::new(
        store.clone(),
        market.clone(),
        queue.clone(),
        Arc::new(TokenKeys::from_secrets([7; 32], None)),
        clock.clone(),
        Duration::days(7),
    ));
    Bed {
        service,
        store,
        market,
        clock,
        queue,
    }
}

fn activations(b: &Bed) -> usize {
    b.market
        .calls()
        .iter()
        .filter(|c| matches!(c, LicenseCall::Activate(_)))
        .count()
}

fn queries(b: &Bed) -> usize {
    b.market
        .calls()
        .iter()
        .filter(|c| matches!(c, LicenseCall::Query(_)))
        .count()
}

/// The software verifies the token with nothing but the published keys.
fn verified(b: &Bed, token: &str) -> koogallery_license_token::Claims {
    let jwks = b.service.keys.jwks().to_string();
    let keys: Vec<(String, PublicKey)> = keys_from_jwks(&jwks).unwrap();
    let now = b.clock.now().timestamp() as u64;
    verify(token, &keys, now).unwrap().into_claims()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_calls_activate_once_and_every_answer_verifies_offline() {
    let b = bed();
    let mut calls = Vec::new();
    for i in 0..16 {
        let s = b.service.clone();
        calls.push(tokio::spawn(async move {
            if i % 2 == 0 {
                s.activate("PLTEST1", &format!("host-{i}")).await
            } else {
                s.check("PLTEST1", &format!("host-{i}")).await
            }
        }));
    }
    for c in calls {
        let answer = c.await.unwrap().unwrap();
        let claims = verified(&b, &answer.token);
        assert_eq!(claims.status, Status::Active);
        assert_eq!(claims.product.as_deref(), Some("00301-1"));
        assert!(claims.usable_at(b.clock.now().timestamp() as u64));
    }
    assert_eq!(activations(&b), 1, "one activation on KooGallery");
    let l = b
        .store
        .get(&LicenseCode::parse("PLTEST1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(l.activation.is_some());
    assert!(b.queue.jobs().contains(&Job::LicenseNotice {
        license: "PLTEST1".into()
    }));
}

#[tokio::test]
async fn koogallery_is_queried_at_most_daily_and_its_answer_changes_the_next_token() {
    let b = bed();
    b.service.activate("PLTEST1", "h").await.unwrap();
    assert_eq!(queries(&b), 0, "activation answers the info");
    b.service.check("PLTEST1", "h").await.unwrap();
    b.service.check("PLTEST1", "h").await.unwrap();
    assert_eq!(queries(&b), 1, "the first check asks, then one query a day");
    b.clock.advance(Duration::hours(25));
    // KooGallery now says the code expired.
    b.market
        .known
        .lock()
        .unwrap()
        .get_mut(&LicenseCode::parse("PLTEST1").unwrap())
        .unwrap()
        .status = crate::license::RemoteStatus::Expired;
    let a = b.service.check("PLTEST1", "h").await.unwrap();
    assert_eq!(queries(&b), 2);
    assert_eq!(verified(&b, &a.token).status, Status::Expired);
}

#[tokio::test]
async fn a_query_that_fails_answers_from_the_stored_state() {
    let b = bed();
    b.service.check("PLTEST1", "h").await.unwrap();
    b.clock.advance(Duration::hours(25));
    b.market
        .fail_next(LicenseApiError::Unavailable(crate::failure::Detail::new(
            "down",
        )));
    let a = b.service.check("PLTEST1", "h").await.unwrap();
    assert_eq!(a.claims.status, Status::Active);
}

#[tokio::test]
async fn unknown_codes_are_refused_and_nothing_is_stored() {
    let b = bed();
    for call in [
        b.service.activate("PLNOPE", "h").await,
        b.service.check("PLNOPE", "h").await,
    ] {
        let e = call.unwrap_err();
        assert_eq!((e.status(), e.code()), (404, "license_not_found"));
    }
    assert!(
        b.store
            .get(&LicenseCode::parse("PLNOPE").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        b.store
            .usage_due(b.clock.now().date_naive() + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    b.market.fail_next(LicenseApiError::NotYetDelivered);
    assert_eq!(
        b.service
            .activate("PLTEST1", "h")
            .await
            .unwrap_err()
            .status(),
        409
    );
    assert!(b.service.check(" ", "h").await.unwrap_err().status() == 400);
    assert!(b.service.check("PLTEST1", "").await.unwrap_err().status() == 400);
}

/// Freeze, release and expiry from the callbacks change what the next check answers.
#[tokio::test]
async fn callbacks_change_what_the_next_check_answers() {
    let b = bed();
    let code = LicenseCode::parse("PLTEST1").unwrap();
    b.service.activate("PLTEST1", "h").await.unwrap();
    let now = b.clock.now();
    for (change, status) in [
        (LicenseChange::Freeze, Status::Frozen),
        (LicenseChange::Unfreeze, Status::Active),
        (LicenseChange::Release { order_id: None }, Status::Released),
    ] {
        mutate_license(b.store.as_ref(), &code, None, change, now)
            .await
            .unwrap();
        let a = b.service.check("PLTEST1", "h").await.unwrap();
        assert_eq!(verified(&b, &a.token).status, status);
    }
    let l = b.store.get(&code).await.unwrap().unwrap();
    assert_eq!(l.status, LicenseStatus::Released);
}

/// A legacy code as getLicense issues it, stored.
async fn legacy(b: &Bed) -> LicenseCode {
    let code = LicenseCode::parse(&crate::protocol::v1::legacy_license_code("k", "CS1")).unwrap();
    let mut l = License::issue_legacy(
        code.clone(),
        crate::license::LegacyPurchase {
            order_id: "CS1".into(),
            product_id: "p".into(),
            customer_id: "c".into(),
            amount: None,
            expire_time: None,
        },
        false,
        b.clock.now(),
    );
    l.version = 1;
    b.store.put(&l).await.unwrap();
    code
}

/// A legacy code (issued on getLicense) is activated here only: KooGallery's API does not know it.
#[tokio::test]
async fn a_legacy_code_activates_without_koogallery() {
    let b = bed();
    let code = legacy(&b).await;
    let a = b.service.check(code.as_str(), "h").await.unwrap();
    assert_eq!(a.claims.status, Status::Active);
    assert!(b.market.calls().is_empty(), "{:?}", b.market.calls());
}

#[tokio::test]
async fn each_days_clients_are_reported_once_the_day_is_over() {
    let b = bed();
    for client in ["a", "b", "a"] {
        b.service.check("PLTEST1", client).await.unwrap();
    }
    let today = report_usage(b.store.as_ref(), b.market.as_ref(), b.clock.now())
        .await
        .unwrap();
    assert_eq!(today, UsagePass::default(), "the day is not over");
    b.clock.advance(Duration::days(1));
    b.market
        .fail_next(LicenseApiError::Unavailable(crate::failure::Detail::new(
            "down",
        )));
    let failed = report_usage(b.store.as_ref(), b.market.as_ref(), b.clock.now())
        .await
        .unwrap();
    assert!(failed.failed);
    let pass = report_usage(b.store.as_ref(), b.market.as_ref(), b.clock.now())
        .await
        .unwrap();
    assert_eq!(pass.reported, 1);
    let sent: Vec<_> = b
        .market
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            LicenseCall::ReportUsage(u) => Some(u),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 2, "the failed call and its retry");
    assert_eq!(
        sent[1],
        [SoftwareUsage::Clients {
            code: LicenseCode::parse("PLTEST1").unwrap(),
            ids: vec!["a".into(), "b".into()]
        }]
    );
    let again = report_usage(b.store.as_ref(), b.market.as_ref(), b.clock.now())
        .await
        .unwrap();
    assert_eq!(again.reported, 0, "reported once");
}

#[test]
fn the_published_keys_name_the_signing_key_and_a_previous_one() {
    let keys = TokenKeys::from_secrets([1; 32], Some([2; 32]));
    let jwks = keys.jwks();
    let parsed = keys_from_jwks(&jwks.to_string()).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].0, keys.current.kid());
    assert!(parsed[0].0.starts_with("kgl-") && parsed[0].0.len() == 20);
    assert_ne!(parsed[0].0, parsed[1].0);
}

/// A legacy code frozen by expireLicense is usable again after refreshLicense: the legacy family
/// has no unfreeze. Its checks are not reported to KooGallery's usage statistics.
#[tokio::test]
async fn a_legacy_renewal_lifts_its_freeze_and_legacy_use_is_not_reported() {
    let b = bed();
    let code = legacy(&b).await;
    let now = b.clock.now();
    mutate_license(b.store.as_ref(), &code, None, LicenseChange::Freeze, now)
        .await
        .unwrap();
    assert_eq!(
        b.service
            .check(code.as_str(), "h")
            .await
            .unwrap()
            .claims
            .status,
        Status::Frozen
    );
    let renew = LicenseChange::Renew {
        order_id: "R1".into(),
        order_line_id: None,
        scene: crate::license::RenewScene::Renewal,
        product_id: None,
        expire_time: now + Duration::days(30),
    };
    mutate_license(b.store.as_ref(), &code, None, renew, now)
        .await
        .unwrap();
    assert_eq!(
        b.service
            .check(code.as_str(), "h")
            .await
            .unwrap()
            .claims
            .status,
        Status::Active
    );
    let due = b
        .store
        .usage_due(now.date_naive() + Duration::days(1), 10)
        .await
        .unwrap();
    assert!(due.is_empty(), "{due:?}");
}
