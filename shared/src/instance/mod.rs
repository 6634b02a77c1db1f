//! The purchased instance (docs/protocol/callbacks.md §6.1–§6.7): its state machine, event history
//! and idempotency rules (docs/protocol/decisions.md §5–§7).
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

use crate::order::{OrderDetails, OrderId, OrderLineId};

mod access;
pub mod error;
pub mod event;
mod id;
mod lifecycle;
mod outbox;
mod provisioning;
pub mod record;
pub mod store;

pub use access::{AccessInfo, Credential, Failure};
pub use error::{Change, DomainError};
pub use event::{Actor, EventKind, InstanceEvent, RefreshScene};
pub use id::InstanceId;
pub use outbox::{NoticeStep, Outbox};
pub use provisioning::{Claim, ProvisioningProgress};
pub use store::{
    CreateOutcome, InstanceStore, IntakeError, OrderLineIntake, StoreThenQueue, mutate, mutate_from,
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

/// The record of one purchased instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub instance_id: InstanceId,
    pub order_id: OrderId,
    pub order_line_id: OrderLineId,
    pub state: InstanceState,
    /// Created by a debug call: answered like a real one, nothing created outside the table
    /// (docs/protocol/decisions.md §7).
    pub test: bool,
    pub failure: Option<Failure>,
    pub access: Option<AccessInfo>,
    pub order: Option<OrderDetails>,
    pub expire_time: Option<DateTime<Utc>>,
    /// Idempotency keys of refresh and upgrade calls already applied
    /// (docs/protocol/decisions.md §6).
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
    /// A new record for a newInstance call; the instanceId is the first call's `businessId`
    /// (docs/protocol/decisions.md §6).
    pub fn new_provisioning(
        order_id: &OrderId,
        order_line_id: &OrderLineId,
        business_id: &str,
        test: bool,
        now: DateTime<Utc>,
    ) -> (Instance, InstanceEvent) {
        let mut inst = Instance {
            instance_id: business_id.to_owned().into(),
            order_id: order_id.clone(),
            order_line_id: order_line_id.clone(),
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
            instance_id: self.instance_id.clone().into(),
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
        // Debug records create nothing outside the table, so they notify no one
        // (docs/protocol/decisions.md §7). The vendor hears of changes to an instance it has, or
        // may have, created.
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
            instance_id: self.instance_id.clone().into(),
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

    /// Whether the worker still owes this instance something: provisioning, or notices. Debug
    /// records never do (docs/protocol/decisions.md §7). The stores index these for the reconciler.
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

    /// Whether queryInstance may hand out access information.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, InstanceState::Active | InstanceState::Frozen)
    }
}

#[cfg(test)]
mod tests;
