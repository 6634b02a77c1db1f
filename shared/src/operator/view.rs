//! What the operator API answers (`/admin/api/…`, `koogallery-admin --json`): a versioned
//! contract, `"v": 1`, held by the golden file `shared/tests/fixtures/operator_instance_v1.json`.
//!
//! An instance is shown as it is stored (`instance::record`, schema 2) with its credentials and
//! the buyer's personal fields redacted as the exchange log redacts bodies; its history, its
//! exchanges and its usage windows as they are stored too, so the console shows exactly what the
//! service keeps.
//!
//! Its 联营 tenants, SSO sessions and License codes (`kit_tenants`, `sso_sessions`,
//! `license_codes`, fields added within `"v": 1`: a reader of the earlier page ignores them) are
//! shown by what the operator needs to answer "I can't log in", never by what would let anyone
//! act as the buyer: no client secret, no token, no session key (the SHA-256 of the cookie), no
//! whole License code, no personal field ([`kit_tenant`], [`sso_session`], [`license_code`]).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{DeadLetter, KitTenant};
use crate::{
    exchange::{Exchange, record as exchange_record, redact::Redaction},
    instance::{Instance, InstanceEvent, record},
    license::License,
    metering::{UsageWindow, WindowState, record as usage_record},
    reconciler::Report,
    sso::Session,
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
    /// The 联营 tenants stored under the instance, by tenant ID.
    pub kit_tenants: Vec<KitTenant>,
    /// The live SSO sessions of those tenants, newest sign-in first.
    pub sso_sessions: Vec<Session>,
    /// The License codes of the instance's order, by code.
    pub license_codes: Vec<License>,
    /// When it was read: a License code's status is what its software is told at this time.
    pub read_at: DateTime<Utc>,
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
    // Redacted as a stored record is: a License notice's job holds the license code.
    let mut job = serde_json::to_value(&d.job).unwrap_or(Value::Null);
    Redaction::default().value(&mut job);
    json!({
        "id": d.id,
        "job": job,
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

/// A 联营 tenant: its apps by `app_id` and `client_id` (never the client secret, sealed or not),
/// its users, and how many departments it has.
///
/// Not the tenant's `name` nor a user's `name`, phone, e-mail, position, employee fields, work
/// place or entry date: personal data, which the exchange log hides too. A user's `user_name` (the
/// login ID) and `org_code` *are* shown, by choice: "I can't log in" is answered by finding the
/// login ID the unified login sends, whether authSync authorized it for this app (`enabled`,
/// `revoked`, `may_use_app`) and where it sits; neither lets anyone sign in.
pub fn kit_tenant(t: &KitTenant) -> Value {
    let synced = |app_id: &str| t.apps.iter().any(|a| a.app_id == app_id);
    json!({
        "tenant_id": t.key.tenant_id.as_str(),
        "order_id": t.tenant.order_id.as_str(),
        "tenant_code": t.tenant.tenant_code,
        "domain_name": t.tenant.domain_name,
        "synced_at": t.tenant.synced_at,
        "apps": t.apps.iter().map(|a| json!({
            "app_id": a.app_id,
            "client_id": a.client_id,
            "synced_at": a.synced_at,
        })).collect::<Vec<_>>(),
        "users": t.users.iter().map(|u| json!({
            "app_id": u.app_id,
            "user_name": u.user_name,
            "org_code": u.org_code,
            "role": u.role,
            "enabled": u.enabled,
            "revoked": u.revoked,
            "may_use_app": u.may_use_app(),
            "app_synced": synced(&u.app_id),
            "synced_at": u.synced_at,
        })).collect::<Vec<_>>(),
        "department_count": t.departments.len(),
    })
}

/// An SSO session by its public `sid`: never its key (the SHA-256 of the cookie value, which finds
/// the session) nor its sealed tokens; the user by login ID, org code and role (see
/// [`kit_tenant`]), never the name, phone or e-mail the session holds.
pub fn sso_session(s: &Session) -> Value {
    json!({
        "sid": s.sid,
        "tenant_id": s.tenant_id,
        "app_id": s.app_id,
        "user_name": s.identity.user_name,
        "org_code": s.identity.org_code,
        "role": s.identity.role,
        "auth_time": s.auth_time,
        "access_expires_at": s.access_expires_at,
        "refresh_expires_at": s.refresh_expires_at,
        "refreshable": s.sealed_refresh_token.is_some(),
        "clients": s.clients,
    })
}

/// A License code, masked as the logs show it ([`LicenseCode::masked`]: its first four characters
/// and its length), never whole: the code is the buyer's bearer secret. `status` is what the
/// vendor's software is told at `at` (an expiry passed reads as `EXPIRED` before KooGallery says
/// so).
///
/// [`LicenseCode::masked`]: crate::license::LicenseCode::masked
pub fn license_code(l: &License, at: DateTime<Utc>) -> Value {
    json!({
        "code": l.code.masked(),
        "origin": l.origin,
        "status": l.status_at(at).as_str(),
        "order_id": l.order_id,
        "product_id": l.product_id,
        "customer_id": l.customer_id,
        "amount": l.amount,
        "expire_time": l.expire_time,
        "activation": l.activation.as_ref().map(|a| json!({
            "at": a.at,
            "client_id": a.client_id,
        })),
        "checked_at": l.checked_at,
        "test": l.test,
        "events_pending": l.pending.len(),
        "created_at": l.created_at,
        "updated_at": l.updated_at,
    })
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
            "kit_tenants": self.kit_tenants.iter().map(kit_tenant).collect::<Vec<_>>(),
            "sso_sessions": self.sso_sessions.iter().map(sso_session).collect::<Vec<_>>(),
            "license_codes": self.license_codes.iter().map(|l| license_code(l, self.read_at)).collect::<Vec<_>>(),
        })
    }
}
