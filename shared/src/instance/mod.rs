//! The purchased instance (spec callbacks §6.1–§6.7): its state machine, event history and
//! idempotency rules (Decisions §5–§7).
//!
//! ```text
//! provisioning ──▶ active ◀──▶ frozen
//!      │              │          │
//!      ▼              ▼          ▼
//!    failed ───────▶ released ◀──┘
//! ```
//! Every change is a pure method that mutates the record and returns the event to store with it,
//! or says that nothing changed (the idempotent repeat). [`store::mutate`] applies both atomically.
//!
//! The domain knows nothing of the wire: no request, reply or JSON shape is imported here. How a
//! record is kept on disk is [`record`]'s contract.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::{ResultCode, order::OrderDetails};

pub mod error;
pub mod event;
pub mod record;
pub mod store;

pub use error::{Change, DomainError};
pub use event::{Actor, EventKind, InstanceEvent, RefreshScene};
pub use store::{
    CreateOutcome, InstanceStore, IntakeError, OrderLineIntake, StoreThenQueue, mutate,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// How the buyer reaches the instance: what the provisioner created and queryInstance hands out
/// (as `appInfo`, callbacks §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessInfo {
    pub front_end_url: String,
    pub admin_url: Option<String>,
    pub user_name: Option<String>,
    pub password: Option<Credential>,
    pub memo: Option<String>,
}

/// A password as the instance keeps it: plain as the vendor answered it, sealed once the worker
/// stores it (`security::at_rest`), and opened only to answer queryInstance. Records written before
/// sealing hold plain ones. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Plain(String),
    Sealed(String),
}

impl Credential {
    pub fn plain(value: impl Into<String>) -> Self {
        Self::Plain(value.into())
    }

    /// The plain text, when it is not sealed.
    pub fn as_plain(&self) -> Option<&str> {
        match self {
            Self::Plain(p) => Some(p),
            Self::Sealed(_) => None,
        }
    }
}

/// What a provisioner answers is plain.
impl From<&str> for Credential {
    fn from(value: &str) -> Self {
        Self::Plain(value.to_owned())
    }
}

impl From<String> for Credential {
    fn from(value: String) -> Self {
        Self::Plain(value)
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Plain(<redacted>)",
            Self::Sealed(_) => "Sealed(<redacted>)",
        })
    }
}

/// Why provisioning ended for good; `code` is what queryInstance answers (Decisions §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ResultCode,
    pub message: String,
}

/// Bookkeeping that keeps provisioning exactly-once while jobs are delivered at least once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisioningProgress {
    /// A provisioning job reached the queue. Until then a repeated newInstance enqueues again.
    pub enqueued: bool,
    /// The worker delivery that holds the right to call the provisioner, and until when.
    pub claim: Option<Claim>,
    /// Provisioning attempts started so far.
    pub attempts: u32,
    /// A provision call may have reached the vendor: if the order then fails or is released, the
    /// vendor is told (`released`) so it can remove what it may have created.
    pub called: bool,
}

/// The instance's outbox: the lifecycle notices the vendor has not yet acknowledged, delivered one
/// at a time in `seq` order by whichever worker delivery holds its claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbox {
    /// Sequence numbers of the events still to deliver.
    pub pending: BTreeSet<u64>,
    /// The delivery draining the outbox, and until when; one at a time keeps the order.
    pub claim: Option<Claim>,
    /// When delivering the oldest pending notice first failed; cleared once it is delivered.
    pub failing_since: Option<DateTime<Utc>>,
    /// The oldest notice passed its delivery deadline and its job was dead-lettered: the
    /// reconciler leaves the outbox alone until a job for the instance (a redrive, a new event)
    /// arrives and resumes it.
    pub parked: bool,
}

/// What draining an outbox should do next ([`Instance::next_notice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeStep {
    /// Nothing to deliver.
    Idle,
    /// Deliver this event now.
    Deliver(u64),
    /// Not yet: a provision call is in flight (the vendor must hear `provision` before anything
    /// else) or another delivery is draining the outbox. Try again at about this time.
    WaitUntil(DateTime<Utc>),
    /// Not yet: the instance is still provisioning, between attempts. Its provisioning job drains
    /// the outbox when it ends, so a separate job need only look again much later.
    AfterProvisioning,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub token: String,
    pub until: DateTime<Utc>,
}

