//! The webhook provisioner against a vendor endpoint inside the test: answers and their meaning
//! (credentials, a refusal, a misconfiguration, an outage), retries, and redirects never followed.

use std::sync::{Arc, Mutex};

use axum::{Router, http::StatusCode, routing::post};
use koogallery::testing::SignedVendor;

use super::*;

/// A vendor endpoint answering signed events from a script of (status, body), then `200 {}`.
async fn vendor(script: Vec<(u16, &'static str)>) -> SignedVendor {
    let script = Arc::new(Mutex::new(
        script
            .into_iter()
            .collect::<std::collections::VecDeque<_>>(),
    ));
    SignedVendor::start("hook-secret", move |_event| {
        let next = script.lock().unwrap().pop_front().unwrap_or((200, "{}"));
        async move { (next.0, next.1.to_owned()) }
    })
    .await
}

fn provisioner(url: String) -> WebhookProvisioner {
    let mut p = WebhookProvisioner::new(url, SecretKey::new("hook-secret"), Duration::from_secs(5))
        .unwrap();
    p.retry.first = Duration::from_millis(1);
    p
}

fn request() -> ProvisionRequest {
    ProvisionRequest {
        instance_id: "i9".into(),
        order_id: "o".into(),
        order_line_id: "l".into(),
        order: Default::default(),
    }
}

#[tokio::test]
async fn credentials_come_from_the_answer_after_retrying_a_5xx() {
    let seen = vendor(vec![
        (503, "busy"),
        (
            200,
            r#"{"frontEndUrl":"https://v/i9","userName":"root","password":"pw-1"}"#,
        ),
    ])
    .await;
    let app = provisioner(seen.url.clone())
        .provision(&request())
        .await
        .unwrap();
    assert_eq!(
        (app.front_end_url.as_str(), app.password),
        ("https://v/i9", Some("pw-1".into()))
    );
    let seen = seen.events();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1]["event"], "provision");
    assert_eq!(seen[1]["eventId"], "i9:provision");
}

/// An answer with a password of the wrong type is a transient fault whose message (logged, kept
/// as a dead letter's reason) does not hold the password.
#[tokio::test]
async fn a_malformed_answer_is_reported_without_its_values() {
    let seen = vendor(vec![(
        200,
        r#"{"frontEndUrl":"https://v/i9","password":987654321}"#,
    )])
    .await;
    let e = provisioner(seen.url.clone())
        .provision(&request())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ProvisionError::Transient(_)), "{text}");
    assert!(!text.contains("987654321"), "{text}");
    assert!(text.contains("line 1 column"), "{text}");
}

