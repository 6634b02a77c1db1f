//! The operator's views and actions (docs/operations.md, "The operator console"): what
//! `koogallery-admin` and the console read and do, the same on every backend. A buyer calls ("I
//! paid an hour ago and can't log in"): find the instance by customer or order, read its record,
//! history, outbox, claims, usage and every exchange about it, and redrive what the worker gave up
//! on.
//!
//! - [`InstanceListing`]: instances by customer, order, state, product or SKU, and time.
//! - [`DeadLetters`]: what the worker gave up on; redriven or discarded by an operator.
//! - [`accounts`]: the buyer's 联营 tenants, their SSO sessions and the License codes of the
//!   instance's order ([`KitTenants`], [`SsoSessions`], [`OrderLicenses`]), read only.
//! - [`Operator`]: the service over those ports, the instance store, the exchange log and the
//!   usage store. Every action is idempotent and kept in the exchange log (direction `operator`:
//!   who, when, what, and what came of it).
//! - [`view`]: the JSON the operator API answers, a versioned contract (`"v": 1`).

pub mod accounts;
pub mod view;

pub use accounts::{KitTenant, KitTenants, OrderLicenses, SsoSessions};

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    StoreError,
    clock::Clock,
    exchange::{Capture, Direction, ExchangeFilter, ExchangeLog, ExchangeQuery, ExchangeRecorder},
    instance::{Instance, InstanceState, InstanceStore},
    jobs::{Job, QueueError},
    metering::UsageStore,
    reconciler::{Reconciler, Report},
};

/// Which instances a listing asks for; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFilter {
    /// The buyer (`customerId` of the order, once Query Order has been read).
    pub customer_id: Option<String>,
    pub order_id: Option<String>,
    pub state: Option<InstanceState>,
    /// A product ID or a SKU code.
    pub product: Option<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// Newest first, at most this many ([`InstanceFilter::bounded_limit`]).
    pub limit: usize,
}

impl InstanceFilter {
    pub const MAX_LIMIT: usize = 1000;

    pub fn bounded_limit(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }

    /// Whether `i` is one of those asked for.
    pub fn matches(&self, i: &Instance) -> bool {
        let order = i.order.as_ref();
        self.customer_id
            .as_deref()
            .is_none_or(|c| order.and_then(|o| o.customer_id.as_deref()) == Some(c))
            && self
                .order_id
                .as_deref()
                .is_none_or(|o| i.order_id.as_str() == o)
            && self.state.is_none_or(|s| i.state == s)
            && self.product.as_deref().is_none_or(|p| {
                order.is_some_and(|o| {
                    o.product_id.as_deref() == Some(p) || o.sku_code.as_deref() == Some(p)
                })
            })
            && self.since.is_none_or(|t| i.created_at >= t)
            && self.until.is_none_or(|t| i.created_at < t)
    }

    /// `instances` filtered, newest first (then by ID), at most the limit: what a store that
    /// scans answers.
    pub fn select(&self, instances: impl IntoIterator<Item = Instance>) -> Vec<Instance> {
        let mut found: Vec<Instance> = instances.into_iter().filter(|i| self.matches(i)).collect();
        found.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.instance_id.as_str().cmp(b.instance_id.as_str()))
        });
        found.truncate(self.bounded_limit());
        found
    }
}

/// Instances found by what an operator knows of them.
#[async_trait]
pub trait InstanceListing: Send + Sync {
    /// The instances `filter` asks for, newest first, at most its limit.
    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, StoreError>;
}

/// A job the worker gave up on.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The queue's own ID for it (the embedded queue's number, an SQS message ID).
    pub id: String,
    pub job: Job,
    /// Deliveries made before it was dead-lettered.
    pub attempts: u32,
    pub reason: String,
    /// When it was dead-lettered.
    pub at: DateTime<Utc>,
}

/// The dead letters of the job queue.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Every dead letter, oldest first.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError>;

    /// Puts dead letter `id` back on the queue with a fresh attempt budget; false when there is
    /// no such dead letter (already redriven or discarded).
    async fn redrive(&self, id: &str) -> Result<bool, QueueError>;

    /// Removes dead letter `id` for good; false when there is no such dead letter.
    async fn discard(&self, id: &str) -> Result<bool, QueueError>;

    /// Redrives `ids` in their order, as [`DeadLetters::redrive`] each, stopping at the first
    /// failure. A queue without access by ID (SQS) overrides it to look for them all at once.
    async fn redrive_each(&self, ids: &[String]) -> Redrives {
        let mut done = Redrives::default();
        for id in ids {
            match self.redrive(id).await {
                Ok(found) => done.redriven.push(found),
                Err(e) => {
                    done.failed = Some(e);
                    break;
                }
            }
        }
        done
    }
}

