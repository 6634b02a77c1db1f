//! The console's pages: server-rendered HTML (maud escapes every value), one stylesheet in the
//! page, no script. Reads are `GET`s; every action is a form `POST` with the session's CSRF token,
//! answered by a redirect back (303) with what was done.

use axum::{
    Form,
    extract::{FromRequestParts, Path, Query, State},
    http::request::Parts,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use chrono::{DateTime, Utc};
use koogallery::{
    exchange::{Direction, Exchange, ExchangeFilter, ExchangeQuery},
    instance::Instance,
    operator::{DeadLetter, OperatorError, view::InstanceDetail},
};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::{
    Auth, Console, accounts,
    api::{DeadLetterParams, ExchangeParams, InstanceQuery, RedriveRequest},
    charts,
    session::Session,
};

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{background:#263238;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center}
header a{color:#cfd8dc;text-decoration:none}header a.here{color:#fff;font-weight:600}
header form{margin-left:auto}main{padding:16px;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff;margin:8px 0 16px}
th,td{border-bottom:1px solid #e0e0e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eceff1;font-weight:600}code,pre{font:12px ui-monospace,monospace}
pre{background:#fff;border:1px solid #e0e0e0;padding:8px;overflow:auto;max-height:420px}
.state{padding:1px 6px;border-radius:8px;background:#eceff1}.state-active{background:#c8e6c9}
.state-provisioning{background:#bbdefb}.state-failed{background:#ffcdd2}.state-frozen{background:#e1bee7}
.state-released{background:#e0e0e0}.note{background:#fff8e1;border:1px solid #ffe082;padding:8px}
.error{background:#ffebee;border:1px solid #ef9a9a;padding:8px}
form.inline{display:inline}.timeline{list-style:none;padding-left:0;border-left:3px solid #90a4ae;margin-left:8px}
.timeline li{position:relative;padding:2px 0 6px 14px}.timeline li::before{content:"";position:absolute;left:-8px;top:7px;width:12px;height:12px;border-radius:6px;background:#90a4ae}
.timeline li.event::before{background:#1565c0}.timeline li.inbound::before{background:#2e7d32}
.timeline li.outbound::before{background:#ef6c00}.timeline li.operator::before{background:#6a1b9a}
.timeline li.dead::before{background:#c62828}.empty{color:#607d8b}.legend{font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;margin-left:8px}.chart{background:#fff;border:1px solid #e0e0e0}
input,select,button{font:inherit}
"#;

/// The frame of every page.
fn page(title: &str, here: &str, session: Option<(&Session, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) " · KooGallery operator console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "KooGallery operator" }
                    @if let Some((s, csrf)) = session {
                        @for (href, label) in [("/admin/instances", "Instances"), ("/admin/dead-letters", "Dead letters"), ("/admin/exchanges", "Exchanges")] {
                            a href=(href) class=@if href == here { "here" } { (label) }
                        }
                        @if !s.iam {
                            form method="post" action="/admin/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    html_response(
        status,
        page(
            "Sign in",
            "",
            None,
            html! {
                @if let Some(m) = message { p.error { (m) } }
                p { "The admin token is in " code { "admin-token" } " in the data directory, or " code { "KOOGALLERY_ADMIN_TOKEN" } "." }
                form method="post" action="/admin/login" {
                    label { "Admin token " input type="password" name="token" autocomplete="off" required; }
                    " " button type="submit" { "Sign in" }
                }
            },
        ),
    )
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// The request's session: a handler that takes it serves only a signed-in caller; anyone else
/// gets the 401 sign-in page.
pub(crate) struct SignedIn(Session);

impl FromRequestParts<Console> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Response> {
        c.session(&parts.headers, now())
            .map(SignedIn)
            .ok_or_else(|| login_page(StatusCode::UNAUTHORIZED, None))
    }
}

fn failure_page(c: &Console, s: &Session, e: &OperatorError) -> Response {
    let status = match super::api::failure(e).status() {
        s if s.is_server_error() || s.is_client_error() => s,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    html_response(
        status,
        page(
            "Not available",
            "",
            Some((s, &c.csrf(s))),
            html! { p.error { (e.to_string()) } },
        ),
    )
}

pub(crate) async fn home() -> Redirect {
    Redirect::to("/admin/instances")
}

pub(crate) async fn login_form(State(c): State<Console>, headers: HeaderMap) -> Response {
    if c.session(&headers, now()).is_some() {
        return Redirect::to("/admin/instances").into_response();
    }
    login_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

pub(crate) async fn login(State(c): State<Console>, Form(form): Form<LoginForm>) -> Response {
    let Auth::Token { token, https } = &c.auth else {
        return Redirect::to("/admin/instances").into_response();
    };
    if !token.matches(form.token.trim()) {
        tracing::warn!("console sign-in refused: wrong token");
        return login_page(
            StatusCode::FORBIDDEN,
            Some("That is not this host's admin token."),
        );
    }
    let cookie = Session::start(now()).cookie(token, *https);
    let mut r = Redirect::to("/admin/instances").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn logout(
    State(c): State<Console>,
    SignedIn(s): SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !c.csrf_matches(&s, &form.csrf) {
        return forbidden_csrf();
    }
    let Auth::Token { https, .. } = &c.auth else {
        return Redirect::to("/admin/instances").into_response();
    };
    let mut r = Redirect::to("/admin/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&Session::ended(*https)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn forbidden_csrf() -> Response {
    html_response(
        StatusCode::FORBIDDEN,
        page(
            "Refused",
            "",
            None,
            html! { p.error { "The form's CSRF token is not this session's: reload the page and try again." } },
        ),
    )
}

fn state_badge(state: &str) -> Markup {
    html! { span class={"state state-" (state)} { (state) } }
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[derive(Deserialize, Default)]
pub(crate) struct Note {
    note: Option<String>,
}

fn note(n: &Option<String>) -> Markup {
    html! { @if let Some(n) = n.as_deref().filter(|n| !n.is_empty()) { p.note #note { (n) } } }
}

pub(crate) async fn instances(
    State(c): State<Console>,
    SignedIn(s): SignedIn,
    Query(q): Query<InstanceQuery>,
) -> Response {
    let csrf = c.csrf(&s);
    let (list, error) = match q.filter() {
        Ok(f) => match c.operator.instances(&f).await {
            Ok(list) => (list, None),
            Err(e) => return failure_page(&c, &s, &e),
        },
        Err(e) => (Vec::new(), Some(e)),
    };
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    html_response(
        StatusCode::OK,
        page(
            "Instances",
            "/admin/instances",
            Some((&s, &csrf)),
            html! {
                form #search method="get" action="/admin/instances" {
                    input name="customer" placeholder="customer ID" value=(value(&q.customer));
                    " " input name="order" placeholder="order ID" value=(value(&q.order));
                    " " input name="product" placeholder="product ID or SKU" value=(value(&q.product));
                    " " select name="state" {
                        option value="" { "any state" }
                        @for st in ["provisioning", "active", "frozen", "failed", "released"] {
                            option value=(st) selected[q.state.as_deref() == Some(st)] { (st) }
                        }
                    }
                    " " button type="submit" { "Search" }
                }
                @if let Some(e) = error { p.error { (e) } }
                (instance_table(&list))
            },
        ),
    )
}

fn instance_table(list: &[Instance]) -> Markup {
    html! {
        @if list.is_empty() { p.empty { "No instance matches." } } @else {
            table #instances {
                tr { th { "instance" } th { "state" } th { "order" } th { "customer" } th { "SKU" } th { "created" } th { "owed" } }
                @for i in list {
                    @let order = i.order.as_ref();
                    tr {
                        td { a href={"/admin/instances/" (urlencode(i.instance_id.as_str()))} { (i.instance_id.as_str()) } @if i.test { " (debug)" } }
                        td { (state_badge(i.state.as_str())) }
                        td { (i.order_id.as_str()) }
                        td { (order.and_then(|o| o.customer_id.as_deref()).unwrap_or("-")) }
                        td { (order.and_then(|o| o.sku_code.as_deref()).unwrap_or("-")) }
                        td { (time(&i.created_at)) }
                        td {
                            @if i.state.as_str() == "provisioning" { "provisioning (" (i.provisioning.attempts) " attempts) " }
                            @if !i.outbox.pending.is_empty() { (i.outbox.pending.len()) " notices" @if i.outbox.parked { " (parked)" } }
                        }
                    }
                }
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(crate) async fn instance(
    State(c): State<Console>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
    Query(n): Query<Note>,
) -> Response {
    let csrf = c.csrf(&s);
    let detail = match c.operator.instance(&id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return html_response(
                StatusCode::NOT_FOUND,
                page(
                    "No such instance",
                    "",
                    Some((&s, &csrf)),
                    html! { p.error { "No instance " code { (id) } "." } },
                ),
            );
        }
        Err(e) => return failure_page(&c, &s, &e),
    };
    let here = format!("/admin/instances/{}", urlencode(&id));
    html_response(
        StatusCode::OK,
        page(
            &format!("Instance {id}"),
            "/admin/instances",
            Some((&s, &csrf)),
            html! {
                (note(&n.note))
                (summary(&detail))
                h2 { "Timeline" }
                (timeline(&detail))
                h2 { "Dead letters" }
                (dead_letter_table(&detail.dead_letters, &csrf, &here))
                @if !detail.dead_letters.is_empty() {
                    form.inline method="post" action="/admin/dead-letters/redrive" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="instance" value=(id);
                        input type="hidden" name="return" value=(here);
                        button #redrive-instance type="submit" { "Redrive all of this instance's, oldest first" }
                    }
                }
                (accounts::sections(&detail))
                h2 { "Usage per hour" }
                (charts::usage(&detail.usage))
                h2 { "Exchanges" }
                @if !detail.exchange_log { p.empty { "The exchange log is off (KOOGALLERY_EXCHANGE_LOG_DAYS=0)." } }
                (exchange_table(&detail.exchanges))
                h2 { "Record" }
                pre #record { (serde_json::to_string_pretty(&koogallery::operator::view::instance_record(&detail.instance)).unwrap_or_default()) }
            },
        ),
    )
}

fn summary(d: &InstanceDetail) -> Markup {
    let i = &d.instance;
    let order = i.order.as_ref();
    html! {
        table #summary {
            tr { th { "state" } td { (state_badge(i.state.as_str())) @if i.test { " debug record" } } }
            tr { th { "order / line" } td { (i.order_id.as_str()) " / " (i.order_line_id.as_str()) } }
            tr { th { "customer" } td { (order.and_then(|o| o.customer_id.as_deref()).unwrap_or("- (Query Order not read yet)")) } }
            tr { th { "product / SKU" } td { (order.and_then(|o| o.product_id.as_deref()).unwrap_or("-")) " / " (order.and_then(|o| o.sku_code.as_deref()).unwrap_or("-")) } }
            tr { th { "created / updated" } td { (time(&i.created_at)) " / " (time(&i.updated_at)) } }
            tr { th { "provisioning" } td {
                (i.provisioning.attempts) " attempts; called the vendor: " (i.provisioning.called) "; job queued: " (i.provisioning.enqueued)
                @if let Some(claim) = &i.provisioning.claim { "; claimed until " (time(&claim.until)) }
            } }
            tr { th { "outbox" } td {
                @if i.outbox.pending.is_empty() { "nothing pending" } @else {
                    "notices pending: " (format!("{:?}", i.outbox.pending))
                    @if i.outbox.parked { " — parked: redrive its dead letter" }
                    @if let Some(since) = &i.outbox.failing_since { "; failing since " (time(since)) }
                }
                @if let Some(claim) = &i.outbox.claim { "; claimed until " (time(&claim.until)) }
            } }
            @if let Some(f) = &i.failure { tr { th { "failure" } td { (format!("{f:?}")) } } }
            tr { th { "access" } td { (i.access.as_ref().map(|a| a.front_end_url.as_str()).unwrap_or("-")) } }
        }
    }
}

/// One line of the timeline.
struct Moment {
    at: DateTime<Utc>,
    class: &'static str,
    text: Markup,
}

fn timeline(d: &InstanceDetail) -> Markup {
    let mut moments: Vec<Moment> = Vec::new();
    for e in &d.history {
        moments.push(Moment {
            at: e.at,
            class: "event",
            text: html! {
                strong { (e.kind.name()) }
                @if let Some(from) = e.from { " " (from.as_str()) " → " } @else { " → " }
                (e.to.as_str())
                " (event " (e.seq) @if d.instance.outbox.pending.contains(&e.seq) { ", notice pending" } ")"
            },
        });
    }
    for x in &d.exchanges {
        moments.push(Moment {
            at: x.at,
            class: match x.direction {
                Direction::Inbound => "inbound",
                Direction::Outbound => "outbound",
                Direction::Operator => "operator",
            },
            text: html! {
                (x.direction.as_str()) " " strong { (x.activity) } " " (x.family)
                @if let Some(code) = &x.result_code { " → " code { (code) } }
                @if let Some(status) = x.http_status { " HTTP " (status) }
                @if let Some(e) = &x.error { " — " (e) }
            },
        });
    }
    for dl in &d.dead_letters {
        moments.push(Moment {
            at: dl.at,
            class: "dead",
            text: html! { strong { "dead-lettered" } " " (dl.job.subject()) ": " (dl.reason) },
        });
    }
    moments.sort_by_key(|m| m.at);
    html! {
        ol.timeline #timeline {
            @for m in &moments { li class=(m.class) { code { (time(&m.at)) } " " (m.text) } }
        }
    }
}

fn dead_letter_table(letters: &[DeadLetter], csrf: &str, here: &str) -> Markup {
    html! {
        @if letters.is_empty() { p.empty { "No dead letters." } } @else {
            table #dead-letters {
                tr { th { "id" } th { "job" } th { "reason" } th { "attempts" } th { "dead since" } th { "action" } }
                @for d in letters {
                    tr {
                        td { (d.id) }
                        td { (d.job.subject()) }
                        td { (d.reason) }
                        td { (d.attempts) }
                        td { (time(&d.at)) }
                        td {
                            form.inline method="post" action="/admin/dead-letters/redrive" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="id" value=(d.id);
                                input type="hidden" name="return" value=(here);
                                button.redrive type="submit" { "Redrive" }
                            }
                            " "
                            form.inline method="post" action="/admin/dead-letters/discard" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="id" value=(d.id);
                                input type="hidden" name="return" value=(here);
                                input name="reason" placeholder="reason to discard" required;
                                button type="submit" { "Discard" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn exchange_table(exchanges: &[Exchange]) -> Markup {
    html! {
        @if exchanges.is_empty() { p.empty { "No exchanges kept." } } @else {
            table #exchanges {
                tr { th { "at" } th { "direction" } th { "call" } th { "result" } th { "ms" } th { "instance / order" } th { "request → answer" } }
                @for x in exchanges {
                    tr {
                        td { code { (time(&x.at)) } }
                        td { (x.direction.as_str()) }
                        td { (x.activity) br; small { (x.family) @if let Some(k) = &x.key { ", " (k) " key" } @if x.test { ", debug" } } }
                        td { (x.result_code.as_deref().unwrap_or("-")) @if let Some(s) = x.http_status { " (HTTP " (s) ")" } }
                        td { (format!("{:.1}", x.latency_ms)) }
                        td {
                            @if let Some(i) = &x.instance_id { a href={"/admin/instances/" (urlencode(i))} { (i) } }
                            br; (x.order_id.as_deref().unwrap_or(""))
                        }
                        td { details { summary { "bodies" } pre { (serde_json::to_string_pretty(&x.request).unwrap_or_default()) } pre { (serde_json::to_string_pretty(&x.response).unwrap_or_default()) } } }
                    }
                }
            }
        }
    }
}

pub(crate) async fn dead_letters(
    State(c): State<Console>,
    SignedIn(s): SignedIn,
    Query(p): Query<DeadLetterParams>,
    Query(n): Query<Note>,
) -> Response {
    let csrf = c.csrf(&s);
    let letters = match c
        .operator
        .dead_letters(p.instance().as_deref(), p.reason().as_deref())
        .await
    {
        Ok(l) => l,
        Err(e) => return failure_page(&c, &s, &e),
    };
    // Without an exchange log there are no passes to show; the page says so.
    let passes = c
        .operator
        .reconciler_passes(crate::api::PassParams::DEFAULT)
        .await
        .ok();
    html_response(
        StatusCode::OK,
        page(
            "Dead letters",
            "/admin/dead-letters",
            Some((&s, &csrf)),
            html! {
                (note(&n.note))
                p { "Jobs the worker gave up on. A redrive puts them back on the queue with a fresh attempt budget, oldest first; the worker delivers an instance's notices in order whatever the queue's order." }
                (dead_letter_table(&letters, &csrf, "/admin/dead-letters"))
                @if !letters.is_empty() {
                    form.inline method="post" action="/admin/dead-letters/redrive" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="all" value="true";
                        input type="hidden" name="return" value="/admin/dead-letters";
                        button #redrive-all type="submit" { "Redrive all, oldest first" }
                    }
                }
                form.inline method="post" action="/admin/reconcile" {
                    input type="hidden" name="csrf" value=(csrf);
                    " " button #reconcile type="submit" { "Run a reconciler pass now" }
                }
                h2 { "Reconciler passes" }
                (passes_table(passes.as_deref()))
            },
        ),
    )
}

/// The reconciler's last passes: when, who, what each found.
fn passes_table(passes: Option<&[koogallery::exchange::Exchange]>) -> Markup {
    let Some(passes) = passes else {
        return html! { p { "Passes are kept in the exchange log, which this deployment does not keep." } };
    };
    if passes.is_empty() {
        return html! { p { "No pass kept yet." } };
    }
    let count = |v: &serde_json::Value, k: &str| v[k].as_array().map_or(0, Vec::len);
    html! {
        table #passes {
            thead { tr { th { "at" } th { "by" } th { "stuck provisioning" } th { "undelivered notices" } th { "parked outboxes" } } }
            tbody {
                @for p in passes {
                    @let v = koogallery::operator::view::pass_json(p);
                    tr {
                        td { (p.at.format("%Y-%m-%d %H:%M:%S UTC")) }
                        td { (v["who"].as_str().unwrap_or("-")) }
                        td { (count(&v, "stuck_provisioning")) }
                        td { (count(&v, "undelivered_notices")) }
                        td { (count(&v, "parked_outboxes")) }
                    }
                }
            }
        }
    }
}

pub(crate) async fn exchanges(
    State(c): State<Console>,
    SignedIn(s): SignedIn,
    Query(p): Query<ExchangeParams>,
) -> Response {
    let csrf = c.csrf(&s);
    let list = match c.operator.exchanges(&p.query()).await {
        Ok(l) => l,
        Err(e) => return failure_page(&c, &s, &e),
    };
    // The chart reads the last hour whatever the page's filter.
    let recent = c
        .operator
        .exchanges(&ExchangeQuery::newest(
            ExchangeFilter::All,
            ExchangeQuery::MAX_LIMIT,
        ))
        .await
        .unwrap_or_default();
    html_response(
        StatusCode::OK,
        page(
            "Exchanges",
            "/admin/exchanges",
            Some((&s, &csrf)),
            html! {
                h2 { "Calls from KooGallery per minute, by result code" }
                (charts::callbacks_per_minute(&recent, c.operator.clock.now()))
                form method="get" action="/admin/exchanges" {
                    input name="instance" placeholder="instance ID" value=(p.instance.clone().unwrap_or_default());
                    " " input name="order" placeholder="order ID" value=(p.order.clone().unwrap_or_default());
                    " " button type="submit" { "Filter" }
                }
                (exchange_table(&list))
                @if let Some(last) = list.last() {
                    @if list.len() >= p.query().bounded_limit() {
                        a href={"/admin/exchanges?before=" (urlencode(&last.id)) "&instance=" (urlencode(p.instance.as_deref().unwrap_or(""))) "&order=" (urlencode(p.order.as_deref().unwrap_or("")))} { "Older →" }
                    }
                }
            },
        ),
    )
}

/// A redrive or discard form: its selection, the CSRF token, and the page to go back to.
#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    id: Option<String>,
    instance: Option<String>,
    #[serde(default)]
    all: Option<String>,
    reason: Option<String>,
    #[serde(rename = "return")]
    back: Option<String>,
}

/// Where an action goes back to: a console page, never another site.
fn back_to(back: &Option<String>, note: &str) -> Response {
    let path = back
        .as_deref()
        .filter(|p| p.starts_with("/admin/") && !p.starts_with("//") && !p.contains("://"))
        .unwrap_or("/admin/dead-letters");
    Redirect::to(&format!("{path}?note={}", urlencode(note))).into_response()
}

/// The refusal of a form whose CSRF token is not the session's, if it is not.
fn csrf_refusal(c: &Console, s: &Session, presented: &str) -> Option<Response> {
    if c.csrf_matches(s, presented) {
        return None;
    }
    tracing::warn!("console action refused: CSRF token not this session's");
    Some(forbidden_csrf())
}

pub(crate) async fn redrive(
    State(c): State<Console>,
    headers: HeaderMap,
    SignedIn(s): SignedIn,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&c, &s, &f.csrf) {
        return refused;
    }
    let request = RedriveRequest {
        id: f.id.clone(),
        instance: f.instance.clone(),
        all: f.all.as_deref() == Some("true"),
    };
    let selection = match request.selection() {
        Ok(sel) => sel,
        Err(e) => return back_to(&f.back, &e),
    };
    match c
        .operator
        .redrive(&selection, &c.who(&headers, "console"))
        .await
    {
        Ok(done) => back_to(
            &f.back,
            &format!(
                "Redriven: {}{}",
                if done.done.is_empty() {
                    "none".to_owned()
                } else {
                    done.done.join(", ")
                },
                if done.gone.is_empty() {
                    String::new()
                } else {
                    format!(" (already gone: {})", done.gone.join(", "))
                }
            ),
        ),
        Err(e) => failure_page(&c, &s, &e),
    }
}

pub(crate) async fn discard(
    State(c): State<Console>,
    headers: HeaderMap,
    SignedIn(s): SignedIn,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&c, &s, &f.csrf) {
        return refused;
    }
    let id = f.id.clone().unwrap_or_default();
    match c
        .operator
        .discard(
            &id,
            f.reason.as_deref().unwrap_or(""),
            &c.who(&headers, "console"),
        )
        .await
    {
        Ok(done) if done.done.is_empty() => back_to(&f.back, &format!("{id} was gone already")),
        Ok(_) => back_to(&f.back, &format!("Discarded: {id}")),
        Err(OperatorError::Invalid(m)) => back_to(&f.back, &m),
        Err(e) => failure_page(&c, &s, &e),
    }
}

pub(crate) async fn reconcile(
    State(c): State<Console>,
    headers: HeaderMap,
    SignedIn(s): SignedIn,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&c, &s, &f.csrf) {
        return refused;
    }
    match c.operator.reconcile(&c.who(&headers, "console")).await {
        Ok(r) => back_to(
            &None,
            &format!(
                "Reconciler pass: {} stuck provisioning, {} undelivered notices re-queued; {} parked outboxes",
                r.stuck_provisioning.len(),
                r.undelivered_notices.len(),
                r.parked_outboxes.len()
            ),
        ),
        Err(e) => failure_page(&c, &s, &e),
    }
}
