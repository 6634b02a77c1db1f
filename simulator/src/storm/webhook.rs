//! The vendor's webhook, played by the simulator, and what it received.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use koogallery::security::webhook;
use serde_json::{Value, json};

/// The vendor's webhook, played by the simulator: verifies each event's signature, answers a
/// `provision` with access information and anything else with `000000`, and counts what it got.
pub struct WebhookReceiver {
    url: String,
    state: Arc<Mutex<Received>>,
}

#[derive(Debug, Default)]
struct Received {
    provisions: HashMap<String, Provisioned>,
    bad_signatures: u64,
    other_events: u64,
}

/// The provision requests for one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// The order the events named.
    pub order_id: String,
    /// The eventId of each request: the host's retries of one event keep it (the vendor's
    /// idempotency key); a second provisioning has a new one.
    pub event_ids: Vec<String>,
}

/// What the webhook received, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Provisionings {
    /// Provision requests per instance.
    pub by_instance: HashMap<String, Provisioned>,
    /// Requests whose signature did not verify (answered 401, not counted above).
    pub bad_signatures: u64,
    /// Events other than `provision`.
    pub other_events: u64,
}

impl Provisionings {
    /// Provision requests received in all.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.by_instance.values().map(|p| p.event_ids.len()).sum()
    }

    /// Distinct provisionings (distinct eventIds) in all.
    #[must_use]
    pub fn distinct(&self) -> usize {
        self.by_instance
            .values()
            .map(|p| p.event_ids.iter().collect::<BTreeSet<_>>().len())
            .sum()
    }
}

impl WebhookReceiver {
    /// Listens on `listen` (port 0: any free port) at `/hook`; events must be signed with `secret`
    /// (the host's `KOOGALLERY_WEBHOOK_SECRET`).
    ///
    /// # Errors
    /// The listener cannot be bound.
    pub async fn start(listen: SocketAddr, secret: &str) -> std::io::Result<Self> {
        use axum::{Router, body::Bytes, http::HeaderMap, http::StatusCode, routing::post};
        let state = Arc::new(Mutex::new(Received::default()));
        let (seen, secret) = (state.clone(), secret.to_owned());
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let (seen, secret) = (seen.clone(), secret.clone());
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                    };
                    let signed = webhook::verify_webhook_signature(
                        &secret,
                        header(webhook::HEADER_TIMESTAMP),
                        &body,
                        header(webhook::HEADER_SIGNATURE),
                    );
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    if !signed {
                        seen.bad_signatures += 1;
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let text = |k: &str| event[k].as_str().unwrap_or_default().to_owned();
                    if event["event"] != "provision" {
                        seen.other_events += 1;
                        return (StatusCode::OK, json!({"resultCode":"000000"}).to_string());
                    }
                    let instance_id = text("instanceId");
                    let provisioned = seen.provisions.entry(instance_id.clone()).or_default();
                    provisioned.order_id = text("orderId");
                    provisioned.event_ids.push(text("eventId"));
                    let answer = json!({"frontEndUrl":format!("https://vendor.example/{instance_id}"),
                        "userName":"owner","password":format!("pw-{instance_id}")});
                    (StatusCode::OK, answer.to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, state })
    }

    /// The URL to give the host as `KOOGALLERY_WEBHOOK_URL`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What it received so far.
    #[must_use]
    pub fn provisionings(&self) -> Provisionings {
        let seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Provisionings {
            by_instance: seen.provisions.clone(),
            bad_signatures: seen.bad_signatures,
            other_events: seen.other_events,
        }
    }
}
