//! Operational metrics (docs/operations.md): callbacks by activity and result code, provisioning
//! time and retries, notices, the reconciler's findings. Written as CloudWatch embedded metric
//! format (EMF) lines on stdout, which CloudWatch Logs turns into metrics with no API call and no
//! extra permission; the template's alarms watch them. The [`Metrics`] port lets tests record them.
//!
//! Each line is a contract with the alarms (namespace, metric names, dimensions): [`emf_line`] is
//! pinned by a golden test.

use std::{io::Write, sync::Mutex};

use serde_json::{Map, Value, json};

use crate::ResultCode;

/// One observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// A callback answered `result_code` (`Callbacks`, dimensions `Activity` and `ResultCode`; rolled
    /// up by `Family` and `ResultCode` too; and
    /// `ResultCode` alone for the alarm on `000005` whatever the activity).
    Callback {
        /// The protocol family (`v2-basic`, `kit`; `-` for a request no family recognised).
        family: &'static str,
        activity: &'static str,
        result_code: ResultCode,
    },
    /// A provisioning call took this long, success or not (`ProvisioningTime`, seconds).
    ProvisioningSeconds { seconds: f64 },
    /// A provisioning attempt failed and will be retried (`ProvisioningRetries`).
    ProvisioningRetries,
    /// The vendor's endpoint answered 401/403/404 without a result code (`ProvisionerMisconfigured`).
    ProvisionerMisconfigured,
    /// An order failed because provisioning did not succeed before its deadline (`ProvisioningDeadlinePassed`).
    ProvisioningDeadlinePassed,
    /// A lifecycle notice reached the vendor (`NoticesDelivered`).
    NoticeDelivered,
    /// A lifecycle notice failed and will be retried (`NoticeRetries`).
    NoticeRetries,
    /// A notice passed its deadline; its outbox is parked, its job dead-lettered (`NoticeDeadlinePassed`).
    NoticeDeadlinePassed,
    /// What one reconciler run found (`StuckProvisioning`, `UndeliveredNotices`, `ParkedOutboxes`).
    /// Metrics without dimensions of their own carry `Component` (`worker`, `reconciler`).
    Reconciled {
        stuck_provisioning: u64,
        undelivered_notices: u64,
        parked_outboxes: u64,
    },
    /// What one usage push pass settled (`UsageAccepted`, `UsageRejected`, `UsageDeferred` windows)
    /// and how many unpushed windows approach the 21-day horizon (`UsageNearHorizon`).
    UsagePass {
        accepted: u64,
        rejected: u64,
        deferred: u64,
        near_horizon: u64,
    },
    /// KooGallery refused a usage record for good, or it passed the horizon (`UsageRecordsRejected`).
    UsageRejected,
    /// A batch from the usage queue was refused at ingestion and dead-lettered
    /// (`UsageBatchesRefused`): the app sends something to fix.
    UsageBatchRefused,
    /// A usage push failed and will be retried (`UsagePushFailures`).
    UsagePushFailed,
    /// KooGallery refused the usage push's credentials or signature (`UsagePushMisconfigured`).
    UsagePushMisconfigured,
    /// KooGallery refused every usage record a pass tried, singling none out: the pass stopped
    /// and the windows wait (`UsagePushSystemicRefusals`).
    UsagePushSystemicRefusal,
    /// A sign-in through KooGallery ended with `outcome` (`SsoLogins`, dimension `Outcome`: `ok`,
    /// `unknown_tenant`, `not_authorized`, `auth_centre_failed`, `bad_request`, `unavailable`).
    SsoLogin { outcome: &'static str },
    /// A session's access token was refreshed, or the refresh failed (`SsoRefreshes`, dimension
    /// `Outcome`: `ok`, `failed`).
    SsoRefresh { ok: bool },
    /// A tenant auth centre could not be used: unreachable, 5xx, an answer not understood, an
    /// unusable `domainName`, or our client credentials refused (`SsoAuthCentreFailures`; the
    /// alarm's metric). A user's spent code is not one.
    SsoAuthCentreFailure,
    /// A license code could not be activated or checked because KooGallery's License API failed
    /// or refused our credentials (`LicenseActivationFailures`; an unknown code is not one).
    LicenseActivationFailure,
    /// A daily usage statistics pass failed or KooGallery refused some of its codes
    /// (`LicenseUsagePushFailures`).
    LicenseUsagePushFailure,
}

/// Where observations go.
pub trait Metrics: Send + Sync {
    fn record(&self, metric: Metric);
}

/// Discards everything (benchmarks, tools).
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn record(&self, _metric: Metric) {}
}