/// The record of one purchased instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub instance_id: String,
    pub order_id: String,
    pub order_line_id: String,
    pub state: InstanceState,
    /// Created by a debug call: answered like a real one, nothing created outside the table (Decisions §7).
    pub test: bool,
    pub failure: Option<Failure>,
    pub access: Option<AccessInfo>,
    pub order: Option<OrderDetails>,
    pub expire_time: Option<DateTime<Utc>>,
    /// Idempotency keys of refresh and upgrade calls already applied (Decisions §6).
    pub applied: BTreeSet<String>,
    pub provisioning: ProvisioningProgress,
    /// Lifecycle notices not yet delivered to the vendor, drained strictly in order.
    pub outbox: Outbox,
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
            access: None,
            order: None,
            expire_time: None,
            applied: BTreeSet::new(),
            provisioning: ProvisioningProgress::default(),
            outbox: Outbox::default(),
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
        // The vendor hears of changes to an instance it has, or may have, created.
        if ev.kind.is_lifecycle_notice()
            && !self.test
            && (self.access.is_some() || self.provisioning.called)
        {
            self.outbox.pending.insert(ev.seq);
        }
        Outcome::Changed(ev)
    }

    fn not_yet(&self, action: &'static str) -> DomainError {
        DomainError::NotYet {
            instance_id: self.instance_id.clone(),
            state: self.state,
            action,
        }
    }

    fn failed_to_provision(&self, change: Change) -> DomainError {
        DomainError::ProvisioningFailed {
            instance_id: self.instance_id.clone(),
            change,
        }
    }

    /// When a released instance was released: its last event's time (nothing records an event
    /// after `released`).
    pub fn released_at(&self) -> Option<DateTime<Utc>> {
        (self.state == InstanceState::Released).then_some(self.updated_at)
    }

    /// The one "released" rule: a released instance takes no further change and answers as gone.
    pub fn ensure_not_released(&self) -> Result<(), DomainError> {
        if self.state == InstanceState::Released {
            return Err(DomainError::Released(self.instance_id.clone()));
        }
        Ok(())
    }

    /// The worker finished provisioning.
    pub fn activate(
        &mut self,
        access: AccessInfo,
        now: DateTime<Utc>,
    ) -> Result<Outcome, DomainError> {
        match self.state {
            InstanceState::Provisioning => {
                self.access = Some(access);
                self.provisioning.claim = None;
                Ok(self.transition(
                    InstanceState::Active,
                    now,
                    Actor::Worker,
                    EventKind::Provisioned,
                ))
            }
            InstanceState::Active | InstanceState::Frozen => Ok(Outcome::Unchanged),
            other => Err(DomainError::Invariant {
                instance_id: self.instance_id.clone(),
                state: other,
                action: "activate",
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
    pub fn freeze(&mut self, now: DateTime<Utc>) -> Result<Outcome, DomainError> {
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
            InstanceState::Provisioning => Err(self.not_yet("freeze")),
            InstanceState::Released => Err(DomainError::Released(self.instance_id.clone())),
        }
    }

    /// updateInstanceStatus UNFREEZE (callbacks §6.4): idempotent.
    pub fn unfreeze(&mut self, now: DateTime<Utc>) -> Result<Outcome, DomainError> {
        match self.state {
            InstanceState::Frozen => Ok(self.transition(
                InstanceState::Active,
                now,
                koo("updateInstanceStatus"),
                EventKind::Unfrozen,
            )),
            InstanceState::Active => Ok(Outcome::Unchanged),
            InstanceState::Provisioning => Err(self.not_yet("unfreeze")),
            InstanceState::Failed => Err(self.failed_to_provision(Change::Unfreeze)),
            InstanceState::Released => Err(DomainError::Released(self.instance_id.clone())),
        }
    }

    /// The last of a stop-when-used-up package's quota was used (spec openapi §3.2): recorded
    /// once, heard by the vendor as `quotaExhausted`; the state stays as it is.
    pub fn quota_exhausted(&mut self, quota: rust_decimal::Decimal, now: DateTime<Utc>) -> Outcome {
        const KEY: &str = "quota_exhausted";
        if self.applied.contains(KEY) || self.state == InstanceState::Released {
            return Outcome::Unchanged;
        }
        self.applied.insert(KEY.to_owned());
        let state = self.state;
        self.transition(
            state,
            now,
            Actor::Metering,
            EventKind::QuotaExhausted { quota },
        )
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
        // A provisioning claim stays: the call in flight finishes first, then the vendor hears
        // `released` (the outbox waits for the claim).
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
    ) -> Result<Outcome, DomainError> {
        self.ensure_not_released()?;
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
    ) -> Result<Outcome, DomainError> {
        match self.state {
            InstanceState::Released => return Err(DomainError::Released(self.instance_id.clone())),
            InstanceState::Provisioning => return Err(self.not_yet("upgrade")),
            InstanceState::Failed => {
                return Err(self.failed_to_provision(Change::Upgrade));
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

    /// Takes the right to call the provisioner for delivery `token` until `now + lease`: only while
    /// provisioning, and only when no other delivery holds an unexpired claim
    /// ([`DomainError::Claimed`], which says until when). `Unchanged`: nothing left to provision.
    pub fn claim_provisioning(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Outcome, DomainError> {
        if self.state != InstanceState::Provisioning {
            return Ok(Outcome::Unchanged);
        }
        claim(
            &mut self.provisioning.claim,
            &self.instance_id,
            token,
            now,
            lease,
        )?;
        self.provisioning.attempts += 1;
        self.provisioning.called = true;
        let attempt = self.provisioning.attempts;
        Ok(Outcome::Changed(
            self.note(EventKind::ProvisioningStarted { attempt }, now),
        ))
    }

    /// Only the claim holder, or anyone once the claim expired, may end provisioning (fail it).
    pub fn ensure_provisioning_claim(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        not_held_by_another(&self.provisioning.claim, &self.instance_id, token, now)
    }

    /// Drops delivery `token`'s provisioning claim (its call returned to an instance released
    /// meanwhile): the outbox may now tell the vendor.
    pub fn end_provisioning_claim(&mut self, token: &str) -> Outcome {
        match &self.provisioning.claim {
            Some(c) if c.token == token => {
                self.provisioning.claim = None;
                Outcome::Quiet
            }
            _ => Outcome::Unchanged,
        }
    }

    /// What the outbox's next step is at `now`. Nothing is sent while provisioning is in flight:
    /// the vendor hears `provision` (or its outcome) before any later notice.
    pub fn next_notice(&self, now: DateTime<Utc>) -> NoticeStep {
        let Some(&head) = self.outbox.pending.first() else {
            return NoticeStep::Idle;
        };
        if let Some(c) = &self.provisioning.claim
            && c.until > now
        {
            return NoticeStep::WaitUntil(c.until);
        }
        if self.state == InstanceState::Provisioning {
            return NoticeStep::AfterProvisioning;
        }
        NoticeStep::Deliver(head)
    }

    /// Takes the outbox for delivery `token` (one drainer at a time keeps the order); a redrive or
    /// any new job resumes a parked outbox.
    pub fn claim_outbox(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Outcome, DomainError> {
        if self.outbox.pending.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        claim(&mut self.outbox.claim, &self.instance_id, token, now, lease)?;
        self.outbox.parked = false;
        Ok(Outcome::Quiet)
    }

    /// The vendor acknowledged event `seq`. After `released` (or a failed order's release notice)
    /// nothing more is sent: the instance is gone for the vendor.
    pub fn notice_delivered(&mut self, seq: u64, was_final: bool) -> Outcome {
        if !self.outbox.pending.remove(&seq) {
            return Outcome::Unchanged;
        }
        self.outbox.failing_since = None;
        if was_final {
            self.outbox.pending.clear();
        }
        if self.outbox.pending.is_empty() {
            self.outbox.claim = None;
        }
        Outcome::Quiet
    }

    /// Delivering the oldest notice failed at `now`; the claim is let go so the retry (or the
    /// reconciler) can take it. Returns since when it has been failing.
    pub fn notice_failed(&mut self, token: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        self.release_outbox(token, now);
        *self.outbox.failing_since.get_or_insert(now)
    }

    /// Delivery `token` stops draining (it used its calls, or failed); the next delivery
    /// continues. The claim is kept, expired at `now`: it records when the outbox was last
    /// worked on, which the reconciler reads ([`Self::last_activity`]).
    pub fn release_outbox(&mut self, token: &str, now: DateTime<Utc>) -> Outcome {
        match &mut self.outbox.claim {
            Some(c) if c.token == token => {
                c.until = now;
                Outcome::Quiet
            }
            _ => Outcome::Unchanged,
        }
    }

    /// Whether the worker still owes this instance something: provisioning, or notices. Debug
    /// records never do (Decisions §7). The stores index these for the reconciler.
    pub fn is_unsettled(&self) -> bool {
        !self.test && (self.state == InstanceState::Provisioning || !self.outbox.pending.is_empty())
    }

    /// When a worker last touched the instance (an event, or a claim taken or let go).
    pub fn last_activity(&self) -> DateTime<Utc> {
        [
            Some(self.updated_at),
            self.provisioning.claim.as_ref().map(|c| c.until),
            self.outbox.claim.as_ref().map(|c| c.until),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(self.updated_at)
    }

    /// The oldest notice passed its deadline: its job goes to the dead-letter queue and the
    /// outbox waits for an operator (or the next event) to resume it.
    pub fn park_outbox(&mut self) -> Outcome {
        self.outbox.parked = true;
        self.outbox.failing_since = None;
        self.outbox.claim = None;
        Outcome::Quiet
    }

    /// Whether queryInstance may hand out access information.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, InstanceState::Active | InstanceState::Frozen)
    }
}

/// `Claimed` (with until when) if another token holds `slot` past `now`.
fn not_held_by_another(
    slot: &Option<Claim>,
    instance_id: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    match slot {
        Some(c) if c.token != token && c.until > now => Err(DomainError::Claimed {
            instance_id: instance_id.to_owned(),
            until: c.until,
        }),
        _ => Ok(()),
    }
}

/// Takes `slot` for `token` unless another token holds it past `now`.
fn claim(
    slot: &mut Option<Claim>,
    instance_id: &str,
    token: &str,
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> Result<(), DomainError> {
    not_held_by_another(slot, instance_id, token, now)?;
    *slot = Some(Claim {
        token: token.to_owned(),
        // Total even at the edge of time: a claim never overflows into a panic.
        until: now.checked_add_signed(lease).unwrap_or(now),
    });
    Ok(())
}

fn koo(activity: &str) -> Actor {
    Actor::KooGallery {
        activity: activity.to_owned(),
    }
}

#[cfg(test)]
mod tests;
