//! Settings are read strictly: every bad value names its variable.

use std::collections::HashMap;

use super::*;

fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let m = env(vars);
    let env = Env::from_fn(|k| m.get(k).cloned());
    Ok(Config {
        settings: Settings::read(&env, OpenApiAccess::NONE)?,
        secrets: EnvSecrets::read(&env),
    })
}

#[test]
fn defaults_use_dev_keys_and_static_provisioner() {
    let c = cfg(&[]).unwrap();
    assert!(c.secrets.dev_keys);
    assert_eq!(c.secrets.keys.basic.current.expose(), DEV_ACCESS_KEY);
    assert!(matches!(
        c.settings.provisioner,
        ProvisionerSettings::Static { .. }
    ));
    assert!(c.settings.edge.nonce_ttl >= c.settings.edge.timestamp_window * 2);
}

#[test]
fn the_static_provisioner_refuses_the_old_admin_account_setting_and_bounds_its_memo() {
    // A deployment that still sets KOOGALLERY_ADMIN_USER expects buyers to get an account: it
    // must hear at start-up that they no longer do, not find out from a buyer.
    let err = cfg(&[("KOOGALLERY_ADMIN_USER", "admin")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("KOOGALLERY_ADMIN_USER: no longer used"),
        "{err}"
    );
    let long = "x".repeat(1025);
    let err = cfg(&[("KOOGALLERY_STATIC_MEMO", long.as_str())]).unwrap_err();
    assert!(
        err.to_string().starts_with("KOOGALLERY_STATIC_MEMO:"),
        "{err}"
    );
    let c = cfg(&[("KOOGALLERY_STATIC_MEMO", "Sign up at {instanceId}")]).unwrap();
    match c.settings.provisioner {
        ProvisionerSettings::Static { memo, .. } => assert_eq!(memo, "Sign up at {instanceId}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn keys_and_previous_keys_are_read() {
    let c = cfg(&[
        ("KOOGALLERY_ACCESS_KEY", "a"),
        ("KOOGALLERY_ACCESS_KEY_PREVIOUS", "a0"),
        ("KOOGALLERY_KIT_KEY", "k"),
        ("KOOGALLERY_WEBHOOK_SECRET", "w"),
    ])
    .unwrap();
    assert!(!c.secrets.dev_keys);
    assert_eq!(
        c.secrets.keys.basic.previous.as_ref().unwrap().expose(),
        "a0"
    );
    assert!(c.secrets.keys.kit.previous.is_none());
    assert_eq!(c.secrets.webhook.as_ref().map(SecretKey::expose), Some("w"));
    let printed = format!("{:?}", c.secrets);
    assert!(
        !printed.contains("a0") && !printed.contains("\"w\""),
        "{printed}"
    );
}

#[test]
fn bad_settings_name_the_variable() {
    for (vars, name) in [
        (
            vec![("KOOGALLERY_PROVISIONER", "webhook")],
            "KOOGALLERY_WEBHOOK_URL",
        ),
        (
            vec![("KOOGALLERY_PROVISIONER", "magic")],
            "KOOGALLERY_PROVISIONER",
        ),
        (
            vec![("KOOGALLERY_CREDENTIAL_ENCRYPTION", "rot13")],
            "KOOGALLERY_CREDENTIAL_ENCRYPTION",
        ),
        (
            vec![("KOOGALLERY_WORKER_MAX_ATTEMPTS", "0")],
            "MAX_ATTEMPTS",
        ),
        (
            vec![("KOOGALLERY_WORKER_BACKOFF_SECS", "0")],
            "BACKOFF_SECS",
        ),
        (
            vec![("KOOGALLERY_TIMESTAMP_WINDOW_SECS", "0")],
            "KOOGALLERY_TIMESTAMP_WINDOW_SECS",
        ),
        (
            vec![("KOOGALLERY_TIMESTAMP_WINDOW_SECS", "99999999999999999999")],
            "KOOGALLERY_TIMESTAMP_WINDOW_SECS",
        ),
        (
            vec![("KOOGALLERY_MAX_BODY_BYTES", "lots")],
            "KOOGALLERY_MAX_BODY_BYTES",
        ),
        (
            vec![
                ("KOOGALLERY_PROVISIONER", "webhook"),
                ("KOOGALLERY_WEBHOOK_URL", "https://v.example"),
                ("KOOGALLERY_WEBHOOK_TIMEOUT_SECS", "-1"),
            ],
            "KOOGALLERY_WEBHOOK_TIMEOUT_SECS",
        ),
        (
            vec![
                ("KOOGALLERY_PROVISIONER", "webhook"),
                ("KOOGALLERY_WEBHOOK_URL", "https://v.example"),
                ("KOOGALLERY_WEBHOOK_EVENT_VERSION", "3"),
            ],
            "KOOGALLERY_WEBHOOK_EVENT_VERSION",
        ),
    ] {
        let e = cfg(&vars).unwrap_err();
        assert!(e.to_string().contains(name), "{vars:?}: {e}");
    }
}

#[test]
fn the_webhook_sends_version_2_unless_a_version_1_receiver_is_named() {
    let version = |extra: &[(&'static str, &'static str)]| {
        let mut vars = vec![
            ("KOOGALLERY_PROVISIONER", "webhook"),
            ("KOOGALLERY_WEBHOOK_URL", "https://v.example"),
        ];
        vars.extend_from_slice(extra);
        match cfg(&vars).unwrap().settings.provisioner {
            ProvisionerSettings::Webhook { event_version, .. } => event_version,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(version(&[]), 2);
    assert_eq!(version(&[("KOOGALLERY_WEBHOOK_EVENT_VERSION", "1")]), 1);
    assert_eq!(version(&[("KOOGALLERY_WEBHOOK_EVENT_VERSION", "2")]), 2);
}

#[test]
fn debug_records_borrow_the_static_front_end_template() {
    let c = cfg(&[(
        "KOOGALLERY_FRONTEND_URL",
        "https://saas.example/{instanceId}",
    )])
    .unwrap();
    assert_eq!(
        c.settings.callbacks.debug_front_end_url,
        "https://saas.example/{instanceId}"
    );
}

#[test]
fn backoff_doubles_caps_and_jitters_within_half_of_its_ceiling() {
    use std::time::Duration;
    let w = WorkerSettings::default();
    assert_eq!(w.backoff_ceiling(1), Duration::from_secs(2));
    assert_eq!(w.backoff_ceiling(2), Duration::from_secs(4));
    assert_eq!(w.backoff_ceiling(30), w.backoff_max);
    assert_eq!(w.backoff_ceiling(u32::MAX), w.backoff_max);
    let samples: Vec<Duration> = (0..200).map(|_| w.backoff(30)).collect();
    assert!(
        samples
            .iter()
            .all(|d| *d >= w.backoff_max / 2 && *d <= w.backoff_max)
    );
    let distinct: std::collections::BTreeSet<_> = samples.iter().collect();
    assert!(distinct.len() > 10, "jittered, not one value");
}

/// A job delivery (two webhook calls, each up to three tries) must end inside
/// the worker's Lambda timeout and inside its claim; a webhook timeout that cannot is refused at
/// start-up, naming the variable.
#[test]
fn the_webhook_timeout_must_fit_the_worker_timeout_and_the_claim() {
    let webhook = |timeout: &'static str, worker: Option<&'static str>| {
        let mut vars = vec![
            ("KOOGALLERY_PROVISIONER", "webhook"),
            ("KOOGALLERY_WEBHOOK_URL", "https://v.example/hook"),
            ("KOOGALLERY_WEBHOOK_TIMEOUT_SECS", timeout),
        ];
        if let Some(w) = worker {
            vars.push(("KOOGALLERY_WORKER_TIMEOUT_SECS", w));
        }
        cfg(&vars)
    };
    // The template's values: 10 s webhook timeout, 120 s function timeout.
    assert!(webhook("10", Some("120")).is_ok());
    let e = webhook("10", Some("60")).unwrap_err().to_string();
    assert!(
        e.contains("KOOGALLERY_WEBHOOK_TIMEOUT_SECS") && e.contains("60 s"),
        "{e}"
    );
    let e = webhook("30", None).unwrap_err().to_string();
    assert!(e.contains("claim"), "{e}");
}

#[test]
fn deadlines_are_bounded_by_what_the_queue_keeps() {
    for (name, value) in [
        ("KOOGALLERY_PROVISIONING_DEADLINE_SECS", "300000"),
        ("KOOGALLERY_NOTICE_DEADLINE_SECS", "300000"),
        ("KOOGALLERY_PROVISIONING_DEADLINE_SECS", "10"),
        ("KOOGALLERY_WORKER_BACKOFF_MAX_SECS", "50000"),
    ] {
        let e = cfg(&[(name, value)]).unwrap_err().to_string();
        assert!(e.contains(name), "{name}={value}: {e}");
    }
    let e = cfg(&[
        ("KOOGALLERY_WORKER_BACKOFF_SECS", "60"),
        ("KOOGALLERY_WORKER_BACKOFF_MAX_SECS", "30"),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("KOOGALLERY_WORKER_BACKOFF_MAX_SECS"), "{e}");
    let ok = cfg(&[("KOOGALLERY_PROVISIONING_DEADLINE_SECS", "10800")]).unwrap();
    assert_eq!(ok.settings.worker.provisioning_deadline.as_secs(), 10800);
}

/// The marketplace is the open API when an AK/SK is configured; offline only locally by default,
/// and on AWS only when chosen explicitly.
#[test]
fn the_marketplace_is_the_open_api_with_keys_and_offline_only_by_choice_on_aws() {
    use crate::config::MarketplaceSettings;
    let read = |vars: &[(&str, &str)], keys: bool, aws: bool| {
        let m = env(vars);
        let access = OpenApiAccess {
            held: keys,
            offline_by_default: !aws,
        };
        MarketplaceSettings::read(&Env::from_fn(|k| m.get(k).cloned()), access)
    };
    assert!(matches!(
        read(&[], true, true).unwrap(),
        MarketplaceSettings::OpenApi { ref primary, fallback: Some(ref f), .. }
            if primary.as_str() == "https://mkt.myhuaweicloud.com/" && f.as_str() == "https://mkt.myhuaweicloud.cn/"
    ));
    assert_eq!(
        read(&[], false, false).unwrap(),
        MarketplaceSettings::Offline
    );
    let e = read(&[], false, true).unwrap_err().to_string();
    assert!(
        e.contains("KOOGALLERY_MARKETPLACE") && e.contains("offline"),
        "{e}"
    );
    assert_eq!(
        read(&[("KOOGALLERY_MARKETPLACE", "offline")], false, true).unwrap(),
        MarketplaceSettings::Offline
    );
    let e = read(&[("KOOGALLERY_MARKETPLACE", "openapi")], false, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("KOOGALLERY_AK"), "{e}");
    let intl = read(
        &[
            (
                "KOOGALLERY_OPENAPI_URL",
                "https://mkt-intl.myhuaweicloud.com",
            ),
            ("KOOGALLERY_OPENAPI_FALLBACK_URL", "none"),
        ],
        true,
        true,
    )
    .unwrap();
    assert!(matches!(
        intl,
        MarketplaceSettings::OpenApi { ref primary, fallback: None, .. }
            if primary.as_str() == "https://mkt-intl.myhuaweicloud.com/"
    ));
}

/// A delivery's Query Order calls count in the timeout check: two of them, each up to the open
/// API timeout on each host. A webhook timeout that fits the worker alone no longer passes when
/// the Query Orders do not fit beside it; the open API timeout has an upper bound.
#[test]
fn the_query_order_calls_count_in_the_worker_timeout_and_the_open_api_timeout_is_bounded() {
    let read = |vars: &[(&str, &str)]| -> Result<Settings, ConfigError> {
        let m = env(vars);
        let env = Env::from_fn(|k| m.get(k).cloned());
        let aws = OpenApiAccess {
            held: true,
            offline_by_default: false,
        };
        Settings::read(&env, aws)
    };
    let webhook = [
        ("KOOGALLERY_PROVISIONER", "webhook"),
        ("KOOGALLERY_WEBHOOK_URL", "https://v.example/hook"),
        ("KOOGALLERY_WEBHOOK_TIMEOUT_SECS", "10"),
    ];
    // The template's: 10 s webhook, 5 s open API on two hosts, 120 s function.
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut vars = webhook.to_vec();
        vars.extend_from_slice(extra);
        read(&vars)
    };
    assert!(with(&[("KOOGALLERY_WORKER_TIMEOUT_SECS", "120")]).is_ok());
    // 2 x 30.75 s of webhook + 5 s fits 80 s; with 2 x 10 s of Query Order (5 s on each host)
    // it does not.
    let e = with(&[("KOOGALLERY_WORKER_TIMEOUT_SECS", "80")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Query Order") && e.contains("86 s") && e.contains("80 s"),
        "{e}"
    );
    // Without the fallback host, one try per call: 2 x (30.75 + 5) + 5 s fits.
    assert!(
        with(&[
            ("KOOGALLERY_WORKER_TIMEOUT_SECS", "80"),
            ("KOOGALLERY_OPENAPI_FALLBACK_URL", "none"),
        ])
        .is_ok()
    );
    // The static provisioner makes no call, but reads the order: the Query Orders alone count.
    let e = read(&[
        ("KOOGALLERY_WORKER_TIMEOUT_SECS", "30"),
        ("KOOGALLERY_OPENAPI_TIMEOUT_SECS", "10"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("KOOGALLERY_OPENAPI_TIMEOUT_SECS") && e.contains("45 s"),
        "{e}"
    );
    let e = read(&[("KOOGALLERY_OPENAPI_TIMEOUT_SECS", "11")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("KOOGALLERY_OPENAPI_TIMEOUT_SECS") && e.contains("at most 10"),
        "{e}"
    );
    assert!(read(&[("KOOGALLERY_OPENAPI_TIMEOUT_SECS", "10")]).is_ok());
}

/// The jobs queue's limits (on AWS: maxReceiveCount and retention, from the template) must hold
/// a job through both deadlines: else a live job reaches the dead-letter queue, or expires. The
/// error names the settings and, for the receives, the least backoff cap that fits.
#[test]
fn the_deadlines_must_fit_the_jobs_queue_receives_and_retention() {
    let limits = [
        ("KOOGALLERY_JOBS_MAX_RECEIVE_COUNT", "1000"),
        ("KOOGALLERY_JOBS_RETENTION_SECS", "604800"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut vars = limits.to_vec();
        vars.extend_from_slice(extra);
        cfg(&vars).map(|c| c.settings.worker)
    };
    // The template's defaults: 6 h + 48 h, a 600 s cap.
    let w = with(&[("KOOGALLERY_WORKER_BACKOFF_MAX_SECS", "600")]).unwrap();
    assert_eq!(
        w.queue_limits,
        Some(QueueLimits {
            max_receive_count: 1000,
            retention: std::time::Duration::from_secs(604_800)
        })
    );
    // The earlier cap of 300 s: 48 h of notice retries alone take more than 1000 receives.
    let e = with(&[("KOOGALLERY_WORKER_BACKOFF_MAX_SECS", "300")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("KOOGALLERY_JOBS_MAX_RECEIVE_COUNT")
            && e.contains("KOOGALLERY_NOTICE_DEADLINE_SECS")
            && e.contains("dead-letter"),
        "{e}"
    );
    // The least cap the message names does fit, and one second less does not.
    let least: u64 = e
        .split("to at least ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no least cap in {e}"));
    let cap = |secs: u64| {
        let secs = secs.to_string();
        let mut vars: Vec<(&str, &str)> = limits.to_vec();
        vars.push(("KOOGALLERY_WORKER_BACKOFF_MAX_SECS", &secs));
        cfg(&vars)
    };
    assert!(cap(least).is_ok(), "{least}");
    assert!(cap(least - 1).is_err(), "{least}");
    // Both deadlines at their 3-day maximum outlive a 6-day retention, whatever the cap.
    let e = cfg(&[
        ("KOOGALLERY_JOBS_MAX_RECEIVE_COUNT", "1000"),
        ("KOOGALLERY_JOBS_RETENTION_SECS", "518400"),
        ("KOOGALLERY_PROVISIONING_DEADLINE_SECS", "259200"),
        ("KOOGALLERY_NOTICE_DEADLINE_SECS", "259200"),
        ("KOOGALLERY_WORKER_BACKOFF_MAX_SECS", "1200"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("KOOGALLERY_JOBS_RETENTION_SECS") && e.contains("expire"),
        "{e}"
    );
    // Both or neither, and within SQS's own limits.
    for (vars, name) in [
        (
            vec![("KOOGALLERY_JOBS_MAX_RECEIVE_COUNT", "1000")],
            "KOOGALLERY_JOBS_RETENTION_SECS",
        ),
        (
            vec![
                ("KOOGALLERY_JOBS_MAX_RECEIVE_COUNT", "1001"),
                ("KOOGALLERY_JOBS_RETENTION_SECS", "604800"),
            ],
            "KOOGALLERY_JOBS_MAX_RECEIVE_COUNT",
        ),
        (
            vec![
                ("KOOGALLERY_JOBS_MAX_RECEIVE_COUNT", "1000"),
                ("KOOGALLERY_JOBS_RETENTION_SECS", "1209601"),
            ],
            "KOOGALLERY_JOBS_RETENTION_SECS",
        ),
    ] {
        let e = cfg(&vars).unwrap_err().to_string();
        assert!(e.contains(name), "{vars:?}: {e}");
    }
    // Locally there are no limits to check.
    assert!(cfg(&[]).unwrap().settings.worker.queue_limits.is_none());
}

/// `receives_needed` bounds what the backoff really does: a job retried with the jitter drawn
/// afresh each time, until the longest retry has passed, never takes more receives.
#[test]
fn receives_needed_bounds_the_jittered_retries() {
    use std::time::Duration;
    for (base, max, deadline) in [(2, 600, 21_600), (2, 300, 3600), (1, 60, 7200), (5, 5, 600)] {
        let w = WorkerSettings {
            backoff_base: Duration::from_secs(base),
            backoff_max: Duration::from_secs(max),
            provisioning_deadline: Duration::from_secs(deadline),
            notice_deadline: Duration::from_secs(deadline),
            ..WorkerSettings::default()
        };
        let bound = w.receives_needed() - worker::DEFERRAL_ALLOWANCE;
        let mut most = 0;
        for _ in 0..20 {
            let (mut waited, mut receives) = (Duration::ZERO, 1u64);
            while waited < w.longest_retry() {
                waited += w.backoff(receives as u32);
                receives += 1;
            }
            most = most.max(receives);
        }
        assert!(most <= bound, "{base}/{max}/{deadline}: {most} > {bound}");
        // And it is not loose by more than the jitter allows (at most twice the fewest).
        assert!(
            bound <= 2 * most + 2,
            "{base}/{max}/{deadline}: {bound} vs {most}"
        );
    }
}

/// The four parts of the secrets on AWS: every field in exactly one part, each part named by its
/// own variable; a source yields the parts asked for and nothing more.
#[tokio::test]
async fn a_secrets_source_yields_only_the_parts_asked_for() {
    let mut seen = std::collections::BTreeSet::new();
    for part in SecretPart::ALL {
        assert!(part.env_var().ends_with("_SECRET_ID"), "{part:?}");
        for field in part.fields() {
            assert!(seen.insert(*field), "{field} is in two parts");
            assert_eq!(SecretPart::of_field(field), Some(part));
        }
    }
    let vars = env(&[
        ("KOOGALLERY_ACCESS_KEY", "a"),
        ("KOOGALLERY_KIT_KEY", "k"),
        ("KOOGALLERY_AK", "AK"),
        ("KOOGALLERY_SK", "SK"),
        ("KOOGALLERY_WEBHOOK_SECRET", "w"),
        ("KOOGALLERY_USAGE_KEY", "u"),
    ]);
    let bundle = EnvSecrets::read(&Env::from_fn(|k| vars.get(k).cloned()));
    let source = StaticSecrets(bundle);
    let usage = source.read_parts(&[SecretPart::Usage]).await.unwrap();
    assert_eq!(usage.usage.as_ref().map(SecretKey::expose), Some("u"));
    assert!(usage.keys.is_none() && usage.open_api.is_none() && usage.webhook.is_none());
    assert!(
        usage
            .keys()
            .unwrap_err()
            .to_string()
            .contains("KOOGALLERY_CALLBACK_KEYS_SECRET_ID")
    );
    let push = source
        .read_parts(&[SecretPart::CallbackKeys, SecretPart::OpenApi])
        .await
        .unwrap();
    assert_eq!(push.keys().unwrap().basic.current.expose(), "a");
    assert_eq!(push.open_api.as_ref().map(|k| k.ak.as_str()), Some("AK"));
    assert!(push.webhook.is_none() && push.usage.is_none());
    let all = source.read_parts(&SecretPart::ALL).await.unwrap();
    assert!(
        all.keys.is_some()
            && all.open_api.is_some()
            && all.webhook.is_some()
            && all.usage.is_some()
    );
}
