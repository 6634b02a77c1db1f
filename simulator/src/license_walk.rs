//! One License 2.0 code through its life against a vendor's host (docs/protocol/openapi.md §5,
//! §6; docs/protocol/decisions.md §21), as `koogallery-sim license` drives it: the vendor's
//! software publishes keys, activates and checks the code (`/license/*`, signed with the
//! per-product client key), and KooGallery's License callbacks (signed V2 calls on the production
//! URL) freeze, unfreeze, renew and release it. Every token is verified offline with
//! `koogallery-license-token` and nothing but the published keys, exactly as the vendor's software
//! must, so a host that signs with a key it does not publish fails here.
//!
//! The code is a bearer secret of the buyer's even in a test: the report names it masked.

use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use koogallery::license::{LicenseCode, api::sign};
use koogallery_license_token::{Claims, PublicKey, Status, keys_from_jwks, verify};
use serde_json::{Value, json};

use crate::{CALL_TIMEOUT, SimError, Simulator};

/// What to drive.
#[derive(Clone)]
pub struct LicenseWalk {
    /// The vendor's production URL (`…/produce`); the `/license/*` routes are on the same host.
    pub url: String,
    /// The basic-interface access key, which signs KooGallery's callbacks.
    pub key: String,
    /// The per-product license client key (`KOOGALLERY_LICENSE_CLIENT_KEY`).
    pub client_key: String,
    /// The code walked: a `PLTEST…` code, which the simulated License API knows.
    pub code: String,
    /// A running `serve-openapi` (its primary URL): with it, the activation is checked on
    /// KooGallery's side too and the release recorded there.
    pub openapi: Option<String>,
}

impl fmt::Debug for LicenseWalk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LicenseWalk")
            .field("url", &self.url)
            .field("code", &masked(&self.code))
            .field("openapi", &self.openapi)
            .finish_non_exhaustive()
    }
}

/// A fresh test code: `PLTEST` and 12 random characters, so runs never share a code.
#[must_use]
pub fn new_test_code() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    format!("PLTEST{}", &suffix[..12])
}

/// One step of the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseStep {
    pub name: String,
    pub ok: bool,
    /// What was found, or why the step failed.
    pub note: String,
    pub elapsed: Duration,
}

/// The steps run, the failed one (if any) last. `Display` prints a table like the lifecycle's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LicenseWalkReport {
    /// The code walked, masked.
    pub code: String,
    pub steps: Vec<LicenseStep>,
}

impl LicenseWalkReport {
    /// `true` if at least one step ran and every step passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.ok)
    }
}

impl fmt::Display for LicenseWalkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "license {}", self.code)?;
        let name_width = self
            .steps
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            f,
            " #  {:<name_width$}  {:>9}  status  note",
            "step", "time"
        )?;
        for (i, s) in self.steps.iter().enumerate() {
            let time = crate::lifecycle::fmt_elapsed(s.elapsed);
            let line = format!(
                "{:>2}  {:<name_width$}  {time:>9}  {:<6}  {}",
                i + 1,
                s.name,
                if s.ok { "ok" } else { "FAIL" },
                s.note.replace(['\n', '\r'], " ")
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        let passed = self.steps.iter().filter(|s| s.ok).count();
        write!(f, "{passed}/{} steps passed", self.steps.len())
    }
}

/// A code for reports and errors (`LicenseCode::masked`), or a placeholder for one that is not
/// a valid code.
fn masked(code: &str) -> String {
    LicenseCode::parse(code).map_or_else(|_| "(invalid code)".to_owned(), |c| c.masked())
}

/// The host's base URL: the production URL without its `/produce` path.
#[must_use]
pub fn host_base(production_url: &str) -> String {
    let mut url = production_url.trim().to_owned();
    if let Some(i) = url.rfind("/produce") {
        url.truncate(i);
    }
    url.trim_end_matches('/').to_owned()
}

/// The walk's connections and what it learnt so far (the published keys).
struct Walker<'a> {
    opts: &'a LicenseWalk,
    http: reqwest::Client,
    base: String,
    sim: Simulator,
    keys: Vec<(String, PublicKey)>,
}

/// A `/license/*` answer: its HTTP status and JSON body.
struct Answered {
    status: u16,
    body: Value,
}

