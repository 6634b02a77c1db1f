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

/// The EMF line of one observation at `timestamp_ms`.
pub fn emf_line(namespace: &str, metric: &Metric, timestamp_ms: i64) -> String {
    let mut dims: Vec<(&str, Value)> = Vec::new();
    // Extra dimension sets beyond the one of every dimension (CloudWatch keeps each as a metric).
    let mut rollups: Vec<Vec<&str>> = Vec::new();
    let mut values: Vec<(&str, &str, Value)> = Vec::new();
    // Keys of the line that are in a rollup only, not in the set of every dimension: added later,
    // they leave the metrics alarms and dashboards already watch unchanged.
    let mut rollup_only: Vec<(&str, Value)> = Vec::new();
    match metric {
        Metric::Callback {
            family,
            activity,
            result_code,
        } => {
            dims.push(("Activity", json!(activity)));
            dims.push(("ResultCode", json!(result_code.as_str())));
            rollups.push(vec!["ResultCode"]);
            rollup_only.push(("Family", json!(family)));
            rollups.push(vec!["Family", "ResultCode"]);
            values.push(("Callbacks", "Count", json!(1)));
        }
        Metric::ProvisioningSeconds { seconds } => {
            values.push(("ProvisioningTime", "Seconds", json!(seconds)))
        }
        Metric::ProvisioningRetries => values.push(("ProvisioningRetries", "Count", json!(1))),
        Metric::ProvisionerMisconfigured => {
            values.push(("ProvisionerMisconfigured", "Count", json!(1)))
        }
        Metric::ProvisioningDeadlinePassed => {
            values.push(("ProvisioningDeadlinePassed", "Count", json!(1)))
        }
        Metric::NoticeDelivered => values.push(("NoticesDelivered", "Count", json!(1))),
        Metric::NoticeRetries => values.push(("NoticeRetries", "Count", json!(1))),
        Metric::NoticeDeadlinePassed => values.push(("NoticeDeadlinePassed", "Count", json!(1))),
        Metric::Reconciled {
            stuck_provisioning,
            undelivered_notices,
            parked_outboxes,
        } => {
            values.push(("StuckProvisioning", "Count", json!(stuck_provisioning)));
            values.push(("UndeliveredNotices", "Count", json!(undelivered_notices)));
            values.push(("ParkedOutboxes", "Count", json!(parked_outboxes)));
        }
        Metric::UsagePass {
            accepted,
            rejected,
            deferred,
            near_horizon,
        } => {
            values.push(("UsageAccepted", "Count", json!(accepted)));
            values.push(("UsageRejected", "Count", json!(rejected)));
            values.push(("UsageDeferred", "Count", json!(deferred)));
            values.push(("UsageNearHorizon", "Count", json!(near_horizon)));
        }
        Metric::UsageRejected => values.push(("UsageRecordsRejected", "Count", json!(1))),
        Metric::UsageBatchRefused => values.push(("UsageBatchesRefused", "Count", json!(1))),
        Metric::UsagePushFailed => values.push(("UsagePushFailures", "Count", json!(1))),
        Metric::UsagePushMisconfigured => {
            values.push(("UsagePushMisconfigured", "Count", json!(1)))
        }
        Metric::UsagePushSystemicRefusal => {
            values.push(("UsagePushSystemicRefusals", "Count", json!(1)))
        }
    }
    if dims.is_empty() {
        // Every line has one dimension set with at least one dimension: the component.
        let component = match metric {
            Metric::Reconciled { .. } => "reconciler",
            Metric::UsagePass { .. }
            | Metric::UsageRejected
            | Metric::UsageBatchRefused
            | Metric::UsagePushFailed
            | Metric::UsagePushMisconfigured
            | Metric::UsagePushSystemicRefusal => "metering",
            _ => "worker",
        };
        dims.push(("Component", json!(component)));
    }
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": std::iter::once(dims.iter().map(|(k, _)| *k).collect::<Vec<_>>()).chain(rollups).collect::<Vec<_>>(),
                "Metrics": values.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (k, v) in dims.into_iter().chain(rollup_only) {
        line.insert(k.into(), v);
    }
    for (name, _, v) in values {
        line.insert(name.into(), v);
    }
    Value::Object(line).to_string()
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
    }
}
