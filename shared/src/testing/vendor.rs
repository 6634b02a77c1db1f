//! A vendor's webhook endpoint inside a test: it verifies the signature on every event the webhook
//! provisioner POSTs (README "Provisioners"), as a vendor must, records every request, and answers
//! the signed ones as the test scripts them (401 to the others).

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{Router, body::Bytes, http::HeaderMap, http::StatusCode, routing::post};

use crate::security::webhook::{HEADER_SIGNATURE, HEADER_TIMESTAMP, verify_webhook_signature};

/// One request the vendor received, and what it answered.
#[derive(Debug, Clone)]
pub struct VendorRequest {
    /// Its signature verified under the vendor's secret.
    pub signed: bool,
    /// Its body, `None` if it was not JSON.
    pub event: Option<serde_json::Value>,
    /// The HTTP status the vendor answered (401 for an unsigned request).
    pub status: u16,
}

/// A vendor endpoint on a port of its own, serving `POST /hook` until the test's runtime ends.
/// Its readers fail the test on an unsigned request: the check runs in the test, where a failure
/// counts, not in the HTTP handler, where a panic would only drop the connection.
pub struct SignedVendor {
    /// Where the webhook provisioner is to POST.
    pub url: String,
    /// Requests that reached the vendor, counted on arrival (before the answer is ready).
    pub arrived: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<VendorRequest>>>,
}

impl SignedVendor {
    /// Starts the endpoint: a request signed with `secret` is answered by `answer` (given its
    /// JSON, `Null` if it is not JSON) with a status and a body, then recorded; another is
    /// recorded and answered 401.
    pub async fn start<F, Fut>(secret: &str, answer: F) -> Self
    where
        F: Fn(serde_json::Value) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = (u16, String)> + Send + 'static,
    {
        let secret = secret.to_owned();
        let received = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(AtomicUsize::new(0));
        let (r, a) = (received.clone(), arrived.clone());
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let (received, answer, secret) = (r.clone(), answer.clone(), secret.clone());
                a.fetch_add(1, Ordering::SeqCst);
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let (ts, sig) = (header(HEADER_TIMESTAMP), header(HEADER_SIGNATURE));
                    let signed = verify_webhook_signature(&secret, &ts, &body, &sig);
                    let event: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
                    let (status, reply) = if signed {
                        answer(event.clone().unwrap_or_default()).await
                    } else {
                        (401, r#"{"error":"bad signature"}"#.to_owned())
                    };
                    received.lock().unwrap().push(VendorRequest {
                        signed,
                        event,
                        status,
                    });
                    (
                        StatusCode::from_u16(status).expect("a scripted HTTP status"),
                        reply,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the vendor endpoint");
        let url = format!(
            "http://{}/hook",
            listener.local_addr().expect("its address")
        );
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the vendor serves") });
        Self {
            url,
            arrived,
            received,
        }
    }

    /// Every request so far, in the order the vendor answered them. Fails the test if one was not
    /// signed.
    pub fn requests(&self) -> Vec<VendorRequest> {
        let all = self.received.lock().unwrap().clone();
        if let Some(unsigned) = all.iter().find(|r| !r.signed) {
            panic!("the vendor received an event that is not signed: {unsigned:?}");
        }
        all
    }

    /// The events received so far, in order ([`Self::requests`]' check included). Fails the test
    /// if one was not JSON.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.event.unwrap_or_else(|| panic!("event {i} is JSON")))
            .collect()
    }
}
