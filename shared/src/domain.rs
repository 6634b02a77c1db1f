//! The instance: its state machine, event history and idempotency rules (Decisions §6).
//!
//! ```text
//! provisioning ──▶ active ◀──▶ frozen
//!      │              │          │
//!      ▼              ▼          ▼
//!    failed ───────▶ released ◀──┘
//! ```
//! Every change is a pure method that mutates the record and returns the event to store with it,
//! or says that nothing changed (the idempotent repeat). Storage applies both atomically.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    CallbackError, ResultCode,
    ports::InstanceStore,
    wire::{AppInfo, RefreshScene},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Provisioning,
    Active,
    Failed,
    Frozen,
    Released,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Active => "active",
            Self::Failed => "failed",
            Self::Frozen => "frozen",
            Self::Released => "released",
        }
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Billing mode of an order line (Query Order `chargingMode`, openapi §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChargingMode {
    Period,
    OneTime,
    OnDemand,
    OnDemandPkg,
}

/// What the worker learns about the order from the marketplace (Query Order, openapi §2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderDetails {
    pub order_type: Option<String>,
    pub charging_mode: Option<ChargingMode>,
    pub period_type: Option<String>,
    pub period_number: Option<u32>,
    pub product_id: Option<String>,
    pub sku_code: Option<String>,
    pub product_name: Option<String>,
    /// Linear attribute quantity (users, Mbps, …).
    pub quantity: Option<f64>,
    pub expire_time: Option<DateTime<Utc>>,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    /// Extension parameters (`name`/`value`) of the order and the line.
    #[serde(default)]
    pub extend_params: Vec<(String, String)>,
    /// Synthesised by the offline marketplace client, not read from KooGallery.
    #[serde(default)]
    pub offline: bool,
}

/// Why provisioning ended for good; `code` is what queryInstance answers (Decisions §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: ResultCode,
    pub message: String,
}

/// Bookkeeping that keeps provisioning exactly-once while jobs are delivered at least once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningProgress {
    /// A provisioning job reached the queue. Until then a repeated newInstance enqueues again.
    pub enqueued: bool,
    /// The worker delivery that holds the right to call the provisioner, and until when.
    pub claim: Option<Claim>,
    /// Provisioning attempts started so far.
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub token: String,
    pub until: DateTime<Utc>,
}

/// Who caused a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A KooGallery callback.
    KooGallery { activity: String },
    /// The provisioning worker.
    Worker,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Created {
        business_id: String,
    },
    ProvisioningStarted {
        attempt: u32,
    },
    Provisioned,
    ProvisioningFailed {
        code: ResultCode,
        message: String,
    },
    Refreshed {
        scene: RefreshScene,
        order_id: String,
        expire_time: DateTime<Utc>,
        product_id: Option<String>,
    },
    Frozen,
    Unfrozen,
    Upgraded {
        order_id: String,
        order_line_id: String,
    },
    Released {
        order_id: Option<String>,
    },
    /// A debug newInstance replayed a released debug instance (the daily probes replay whole cases).
    DebugRestarted {
        business_id: String,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::ProvisioningStarted { .. } => "provisioning_started",
            Self::Provisioned => "provisioned",
            Self::ProvisioningFailed { .. } => "provisioning_failed",
            Self::Refreshed { .. } => "refreshed",
            Self::Frozen => "frozen",
            Self::Unfrozen => "unfrozen",
            Self::Upgraded { .. } => "upgraded",
            Self::Released { .. } => "released",
            Self::DebugRestarted { .. } => "debug_restarted",
        }
    }

    /// Events the vendor's systems hear about through the provisioner's `notify` (after provisioning).
    pub fn is_lifecycle_notice(&self) -> bool {
        matches!(
            self,
            Self::Refreshed { .. }
                | Self::Frozen
                | Self::Unfrozen
                | Self::Upgraded { .. }
                | Self::Released { .. }
        )
    }
}

/// One entry of an instance's history: who, what, when, and the state before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceEvent {
    pub instance_id: String,
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub kind: EventKind,
    pub from: Option<InstanceState>,
    pub to: InstanceState,
    /// Caused by a debug call (`testFlag=1`).
    #[serde(default)]
    pub test: bool,
}

