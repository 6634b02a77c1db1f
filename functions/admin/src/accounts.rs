//! The instance page's sections on the buyer's 联营 accounts and License codes: its Kit tenants
//! (apps, users with their status, departments counted), the live SSO sessions of those tenants,
//! and the License codes of its order. Each is drawn from the API's redacted JSON
//! (`koogallery::operator::view`), so the page never shows more than `/admin/api/…` answers: no
//! client secret, token, session key, whole code or personal field. An empty section says so.

use chrono::DateTime;
use koogallery::operator::view::{self, InstanceDetail};
use maud::{Markup, html};
use serde_json::Value;

/// A string member, `-` when absent or null.
fn text(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A time member as the other tables show times (UTC, to the second).
fn time(v: &Value, k: &str) -> String {
    v[k].as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(|| text(v, k), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Whether a user may sign in to the app, in words.
fn user_status(u: &Value) -> String {
    let mut s = if u["revoked"] == true {
        "revoked (authSync)".to_owned()
    } else if u["enabled"] == false {
        "disabled".to_owned()
    } else {
        "may sign in".to_owned()
    };
    if u["app_synced"] == false {
        s.push_str("; its app is not synced (no applicationSync)");
    }
    s
}

/// The three sections, with their headings.
pub(crate) fn sections(d: &InstanceDetail) -> Markup {
    html! {
        // No CJK in headings: a machine without CJK fonts draws 联营 as boxes.
        h2 { "Kit tenants" }
        (tenants(d))
        h2 { "SSO sessions" }
        (sessions(d))
        h2 { "License codes" }
        (licenses(d))
    }
}

fn tenants(d: &InstanceDetail) -> Markup {
    html! {
        div #kit-tenants {
            @if d.kit_tenants.is_empty() {
                p.empty { "No Kit tenant: no tenantSync has named this instance (or its tenant was deleted)." }
            }
            @for t in d.kit_tenants.iter().map(view::kit_tenant) {
                h3 { "Tenant " code { (text(&t, "tenant_id")) } }
                table.tenant {
                    tr { th { "tenant code" } td { (text(&t, "tenant_code")) } }
                    tr { th { "order" } td { (text(&t, "order_id")) } }
                    tr { th { "auth centre" } td { (text(&t, "domain_name")) } }
                    tr { th { "synced" } td { (time(&t, "synced_at")) } }
                    tr { th { "departments" } td { (t["department_count"]) } }
                }
                @let apps = t["apps"].as_array().cloned().unwrap_or_default();
                @if apps.is_empty() {
                    p.empty { "No app synced (applicationSync)." }
                } @else {
                    table.apps {
                        tr { th { "app" } th { "client ID" } th { "synced" } }
                        @for a in &apps {
                            tr { td { (text(a, "app_id")) } td { code { (text(a, "client_id")) } } td { (time(a, "synced_at")) } }
                        }
                    }
                }
                @let users = t["users"].as_array().cloned().unwrap_or_default();
                @if users.is_empty() {
                    p.empty { "No user authorized (authSync)." }
                } @else {
                    table.users {
                        tr { th { "app" } th { "user (login ID)" } th { "org code" } th { "role" } th { "status" } th { "synced" } }
                        @for u in &users {
                            tr {
                                td { (text(u, "app_id")) }
                                td { code { (text(u, "user_name")) } }
                                td { (text(u, "org_code")) }
                                td { (text(u, "role")) }
                                td { (user_status(u)) }
                                td { (time(u, "synced_at")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn sessions(d: &InstanceDetail) -> Markup {
    html! {
        div #sso-sessions {
            @if d.sso_sessions.is_empty() {
                p.empty { "No live SSO session of this instance's tenants." }
            } @else {
                table {
                    tr { th { "sid" } th { "tenant" } th { "app" } th { "user" } th { "signed in" } th { "access token until" } th { "session ends" } th { "clients told" } }
                    @for s in d.sso_sessions.iter().map(view::sso_session) {
                        tr {
                            td { code { (text(&s, "sid")) } }
                            td { (text(&s, "tenant_id")) }
                            td { (text(&s, "app_id")) }
                            td { code { (text(&s, "user_name")) } }
                            td { (time(&s, "auth_time")) }
                            td { (time(&s, "access_expires_at")) @if s["refreshable"] == false { " (no refresh token)" } }
                            td { (time(&s, "refresh_expires_at")) }
                            td { (s["clients"].as_array().map(|c| c.iter().map(|c| c.as_str().unwrap_or("?")).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

fn licenses(d: &InstanceDetail) -> Markup {
    html! {
        div #license-codes {
            @if d.license_codes.is_empty() {
                p.empty { "No License code names this instance's order " code { (d.instance.order_id.as_str()) } "." }
            } @else {
                table {
                    tr { th { "code (masked)" } th { "status" } th { "origin" } th { "product" } th { "expires" } th { "activated" } th { "last checked" } }
                    @for l in d.license_codes.iter().map(|l| view::license_code(l, d.read_at)) {
                        tr {
                            td { code { (text(&l, "code")) } @if l["test"] == true { " (debug)" } }
                            td { (text(&l, "status")) }
                            td { (text(&l, "origin")) }
                            td { (text(&l, "product_id")) }
                            td { @if l["expire_time"].is_null() { "no expiry known" } @else { (time(&l, "expire_time")) } }
                            td {
                                @if l["activation"].is_null() { "not activated" } @else {
                                    (time(&l["activation"], "at")) " by client " code { (text(&l["activation"], "client_id")) }
                                }
                            }
                            td { (time(&l, "checked_at")) }
                        }
                    }
                }
            }
        }
    }
}