impl Walker<'_> {
    /// POSTs `{license, clientId}` to `/license/{route}`, signed with the client key unless
    /// `signed` is false.
    async fn post(&self, route: &str, code: &str, signed: bool) -> Result<Answered, String> {
        let body = json!({"license": code, "clientId": "sim-host-1"}).to_string();
        let mut req = self
            .http
            .post(format!("{}/license/{route}", self.base))
            .header("content-type", "application/json");
        if signed {
            for (name, value) in sign(&self.opts.client_key, body.as_bytes(), Utc::now()) {
                req = req.header(name, value);
            }
        }
        let resp = req.body(body).send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok(Answered { status, body })
    }

    /// Activates or checks the walk's code and verifies the token offline: the claims, once the
    /// answer is 200, the token verifies with the published keys and names this code with the
    /// status `want`.
    async fn token(&self, route: &str, want: &Status) -> Result<Claims, String> {
        let a = self.post(route, &self.opts.code, true).await?;
        if a.status != 200 {
            return Err(format!(
                "HTTP {} {}",
                a.status,
                a.body["error"].as_str().unwrap_or("(no error code)")
            ));
        }
        let token = a.body["token"].as_str().ok_or("the answer has no token")?;
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
        let claims = verify(token, &self.keys, now)
            .map_err(|e| format!("the token does not verify with the published keys: {e}"))?
            .into_claims();
        if claims.code != self.opts.code {
            return Err("the token names another code".into());
        }
        if a.body["status"].as_str() != Some(claims.status.as_str()) {
            return Err(format!(
                "the answer says {} but its token {}",
                a.body["status"],
                claims.status.as_str()
            ));
        }
        if &claims.status != want {
            return Err(format!(
                "status {}, expected {}",
                claims.status.as_str(),
                want.as_str()
            ));
        }
        Ok(claims)
    }

    /// Sends one License callback; `Ok` when answered 000000 with a valid Body-Sign.
    async fn callback(&self, body: &Value) -> Result<(), String> {
        let a = self.sim.call(body).await.map_err(|e| e.to_string())?;
        if !a.body_sign_valid {
            return Err("the answer's Body-Sign does not verify".into());
        }
        if a.http_status != 200 || a.reply.result_code.as_str() != "000000" {
            return Err(format!(
                "HTTP {} {} {}",
                a.http_status,
                a.reply.result_code.as_str(),
                a.reply.result_msg
            ));
        }
        Ok(())
    }

    /// A callback, then a check that must answer `want`.
    async fn callback_then_check(&self, body: Value, want: Status) -> Result<String, String> {
        self.callback(&body).await?;
        self.token("check", &want).await?;
        Ok(format!("000000, then check {}", want.as_str()))
    }

    async fn keys(&mut self) -> Result<String, String> {
        let resp = self
            .http
            .get(format!("{}/license/keys", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("HTTP {}", resp.status()));
        }
        let text = resp.text().await.map_err(|e| e.to_string())?;
        self.keys = keys_from_jwks(&text).map_err(|e| format!("not a JWK set: {e}"))?;
        if self.keys.is_empty() {
            return Err("no keys published".into());
        }
        Ok(format!("{} key(s) published", self.keys.len()))
    }

    async fn activate(&self) -> Result<String, String> {
        let claims = self.token("activate", &Status::Active).await?;
        let mut note = "ACTIVE, token verified offline".to_owned();
        if let Some(openapi) = &self.opts.openapi {
            let shown: Value = self
                .http
                .get(format!(
                    "{}/_sim/license/{}",
                    openapi.trim_end_matches('/'),
                    self.opts.code
                ))
                .send()
                .await
                .map_err(|e| format!("cannot read {openapi}: {e}"))?
                .json()
                .await
                .map_err(|e| format!("{openapi}: {e}"))?;
            if shown["activate_time"].is_null() {
                return Err("KooGallery has no activation of the code".into());
            }
            note.push_str("; activated on KooGallery");
        }
        if let Some(exp) = claims
            .exp
            .and_then(|s| DateTime::from_timestamp(s as i64, 0))
        {
            note.push_str(&format!("; expires {}", exp.format("%Y-%m-%d")));
        }
        Ok(note)
    }

    async fn renew(&self) -> Result<String, String> {
        // Whole seconds: the callback's expireTime is yyyyMMddHHmmss (UTC).
        let expiry = (Utc::now() + chrono::Duration::days(400)).trunc_subsecs(0);
        let code = &self.opts.code;
        let order = format!(
            "CSRENEW{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        self.callback(&json!({"activity": "refreshLicenseCode", "license": code,
            "scene": "RENEWAL", "orderId": order, "orderLineId": format!("{order}-000001"),
            "expireTime": expiry.format("%Y%m%d%H%M%S").to_string()}))
            .await?;
        let a = self.post("check", code, true).await?;
        let wanted = expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if a.status != 200 || a.body["expireTime"].as_str() != Some(wanted.as_str()) {
            return Err(format!(
                "check answered HTTP {} with expireTime {}, expected {wanted}",
                a.status, a.body["expireTime"]
            ));
        }
        let claims = self.token("check", &Status::Active).await?;
        if claims.exp != u64::try_from(expiry.timestamp()).ok() {
            return Err("the token's expiry is not the new one".into());
        }
        Ok(format!("000000, then check ACTIVE until {wanted}"))
    }

    async fn release(&self) -> Result<String, String> {
        let code = &self.opts.code;
        if let Some(openapi) = &self.opts.openapi {
            // KooGallery's own record says released too, so a query agrees with the callback.
            let resp = self
                .http
                .post(format!(
                    "{}/_sim/license/{code}/status",
                    openapi.trim_end_matches('/')
                ))
                .json(&json!({"status": "RELEASED"}))
                .send()
                .await
                .map_err(|e| format!("cannot reach {openapi}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!(
                    "{openapi} refused the release: HTTP {}",
                    resp.status()
                ));
            }
        }
        let order = format!(
            "CSUNSUB{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        self.callback_then_check(
            json!({"activity": "releaseLicenseCode", "license": code, "orderId": order}),
            Status::Released,
        )
        .await
    }

    async fn unknown(&self) -> Result<String, String> {
        let code = format!(
            "PLNOSUCH{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let a = self.post("check", &code, true).await?;
        match (a.status, a.body["error"].as_str()) {
            (404, Some("license_not_found")) => Ok("404 license_not_found".into()),
            (status, error) => Err(format!(
                "HTTP {status} {}, expected 404 license_not_found",
                error.unwrap_or("(no error code)")
            )),
        }
    }

    async fn unsigned(&self) -> Result<String, String> {
        let a = self.post("check", &self.opts.code, false).await?;
        if a.status == 401 {
            Ok("401".into())
        } else {
            Err(format!("HTTP {}, expected 401", a.status))
        }
    }
}

