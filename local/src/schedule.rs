//! The local stand-ins for EventBridge Scheduler: the reconciler and the usage push on timers.

use std::sync::Arc;

use koogallery::{
    config::Config,
    instance::InstanceStore,
    jobs::JobQueue,
    metering::{UsagePusher, UsageStore},
};
use provision_worker::Worker;
use tokio::sync::watch;

use crate::StartError;

/// The reconciler over the same store, queue, clock and metrics as the worker.
pub(crate) fn reconciler(
    store: Arc<dyn koogallery::instance::InstanceStore>,
    queue: Arc<dyn JobQueue>,
    worker: &Worker,
    config: &Config,
) -> koogallery::reconciler::Reconciler {
    koogallery::reconciler::Reconciler {
        store,
        queue,
        clock: worker.clock.clone(),
        settings: config.settings.worker,
        metrics: worker.metrics.clone(),
    }
}

/// The same usage pusher as the Lambda function's, over the worker's clock and metrics. With the
/// marketplace offline there is none, and the log says so: usage is kept, unpushed.
pub(crate) fn usage_pusher(
    config: &Config,
    usage: Arc<dyn UsageStore>,
    instances: Arc<dyn InstanceStore>,
    worker: &Worker,
    exchanges: &koogallery::exchange::ExchangeRecorder,
) -> Result<Option<UsagePusher>, StartError> {
    let pusher = usage_push::pusher(
        &config.settings,
        &config.secrets,
        usage,
        instances,
        worker.clock.clone(),
        worker.metrics.clone(),
        exchanges,
    )?;
    if pusher.is_none() {
        tracing::warn!("{}", usage_push::NOT_CONFIGURED);
    }
    Ok(pusher)
}

/// The local host's stand-in for an EventBridge schedule: `pass` right away (it finds what a stop
/// or a crash left behind), then once every `period`, until the host stops.
pub(crate) async fn every<F, Fut>(
    period: std::time::Duration,
    mut stopped: watch::Receiver<bool>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        pass().await;
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// The usage push's schedule (EventBridge Scheduler's on AWS); nothing without a pusher.
pub(crate) async fn push_every(
    pusher: Option<UsagePusher>,
    period: std::time::Duration,
    stopped: watch::Receiver<bool>,
) {
    let Some(pusher) = pusher else { return };
    let pusher = &pusher;
    every(period, stopped, move || async move {
        match pusher.run_once().await {
            Ok(report) if report.pushes > 0 || report.stopped.is_some() => {
                tracing::info!(?report, "usage push pass")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "usage push pass failed; next pass as scheduled"),
        }
    })
    .await
}

/// The reconciler's schedule (EventBridge Scheduler's job on AWS); each pass is kept in the
/// exchange log ([`koogallery::operator::keep_pass`]).
pub(crate) async fn reconcile_every(
    reconciler: koogallery::reconciler::Reconciler,
    period: std::time::Duration,
    health: Arc<crate::Health>,
    stopped: watch::Receiver<bool>,
    exchanges: koogallery::exchange::ExchangeRecorder,
) {
    let (reconciler, health, exchanges) = (&reconciler, &health, &exchanges);
    every(period, stopped, move || async move {
        match reconciler.run_once().await {
            Ok(report) => {
                health.reconciled();
                let now = reconciler.clock.now();
                koogallery::operator::keep_pass(
                    exchanges,
                    &report,
                    koogallery::operator::SCHEDULE,
                    now,
                );
            }
            Err(e) => {
                tracing::error!(error = %koogallery::callbacks::error_chain(&e), "reconciler pass failed; next pass as scheduled")
            }
        }
    })
    .await
}
