//! The client against the simulator's open API over real HTTP (`koogallery-sim serve-openapi`).

use std::collections::HashMap;

use koogallery::{config::marketplace::base_url, order::ChargingMode, security::SecretKey};
use koogallery_sim::openapi::{Fault, OpenApiSim, SimOrder};

use super::*;

async fn sim() -> OpenApiSim {
    OpenApiSim::start(
        HashMap::from([("sim-ak".to_owned(), "sim-sk".to_owned())]),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

fn client_with(primary: &str, fallback: &str, sk: &str, timeout: Duration) -> OpenApiClient {
    OpenApiClient::new(
        OpenApiSettings {
            primary: base_url("KOOGALLERY_OPENAPI_URL", primary).unwrap(),
            fallback: Some(base_url("KOOGALLERY_OPENAPI_FALLBACK_URL", fallback).unwrap()),
            timeout,
        },
        OpenApiKeys {
            ak: "sim-ak".into(),
            sk: SecretKey::new(sk),
        },
    )
    .unwrap()
}

fn client(s: &OpenApiSim) -> OpenApiClient {
    client_with(
        &s.primary_url(),
        &s.fallback_url(),
        "sim-sk",
        Duration::from_secs(2),
    )
}

#[tokio::test]
async fn a_yearly_fifty_seat_order_is_read_with_every_field() {
    let s = sim().await;
    let now = chrono::Utc::now();
    s.place(SimOrder::yearly("CSYEAR50", 50, now));
    let order = client(&s)
        .query_order(&"CSYEAR50".into(), &"CSYEAR50-000001".into())
        .await
        .unwrap();
    assert_eq!(order.order_type.as_deref(), Some("NEW"));
    assert_eq!(order.charging_mode, Some(ChargingMode::Period));
    assert_eq!(
        (order.period_type.as_deref(), order.period_number),
        (Some("year"), Some(1))
    );
    assert_eq!(order.quantity, Some(50.0));
    assert_eq!(order.sku_code.as_deref(), Some("sim-sku-pro"));
    assert!(order.product_id.is_some() && order.product_name.is_some());
    let expiry = order.expire_time.unwrap();
    assert!((expiry - now).num_days() >= 364, "{expiry}");
    assert_eq!(order.customer_name.as_deref(), Some("sim_buyer_01"));
    assert_eq!(
        order.extend_params,
        [("emailDomainName".to_owned(), "buyer.example.com".to_owned())]
    );
    assert!(!order.offline);
    let seen = s.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].authorized, "signed as the gateway expects");
    assert_eq!(
        seen[0].query,
        "orderId=CSYEAR50&orderLineId=CSYEAR50-000001"
    );
    // The documented mock orders are served too.
    let mock = client(&s)
        .query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
        .await
        .unwrap();
    assert_eq!(mock.charging_mode, Some(ChargingMode::OnDemand));
}