/// Runs the walk, stopping at the first failed step (the later ones depend on it); the report
/// holds every step run. `Err` only when nothing can be run (a bad URL or key).
///
/// # Errors
/// [`SimError`] for a production URL or access key the simulator cannot use.
pub async fn walk(opts: &LicenseWalk) -> Result<LicenseWalkReport, SimError> {
    let sim = Simulator::new(&opts.url, &opts.key)?;
    let http = crate::client_builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .map_err(SimError::Client)?;
    let mut w = Walker {
        opts,
        base: host_base(&opts.url),
        http,
        sim,
        keys: Vec::new(),
    };
    let mut report = LicenseWalkReport {
        code: masked(&opts.code),
        steps: Vec::new(),
    };
    let code = opts.code.clone();
    let status =
        |s: &str| json!({"activity": "updateLicenseCodeStatus", "license": code, "status": s});
    let names = [
        "GET /license/keys",
        "activate",
        "check (1st)",
        "check (2nd, same day)",
        "updateLicenseCodeStatus FREEZE",
        "updateLicenseCodeStatus UNFREEZE",
        "refreshLicenseCode RENEWAL",
        "releaseLicenseCode",
        "unknown code",
        "unsigned request",
    ];
    for (i, name) in names.into_iter().enumerate() {
        let started = Instant::now();
        let outcome = match i {
            0 => w.keys().await,
            1 => w.activate().await,
            2 | 3 => w
                .token("check", &Status::Active)
                .await
                .map(|_| "ACTIVE, token verified offline".to_owned()),
            4 => {
                w.callback_then_check(status("FREEZE"), Status::Frozen)
                    .await
            }
            5 => {
                w.callback_then_check(status("UNFREEZE"), Status::Active)
                    .await
            }
            6 => w.renew().await,
            7 => w.release().await,
            8 => w.unknown().await,
            _ => w.unsigned().await,
        };
        let ok = outcome.is_ok();
        report.steps.push(LicenseStep {
            name: name.to_owned(),
            ok,
            // Never the whole code, whatever an answer quoted.
            note: outcome
                .unwrap_or_else(|e| e)
                .replace(code.as_str(), &masked(&code)),
            elapsed: started.elapsed(),
        });
        if !ok {
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_base_drops_the_production_path() {
        assert_eq!(
            host_base("http://127.0.0.1:8080/produce"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            host_base("https://v.example/a/produce/"),
            "https://v.example/a"
        );
        assert_eq!(host_base("http://h:1/"), "http://h:1");
    }

    #[test]
    fn test_codes_are_fresh_and_never_printed_whole() {
        let (a, b) = (new_test_code(), new_test_code());
        assert!(a.starts_with("PLTEST") && a.len() == 18 && a != b);
        let report = LicenseWalkReport {
            code: masked(&a),
            steps: vec![LicenseStep {
                name: "activate".into(),
                ok: true,
                note: "ACTIVE".into(),
                elapsed: Duration::from_millis(3),
            }],
        };
        let printed = report.to_string();
        assert!(!printed.contains(&a), "{printed}");
        assert!(printed.contains("1/1 steps passed") && report.passed());
    }
}
