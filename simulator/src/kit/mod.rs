//! Plays KooGallery's 联营 Kit syncs (docs/protocol/callbacks.md §3.2, §9): each call POSTed to
//! `{production URL}/produceAPI/v2/{name}` with `x-sign`, `x-timestamp` and `x-nonce` made with the
//! Kit key, the answer's `Body-Sign` checked with the same key; realistic bodies (Chinese names, a
//! 500-user authSync, a deep department tree sent parents-after-children, a `clientSecret`
//! encrypted with the service's own public key as the platform does); and the whole 联营 purchase.

mod bodies;
mod purchase;
mod repeat;

pub use bodies::{
    all_org_sync, application_sync, auth_sync, departments, single_org_sync, tenant_sync, users,
};
pub use purchase::{KitSizes, KitStep, run_joint_purchase, run_kit_lifecycle};
pub use repeat::{KitRepeatReport, repeat};

use std::time::Instant;

use reqwest::Url;
use serde_json::Value;

use crate::platform::{basic_sign::canonical_payload, kit_sign::x_sign};
use crate::{Answer, SimError, random_nonce, snippet};

/// The Kit sub-path KooGallery appends to the production URL (docs/protocol/callbacks.md §9).
pub const KIT_PATH: &str = "/produceAPI/v2/";
/// The development Kit key of the local host.
pub const DEFAULT_KIT_KEY: &str = "dev-kit-key-change-me";

/// KooGallery's Kit side, as seen by one production URL.
pub struct KitSimulator {
    client: reqwest::Client,
    url: Url,
    kit_key: String,
}

impl std::fmt::Debug for KitSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KitSimulator")
            .field("url", &self.url.as_str())
            .field("kit_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `timeStamp` of a Kit body: `yyyyMMddHHmmssSSS` in GMT+8 (docs/protocol/callbacks.md §9).
pub fn kit_time_stamp() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y%m%d%H%M%S%3f")
        .to_string()
}

impl KitSimulator {
    /// A Kit simulator for the production URL `url` (`…/produce`) and the Kit key.
    ///
    /// # Errors
    /// As [`crate::Simulator::new`].
    pub fn new(url: &str, kit_key: &str) -> Result<Self, SimError> {
        let basic = crate::Simulator::new(url, kit_key)?;
        Ok(Self {
            client: basic.client.clone(),
            url: basic.url.clone(),
            kit_key: kit_key.to_owned(),
        })
    }

    fn kit_url(&self, name: &str) -> Result<Url, SimError> {
        let mut url = self.url.clone();
        url.set_query(None);
        let path = format!("{}{KIT_PATH}{name}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Ok(url)
    }

    /// The service's Kit public key (`GET /kit/public-key` beside the production URL), PEM.
    ///
    /// # Errors
    /// [`SimError::Http`] or [`SimError::BadAnswer`] when it is not served.
    pub async fn public_key(&self) -> Result<String, SimError> {
        let step = "kit public key";
        let mut url = self.url.clone();
        url.set_query(None);
        url.set_path("/kit/public-key");
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| SimError::Http(step.into(), e))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| SimError::Http(step.into(), e))?;
        if status != 200 || !text.contains("BEGIN PUBLIC KEY") {
            return Err(SimError::BadAnswer {
                step: step.into(),
                detail: format!("HTTP {status}: {}", snippet(text.as_bytes())),
            });
        }
        Ok(text)
    }

    /// Signs and POSTs one Kit call as KooGallery does (upper-case hex `x-sign` over the canonical
    /// payload, ms timestamp, fresh nonce). Any KooGallery reply is `Ok`; `body_sign_valid` says
    /// whether `Body-Sign` verifies with the Kit key.
    ///
    /// # Errors
    /// [`SimError::InvalidBody`] (not an object), [`SimError::Http`], [`SimError::BadAnswer`].
    pub async fn call(&self, name: &str, body: &Value) -> Result<Answer, SimError> {
        self.call_signed(name, body, &self.kit_key, &random_nonce())
            .await
    }

    /// [`Self::call`] signed with `key` and `nonce` (negative tests).
    ///
    /// # Errors
    /// As [`Self::call`].
    pub async fn call_signed(
        &self,
        name: &str,
        body: &Value,
        key: &str,
        nonce: &str,
    ) -> Result<Answer, SimError> {
        let Value::Object(map) = body else {
            return Err(SimError::InvalidBody("a Kit body is a JSON object".into()));
        };
        let bytes = serde_json::to_vec(body).map_err(|e| SimError::InvalidBody(e.to_string()))?;
        let ts = chrono::Utc::now().timestamp_millis().to_string();
        let sign = x_sign(key, nonce, &ts, &canonical_payload(map));
        let started = Instant::now();
        let resp = self
            .client
            .post(self.kit_url(name)?)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-sign", sign)
            .header("x-timestamp", &ts)
            .header("x-nonce", nonce)
            .body(bytes)
            .send()
            .await
            .map_err(|e| crate::transport_error(name, e))?;
        crate::read_answer(name, resp, &self.kit_key, started).await
    }
}
