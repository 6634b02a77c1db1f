//! The license service the vendor's software talks to (`POST /license/activate`, `POST
//! /license/check`, `GET /license/keys`): the seller's AK/SK cannot ship inside the software, so
//! this service activates a code on KooGallery on first use (once per code, concurrent first
//! calls included), queries it at most daily (docs/protocol/openapi.md §5.1, §5.2), records the
//! daily clients for the usage statistics (§5.3), and answers with a license token signed with
//! Ed25519 (`koogallery-license-token`) that the software verifies offline with the published key.
//!
//! Freeze, release, renewal and expiry — from the License callbacks or from a query — change what
//! the next check answers. A code KooGallery says does not exist (`92020005`) is refused and
//! nothing is stored for it.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use koogallery_license_token::{Claims, Issuer, Status};
use tokio::sync::Mutex;

use super::{
    License, LicenseApiError, LicenseChange, LicenseCode, LicenseMarketplace, LicenseStatus,
    LicenseStore, MutateError, Origin, mutate_license,
};
use crate::{
    clock::Clock,
    jobs::{Job, JobQueue},
    storage::StoreError,
};

/// How often KooGallery's query is asked about a code: daily, on use (docs/protocol/openapi.md
/// §5.2).
pub const QUERY_EVERY: Duration = Duration::hours(24);

/// Most characters of a client ID (`software_usage_Info[].id`, docs/protocol/openapi.md §5.3).
pub const MAX_CLIENT_ID_LEN: usize = 256;

/// What the software is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub token: String,
    pub claims: Claims,
}

/// Why the service cannot answer with a token.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong (a missing or malformed code or client ID).
    #[error("{0}")]
    Invalid(String),
    /// KooGallery knows no such code (`92020005`): nothing is stored.
    #[error("license code does not exist")]
    UnknownCode,
    /// `92020004`: the buyer has not received the code yet; try again later.
    #[error("license code not yet delivered to the buyer; try again later")]
    NotYetDelivered,
    /// KooGallery or the store cannot be reached, and nothing is known of the code yet.
    #[error("temporarily unavailable; try again later")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ServiceError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::UnknownCode => 404,
            Self::NotYetDelivered => 409,
            Self::Unavailable(_) => 503,
        }
    }

    /// The answer's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::UnknownCode => "license_not_found",
            Self::NotYetDelivered => "license_not_yet_delivered",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

