//! The changes KooGallery's callbacks and the worker ask of an instance
//! (docs/protocol/callbacks.md §6.1–§6.7): each mutates the record and returns the event to store
//! with it, or says nothing changed.

use chrono::{DateTime, Utc};

use super::{
    AccessInfo, Actor, Change, DomainError, EventKind, Failure, Instance, InstanceEvent,
    InstanceState, Outcome, RefreshScene,
};
use crate::{
    ResultCode,
    order::{OrderId, OrderLineId},
};

impl Instance {
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
                instance_id: self.instance_id.clone().into(),
                state: other,
                action: "activate",
            }),
        }
    }

    /// Provisioning ended for good; queryInstance will answer `code`
    /// (docs/protocol/decisions.md §5).
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

    /// updateInstanceStatus FREEZE (docs/protocol/callbacks.md §6.4): idempotent; data is kept.
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

    /// updateInstanceStatus UNFREEZE (docs/protocol/callbacks.md §6.4): idempotent.
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

    /// The last of a stop-when-used-up package's quota was used (docs/protocol/openapi.md §3.2):
    /// recorded once, heard by the vendor as `quotaExhausted`; the state stays as it is.
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
    /// debug calls must be repeatable (docs/protocol/callbacks.md §1); the record owns nothing
    /// outside the table, so restarting it is safe. Real records are never restarted.
    pub fn restart_debug(&mut self, business_id: &str, now: DateTime<Utc>) -> Outcome {
        if !self.test || self.state != InstanceState::Released {
            return Outcome::Unchanged;
        }
        let kind = EventKind::DebugRestarted {
            business_id: business_id.to_owned(),
        };
        self.transition(InstanceState::Active, now, koo("newInstance"), kind)
    }

    /// releaseInstance (docs/protocol/callbacks.md §6.5): a repeat is success and does nothing
    /// again.
    pub fn release(&mut self, order_id: Option<OrderId>, now: DateTime<Utc>) -> Outcome {
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

    /// refreshInstance (docs/protocol/callbacks.md §6.3): sets the expiry to the absolute
    /// `expire_time`, also when a cancelled renewal moves it backwards. Idempotent per (instanceId,
    /// orderId, scene). The order line is kept with the event (the worker reads that line of a
    /// changed order), not in the idempotency key.
    pub fn refresh(
        &mut self,
        scene: RefreshScene,
        order_id: &OrderId,
        order_line_id: Option<&OrderLineId>,
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
            order_id: order_id.clone(),
            order_line_id: order_line_id.cloned(),
            expire_time,
            product_id,
        };
        let state = self.state;
        Ok(self.transition(state, now, koo("refreshInstance"), kind))
    }

    /// upgradeInstance (docs/protocol/callbacks.md §6.6): records the new order; the worker reads
    /// its spec from the marketplace and tells the provisioner. Idempotent per (instanceId,
    /// orderId, orderLineId).
    pub fn upgrade(
        &mut self,
        order_id: &OrderId,
        order_line_id: &OrderLineId,
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
            order_id: order_id.clone(),
            order_line_id: order_line_id.clone(),
        };
        let state = self.state;
        Ok(self.transition(state, now, koo("upgradeInstance"), kind))
    }

    /// Records a worker event that changes no state (attempt started, order details refreshed).
    pub fn note(&mut self, kind: EventKind, now: DateTime<Utc>) -> InstanceEvent {
        let state = self.state;
        self.event(now, Actor::Worker, kind, Some(state))
    }
}

fn koo(activity: &str) -> Actor {
    Actor::KooGallery {
        activity: activity.to_owned(),
    }
}
