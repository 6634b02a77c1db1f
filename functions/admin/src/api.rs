//! The operator API: `/admin/api/…`, JSON in `koogallery::operator::view`'s versioned shapes,
//! behind the [`Auth`](crate::Auth) mode. Errors answer `{"error": …}` with 400 (a bad query), 404 (no such
//! instance), 501 (not kept by this deployment) or 503 (the store or the queue did not answer).

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::HeaderMap,
    response::Response,
};
use chrono::{DateTime, Utc};
use koogallery::{
    exchange::{ExchangeFilter, ExchangeQuery},
    instance::InstanceState,
    operator::{InstanceFilter, OperatorError, Selection, view},
};
use serde::Deserialize;
use serde_json::json;

use super::Console;
use crate::json_answer;

/// The instance listing's query: `customer`, `order`, `state`, `product` (a product ID or a SKU
/// code), `since` and `until` (RFC 3339), `limit` (default 100).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct InstanceQuery {
    pub(crate) customer: Option<String>,
    pub(crate) order: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) product: Option<String>,
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) limit: Option<usize>,
}

fn blank_is_none(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn time(name: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, String> {
    blank_is_none(v)
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("{name}: not an RFC 3339 time ({e})"))
        })
        .transpose()
}

impl InstanceQuery {
    pub(crate) fn filter(&self) -> Result<InstanceFilter, String> {
        let state = match blank_is_none(&self.state) {
            None => None,
            Some(s) => Some(parse_state(&s)?),
        };
        Ok(InstanceFilter {
            customer_id: blank_is_none(&self.customer),
            order_id: blank_is_none(&self.order),
            state,
            product: blank_is_none(&self.product),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            limit: self.limit.unwrap_or(100),
        })
    }
}

pub(crate) fn parse_state(s: &str) -> Result<InstanceState, String> {
    [
        InstanceState::Provisioning,
        InstanceState::Active,
        InstanceState::Frozen,
        InstanceState::Failed,
        InstanceState::Released,
    ]
    .into_iter()
    .find(|st| st.as_str().eq_ignore_ascii_case(s))
    .ok_or_else(|| {
        format!("state: {s:?} is not one of provisioning, active, frozen, failed, released")
    })
}

/// `instance`, `order`, `before` (an exchange ID), `limit` (default 50).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ExchangeParams {
    pub(crate) instance: Option<String>,
    pub(crate) order: Option<String>,
    pub(crate) before: Option<String>,
    pub(crate) limit: Option<usize>,
}