#[tokio::test]
async fn only_a_result_code_is_a_refusal_and_other_4xx_are_misconfigurations() {
    let seen = vendor(vec![(
        200,
        r#"{"resultCode":"000106","resultMsg":"sold out"}"#,
    )])
    .await;
    match provisioner(seen.url.clone()).provision(&request()).await {
        Err(ProvisionError::Rejected { code, message }) => {
            assert_eq!((code, message.as_str()), (ResultCode::SoldOut, "sold out"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.events().len(), 1);
    let seen = vendor(vec![(
        409,
        r#"{"resultCode":"000106","resultMsg":"none left"}"#,
    )])
    .await;
    assert!(matches!(
        provisioner(seen.url.clone()).provision(&request()).await,
        Err(ProvisionError::Rejected {
            code: ResultCode::SoldOut,
            ..
        })
    ));
    assert_eq!(seen.events().len(), 1);
    // A WAF's 403, a rotated secret's 401, a wrong path's 404, a proxy's
    // bare 4xx: not the vendor's "no"; never a refund.
    for status in [401, 403, 404, 400] {
        let seen = vendor(vec![(status, "<html>denied</html>")]).await;
        let r = provisioner(seen.url.clone()).provision(&request()).await;
        assert!(
            matches!(r, Err(ProvisionError::Misconfigured(_))),
            "{status}: {r:?}"
        );
        assert!(r.unwrap_err().is_retryable());
        assert_eq!(seen.events().len(), 1, "no fast retries for {status}");
    }
}

/// A redirect is never followed: a 301/302/303 would turn the POST into a body-less GET whose
/// 2xx page counted as a delivered notice. Every 3xx is a misconfiguration (retried, alarmed),
/// and its message never carries the URL's query (where a vendor may keep a token).
#[tokio::test]
async fn a_redirect_is_a_misconfiguration_and_never_a_delivery() {
    use axum::{extract::Path, routing::get};
    let (gets, posts) = (Arc::new(Mutex::new(0u32)), Arc::new(Mutex::new(0u32)));
    let (g, p) = (gets.clone(), posts.clone());
    let app = Router::new()
        .route(
            "/hook/{status}",
            post(move |Path(status): Path<u16>| {
                let p = p.clone();
                async move {
                    *p.lock().unwrap() += 1;
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [(axum::http::header::LOCATION, "/moved")],
                        "",
                    )
                }
            }),
        )
        .route(
            "/moved",
            get(move || {
                let g = g.clone();
                async move {
                    *g.lock().unwrap() += 1;
                    "<html>welcome</html>"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let paid = OrderPaid {
        order_id: "o".into(),
        order_line_id: "l".into(),
        order: Default::default(),
    };
    for status in [301u16, 302, 303, 307, 308] {
        let mut hook = provisioner(format!("http://{addr}/hook/{status}?token=s3cret-token"));
        hook.tries = 1;
        let r = hook.order_paid(&paid).await;
        match &r {
            Err(ProvisionError::Misconfigured(why)) => {
                assert!(why.to_string().contains("redirect"), "{status}: {why}");
                assert!(
                    !why.to_string().contains("s3cret-token"),
                    "{status}: the URL's query leaked: {why}"
                );
            }
            other => panic!("{status}: a redirect must not count as delivered: {other:?}"),
        }
        assert!(r.unwrap_err().is_retryable(), "{status}");
    }
    assert_eq!(*posts.lock().unwrap(), 5);
    assert_eq!(*gets.lock().unwrap(), 0, "no redirect was followed");
}

/// 5xx answers on every try, and an endpoint that cannot be talked to (it accepts each
/// connection and closes it at once, as a crashing server does), are transient: the order is
/// retried later, never failed. The endpoint is the test's own for its whole run, so no other
/// process can answer in its place; it counts the connections, one per try.
#[tokio::test]
async fn persistent_outage_is_transient_and_unreachable_too() {
    let seen = vendor(vec![(500, ""), (502, ""), (504, "")]).await;
    assert!(matches!(
        provisioner(seen.url.clone()).provision(&request()).await,
        Err(ProvisionError::Transient(_))
    ));
    assert_eq!(seen.events().len(), 3);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let p = provisioner(format!("http://{addr}/hook"));
    match p.provision(&request()).await {
        Err(ProvisionError::Transient(why)) => {
            assert!(why.to_string().contains("webhook unreachable"), "{why}")
        }
        other => panic!("an endpoint that closes every connection: {other:?}"),
    }
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        p.tries,
        "each try reached the endpoint"
    );
}

/// A receiver written for version 1 gets version-1 JSON, and no event version 1 does not have:
/// an order notice counts as delivered without a POST, so it cannot hold up the queue.
#[tokio::test]
async fn a_version_1_receiver_hears_only_version_1_events() {
    let seen = vendor(vec![(200, r#"{"frontEndUrl":"https://v/i9"}"#)]).await;
    let mut p = provisioner(seen.url.clone());
    p.event_version = 1;
    p.provision(&request()).await.unwrap();
    let paid = OrderPaid {
        order_id: "o".into(),
        order_line_id: "l".into(),
        order: Default::default(),
    };
    p.order_paid(&paid).await.unwrap();
    let events = seen.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["event"], &events[0]["version"]),
        (&"provision".into(), &1.into())
    );

    let seen = vendor(vec![]).await;
    provisioner(seen.url.clone())
        .order_paid(&paid)
        .await
        .unwrap();
    let events = seen.events();
    assert_eq!(events.len(), 1, "version 2 sends the order event");
    assert_eq!(
        (&events[0]["event"], &events[0]["version"]),
        (&"order".into(), &2.into())
    );
}

/// Each try is kept in the exchange log: the event's name and instance, the body sent, the
/// answer (its password redacted), the status and the try's number; a try without an answer says
/// why, and never the URL (its query holds the vendor's token here).
#[tokio::test]
async fn every_try_is_kept_in_the_exchange_log_redacted() {
    use koogallery::{exchange::redact::REDACTED, testing::MemoryExchangeLog};
    let log = Arc::new(MemoryExchangeLog::new());
    let (exchanges, writer) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(1));
    tokio::spawn(writer.run());
    let seen = vendor(vec![
        (503, r#"{"resultMsg":"busy"}"#),
        (
            200,
            r#"{"frontEndUrl":"https://v/i9","userName":"root","password":"pw-1"}"#,
        ),
    ])
    .await;
    let url = format!("{}?token=vendor-token", seen.url);
    let app = provisioner(url)
        .with_exchange_log(exchanges.clone())
        .provision(&request())
        .await
        .unwrap();
    assert_eq!(
        app.password,
        Some("pw-1".into()),
        "the call itself is served"
    );
    exchanges.flush().await;
    let mut kept = log.all();
    // Kept by time to the millisecond: two tries within one are ordered by their number.
    kept.sort_by_key(|x| x.attempt);
    assert_eq!(kept.len(), 2, "{kept:?}");
    for (x, (attempt, status)) in kept.iter().zip([(1, 503), (2, 200)]) {
        assert_eq!(x.direction, koogallery::exchange::Direction::Outbound);
        assert_eq!(
            (x.family.as_str(), x.activity.as_str()),
            ("webhook", "provision")
        );
        assert_eq!(x.instance_id.as_deref(), Some("i9"));
        assert_eq!(x.order_id.as_deref(), Some("o"));
        assert_eq!((x.attempt, x.http_status), (Some(attempt), Some(status)));
        assert_eq!(x.request["eventId"], "i9:provision");
        assert_eq!(x.error, None);
    }
    assert_eq!(kept[0].response["resultMsg"], "busy");
    assert_eq!(kept[1].response["frontEndUrl"], "https://v/i9");
    assert_eq!(kept[1].response["password"], REDACTED);
    let text = format!("{kept:?}");
    assert!(
        !text.contains("pw-1") && !text.contains("vendor-token"),
        "{text}"
    );
    assert!(
        !text.to_ascii_lowercase().contains(HEADER_SIGNATURE),
        "no header is kept"
    );

    // No answer at all: the error is kept, without the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut p = provisioner(format!("http://127.0.0.1:{port}/hook?token=vendor-token"))
        .with_exchange_log(exchanges.clone());
    p.tries = 1;
    assert!(p.provision(&request()).await.is_err());
    exchanges.flush().await;
    let kept = log.all();
    assert_eq!(kept.len(), 3);
    let down = kept.iter().find(|x| x.error.is_some()).unwrap();
    assert_eq!((down.attempt, down.http_status), (Some(1), None));
    let why = down.error.as_deref().unwrap();
    assert!(
        why.contains("unreachable") && !why.contains("vendor-token"),
        "{why}"
    );
}

/// A webhook URL as errors name it: no user, password, query or fragment.
#[test]
fn a_webhook_url_is_named_without_its_credentials() {
    assert_eq!(
        without_query("https://user:s3cret@vendor.example.com:8443/hook?token=t0k#x"),
        "https://vendor.example.com:8443/hook"
    );
    assert_eq!(
        without_query("https://vendor.example.com"),
        "https://vendor.example.com/"
    );
    assert_eq!(
        without_query("https://token@vendor.example.com/h#t0k"),
        "https://vendor.example.com/h"
    );
    assert_eq!(
        without_query("not a url?token=t"),
        "(a URL that does not parse)"
    );
}

/// A license event's code is its secret, and its `eventId` holds it: the exchange log keeps
/// neither (the log's redaction by field name hides `license` only).
#[tokio::test]
async fn a_license_event_is_kept_without_its_code() {
    use koogallery::{
        license::{LicenseCode, LicenseEvent, LicenseEventBody},
        provisioning::LicenseNotice,
        testing::MemoryExchangeLog,
    };
    let log = Arc::new(MemoryExchangeLog::new());
    let (exchanges, writer) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(1));
    tokio::spawn(writer.run());
    let seen = vendor(vec![]).await;
    let code = "PL0123456789SECRET";
    provisioner(seen.url.clone())
        .with_exchange_log(exchanges.clone())
        .license_changed(&LicenseNotice {
            license: LicenseCode::parse(code).unwrap(),
            event: LicenseEvent {
                seq: 1,
                at: chrono::Utc::now(),
                body: LicenseEventBody::Released {
                    order_id: Some("CS1".into()),
                },
            },
        })
        .await
        .unwrap();
    assert!(
        seen.events()[0]["eventId"].as_str().unwrap().contains(code),
        "the vendor gets the code"
    );
    exchanges.flush().await;
    let kept = log.all();
    assert_eq!(kept.len(), 1);
    let text = format!("{:?} {:?}", kept[0].request, kept[0].response);
    assert!(!text.contains(code), "{text}");
}