/// What [`DeadLetters::redrive_each`] did: for the first `redriven.len()` IDs asked, whether each
/// went back on the queue (false: it was gone already); then the failure that stopped it.
#[derive(Debug, Default)]
pub struct Redrives {
    pub redriven: Vec<bool>,
    pub failed: Option<QueueError>,
}

/// Who asked for an action: the local admin token's holder, an IAM principal's ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who(pub String);

/// Why an operator call failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("the reconciler failed: {0}")]
    Reconcile(#[from] crate::reconciler::ReconcileError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is not kept by this deployment")]
    NotKept(&'static str),
}

impl OperatorError {
    /// Worth asking again (the store or the queue did not answer).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
            Self::Reconcile(_) => true,
            Self::Invalid(_) | Self::NotKept(_) => false,
        }
    }
}

/// Which dead letters a redrive takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    One(String),
    /// Every dead letter of one instance (oldest first).
    Instance(String),
    /// Every dead letter (oldest first).
    All,
}

/// What a redrive or a discard did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ActionOutcome {
    /// The dead letters acted on, in the order acted on.
    pub done: Vec<String>,
    /// Asked for but gone already (the repeat of an action, or another operator first).
    pub gone: Vec<String>,
}

/// The operator service: the views and the actions over the deployment's ports.
pub struct Operator {
    pub instances: Arc<dyn InstanceStore>,
    pub listing: Arc<dyn InstanceListing>,
    pub dead_letters: Arc<dyn DeadLetters>,
    /// None when the exchange log is off.
    pub exchanges: Option<Arc<dyn ExchangeLog>>,
    /// Where actions are kept (the exchange log's recorder).
    pub recorder: ExchangeRecorder,
    pub usage: Option<Arc<dyn UsageStore>>,
    pub reconciler: Option<Arc<Reconciler>>,
    /// The 联营 tenants stored under an instance (the Kit syncs' directory).
    pub kit_tenants: Arc<dyn KitTenants>,
    /// The SSO sessions of those tenants.
    pub sso_sessions: Arc<dyn SsoSessions>,
    /// The License codes of an instance's order.
    pub licenses: Arc<dyn OrderLicenses>,
    pub clock: Arc<dyn Clock>,
}

/// The exchanges an instance page shows, at most.
pub const EXCHANGES_PER_INSTANCE: usize = 100;

impl Operator {
    /// Instances by what the operator knows.
    pub async fn instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, OperatorError> {
        Ok(self.listing.list_instances(filter).await?)
    }

    /// Everything about one instance; `None` when there is no such instance.
    pub async fn instance(
        &self,
        instance_id: &str,
    ) -> Result<Option<view::InstanceDetail>, OperatorError> {
        let Some(instance) = self.instances.get(instance_id).await? else {
            return Ok(None);
        };
        let history = self.instances.events(instance_id).await?;
        let exchanges = match &self.exchanges {
            Some(log) => {
                log.find(
                    &ExchangeQuery::newest(
                        ExchangeFilter::Instance(instance_id.to_owned()),
                        EXCHANGES_PER_INSTANCE,
                    ),
                    self.clock.now(),
                )
                .await?
            }
            None => Vec::new(),
        };
        let usage = match &self.usage {
            Some(u) => u.windows_of(instance_id).await?,
            None => Vec::new(),
        };
        let dead_letters = self
            .dead_letters
            .dead_letters()
            .await?
            .into_iter()
            .filter(|d| d.job.instance_id() == Some(instance_id))
            .collect();
        let now = self.clock.now();
        let (kit_tenants, license_codes) = futures_util::future::try_join(
            self.kit_tenants.kit_tenants(instance_id),
            self.licenses.licenses_of_order(instance.order_id.as_str()),
        )
        .await?;
        let sso_sessions = self.sso_sessions_of(&kit_tenants, now).await?;
        Ok(Some(view::InstanceDetail {
            instance,
            history,
            exchanges,
            usage,
            dead_letters,
            exchange_log: self.exchanges.is_some(),
            kit_tenants,
            sso_sessions,
            license_codes,
            read_at: now,
        }))
    }