impl ExchangeParams {
    pub(crate) fn query(&self) -> ExchangeQuery {
        let filter = match (blank_is_none(&self.instance), blank_is_none(&self.order)) {
            (Some(i), _) => ExchangeFilter::Instance(i),
            (None, Some(o)) => ExchangeFilter::Order(o),
            (None, None) => ExchangeFilter::All,
        };
        ExchangeQuery {
            filter,
            before: blank_is_none(&self.before),
            limit: self.limit.unwrap_or(50),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeadLetterParams {
    pub(crate) instance: Option<String>,
    pub(crate) reason: Option<String>,
}

impl DeadLetterParams {
    /// The instance asked for; blank is none.
    pub(crate) fn instance(&self) -> Option<String> {
        blank_is_none(&self.instance)
    }

    /// The words the reason must contain; blank is none.
    pub(crate) fn reason(&self) -> Option<String> {
        blank_is_none(&self.reason)
    }
}

/// What a redrive takes: one `id`, an `instance`'s, or `all`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RedriveRequest {
    pub(crate) id: Option<String>,
    pub(crate) instance: Option<String>,
    #[serde(default)]
    pub(crate) all: bool,
}

impl RedriveRequest {
    pub(crate) fn selection(&self) -> Result<Selection, String> {
        match (
            blank_is_none(&self.id),
            blank_is_none(&self.instance),
            self.all,
        ) {
            (Some(id), None, false) => Ok(Selection::One(id)),
            (None, Some(i), false) => Ok(Selection::Instance(i)),
            (None, None, true) => Ok(Selection::All),
            _ => Err("give exactly one of: id, instance, all".into()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DiscardRequest {
    pub(crate) id: String,
    pub(crate) reason: String,
}

/// The answer to an operator error.
pub(crate) fn failure(e: &OperatorError) -> Response {
    let status = match e {
        OperatorError::Invalid(_) => 400,
        OperatorError::NotKept(_) => 501,
        _ if e.is_retryable() => 503,
        _ => 500,
    };
    if status >= 500 {
        tracing::warn!(error = %e, "operator call failed");
    }
    json_answer(status, json!({ "error": e.to_string() }))
}

fn bad_request(message: String) -> Response {
    json_answer(400, json!({ "error": message }))
}

macro_rules! authorised {
    ($console:expr, $headers:expr) => {
        if let Some(refused) = $console.api_refusal(&$headers) {
            return refused;
        }
    };
}

pub(crate) async fn instances(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<InstanceQuery>,
) -> Response {
    authorised!(c, headers);
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    match c.operator.instances(&filter).await {
        Ok(list) => json_answer(200, view::instance_list(&list)),
        Err(e) => failure(&e),
    }
}

pub(crate) async fn instance(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    authorised!(c, headers);
    match c.operator.instance(&id).await {
        Ok(Some(detail)) => json_answer(200, detail.to_json()),
        Ok(None) => json_answer(404, json!({ "error": format!("no instance {id:?}") })),
        Err(e) => failure(&e),
    }
}

pub(crate) async fn exchanges(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(p): Query<ExchangeParams>,
) -> Response {
    authorised!(c, headers);
    match c.operator.exchanges(&p.query()).await {
        Ok(list) => json_answer(200, view::exchange_list(&list)),
        Err(e) => failure(&e),
    }
}

pub(crate) async fn dead_letters(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(p): Query<DeadLetterParams>,
) -> Response {
    authorised!(c, headers);
    match c
        .operator
        .dead_letters(p.instance().as_deref(), p.reason().as_deref())
        .await
    {
        Ok(list) => json_answer(200, view::dead_letter_list(&list)),
        Err(e) => failure(&e),
    }
}

pub(crate) async fn redrive(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    authorised!(c, headers);
    let request: RedriveRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(format!(
                r#"a JSON body: {{"id": …}}, {{"instance": …}} or {{"all": true}} ({e})"#
            ));
        }
    };
    let selection = match request.selection() {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    match c
        .operator
        .redrive(&selection, &c.who(&headers, "API"))
        .await
    {
        Ok(done) => json_answer(
            200,
            json!({ "v": view::VERSION, "redriven": done.done, "gone": done.gone }),
        ),
        Err(e) => failure(&e),
    }
}

pub(crate) async fn discard(State(c): State<Console>, headers: HeaderMap, body: Bytes) -> Response {
    authorised!(c, headers);
    let request: DiscardRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(format!(r#"a JSON body: {{"id": …, "reason": …}} ({e})"#)),
    };
    match c
        .operator
        .discard(&request.id, &request.reason, &c.who(&headers, "API"))
        .await
    {
        Ok(done) => json_answer(
            200,
            json!({ "v": view::VERSION, "discarded": done.done, "gone": done.gone }),
        ),
        Err(e) => failure(&e),
    }
}

/// The reconciler's last passes, newest first (`?limit=`, 20 by default).
pub(crate) async fn passes(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(p): Query<PassParams>,
) -> Response {
    authorised!(c, headers);
    match c.operator.reconciler_passes(p.limit()).await {
        Ok(passes) => json_answer(
            200,
            json!({
                "v": view::VERSION,
                "passes": passes.iter().map(view::pass_json).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => failure(&e),
    }
}

/// `?limit=` of the reconciler's passes.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct PassParams {
    limit: Option<usize>,
}

impl PassParams {
    /// The passes a page shows.
    pub(crate) const DEFAULT: usize = 20;

    pub(crate) fn limit(&self) -> usize {
        self.limit
            .unwrap_or(Self::DEFAULT)
            .clamp(1, ExchangeQuery::MAX_LIMIT)
    }
}

pub(crate) async fn reconcile(State(c): State<Console>, headers: HeaderMap) -> Response {
    authorised!(c, headers);
    match c.operator.reconcile(&c.who(&headers, "API")).await {
        Ok(report) => json_answer(200, view::report_json(&report)),
        Err(e) => failure(&e),
    }
}
