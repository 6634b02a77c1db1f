//! The instance's outbox: the lifecycle notices the vendor has not acknowledged, delivered one at
//! a time in `seq` order by the worker delivery that holds its claim.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{Claim, DomainError, Instance, InstanceState, Outcome, provisioning::claim};

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

impl Instance {
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

    /// The oldest notice passed its deadline: its job goes to the dead-letter queue and the
    /// outbox waits for an operator (or the next event) to resume it.
    pub fn park_outbox(&mut self) -> Outcome {
        self.outbox.parked = true;
        self.outbox.failing_since = None;
        self.outbox.claim = None;
        Outcome::Quiet
    }
}