impl From<MutateError> for ServiceError {
    fn from(e: MutateError) -> Self {
        match e {
            MutateError::Refused(_) | MutateError::NotFound => Self::UnknownCode,
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

/// The token keys: the current one signs, every one is published (a rotation keeps the previous).
pub struct TokenKeys {
    pub current: Issuer,
    pub previous: Option<Issuer>,
}

impl TokenKeys {
    /// The key ID of a key: `kgl-` and the first 8 bytes of SHA-256 of its public key, in hex.
    pub fn kid_of(secret: &[u8; 32]) -> String {
        use sha2::Digest;
        let public = Issuer::from_secret("", *secret).public_key().to_bytes();
        format!("kgl-{}", hex::encode(&sha2::Sha256::digest(public)[..8]))
    }

    pub fn from_secrets(current: [u8; 32], previous: Option<[u8; 32]>) -> Self {
        Self {
            current: Issuer::from_secret(Self::kid_of(&current), current),
            previous: previous.map(|p| Issuer::from_secret(Self::kid_of(&p), p)),
        }
    }

    /// A secret from its setting's base64 text (32 bytes).
    pub fn secret_from_base64(text: &str) -> Result<[u8; 32], String> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| "not base64 of 32 bytes".to_owned())
    }

    /// The secret in `path`, or a new random one written there (owner-only, whole or not at all)
    /// when there is none yet.
    pub fn secret_from_key_file(path: &std::path::Path) -> Result<[u8; 32], String> {
        use base64::Engine as _;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Self::secret_from_base64(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
                let text = base64::engine::general_purpose::STANDARD.encode(secret);
                match crate::security::at_rest::write_new_file_atomically(path, text.as_bytes()) {
                    Ok(()) => Ok(secret),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::secret_from_key_file(path)
                    }
                    Err(e) => Err(format!("cannot create {}: {e}", path.display())),
                }
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// `GET /license/keys`: the public keys as a JWK set.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|i| {
                serde_json::json!({"kid": i.kid(), "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
                    "use": "sig", "x": i.public_key().to_base64url()})
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

/// The service, the same for the local host and a Lambda function.
pub struct LicenseService {
    pub store: Arc<dyn LicenseStore>,
    pub marketplace: Arc<dyn LicenseMarketplace>,
    /// Delivers the events an activation or a query produces.
    pub jobs: Arc<dyn JobQueue>,
    pub keys: Arc<TokenKeys>,
    pub clock: Arc<dyn Clock>,
    /// How long a token may be relied on offline.
    pub offline: Duration,
    /// One first activation at a time per code in this process.
    activating: Mutex<HashMap<LicenseCode, Arc<Mutex<()>>>>,
    /// Where activation failures are counted (`LicenseActivationFailures`).
    metrics: Arc<dyn crate::metrics::Metrics>,
    /// The (code, client) pairs this process recorded today: a repeat check writes nothing.
    seen_today: std::sync::Mutex<(
        chrono::NaiveDate,
        std::collections::HashSet<(LicenseCode, String)>,
    )>,
}

/// Most (code, client) pairs remembered per day before the memory starts over (a repeat is then
/// written again, which the store takes as a no-op).
const MOST_SEEN: usize = 100_000;

impl LicenseService {
    pub fn new(
        store: Arc<dyn LicenseStore>,
        marketplace: Arc<dyn LicenseMarketplace>,
        jobs: Arc<dyn JobQueue>,
        keys: Arc<TokenKeys>,
        clock: Arc<dyn Clock>,
        offline: Duration,
    ) -> Self {
        Self {
            store,
            marketplace,
            jobs,
            keys,
            clock,
            offline,
            activating: Mutex::new(HashMap::new()),
            metrics: Arc::new(crate::metrics::NoMetrics),
            seen_today: std::sync::Mutex::new((
                chrono::NaiveDate::MIN,
                std::collections::HashSet::new(),
            )),
        }
    }

    /// Counts activation failures in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Whether (code, client) was recorded by this process on `day` already; remembers it if not.
    fn first_today(&self, code: &LicenseCode, client_id: &str, day: chrono::NaiveDate) -> bool {
        let Ok(mut seen) = self.seen_today.lock() else {
            return true;
        };
        if seen.0 != day || seen.1.len() >= MOST_SEEN {
            *seen = (day, std::collections::HashSet::new());
        }
        seen.1.insert((code.clone(), client_id.to_owned()))
    }

    /// `POST /license/activate`: activates the code if it is not yet, then answers its token.
    pub async fn activate(&self, code: &str, client_id: &str) -> Result<Answer, ServiceError> {
        let (code, client_id) = parse(code, client_id)?;
        let license = self.activated(&code, &client_id).await?;
        self.answer(license, &client_id).await
    }

    /// `POST /license/check`: activates the code on its first use, asks KooGallery about it at
    /// most daily, records the client for the day's usage statistics, and answers its token.
    pub async fn check(&self, code: &str, client_id: &str) -> Result<Answer, ServiceError> {
        let (code, client_id) = parse(code, client_id)?;
        let license = self.activated(&code, &client_id).await?;
        let license = self.queried(license).await?;
        self.answer(license, &client_id).await
    }

    /// The code, activated: on KooGallery once (a legacy code is ours alone), recorded with what
    /// KooGallery answered. Concurrent first calls in this process wait for the one activating;
    /// across processes the store's conditional write lets one record win, and KooGallery's
    /// activation of an activated code answers its info again (UNCONFIRMED on the real platform;
    /// the simulator does so).
    async fn activated(
        &self,
        code: &LicenseCode,
        client_id: &str,
    ) -> Result<License, ServiceError> {
        if let Some(l) = self.store.get(code).await?
            && l.activation.is_some()
        {
            return Ok(l);
        }
        let gate = {
            let mut map = self.activating.lock().await;
            map.entry(code.clone()).or_default().clone()
        };
        let _held = gate.lock().await;
        let activated = self.activate_held(code, client_id).await;
        // Gone on every path, failures included: a code that never activates leaves nothing
        // behind (a waiter still holding the old gate re-reads the record first).
        self.activating.lock().await.remove(code);
        activated
    }

    /// The first activation, with this process's gate for `code` held.
    async fn activate_held(
        &self,
        code: &LicenseCode,
        client_id: &str,
    ) -> Result<License, ServiceError> {
        let existing = self.store.get(code).await?;
        if let Some(l) = &existing
            && l.activation.is_some()
        {
            return Ok(l.clone());
        }
        let now = self.clock.now();
        let info = match existing.as_ref().map(|l| l.origin) {
            Some(Origin::Legacy) => None,
            _ => match self.marketplace.activate(code, Some(now)).await {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::warn!(license = %code.masked(), error = %e, "activation refused or failed");
                    if !matches!(
                        e,
                        LicenseApiError::NotFound | LicenseApiError::NotYetDelivered
                    ) {
                        self.metrics
                            .record(crate::metrics::Metric::LicenseActivationFailure);
                    }
                    return Err(api_error(e));
                }
            },
        };
        let new = || License::new(code.clone(), Origin::Marketplace, false, now);
        let change = LicenseChange::Activate {
            client_id: client_id.to_owned(),
            info,
        };
        let (license, _) =
            mutate_license(self.store.as_ref(), code, Some(&new), change, now).await?;
        self.deliver(&license).await;
        tracing::info!(license = %code.masked(), "license activated");
        Ok(license)
    }

    /// The code, with KooGallery's answer if the last is a day old. KooGallery unreachable: the
    /// stored state serves (the software keeps running on what is known); a code KooGallery no
    /// longer knows is refused.
    async fn queried(&self, license: License) -> Result<License, ServiceError> {
        let now = self.clock.now();
        let due = license.origin == Origin::Marketplace
            && license.status != LicenseStatus::Released
            && license.checked_at.is_none_or(|t| now - t >= QUERY_EVERY);
        if !due {
            return Ok(license);
        }
        match self.marketplace.query(&license.code).await {
            Ok(info) => {
                let (l, _) = mutate_license(
                    self.store.as_ref(),
                    &license.code,
                    None,
                    LicenseChange::Checked { info },
                    now,
                )
                .await?;
                self.deliver(&l).await;
                Ok(l)
            }
            Err(LicenseApiError::NotFound) => Err(ServiceError::UnknownCode),
            Err(e) => {
                tracing::warn!(license = %license.code.masked(), error = %e, "license query failed; answering from the stored state");
                Ok(license)
            }
        }
    }

    async fn answer(&self, license: License, client_id: &str) -> Result<Answer, ServiceError> {
        let now = self.clock.now();
        // The day's clients, for the usage statistics (docs/protocol/openapi.md §5.3), written once
        // per (code, client, day) by this process; a store that cannot take it does not stop the
        // software (and the pair is tried again on the next check).
        let day = now.date_naive();
        // Legacy codes are ours alone: KooGallery's usage statistics do not know them.
        if license.origin == Origin::Marketplace
            && self.first_today(&license.code, client_id, day)
            && let Err(e) = self.store.record_use(&license.code, day, client_id).await
        {
            tracing::warn!(license = %license.code.masked(), error = %e, "daily use not recorded");
            if let Ok(mut seen) = self.seen_today.lock() {
                seen.1.remove(&(license.code.clone(), client_id.to_owned()));
            }
        }
        let claims = claims_of(&license, &self.keys.current, client_id, now, self.offline);
        Ok(Answer {
            token: self.keys.current.issue(&claims),
            claims,
        })
    }

    /// Queues the delivery of the events an activation or a query produced; a queue that fails
    /// leaves them pending for the next change's delivery.
    async fn deliver(&self, license: &License) {
        if license.pending.is_empty() {
            return;
        }
        let job = Job::LicenseNotice {
            license: license.code.to_string().into(),
        };
        if let Err(e) = self.jobs.enqueue(&job).await {
            tracing::warn!(license = %license.code.masked(), error = %e, "license events not queued yet");
        }
    }
}

fn parse(code: &str, client_id: &str) -> Result<(LicenseCode, String), ServiceError> {
    let code = LicenseCode::parse(code).map_err(ServiceError::Invalid)?;
    let client_id = client_id.trim();
    if client_id.is_empty() {
        return Err(ServiceError::Invalid("clientId is missing".into()));
    }
    if client_id.chars().count() > MAX_CLIENT_ID_LEN {
        return Err(ServiceError::Invalid(format!(
            "clientId is longer than {MAX_CLIENT_ID_LEN} characters"
        )));
    }
    Ok((code, client_id.to_owned()))
}

fn api_error(e: LicenseApiError) -> ServiceError {
    match e {
        LicenseApiError::NotFound => ServiceError::UnknownCode,
        LicenseApiError::NotYetDelivered => ServiceError::NotYetDelivered,
        other => ServiceError::Unavailable(Box::new(other)),
    }
}

/// The token's claims for `license` at `now`.
pub fn claims_of(
    license: &License,
    issuer: &Issuer,
    client_id: &str,
    now: DateTime<Utc>,
    offline: Duration,
) -> Claims {
    let secs = |t: DateTime<Utc>| u64::try_from(t.timestamp()).unwrap_or(0);
    Claims {
        v: 1,
        kid: issuer.kid().to_owned(),
        code: license.code.to_string(),
        product: license.product_id.clone(),
        status: match license.status_at(now) {
            LicenseStatus::Active => Status::Active,
            LicenseStatus::Frozen => Status::Frozen,
            LicenseStatus::Expired => Status::Expired,
            LicenseStatus::Released => Status::Released,
        },
        client: client_id.to_owned(),
        iat: secs(now),
        exp: license.expire_time.map(secs),
        offline_until: secs(now + offline),
    }
}

/// What one pass of the daily usage statistics did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsagePass {
    /// (code, day) entries KooGallery took.
    pub reported: usize,
    /// Entries KooGallery refused (logged; not sent again: a refusal does not heal by retrying).
    pub refused: usize,
    /// The pass stopped on a failure that a later pass may not meet (retried then).
    pub failed: bool,
}

/// Reports the software usage of every finished UTC day not yet reported
/// (docs/protocol/openapi.md §5.3): per day, at most 100 codes a call. A call that fails for a
/// retryable reason ends the pass; the next one sends the same entries again.
pub async fn report_usage(
    store: &dyn LicenseStore,
    marketplace: &dyn LicenseMarketplace,
    now: DateTime<Utc>,
) -> Result<UsagePass, StoreError> {
    const MOST_PER_PASS: usize = 10_000;
    let due = store.usage_due(now.date_naive(), MOST_PER_PASS).await?;
    let mut pass = UsagePass::default();
    for (day, usage) in super::usage::calls(&due) {
        match marketplace.report_usage(&usage).await {
            Ok(report) => {
                for (code, why) in &report.refused {
                    tracing::warn!(license = %code.masked(), %day, why, "KooGallery refused a day's usage statistics");
                }
                pass.refused += report.refused.len();
                pass.reported += usage.len() - report.refused.len().min(usage.len());
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(%day, error = %e, "usage statistics not reported; the next pass retries");
                pass.failed = true;
                return Ok(pass);
            }
            Err(e) => {
                tracing::error!(%day, error = %e, codes = usage.len(), "KooGallery refused a usage statistics call; not sent again");
                pass.refused += usage.len();
            }
        }
        for entry in &usage {
            store.usage_reported(entry.code(), day).await?;
        }
    }
    Ok(pass)
}

/// One scheduled pass of [`report_usage`], logged, with `LicenseUsagePushFailures` counted when it
/// failed or KooGallery refused codes (the alarm's metric): what every host's schedule runs.
pub async fn usage_pass(
    store: &dyn LicenseStore,
    marketplace: &dyn LicenseMarketplace,
    now: DateTime<Utc>,
    metrics: &dyn crate::metrics::Metrics,
) -> Result<UsagePass, StoreError> {
    let pass = report_usage(store, marketplace, now).await;
    match &pass {
        Ok(p) if p.failed || p.refused > 0 => {
            tracing::warn!(?p, "license usage statistics pass incomplete");
            metrics.record(crate::metrics::Metric::LicenseUsagePushFailure);
        }
        Ok(p) if p.reported > 0 => tracing::info!(?p, "license usage statistics reported"),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "license usage statistics pass failed");
            metrics.record(crate::metrics::Metric::LicenseUsagePushFailure);
        }
    }
    pass
}

#[cfg(test)]
mod tests;