    /// The live SSO sessions of `tenants` (an ended one the store has not purged yet is left
    /// out), newest sign-in first.
    async fn sso_sessions_of(
        &self,
        tenants: &[KitTenant],
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::sso::Session>, OperatorError> {
        let per_tenant = futures_util::future::try_join_all(
            tenants
                .iter()
                .map(|t| self.sso_sessions.tenant_sessions(&t.key)),
        )
        .await?;
        let mut sessions: Vec<_> = per_tenant
            .into_iter()
            .flatten()
            .filter(|s| !s.is_over(now))
            .collect();
        sessions.sort_by(|a, b| {
            b.auth_time
                .cmp(&a.auth_time)
                .then_with(|| a.sid.cmp(&b.sid))
        });
        Ok(sessions)
    }

    /// A page of the exchange log.
    pub async fn exchanges(
        &self,
        query: &ExchangeQuery,
    ) -> Result<Vec<crate::exchange::Exchange>, OperatorError> {
        let log = self
            .exchanges
            .as_ref()
            .ok_or(OperatorError::NotKept("the exchange log"))?;
        Ok(log.find(query, self.clock.now()).await?)
    }

    /// Dead letters, oldest first: of one instance, or with a reason containing `reason`.
    pub async fn dead_letters(
        &self,
        instance_id: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Vec<DeadLetter>, OperatorError> {
        Ok(self
            .dead_letters
            .dead_letters()
            .await?
            .into_iter()
            .filter(|d| instance_id.is_none_or(|i| d.job.instance_id() == Some(i)))
            .filter(|d| reason.is_none_or(|r| d.reason.contains(r)))
            .collect())
    }

    /// Puts dead letters back on the queue, oldest first: a later notice never goes ahead of an
    /// earlier one (and the worker drains an outbox in `seq` order whatever the queue's order).
    /// Idempotent: a dead letter redriven already is reported `gone`.
    pub async fn redrive(
        &self,
        selection: &Selection,
        who: &Who,
    ) -> Result<ActionOutcome, OperatorError> {
        let chosen = self.select(selection).await?;
        let mut outcome = ActionOutcome::default();
        let ids: Vec<String> = chosen.iter().map(|d| d.id.clone()).collect();
        let redrives = self.dead_letters.redrive_each(&ids).await;
        for (d, redriven) in chosen.iter().zip(&redrives.redriven) {
            if *redriven {
                outcome.done.push(d.id.clone());
                self.keep_action(who, "redrive", Some(d), None);
            } else {
                outcome.gone.push(d.id.clone());
            }
        }
        if let Some(e) = redrives.failed {
            return Err(e.into());
        }
        if let Selection::One(id) = selection
            && chosen.is_empty()
        {
            outcome.gone.push(id.clone());
        }
        Ok(outcome)
    }

    /// Removes a dead letter for good, with the reason kept in the exchange log.
    pub async fn discard(
        &self,
        id: &str,
        reason: &str,
        who: &Who,
    ) -> Result<ActionOutcome, OperatorError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(OperatorError::Invalid(
                "a discard needs a reason (it is kept in the exchange log)".into(),
            ));
        }
        let found = self.select(&Selection::One(id.to_owned())).await?;
        let mut outcome = ActionOutcome::default();
        match found.first() {
            Some(d) if self.dead_letters.discard(id).await? => {
                outcome.done.push(id.to_owned());
                self.keep_action(who, "discard", Some(d), Some(reason));
            }
            _ => outcome.gone.push(id.to_owned()),
        }
        Ok(outcome)
    }

    /// Runs a reconciler pass now (it re-queues what is stuck) and answers what it found.
    pub async fn reconcile(&self, who: &Who) -> Result<Report, OperatorError> {
        let reconciler = self
            .reconciler
            .as_ref()
            .ok_or(OperatorError::NotKept("the reconciler"))?;
        let report = reconciler.run_once().await?;
        keep_pass(&self.recorder, &report, &who.0, self.clock.now());
        Ok(report)
    }