/// The record of one purchased instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub instance_id: String,
    pub order_id: String,
    pub order_line_id: String,
    pub state: InstanceState,
    /// Created by a debug call: answered like a real one, nothing created outside the table (Decisions §7).
    pub test: bool,
    pub failure: Option<Failure>,
    pub app_info: Option<AppInfo>,
    pub order: Option<OrderDetails>,
    pub expire_time: Option<DateTime<Utc>>,
    /// Idempotency keys of refresh and upgrade calls already applied (Decisions §6).
    pub applied: BTreeSet<String>,
    pub provisioning: ProvisioningProgress,
    /// Sequence numbers of lifecycle events not yet delivered to the provisioner (an outbox).
    pub pending_notices: BTreeSet<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version; every save bumps it by one.
    pub version: u64,
    /// Sequence number of the next event.
    pub next_seq: u64,
}

/// The result of asking the state machine to do something.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Changed(InstanceEvent),
    /// Bookkeeping only (claims, outbox, order details): saved, but no history entry.
    Quiet,
    /// Already so: the idempotent repeat, answered as success and recorded nowhere.
    Unchanged,
}

impl Instance {
    /// A new record for a newInstance call; the instanceId is the first call's `businessId` (Decisions §6).
    pub fn new_provisioning(
        order_id: &str,
        order_line_id: &str,
        business_id: &str,
        test: bool,
        now: DateTime<Utc>,
    ) -> (Instance, InstanceEvent) {
        let mut inst = Instance {
            instance_id: business_id.to_owned(),
            order_id: order_id.to_owned(),
            order_line_id: order_line_id.to_owned(),
            state: InstanceState::Provisioning,
            test,
            failure: None,
            app_info: None,
            order: None,
            expire_time: None,
            applied: BTreeSet::new(),
            provisioning: ProvisioningProgress::default(),
            pending_notices: BTreeSet::new(),
            created_at: now,
            updated_at: now,
            version: 0,
            next_seq: 0,
        };
        let ev = inst.event(
            now,
            Actor::KooGallery {
                activity: "newInstance".into(),
            },
            EventKind::Created {
                business_id: business_id.to_owned(),
            },
            None,
        );
        (inst, ev)
    }

    fn event(
        &mut self,
        at: DateTime<Utc>,
        actor: Actor,
        kind: EventKind,
        from: Option<InstanceState>,
    ) -> InstanceEvent {
        let ev = InstanceEvent {
            instance_id: self.instance_id.clone(),
            seq: self.next_seq,
            at,
            actor,
            kind,
            from,
            to: self.state,
            test: self.test,
        };
        self.next_seq += 1;
        self.updated_at = at;
        ev
    }

    fn transition(
        &mut self,
        to: InstanceState,
        at: DateTime<Utc>,
        actor: Actor,
        kind: EventKind,
    ) -> Outcome {
        let from = self.state;
        self.state = to;
        let ev = self.event(at, actor, kind, Some(from));
        // Debug records create nothing outside the table, so they notify no one (Decisions §7).
        if ev.kind.is_lifecycle_notice() && !self.test && self.app_info.is_some() {
            self.pending_notices.insert(ev.seq);
        }
        Outcome::Changed(ev)
    }

    fn not_now(&self, action: &str) -> CallbackError {
        CallbackError::NotNow(format!(
            "instance {} is {}; cannot {action} yet, retry later",
            self.instance_id, self.state
        ))
    }

    fn released(&self) -> CallbackError {
        CallbackError::InstanceNotFound(format!("{} (released)", self.instance_id))
    }

    /// The worker finished provisioning.
    pub fn activate(
        &mut self,
        app_info: AppInfo,
        now: DateTime<Utc>,
    ) -> Result<Outcome, CallbackError> {
        match self.state {
            InstanceState::Provisioning => {
                self.app_info = Some(app_info);
                self.provisioning.claim = None;
                Ok(self.transition(
                    InstanceState::Active,
                    now,
                    Actor::Worker,
                    EventKind::Provisioned,
                ))
            }
            InstanceState::Active | InstanceState::Frozen => Ok(Outcome::Unchanged),
            other => Err(CallbackError::Rejected {
                code: ResultCode::InternalError,
                message: format!("instance {} is {other}; cannot activate", self.instance_id),
            }),
        }
    }

