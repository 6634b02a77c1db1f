//! The scheduled pass as the function builds it: the open API client from the settings and the
//! secrets, against the open API simulator.

use std::{collections::HashMap, time::Duration};

use chrono::{Duration as Span, Utc};
use koogallery::{
    config::{Config, MarketplaceSettings, OpenApiKeys},
    metering::{UsageReport, UsageStore as _},
    metrics::Metric,
    security::SecretKey,
    testing::{ManualClock, MemoryStore, RecordedMetrics},
};
use koogallery_sim::openapi::OpenApiSim;

use super::*;

const ACCESS_KEY: &str = "basic-access-key";

struct Bed {
    sim: OpenApiSim,
    store: Arc<MemoryStore>,
    metrics: Arc<RecordedMetrics>,
    pusher: UsagePusher,
}

async fn bed() -> Bed {
    let sim = OpenApiSim::start(
        HashMap::from([("push-ak".to_owned(), "push-sk".to_owned())]),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    sim.set_interconnection_key(ACCESS_KEY);
    let mut config = Config::with_keys(ACCESS_KEY, "kit-key");
    config.secrets.open_api = Some(OpenApiKeys {
        ak: "push-ak".into(),
        sk: SecretKey::new("push-sk"),
    });
    config.settings.marketplace = MarketplaceSettings::OpenApi {
        primary: sim.primary_url().parse().unwrap(),
        fallback: Some(sim.fallback_url().parse().unwrap()),
        timeout: Duration::from_secs(5),
    };
    let store = Arc::new(MemoryStore::new());
    let metrics = Arc::new(RecordedMetrics::default());
    let pusher = pusher(
        &config.settings,
        &config.secrets,
        store.clone(),
        store.clone(),
        Arc::new(ManualClock::at(Utc::now())),
        metrics.clone(),
        &koogallery::exchange::ExchangeRecorder::off(),
    )
    .unwrap()
    .expect("the open API is configured");
    Bed {
        sim,
        store,
        metrics,
        pusher,
    }
}

/// 2.5 units two hours ago: a closed hour, due for its push.
async fn closed_hour(b: &Bed) {
    let at = Utc::now() - Span::hours(2);
    let report = UsageReport {
        instance_id: "biz-1".into(),
        quantity: "2.5".parse().unwrap(),
        occurred_at: at,
        idempotency_key: "e-1".into(),
        package_instance_id: None,
    };
    b.store
        .ingest(&[report], &Default::default(), at)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pass_pushes_closed_hours_signed_with_the_access_key() {
    let b = bed().await;
    closed_hour(&b).await;
    let report = pass(Some(&b.pusher), None).await.unwrap();
    assert_eq!(report["accepted"], 1, "{report}");
    assert_eq!(report["stopped"], Value::Null, "{report}");
    let (accepted, _) = b.sim.usage();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        (
            accepted[0].instance_id.as_str(),
            accepted[0].usage_value.as_str()
        ),
        ("biz-1", "2.5")
    );
    // Nothing left for the next pass.
    assert_eq!(pass(Some(&b.pusher), None).await.unwrap()["pushes"], 0);
}

/// The invocation's deadline bounds the pass: one that could not finish a round before it starts
/// none (the next invocation pushes), and the claim it took is given up.
#[tokio::test]
async fn a_pass_starts_no_round_it_cannot_finish_before_the_invocation_deadline() {
    let b = bed().await;
    closed_hour(&b).await;
    let now = b.pusher.clock.now();
    let report = pass(Some(&b.pusher), Some(now + Span::seconds(5)))
        .await
        .unwrap();
    assert_eq!(report["pushes"], 0, "{report}");
    assert!(
        report["stopped"].as_str().unwrap().contains("deadline"),
        "{report}"
    );
    assert!(b.sim.usage().0.is_empty());
    let report = pass(Some(&b.pusher), Some(now + Span::seconds(55)))
        .await
        .unwrap();
    assert_eq!(report["accepted"], 1, "{report}");
}

#[tokio::test]
async fn a_refused_signature_stops_the_pass_and_is_counted() {
    let b = bed().await;
    b.sim.set_interconnection_key("another-key");
    closed_hour(&b).await;
    let report = pass(Some(&b.pusher), None).await.unwrap();
    assert_eq!(report["accepted"], 0, "{report}");
    assert!(
        report["stopped"]
            .as_str()
            .unwrap()
            .contains("misconfigured"),
        "{report}"
    );
    assert_eq!(b.metrics.count(&Metric::UsagePushMisconfigured), 1);
    assert!(b.sim.usage().0.is_empty());
}

/// The pusher `config` builds, over stores of its own.
fn pusher_over_fresh_stores(config: &Config) -> Result<Option<UsagePusher>, ConfigError> {
    pusher(
        &config.settings,
        &config.secrets,
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::at(Utc::now())),
        Arc::new(RecordedMetrics::default()),
        &koogallery::exchange::ExchangeRecorder::off(),
    )
}

#[tokio::test]
async fn offline_usage_is_kept_and_the_pass_says_so() {
    let config = Config::with_keys(ACCESS_KEY, "kit-key");
    let built = pusher_over_fresh_stores(&config).unwrap();
    assert!(built.is_none());
    let answer = pass(None, None).await.unwrap();
    assert_eq!(answer, json!({"pushed": false, "why": NOT_CONFIGURED}));
}

#[test]
fn the_open_api_without_its_keys_is_a_named_error() {
    let mut config = Config::with_keys(ACCESS_KEY, "kit-key");
    config.settings.marketplace = MarketplaceSettings::OpenApi {
        primary: "https://mkt.myhuaweicloud.com".parse().unwrap(),
        fallback: None,
        timeout: Duration::from_secs(5),
    };
    let err = pusher_over_fresh_stores(&config).err().expect("no AK/SK");
    assert!(err.to_string().contains("KOOGALLERY_AK"), "{err}");
}
