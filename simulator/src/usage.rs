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
            http: crate::client_builder()
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
        let request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.clone());
        self.signed(request, &body).await
    }

    /// Sends `request` with the usage signature over `signed` (fresh timestamp and nonce).
    async fn signed(
        &self,
        mut request: reqwest::RequestBuilder,
        signed: &[u8],
    ) -> Result<UsageAnswer, reqwest::Error> {
        for (name, value) in sign(&self.key, signed, chrono::Utc::now()) {
            request = request.header(name, value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or_default();
        Ok(UsageAnswer { status, body })
    }

    /// `GET …/usage/estimate` for an instance and an optional period (RFC 3339), signed over the
    /// raw query as the endpoint requires.
    pub async fn estimate(
        &self,
        instance_id: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<UsageAnswer, reqwest::Error> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("instanceId", instance_id);
        if let Some(from) = from {
            query.append_pair("from", from);
        }
        if let Some(to) = to {
            query.append_pair("to", to);
        }
        let query = query.finish();
        let url = format!("{}/estimate?{query}", self.url.trim_end_matches('/'));
        self.signed(self.http.get(url), query.as_bytes()).await
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

/// `koogallery-sim usage`: what to drive.
#[derive(Debug, Clone)]
pub struct UsageDrive {
    /// The host's `…/usage` URL.
    pub url: String,
    pub usage_key: String,
    pub instances: Vec<String>,
    pub records: usize,
    pub batch: usize,
    pub connections: usize,
}

/// What a drive did.
#[derive(Debug, Clone, Default)]
pub struct DriveReport {
    pub records: usize,
    pub batches: usize,
    pub applied: u64,
    pub refused: Vec<String>,
    pub seconds: f64,
}

impl std::fmt::Display for DriveReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} records in {} batches in {:.2} s: {:.0} records/s, {} applied",
            self.records,
            self.batches,
            self.seconds,
            self.records as f64 / self.seconds.max(1e-9),
            self.applied
        )?;
        for r in &self.refused {
            writeln!(f, "refused: {r}")?;
        }
        Ok(())
    }
}

/// Sends `records` reports (quantity 1.0001 each, now, distinct keys) spread over the instances,
/// `batch` per request on `connections` concurrent connections.
pub async fn drive(opts: &UsageDrive) -> Result<DriveReport, String> {
    if opts.instances.is_empty() || opts.batch == 0 || opts.connections == 0 {
        return Err("at least one instance, a batch of at least 1 and one connection".into());
    }
    let client = std::sync::Arc::new(
        UsageClient::new(&opts.url, &opts.usage_key).map_err(|e| e.to_string())?,
    );
    let run = uuid::Uuid::new_v4().simple().to_string();
    let now = chrono::Utc::now();
    let batches: Vec<Vec<UsageRecordIn>> = (0..opts.records)
        .map(|n| UsageRecordIn {
            instance_id: opts.instances[n % opts.instances.len()].clone(),
            quantity: rust_decimal::Decimal::new(10_001, 4),
            occurred_at: now,
            idempotency_key: format!("sim-{run}-{n}"),
            package_instance_id: None,
        })
        .collect::<Vec<_>>()
        .chunks(opts.batch)
        .map(<[UsageRecordIn]>::to_vec)
        .collect();
    let total = batches.len();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(batches));
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..opts.connections {
        let (client, queue) = (client.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut applied = 0u64;
            let mut refused = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(batch) = next else { break };
                match client.send_until_taken(&batch, 5).await {
                    Some(a) if a.status == 200 => {
                        applied += a.body["applied"].as_u64().unwrap_or(0)
                    }
                    Some(a) => refused.push(format!("HTTP {}: {}", a.status, a.body)),
                    None => refused.push("no answer after 5 tries".into()),
                }
            }
            (applied, refused)
        }));
    }
    let mut report = DriveReport {
        records: opts.records,
        batches: total,
        ..DriveReport::default()
    };
    for t in tasks {
        let (applied, refused) = t.await.map_err(|e| e.to_string())?;
        report.applied += applied;
        report.refused.extend(refused);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// What a running `serve-openapi` received, per (instance, window): a printable table.
pub async fn received(openapi: &str) -> Result<String, String> {
    let v = sim_usage(openapi).await?;
    let mut out = String::from("instance_id\tbegin_time\tend_time\tusage_value\tmetering_sn\n");
    for r in v["accepted"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            r["instance_id"].as_str().unwrap_or_default(),
            r["begin_time"].as_str().unwrap_or_default(),
            r["end_time"].as_str().unwrap_or_default(),
            r["usage_value"].as_str().unwrap_or_default(),
            r["metering_sn"].as_str().unwrap_or_default(),
        ));
    }
    out.push_str(&format!(
        "repeats dropped: {}; conflicting repeats: {}\n",
        v["duplicates"],
        v["conflicting"].as_array().map_or(0, Vec::len)
    ));
    Ok(out)
}

/// KooGallery's bill from the records it accepted: its own computation, independent of the
/// vendor's estimate (docs/protocol/openapi.md §3.2).
pub use crate::platform::bill::{Price, koogallery_bill};

/// The records a running `serve-openapi` accepted.
pub async fn accepted(openapi: &str) -> Result<Vec<crate::openapi::UsageRecord>, String> {
    let v = sim_usage(openapi).await?;
    serde_json::from_value(v["accepted"].clone()).map_err(|e| e.to_string())
}

/// `GET /_sim/usage` of a running `serve-openapi`.
async fn sim_usage(openapi: &str) -> Result<serde_json::Value, String> {
    let url = format!("{}/_sim/usage", openapi.trim_end_matches('/'));
    reqwest::get(&url)
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}