#[tokio::test]
async fn the_primary_down_falls_back_to_the_other_host_signed_again() {
    let s = sim().await;
    s.set_primary_down(true);
    let order = client(&s)
        .query_order(
            &"MOCKPERIODYEARNEW".into(),
            &"MOCKPERIODYEARNEW-000001".into(),
        )
        .await
        .unwrap();
    assert_eq!(order.period_type.as_deref(), Some("year"));
    let seen = s.seen();
    assert_eq!(
        seen.iter().map(|r| r.host).collect::<Vec<_>>(),
        ["primary", "fallback"]
    );
    assert_ne!(seen[0].host_header, seen[1].host_header);
    assert!(seen[1].authorized, "re-signed for the fallback's Host");
    // A primary that refuses connections, and a bad gateway, fall back too. Nothing listens on
    // a port the OS just handed out once its listener is dropped (another process could take it
    // before the client connects: a small race on a fresh ephemeral port; a listener kept open
    // would accept, which is not a refusal).
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = client_with(
        &format!("http://127.0.0.1:{refused_port}"),
        &s.fallback_url(),
        "sim-sk",
        Duration::from_secs(2),
    );
    assert!(
        refused
            .query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
            .await
            .is_ok()
    );
    assert_eq!(
        s.seen().last().map(|r| r.host),
        Some("fallback"),
        "answered by the fallback"
    );
    s.set_primary_down(false);
    s.inject(Fault::Status { status: 502 });
    assert!(
        client(&s)
            .query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_timeout_is_retried_on_the_fallback_and_both_down_is_retryable() {
    let s = sim().await;
    s.inject(Fault::Slow { millis: 1500 });
    let c = client_with(
        &s.primary_url(),
        &s.fallback_url(),
        "sim-sk",
        Duration::from_millis(500),
    );
    assert!(
        c.query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
            .await
            .is_ok()
    );
    s.inject(Fault::Status { status: 503 });
    s.inject(Fault::Status { status: 504 });
    let e = client(&s)
        .query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
        .await
        .unwrap_err();
    assert!(
        matches!(e, MarketplaceError::Unavailable(_)) && e.is_retryable(),
        "{e}"
    );
}

#[tokio::test]
async fn each_error_class_is_told_apart() {
    let s = sim().await;
    let c = client(&s);
    for (fault, retryable, kind) in [
        (
            Fault::Mkt {
                code: "MKT.0999".into(),
            },
            true,
            "unavailable",
        ),
        (
            Fault::Mkt {
                code: "MKT.0250".into(),
            },
            true,
            "unavailable",
        ),
        (
            Fault::Mkt {
                code: "MKT.0154".into(),
            },
            true,
            "credentials",
        ),
        (
            Fault::Mkt {
                code: "MKT.0101".into(),
            },
            false,
            "not found",
        ),
        (Fault::Status { status: 500 }, true, "unavailable"),
    ] {
        s.inject(fault.clone());
        let e = c
            .query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
            .await
            .unwrap_err();
        assert_eq!(e.is_retryable(), retryable, "{fault:?}: {e}");
        assert!(e.to_string().contains(kind), "{fault:?}: {e}");
    }
    // An order KooGallery does not know.
    let e = c
        .query_order(&"CSNOSUCH".into(), &"CSNOSUCH-000001".into())
        .await
        .unwrap_err();
    assert!(matches!(e, MarketplaceError::NotFound(_)), "{e}");
    // A wrong SK: the gateway's APIG.0303, a setup to fix (retried, never a failed order).
    let wrong = client_with(
        &s.primary_url(),
        &s.fallback_url(),
        "not-the-sk",
        Duration::from_secs(2),
    );
    let e = wrong
        .query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
        .await
        .unwrap_err();
    assert!(matches!(e, MarketplaceError::Misconfigured(_)), "{e}");
    assert!(e.to_string().contains("APIG.0303"), "{e}");
}

#[test]
fn plain_http_only_to_loopback() {
    assert!(base_url("X", "https://mkt.myhuaweicloud.com").is_ok());
    assert!(base_url("X", "http://127.0.0.1:8081").is_ok());
    let e = base_url("X", "http://mkt.myhuaweicloud.com").unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
    assert!(base_url("X", "ftp://x").is_err());
}

/// An exchange log in memory and a recorder writing to it.
pub(crate) fn exchange_log() -> (
    Arc<koogallery::testing::MemoryExchangeLog>,
    koogallery::exchange::ExchangeRecorder,
) {
    let log = Arc::new(koogallery::testing::MemoryExchangeLog::new());
    let (recorder, writer) =
        koogallery::exchange::ExchangeRecorder::start(log.clone(), chrono::Duration::days(1));
    tokio::spawn(writer.run());
    (log, recorder)
}

/// Each try on each host is kept in the exchange log: the call's name, its order, the query it
/// sent, the status and KooGallery's code (`resultCode`, or the gateway's `error_code`), the try's
/// number; a host that did not answer with its reason. Never a header (the AK/SK signature).
#[tokio::test]
async fn every_try_on_every_host_is_kept_in_the_exchange_log() {
    let s = sim().await;
    let (log, exchanges) = exchange_log();
    let c = client(&s).with_exchange_log(exchanges.clone());
    // The primary answers 503: the fallback is tried, re-signed.
    s.inject(Fault::Status { status: 503 });
    c.query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
        .await
        .unwrap();
    exchanges.flush().await;
    let mut kept = log.all();
    kept.sort_by_key(|x| x.attempt);
    assert_eq!(kept.len(), 2, "{kept:?}");
    for x in &kept {
        assert_eq!(
            (x.family.as_str(), x.activity.as_str()),
            ("openapi", "queryOrder")
        );
        assert_eq!(x.order_id.as_deref(), Some("MOCKONDEMAND"));
        assert_eq!(
            x.request,
            serde_json::json!({"orderId": "MOCKONDEMAND", "orderLineId": "MOCKONDEMAND-000001"}),
            "the query, as the body is empty"
        );
    }
    let (down, answered) = (&kept[0], &kept[1]);
    assert_eq!((down.attempt, down.http_status), (Some(1), Some(503)));
    assert!(down.error.as_deref().unwrap().contains("503"), "{down:?}");
    assert_eq!(down.result_code, None);
    assert_eq!(
        (answered.attempt, answered.http_status),
        (Some(2), Some(200))
    );
    assert_eq!(answered.result_code.as_deref(), Some("MKT.0000"));
    assert_eq!(answered.error, None);
    assert_eq!(answered.response["resultCode"], "MKT.0000");

    // A refusal is kept with its code.
    s.inject(Fault::Mkt {
        code: "MKT.0101".into(),
    });
    assert!(
        c.query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
            .await
            .is_err()
    );
    // The gateway's refusal of a wrong SK: its `error_code`.
    let wrong = client_with(
        &s.primary_url(),
        &s.fallback_url(),
        "not-the-sk",
        Duration::from_secs(2),
    )
    .with_exchange_log(exchanges.clone());
    assert!(
        wrong
            .query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
            .await
            .is_err()
    );
    exchanges.flush().await;
    let kept = log.all();
    assert_eq!(kept.len(), 4, "{kept:?}");
    let codes: Vec<_> = kept[2..]
        .iter()
        .map(|x| (x.attempt, x.result_code.clone().unwrap_or_default()))
        .collect();
    assert!(
        codes.contains(&(Some(1), "MKT.0101".to_owned())),
        "{codes:?}"
    );
    assert!(
        codes.contains(&(Some(1), "APIG.0303".to_owned())),
        "{codes:?}"
    );
    let text = format!("{:?}", log.all());
    assert!(
        !text.contains("Access=sim-ak") && !text.contains("SDK-HMAC-SHA256"),
        "no authorization header: {text}"
    );
}