    /// Provisioning ended for good; queryInstance will answer `code` (Decisions §5).
    pub fn fail(&mut self, code: ResultCode, message: String, now: DateTime<Utc>) -> Outcome {
        if self.state != InstanceState::Provisioning {
            return Outcome::Unchanged;
        }
        let code = if code.is_failure() {
            code
        } else {
            ResultCode::InternalError
        };
        self.failure = Some(Failure {
            code,
            message: message.clone(),
        });
        self.provisioning.claim = None;
        self.transition(
            InstanceState::Failed,
            now,
            Actor::Worker,
            EventKind::ProvisioningFailed { code, message },
        )
    }

    /// updateInstanceStatus FREEZE (callbacks §6.4): idempotent; data is kept.
    pub fn freeze(&mut self, now: DateTime<Utc>) -> Result<Outcome, CallbackError> {
        match self.state {
            InstanceState::Active => Ok(self.transition(
                InstanceState::Frozen,
                now,
                koo("updateInstanceStatus"),
                EventKind::Frozen,
            )),
            InstanceState::Frozen => Ok(Outcome::Unchanged),
            // Nothing runs for a failed order, so there is nothing to freeze.
            InstanceState::Failed => Ok(Outcome::Unchanged),
            InstanceState::Provisioning => Err(self.not_now("freeze")),
            InstanceState::Released => Err(self.released()),
        }
    }

    /// updateInstanceStatus UNFREEZE (callbacks §6.4): idempotent.
    pub fn unfreeze(&mut self, now: DateTime<Utc>) -> Result<Outcome, CallbackError> {
        match self.state {
            InstanceState::Frozen => Ok(self.transition(
                InstanceState::Active,
                now,
                koo("updateInstanceStatus"),
                EventKind::Unfrozen,
            )),
            InstanceState::Active => Ok(Outcome::Unchanged),
            InstanceState::Provisioning => Err(self.not_now("unfreeze")),
            InstanceState::Failed => Err(CallbackError::Rejected {
                code: ResultCode::InternalError,
                message: format!(
                    "instance {} failed to provision; it cannot be unfrozen",
                    self.instance_id
                ),
            }),
            InstanceState::Released => Err(self.released()),
        }
    }

    /// A debug newInstance (`testFlag=1`) for a released debug record makes it active again.
    /// KooGallery's daily probes replay the seller's debug cases (create, query, …, release) and
    /// debug calls must be repeatable (callbacks §1); the record owns nothing outside the table, so
    /// restarting it is safe. Real records are never restarted.
    pub fn restart_debug(&mut self, business_id: &str, now: DateTime<Utc>) -> Outcome {
        if !self.test || self.state != InstanceState::Released {
            return Outcome::Unchanged;
        }
        let kind = EventKind::DebugRestarted {
            business_id: business_id.to_owned(),
        };
        self.transition(InstanceState::Active, now, koo("newInstance"), kind)
    }

    /// releaseInstance (callbacks §6.5): a repeat is success and does nothing again.
    pub fn release(&mut self, order_id: Option<String>, now: DateTime<Utc>) -> Outcome {
        if self.state == InstanceState::Released {
            return Outcome::Unchanged;
        }
        self.provisioning.claim = None;
        self.transition(
            InstanceState::Released,
            now,
            koo("releaseInstance"),
            EventKind::Released { order_id },
        )
    }

