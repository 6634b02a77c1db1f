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
        settings: Settings::read(&env)?,
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
    ] {
        let e = cfg(&vars).unwrap_err();
        assert!(e.to_string().contains(name), "{vars:?}: {e}");
    }
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

/// Issue 7, defect 9: a job delivery (two webhook calls, each up to three tries) must end inside
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

/// Issue 8: the marketplace is the open API when an AK/SK is configured; offline only locally by
/// default, and on AWS only when chosen explicitly.
#[test]
fn the_marketplace_is_the_open_api_with_keys_and_offline_only_by_choice_on_aws() {
    use crate::config::MarketplaceSettings;
    let read = |vars: &[(&str, &str)], keys: bool, aws: bool| {
        let m = env(vars);
        MarketplaceSettings::read(&Env::from_fn(|k| m.get(k).cloned()), keys, aws)
    };
    assert!(matches!(
        read(&[], true, true).unwrap(),
        MarketplaceSettings::OpenApi { ref primary, fallback: Some(ref f), .. }
            if primary == "https://mkt.myhuaweicloud.com" && f == "https://mkt.myhuaweicloud.cn"
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
            if primary == "https://mkt-intl.myhuaweicloud.com"
    ));
}