/// The EMF line of one observation at `timestamp_ms`: the metadata CloudWatch reads (namespace,
/// dimension sets, metric names and units), then every dimension's and metric's value as a key of
/// the line.
pub fn emf_line(namespace: &str, metric: &Metric, timestamp_ms: i64) -> String {
    let Dimensions {
        all,
        rollups,
        rollup_only,
    } = dimensions(metric);
    let values = values(metric);
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": std::iter::once(all.iter().map(|(k, _)| *k).collect::<Vec<_>>()).chain(rollups).collect::<Vec<_>>(),
                "Metrics": values.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (k, v) in all.into_iter().chain(rollup_only) {
        line.insert(k.into(), v);
    }
    for (name, _, v) in values {
        line.insert(name.into(), v);
    }
    Value::Object(line).to_string()
}

/// The dimensions of one line, which the alarms and dashboards select metrics by.
struct Dimensions {
    /// The set of every dimension, with their values.
    all: Vec<(&'static str, Value)>,
    /// Extra dimension sets beyond the one of every dimension (CloudWatch keeps each as a metric).
    rollups: Vec<Vec<&'static str>>,
    /// Keys of the line that are in a rollup only, not in the set of every dimension: added later,
    /// they leave the metrics alarms and dashboards already watch unchanged.
    rollup_only: Vec<(&'static str, Value)>,
}

/// A callback's activity and result code, rolled up by result code and by family; the component
/// alone for every other observation.
fn dimensions(metric: &Metric) -> Dimensions {
    match metric {
        Metric::Callback {
            family,
            activity,
            result_code,
        } => Dimensions {
            all: vec![
                ("Activity", json!(activity)),
                ("ResultCode", json!(result_code.as_str())),
            ],
            rollups: vec![vec!["ResultCode"], vec!["Family", "ResultCode"]],
            rollup_only: vec![("Family", json!(family))],
        },
        Metric::SsoLogin { outcome } => Dimensions {
            all: vec![("Outcome", json!(outcome))],
            rollups: Vec::new(),
            rollup_only: Vec::new(),
        },
        Metric::SsoRefresh { ok } => Dimensions {
            all: vec![("Outcome", json!(if *ok { "ok" } else { "failed" }))],
            rollups: Vec::new(),
            rollup_only: Vec::new(),
        },
        // Every line has one dimension set with at least one dimension: the component.
        _ => Dimensions {
            all: vec![("Component", json!(component(metric)))],
            rollups: Vec::new(),
            rollup_only: Vec::new(),
        },
    }
}

/// The part of the vendor's side an observation without dimensions of its own comes from.
fn component(metric: &Metric) -> &'static str {
    match metric {
        Metric::Reconciled { .. } => "reconciler",
        Metric::UsagePass { .. }
        | Metric::UsageRejected
        | Metric::UsageBatchRefused
        | Metric::UsagePushFailed
        | Metric::UsagePushMisconfigured
        | Metric::UsagePushSystemicRefusal => "metering",
        Metric::SsoLogin { .. } | Metric::SsoRefresh { .. } | Metric::SsoAuthCentreFailure => "sso",
        Metric::LicenseActivationFailure | Metric::LicenseUsagePushFailure => "license",
        _ => "worker",
    }
}

/// The metrics one observation carries: name, unit and value, the names the alarms watch.
fn values(metric: &Metric) -> Vec<(&'static str, &'static str, Value)> {
    let count = |name| vec![(name, "Count", json!(1))];
    match metric {
        Metric::Callback { .. } => count("Callbacks"),
        Metric::ProvisioningSeconds { seconds } => {
            vec![("ProvisioningTime", "Seconds", json!(seconds))]
        }
        Metric::ProvisioningRetries => count("ProvisioningRetries"),
        Metric::ProvisionerMisconfigured => count("ProvisionerMisconfigured"),
        Metric::ProvisioningDeadlinePassed => count("ProvisioningDeadlinePassed"),
        Metric::NoticeDelivered => count("NoticesDelivered"),
        Metric::NoticeRetries => count("NoticeRetries"),
        Metric::NoticeDeadlinePassed => count("NoticeDeadlinePassed"),
        Metric::Reconciled {
            stuck_provisioning,
            undelivered_notices,
            parked_outboxes,
        } => vec![
            ("StuckProvisioning", "Count", json!(stuck_provisioning)),
            ("UndeliveredNotices", "Count", json!(undelivered_notices)),
            ("ParkedOutboxes", "Count", json!(parked_outboxes)),
        ],
        Metric::UsagePass {
            accepted,
            rejected,
            deferred,
            near_horizon,
        } => vec![
            ("UsageAccepted", "Count", json!(accepted)),
            ("UsageRejected", "Count", json!(rejected)),
            ("UsageDeferred", "Count", json!(deferred)),
            ("UsageNearHorizon", "Count", json!(near_horizon)),
        ],
        Metric::UsageRejected => count("UsageRecordsRejected"),
        Metric::UsageBatchRefused => count("UsageBatchesRefused"),
        Metric::UsagePushFailed => count("UsagePushFailures"),
        Metric::UsagePushMisconfigured => count("UsagePushMisconfigured"),
        Metric::UsagePushSystemicRefusal => count("UsagePushSystemicRefusals"),
        Metric::SsoLogin { .. } => count("SsoLogins"),
        Metric::SsoRefresh { .. } => count("SsoRefreshes"),
        Metric::SsoAuthCentreFailure => count("SsoAuthCentreFailures"),
        Metric::LicenseActivationFailure => count("LicenseActivationFailures"),
        Metric::LicenseUsagePushFailure => count("LicenseUsagePushFailures"),
    }
}

/// Writes EMF lines to stdout, one `write` per line so lines of concurrent tasks never interleave.
pub struct EmfStdout {
    namespace: String,
    lock: Mutex<()>,
}

impl EmfStdout {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            lock: Mutex::new(()),
        }
    }

    /// `KOOGALLERY_METRICS_NAMESPACE` (the template sets `KooGallery/<stack>`), or its default.
    pub fn from_env() -> Self {
        Self::new(
            crate::config::Env::process()
                .text(&crate::config::catalog::METRICS_NAMESPACE)
                .unwrap_or_default(),
        )
    }
}