    /// refreshInstance (callbacks §6.3): sets the expiry to the absolute `expire_time`, also when a
    /// cancelled renewal moves it backwards. Idempotent per (instanceId, orderId, scene).
    pub fn refresh(
        &mut self,
        scene: RefreshScene,
        order_id: &str,
        product_id: Option<String>,
        expire_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, CallbackError> {
        if self.state == InstanceState::Released {
            return Err(self.released());
        }
        let key = format!("refresh:{order_id}:{}", scene.as_str());
        if self.applied.contains(&key) {
            return Ok(Outcome::Unchanged);
        }
        self.applied.insert(key);
        self.expire_time = Some(expire_time);
        if let (Some(p), Some(order)) = (&product_id, self.order.as_mut()) {
            order.product_id = Some(p.clone());
        }
        let kind = EventKind::Refreshed {
            scene,
            order_id: order_id.to_owned(),
            expire_time,
            product_id,
        };
        let state = self.state;
        Ok(self.transition(state, now, koo("refreshInstance"), kind))
    }

    /// upgradeInstance (callbacks §6.6): records the new order; the worker reads its spec from the
    /// marketplace and tells the provisioner. Idempotent per (instanceId, orderId, orderLineId).
    pub fn upgrade(
        &mut self,
        order_id: &str,
        order_line_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, CallbackError> {
        match self.state {
            InstanceState::Released => return Err(self.released()),
            InstanceState::Provisioning => return Err(self.not_now("upgrade")),
            InstanceState::Failed => {
                return Err(CallbackError::Rejected {
                    code: ResultCode::NoResource,
                    message: format!(
                        "instance {} failed to provision; it cannot be upgraded",
                        self.instance_id
                    ),
                });
            }
            InstanceState::Active | InstanceState::Frozen => {}
        }
        let key = format!("upgrade:{order_id}:{order_line_id}");
        if self.applied.contains(&key) {
            return Ok(Outcome::Unchanged);
        }
        self.applied.insert(key);
        let kind = EventKind::Upgraded {
            order_id: order_id.to_owned(),
            order_line_id: order_line_id.to_owned(),
        };
        let state = self.state;
        Ok(self.transition(state, now, koo("upgradeInstance"), kind))
    }

    /// Records a worker event that changes no state (attempt started, order details refreshed).
    pub fn note(&mut self, kind: EventKind, now: DateTime<Utc>) -> InstanceEvent {
        let state = self.state;
        self.event(now, Actor::Worker, kind, Some(state))
    }

    /// Whether queryInstance may hand out access information.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, InstanceState::Active | InstanceState::Frozen)
    }
}

fn koo(activity: &str) -> Actor {
    Actor::KooGallery {
        activity: activity.to_owned(),
    }
}

/// Loads an instance, applies `change`, and saves record and event together with a compare-and-set,
/// retrying from a fresh read when another writer got there first.
pub async fn mutate<F>(
    store: &dyn InstanceStore,
    instance_id: &str,
    mut change: F,
) -> Result<(Instance, Outcome), CallbackError>
where
    F: FnMut(&mut Instance) -> Result<Outcome, CallbackError> + Send,
{
    const ATTEMPTS: usize = 8;
    for _ in 0..ATTEMPTS {
        let Some(mut inst) = store.get(instance_id).await? else {
            return Err(CallbackError::InstanceNotFound(instance_id.to_owned()));
        };
        let expected = inst.version;
        let outcome = change(&mut inst)?;
        let events: &[InstanceEvent] = match &outcome {
            Outcome::Unchanged => return Ok((inst, outcome)),
            Outcome::Quiet => &[],
            Outcome::Changed(ev) => std::slice::from_ref(ev),
        };
        match store.save(&inst, expected, events).await {
            Ok(()) => {
                inst.version = expected + 1;
                return Ok((inst, outcome));
            }
            Err(crate::StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(crate::StoreError::Conflict.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        crate::time::parse_compact("20260101000000").unwrap()
    }

    fn active() -> Instance {
        let (mut i, _) = Instance::new_provisioning("O", "O-1", "inst-1", false, now());
        let app = AppInfo {
            front_end_url: "https://x".into(),
            admin_url: None,
            user_name: None,
            password: None,
            memo: None,
        };
        assert!(matches!(
            i.activate(app, now()).unwrap(),
            Outcome::Changed(_)
        ));
        i
    }

    #[test]
    fn freeze_unfreeze_round_trip_is_idempotent_and_recorded() {
        let mut i = active();
        let Outcome::Changed(ev) = i.freeze(now()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (ev.from, ev.to),
            (Some(InstanceState::Active), InstanceState::Frozen)
        );
        assert_eq!(i.freeze(now()).unwrap(), Outcome::Unchanged);
        assert!(matches!(i.unfreeze(now()).unwrap(), Outcome::Changed(_)));
        assert_eq!(i.unfreeze(now()).unwrap(), Outcome::Unchanged);
        assert_eq!(i.state, InstanceState::Active);
        assert_eq!(
            i.pending_notices.len(),
            2,
            "both changes wait for the provisioner"
        );
    }

    #[test]
    fn provisioning_instance_cannot_be_frozen_yet_but_can_be_released() {
        let (mut i, _) = Instance::new_provisioning("O", "O-1", "inst-1", false, now());
        let err = i.freeze(now()).unwrap_err();
        assert!(err.is_retryable());
        assert!(matches!(i.release(None, now()), Outcome::Changed(_)));
        assert_eq!(i.release(None, now()), Outcome::Unchanged);
        assert_eq!(
            i.freeze(now()).unwrap_err().result_code(),
            ResultCode::InstanceNotFound
        );
    }

    #[test]
    fn refresh_is_idempotent_per_order_and_scene_and_moves_expiry_absolutely() {
        let mut i = active();
        let later = crate::time::parse_compact("20270101000000").unwrap();
        let earlier = crate::time::parse_compact("20261201000000").unwrap();
        assert!(matches!(
            i.refresh(RefreshScene::Renewal, "R1", None, later, now())
                .unwrap(),
            Outcome::Changed(_)
        ));
        assert_eq!(
            i.refresh(RefreshScene::Renewal, "R1", None, later, now())
                .unwrap(),
            Outcome::Unchanged
        );
        assert!(matches!(
            i.refresh(
                RefreshScene::UnsubscribeRenewalPeriod,
                "R1",
                None,
                earlier,
                now()
            )
            .unwrap(),
            Outcome::Changed(_)
        ));
        assert_eq!(i.expire_time, Some(earlier));
    }

    #[test]
    fn failed_is_terminal_except_release() {
        let (mut i, _) = Instance::new_provisioning("O", "O-1", "inst-1", false, now());
        assert!(matches!(
            i.fail(ResultCode::NoResource, "full".into(), now()),
            Outcome::Changed(_)
        ));
        assert_eq!(i.failure.as_ref().unwrap().code, ResultCode::NoResource);
        assert_eq!(
            i.fail(ResultCode::InternalError, "again".into(), now()),
            Outcome::Unchanged
        );
        assert!(i.activate(active().app_info.unwrap(), now()).is_err());
        assert_eq!(
            i.upgrade("U", "U-1", now()).unwrap_err().result_code(),
            ResultCode::NoResource
        );
        assert!(matches!(i.release(None, now()), Outcome::Changed(_)));
    }

    #[test]
    fn a_success_code_never_becomes_a_failure_code() {
        let (mut i, _) = Instance::new_provisioning("O", "O-1", "inst-1", false, now());
        i.fail(ResultCode::Success, "odd".into(), now());
        assert_eq!(i.failure.unwrap().code, ResultCode::InternalError);
    }

    #[test]
    fn only_released_debug_records_restart() {
        let (mut debug, _) = Instance::new_provisioning("O", "O-1", "inst-1", true, now());
        debug.activate(active().app_info.unwrap(), now()).unwrap();
        assert_eq!(
            debug.restart_debug("b2", now()),
            Outcome::Unchanged,
            "an active record stays as it is"
        );
        debug.release(None, now());
        let Outcome::Changed(ev) = debug.restart_debug("b2", now()) else {
            panic!("released debug record restarts")
        };
        assert_eq!(
            (ev.from, ev.to),
            (Some(InstanceState::Released), InstanceState::Active)
        );
        assert!(
            debug.pending_notices.is_empty(),
            "debug records notify no one"
        );
        let mut real = active();
        real.release(None, now());
        assert_eq!(
            real.restart_debug("b2", now()),
            Outcome::Unchanged,
            "a real order is never revived"
        );
        assert_eq!(real.state, InstanceState::Released);
    }

    #[test]
    fn test_records_queue_no_notices() {
        let (mut i, _) = Instance::new_provisioning("O", "O-1", "inst-1", true, now());
        let app = active().app_info.unwrap();
        i.activate(app, now()).unwrap();
        i.freeze(now()).unwrap();
        assert!(i.pending_notices.is_empty());
    }

    #[test]
    fn event_sequence_numbers_increase() {
        let mut i = active();
        let Outcome::Changed(a) = i.freeze(now()).unwrap() else {
            panic!()
        };
        let Outcome::Changed(b) = i.unfreeze(now()).unwrap() else {
            panic!()
        };
        assert_eq!(b.seq, a.seq + 1);
        assert_eq!(i.next_seq, b.seq + 1);
    }
}
