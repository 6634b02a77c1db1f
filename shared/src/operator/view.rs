//! What the operator API answers (`/admin/api/…`, `koogallery-admin --json`): a versioned
//! contract, `"v": 1`, held by the golden file `shared/tests/fixtures/operator_instance_v1.json`.
//!
//! An instance is shown as it is stored (`instance::record`, schema 2) with its credentials and
//! the buyer's personal fields redacted as the exchange log redacts bodies; its history, its
//! exchanges and its usage windows as they are stored too, so the console shows exactly what the
//! service keeps.

use serde_json::{Value, json};

use super::DeadLetter;
use crate::{
    exchange::{Exchange, record as exchange_record, redact::Redaction},
    instance::{Instance, InstanceEvent, record},
    metering::{UsageWindow, WindowState, record as usage_record},
    reconciler::Report,
};

/// The version of every view.
pub const VERSION: u32 = 1;

/// Everything about one instance.
#[derive(Debug, Clone)]
pub struct InstanceDetail {
    pub instance: Instance,
    pub history: Vec<InstanceEvent>,
    /// Newest first.
    pub exchanges: Vec<Exchange>,
    /// Oldest first.
    pub usage: Vec<UsageWindow>,
    pub dead_letters: Vec<DeadLetter>,
    /// Whether the deployment keeps an exchange log (an empty list means nothing either way).
    pub exchange_log: bool,
}

/// A stored record's JSON, redacted.
fn stored(bytes: Result<Vec<u8>, crate::StoreError>) -> Value {
    let mut value = bytes
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    Redaction::default().value(&mut value);
    value
}

/// An instance as stored, redacted.
pub fn instance_record(i: &Instance) -> Value {
    stored(record::encode_instance(i))
}

/// One line of an instance listing: what a person scans a list for.
pub fn instance_summary(i: &Instance) -> Value {
    let order = i.order.as_ref();
    json!({
        "instance_id": i.instance_id.as_str(),
        "order_id": i.order_id.as_str(),
        "order_line_id": i.order_line_id.as_str(),
        "state": i.state.as_str(),
        "test": i.test,
        "customer_id": order.and_then(|o| o.customer_id.as_deref()),
        "product_id": order.and_then(|o| o.product_id.as_deref()),
        "sku_code": order.and_then(|o| o.sku_code.as_deref()),
        "created_at": i.created_at,
        "updated_at": i.updated_at,
        "provisioning_attempts": i.provisioning.attempts,
        "notices_pending": i.outbox.pending.len(),
        "outbox_parked": i.outbox.parked,
    })
}

/// A listing of instances.
pub fn instance_list(instances: &[Instance]) -> Value {
    json!({
        "v": VERSION,
        "instances": instances.iter().map(instance_summary).collect::<Vec<_>>(),
    })
}

pub fn dead_letter(d: &DeadLetter) -> Value {
    json!({
        "id": d.id,
        "job": d.job,
        "subject": d.job.subject(),
        "instance_id": d.job.instance_id(),
        "attempts": d.attempts,
        "reason": d.reason,
        "at": d.at,
    })
}

pub fn dead_letter_list(letters: &[DeadLetter]) -> Value {
    json!({
        "v": VERSION,
        "dead_letters": letters.iter().map(dead_letter).collect::<Vec<_>>(),
    })
}

pub fn exchange_list(exchanges: &[Exchange]) -> Value {
    json!({
        "v": VERSION,
        "exchanges": exchanges.iter().map(exchange_record::to_json).collect::<Vec<_>>(),
    })
}

/// A usage window as stored, with its state named plainly beside it.
pub fn usage_window(w: &UsageWindow) -> Value {
    let mut value = stored(usage_record::encode_window(w));
    if let Value::Object(map) = &mut value {
        let state = match &w.state {
            WindowState::Open => "open",
            WindowState::Sealed(_) => "sealed",
            WindowState::Accepted { .. } => "accepted",
            WindowState::Rejected { .. } => "rejected",
        };
        map.insert("window_state".into(), json!(state));
        map.insert("hour_end".into(), json!(w.end()));
    }
    value
}

/// What a reconciler pass found.
pub fn report_json(r: &Report) -> Value {
    let ids = |v: &[crate::instance::InstanceId]| {
        v.iter().map(|i| i.as_str().to_owned()).collect::<Vec<_>>()
    };
    json!({
        "v": VERSION,
        "stuck_provisioning": ids(&r.stuck_provisioning),
        "undelivered_notices": ids(&r.undelivered_notices),
        "parked_outboxes": ids(&r.parked_outboxes),
    })
}

/// A reconciler pass as the operator API answers it: when, who ran it (`schedule` or an
/// operator) and what it found ([`report_json`]'s lists).
pub fn pass_json(e: &Exchange) -> Value {
    let found = |k: &str| e.response.get(k).cloned().unwrap_or(json!([]));
    json!({
        "id": e.id,
        "at": e.at,
        "who": e.request.get("who").cloned().unwrap_or(Value::Null),
        "stuck_provisioning": found("stuck_provisioning"),
        "undelivered_notices": found("undelivered_notices"),
        "parked_outboxes": found("parked_outboxes"),
    })
}

impl InstanceDetail {
    /// The instance page's JSON.
    pub fn to_json(&self) -> Value {
        let i = &self.instance;
        json!({
            "v": VERSION,
            "summary": instance_summary(i),
            "instance": instance_record(i),
            "history": self.history.iter().map(|e| stored(record::encode_event(e))).collect::<Vec<_>>(),
            "exchange_log": self.exchange_log,
            "exchanges": self.exchanges.iter().map(exchange_record::to_json).collect::<Vec<_>>(),
            "usage": self.usage.iter().map(usage_window).collect::<Vec<_>>(),
            "dead_letters": self.dead_letters.iter().map(dead_letter).collect::<Vec<_>>(),
        })
    }
}