impl Metrics for EmfStdout {
    fn record(&self, metric: Metric) {
        let mut line = emf_line(
            &self.namespace,
            &metric,
            chrono::Utc::now().timestamp_millis(),
        );
        line.push('\n');
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // A metric that cannot be written must never fail the work it describes.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// Logs each observation as a debug line (the local host with human-readable logs).
pub struct TracingMetrics;

impl Metrics for TracingMetrics {
    fn record(&self, metric: Metric) {
        tracing::debug!(target: "koogallery::metrics", ?metric, "metric");
    }
}

/// EMF on stdout when the logs are JSON (Lambda, `KOOGALLERY_LOG_FORMAT=json`), debug log lines
/// otherwise.
pub fn for_log_format(json: bool) -> std::sync::Arc<dyn Metrics> {
    if json {
        std::sync::Arc::new(EmfStdout::from_env())
    } else {
        std::sync::Arc::new(TracingMetrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alarms in template.yaml match on these names; a rename must be deliberate.
    #[test]
    fn emf_lines_keep_the_names_the_alarms_watch() {
        let line = emf_line(
            "KooGallery/prod",
            &Metric::Callback {
                family: "v2-basic",
                activity: "newInstance",
                result_code: ResultCode::InternalError,
            },
            1_700_000_000_000,
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            json!({
                "_aws": {"Timestamp": 1_700_000_000_000_i64, "CloudWatchMetrics": [{
                    "Namespace": "KooGallery/prod",
                    "Dimensions": [["Activity", "ResultCode"], ["ResultCode"], ["Family", "ResultCode"]],
                    "Metrics": [{"Name": "Callbacks", "Unit": "Count"}]}]},
                "Activity": "newInstance", "ResultCode": "000005", "Family": "v2-basic", "Callbacks": 1
            })
        );
        let v: Value = serde_json::from_str(&emf_line(
            "K",
            &Metric::Reconciled {
                stuck_provisioning: 2,
                undelivered_notices: 3,
                parked_outboxes: 0,
            },
            1,
        ))
        .unwrap();
        assert_eq!(v["StuckProvisioning"], 2);
        assert_eq!(v["UndeliveredNotices"], 3);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Component"]])
        );
        assert_eq!(v["Component"], "reconciler");
        for (metric, name) in [
            (Metric::ProvisionerMisconfigured, "ProvisionerMisconfigured"),
            (
                Metric::ProvisioningDeadlinePassed,
                "ProvisioningDeadlinePassed",
            ),
            (Metric::NoticeDeadlinePassed, "NoticeDeadlinePassed"),
        ] {
            let v: Value = serde_json::from_str(&emf_line("K", &metric, 1)).unwrap();
            assert_eq!(v[name], 1, "{name}");
            assert_eq!(v["Component"], "worker", "{name}");
        }
        let v: Value =
            serde_json::from_str(&emf_line("K", &Metric::UsagePushSystemicRefusal, 1)).unwrap();
        assert_eq!(v["UsagePushSystemicRefusals"], 1);
        assert_eq!(v["Component"], "metering");
        let v: Value = serde_json::from_str(&emf_line(
            "K",
            &Metric::SsoLogin {
                outcome: "not_authorized",
            },
            1,
        ))
        .unwrap();
        assert_eq!(
            (v["SsoLogins"].clone(), v["Outcome"].clone()),
            (json!(1), json!("not_authorized"))
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Outcome"]])
        );
        let v: Value =
            serde_json::from_str(&emf_line("K", &Metric::SsoRefresh { ok: false }, 1)).unwrap();
        assert_eq!(
            (v["SsoRefreshes"].clone(), v["Outcome"].clone()),
            (json!(1), json!("failed"))
        );
        let v: Value =
            serde_json::from_str(&emf_line("K", &Metric::SsoAuthCentreFailure, 1)).unwrap();
        assert_eq!(
            (v["SsoAuthCentreFailures"].clone(), v["Component"].clone()),
            (json!(1), json!("sso"))
        );
    }
}
