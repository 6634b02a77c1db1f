//! Exactly-once provisioning while jobs are delivered at least once: the progress an instance
//! keeps, and the [`Claim`] a worker delivery takes to call the provisioner (the outbox takes one
//! the same way).

use chrono::{DateTime, Utc};

use super::{DomainError, EventKind, Instance, InstanceState, Outcome};

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

/// A worker delivery's right to call the provisioner, or to drain the outbox, until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub token: String,
    pub until: DateTime<Utc>,
}

impl Instance {
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
}

/// `Claimed` (with until when) if another token holds `slot` past `now`.
pub(super) fn not_held_by_another(
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
pub(super) fn claim(
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