    /// The reconciler's last passes (forced or scheduled), newest first, at most `limit`, from
    /// the exchange log's actions.
    pub async fn reconciler_passes(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::exchange::Exchange>, OperatorError> {
        let log = self
            .exchanges
            .as_ref()
            .ok_or(OperatorError::NotKept("the exchange log"))?;
        let now = self.clock.now();
        let mut query = ExchangeQuery::newest(ExchangeFilter::Actions, ExchangeQuery::MAX_LIMIT);
        let mut passes = Vec::new();
        // Actions are few beside the passes; a bound keeps a log of only redrives cheap to read.
        for _ in 0..PASS_PAGES {
            let page = log.find(&query, now).await?;
            let Some(last) = page.last() else { break };
            query.before = Some(last.id.clone());
            passes.extend(page.into_iter().filter(is_pass));
            if passes.len() >= limit {
                break;
            }
        }
        passes.truncate(limit);
        Ok(passes)
    }

    async fn select(&self, selection: &Selection) -> Result<Vec<DeadLetter>, OperatorError> {
        let all = self.dead_letters.dead_letters().await?;
        Ok(match selection {
            Selection::One(id) => all.into_iter().filter(|d| &d.id == id).collect(),
            Selection::Instance(i) => all
                .into_iter()
                .filter(|d| d.job.instance_id() == Some(i.as_str()))
                .collect(),
            Selection::All => all,
        })
    }

    fn action_capture(&self, who: &Who, action: &'static str) -> Capture {
        let mut c = Capture::outbound(self.clock.now(), "operator", action);
        c.direction = Direction::Operator;
        c.request = serde_json::to_vec(&serde_json::json!({ "who": who.0 })).unwrap_or_default();
        c
    }

    fn keep_action(
        &self,
        who: &Who,
        action: &'static str,
        d: Option<&DeadLetter>,
        reason: Option<&str>,
    ) {
        let mut c = self.action_capture(who, action);
        if let Some(d) = d {
            c.instance_id = d.job.instance_id().map(str::to_owned);
            c.request = serde_json::to_vec(&serde_json::json!({
                "who": who.0,
                "dead_letter": d.id,
                "job": d.job,
                "dead_letter_reason": d.reason,
                "reason": reason,
            }))
            .unwrap_or_default();
        }
        self.recorder.record(c);
    }
}

/// Pages of actions read for [`Operator::reconciler_passes`], at most.
const PASS_PAGES: usize = 4;

/// Who runs the reconciler's scheduled passes, as the exchange log keeps it (the local host's
/// timer, EventBridge Scheduler on AWS).
pub const SCHEDULE: &str = "schedule";

/// Keeps reconciler pass `report`, run by `who` at `at`, in the exchange log: the pass, and an
/// entry under each instance it re-queued a job for (below).
pub fn keep_pass(recorder: &ExchangeRecorder, report: &Report, who: &str, at: DateTime<Utc>) {
    for capture in pass_captures(report, who, at) {
        recorder.record(capture);
    }
}

/// The family and activity a reconciler pass is kept under.
pub const PASS_FAMILY: &str = "reconciler";
pub const PASS_ACTIVITY: &str = "pass";

/// Whether `e` is a reconciler pass (not one of its per-instance entries, nor an operator's
/// other action).
fn is_pass(e: &crate::exchange::Exchange) -> bool {
    e.family == PASS_FAMILY && e.activity == PASS_ACTIVITY && e.instance_id.is_none()
}

/// What a reconciler pass is kept as in the exchange log (direction `operator`): the pass, with
/// who ran it (an operator, or `schedule`) and what it found; and for each instance it
/// re-queued a job for, one exchange under that instance, so the instance's timeline shows it.
/// Parked outboxes are in the pass only: every pass finds them again until an operator acts.
fn pass_captures(report: &Report, who: &str, at: DateTime<Utc>) -> Vec<Capture> {
    let capture = |instance: Option<&str>, response: serde_json::Value| {
        let mut c = Capture::outbound(at, PASS_FAMILY, PASS_ACTIVITY);
        c.direction = Direction::Operator;
        c.instance_id = instance.map(str::to_owned);
        c.request = serde_json::to_vec(&serde_json::json!({ "who": who })).unwrap_or_default();
        c.response = serde_json::to_vec(&response).unwrap_or_default();
        c
    };
    let mut captures = vec![capture(None, view::report_json(report))];
    for (found, ids) in [
        ("stuck_provisioning", &report.stuck_provisioning),
        ("undelivered_notices", &report.undelivered_notices),
    ] {
        for id in ids {
            captures.push(capture(
                Some(id.as_str()),
                serde_json::json!({ "found": found, "requeued": true }),
            ));
        }
    }
    captures
}

#[cfg(test)]
mod tests;
