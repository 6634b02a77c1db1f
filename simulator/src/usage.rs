//! A client of the usage ingestion API (`POST /usage`, `koogallery::metering::api`), as a vendor's
//! application uses it: each batch signed with the app's usage key, fresh timestamp and nonce on
//! every attempt, and retried on a network failure or a 503 (ingestion is idempotent by key).

use std::time::Duration;

use koogallery::metering::api::{UsageBatch, UsageRecordIn, sign};

/// What the host answered for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageAnswer {
    pub status: u16,
    pub body: serde_json::Value,
}

pub struct UsageClient {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl UsageClient {
    /// `url`: the host's `…/usage`; `key`: the shared usage key (`KOOGALLERY_USAGE_KEY`).
    pub fn new(url: &str, key: &str) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            url: url.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Sends one batch once.
    pub async fn send(&self, records: &[UsageRecordIn]) -> Result<UsageAnswer, reqwest::Error> {
        let body = serde_json::to_vec(&UsageBatch {
            records: records.to_vec(),
        })
        .unwrap_or_default();
        let mut request = self.http.post(&self.url).body(body.clone());
        for (name, value) in sign(&self.key, &body, chrono::Utc::now()) {
            request = request.header(name, value);
        }
        request = request.header("content-type", "application/json");
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or_default();
        Ok(UsageAnswer { status, body })
    }

    /// Sends a batch until the host takes it or refuses it for good (4xx): a network failure or
    /// a 503 is retried, up to `attempts` times, a pause between.
    pub async fn send_until_taken(
        &self,
        records: &[UsageRecordIn],
        attempts: u32,
    ) -> Option<UsageAnswer> {
        for _ in 0..attempts {
            match self.send(records).await {
                Ok(a) if a.status != 503 => return Some(a),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        None
    }
}
