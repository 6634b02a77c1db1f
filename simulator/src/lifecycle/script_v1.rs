//! The V1 purchase lifecycle's script (docs/protocol/callbacks.md §3.6, §11; docs/protocol/
//! decisions.md §20): newInstance with the buyer's encrypted contact fields and
//! `saasExtendParams`, newInstance again until the instance is ready (V1 has no queryInstance
//! poll for period products: KooGallery calls newInstance again when the buyer opens the
//! resource), queryInstance, a repeat, renewal, expiry, unfreeze, upgrade, release, and the probes
//! V1 has (a stale or forged token, an unknown activity). Every answer's `Body-Sign` is checked.

use base64::Engine as _;
use chrono::{Months, Utc};
use koogallery::ResultCode;
use koogallery::protocol::v2_basic::AppInfo;
use serde_json::{Value, json};

use super::checks::{check_app_info, check_instance_info, require_encrypt_type, transport_problem};
use super::report::fmt_elapsed;
use super::run::{Poll, Run};
use super::{V1_STALE_BY_MINUTES, new_order_id};
use crate::platform::credentials::{KeySize, encrypt_with_iv};
use crate::{Answer, SimError, V1CallOptions, random_nonce};

/// The name of the newInstance poll's step.
const POLL_V1: &str = "newInstance until ready";

/// The product and SKUs the V1 purchase names (any values: V1 carries the order in the call).
const PRODUCT_ID: &str = "OFFI000000000000SIMV1";
const SKU: &str = "sim-v1-sku-basic";
const SKU_UPGRADED: &str = "sim-v1-sku-pro";

/// The buyer's contact fields, sent encrypted as KooGallery sends them (§3.4).
const BUYER_PHONE: &str = "13800000000";
const BUYER_EMAIL: &str = "sim-buyer@example.com";

/// One V1 call's parameters, owned (`activity` first, `testFlag=1` last when set).
struct Params(Vec<(&'static str, String)>);

impl Params {
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// `yyyyMMddHHmmss`, UTC, `months` from now (V1's `expireTime`, §11).
fn expire_in(months: u32) -> String {
    crate::openapi::time_14(
        Utc::now()
            .checked_add_months(Months::new(months))
            .unwrap_or_else(Utc::now),
    )
}

impl Run<'_> {
    /// The parameters of one V1 call: `activity`, `fields`, then `testFlag=1` when set.
    fn v1_params(&self, activity: &str, fields: &[(&'static str, &str)]) -> Params {
        let mut all = vec![("activity", activity.to_owned())];
        all.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
        if self.opts.test_flag {
            all.push(("testFlag", "1".to_owned()));
        }
        Params(all)
    }

    /// One V1 call with the default options.
    async fn v1(
        &mut self,
        name: &str,
        params: &Params,
        expected: &[ResultCode],
    ) -> Result<Answer, SimError> {
        self.expect_v1(name, &params.pairs(), V1CallOptions::default(), expected)
            .await
    }

    /// The whole V1 lifecycle.
    pub(super) async fn all_v1(&mut self) -> Result<(), SimError> {
        let new_instance = self.v1_new_instance_params();
        let instance_id = self.create_v1(&new_instance).await?;
        self.poll_v1_ready(&new_instance, &instance_id).await?;
        self.query_v1(&instance_id).await?;
        let again = self
            .v1(
                "newInstance repeat (ready)",
                &new_instance,
                &[ResultCode::Success],
            )
            .await?;
        self.same_instance(&again, &instance_id)?;
        self.change_v1(&instance_id).await?;
        self.release_v1(&instance_id).await?;
        self.probe_v1(&instance_id).await
    }

    /// newInstance as a V1 purchase sends it (§11): the order and its buyer, `mobilePhone` and
    /// `email` encrypted with the key (16-character IV + Base64 AES-256-CBC, §3.4), and
    /// `saasExtendParams` as Base64 of `[{"name":…,"value":…}]`.
    fn v1_new_instance_params(&self) -> Params {
        let key = &self.sim.access_key;
        // A fresh IV per field, as KooGallery draws one per value.
        let encrypt =
            |plain: &str| encrypt_with_iv(key, plain, KeySize::Aes256, &random_nonce()[..16]);
        let extend = base64::engine::general_purpose::STANDARD.encode(
            json!([
                {"name": "userName", "value": "sim_v1_buyer"},
                {"name": "custEmail", "value": BUYER_EMAIL},
            ])
            .to_string(),
        );
        let business_id = uuid::Uuid::new_v4().hyphenated().to_string();
        let expire_time = expire_in(1);
        self.v1_params(
            "newInstance",
            &[
                ("customerId", "sim-v1-customer"),
                ("customerName", "sim_v1_buyer"),
                ("businessId", &business_id),
                ("orderId", &self.opts.order_id),
                ("productId", PRODUCT_ID),
                ("skuCode", SKU),
                ("chargingMode", "1"),
                ("periodType", "month"),
                ("periodNumber", "1"),
                ("expireTime", &expire_time),
                ("amount", "1"),
                ("mobilePhone", &encrypt(BUYER_PHONE)),
                ("email", &encrypt(BUYER_EMAIL)),
                ("saasExtendParams", &extend),
            ],
        )
    }

    /// The first newInstance: `000004` while provisioning, or `000000` at once.
    async fn create_v1(&mut self, new_instance: &Params) -> Result<String, SimError> {
        use ResultCode::{Processing, Success};
        let answer = self
            .v1("newInstance", new_instance, &[Success, Processing])
            .await?;
        let instance_id = self.instance_id_of(&answer)?;
        self.note_last(format!(
            "instanceId {instance_id}; mobilePhone, email encrypted; saasExtendParams"
        ));
        self.report.instance_id.clone_from(&instance_id);
        Ok(instance_id)
    }

    /// A repeat's `instanceId` must be the first call's: V1 newInstance is idempotent per
    /// `orderId` (docs/protocol/decisions.md §20).
    fn same_instance(&mut self, answer: &Answer, instance_id: &str) -> Result<(), SimError> {
        let again = self.instance_id_of(answer)?;
        if again != instance_id {
            return Err(self.fail_last(format!(
                "a repeat of the order got instanceId {again:?}, the first call {instance_id:?}"
            )));
        }
        self.note_last("same instanceId".to_owned());
        Ok(())
    }

    /// newInstance again until `000000` (while `000004`), as when the buyer opens the resource;
    /// the ready answer must carry the appInfo with encrypted credentials.
    async fn poll_v1_ready(
        &mut self,
        new_instance: &Params,
        instance_id: &str,
    ) -> Result<(), SimError> {
        let mut poll = Poll::new(POLL_V1, "newInstance");
        loop {
            poll.polls += 1;
            let answer = match self
                .sim
                .exchange_v1(POLL_V1, &new_instance.pairs(), &V1CallOptions::default())
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    self.push(poll.step(None, false, e.to_string()));
                    return Err(e);
                }
            };
            poll.slowest = poll.slowest.max(answer.elapsed);
            let code = answer.reply.result_code;
            let problem = transport_problem(&answer);
            match (problem, code) {
                (Some(problem), _) => {
                    self.push(poll.step(Some(code), true, String::new()));
                    return Err(self.fail_last(problem));
                }
                (None, ResultCode::Success) => {
                    self.push(poll.step(Some(code), true, String::new()));
                    self.same_instance(&answer, instance_id)?;
                    return self.v1_ready(&answer);
                }
                (None, ResultCode::Processing) => {
                    let id = answer.reply.field::<String>("instanceId");
                    if id.as_deref() != Some(instance_id) {
                        self.push(poll.step(Some(code), true, String::new()));
                        return self.same_instance(&answer, instance_id);
                    }
                    if poll.started.elapsed() + self.opts.poll_interval > self.opts.poll_timeout {
                        let waited = poll.started.elapsed();
                        let note = format!(
                            "still {} after {}",
                            ResultCode::Processing,
                            fmt_elapsed(waited)
                        );
                        self.push(poll.step(Some(code), false, note));
                        return Err(SimError::Timeout {
                            step: POLL_V1.to_owned(),
                            waited,
                        });
                    }
                    tokio::time::sleep(self.opts.poll_interval).await;
                }
                (None, other) => {
                    self.push(poll.step(Some(other), true, String::new()));
                    return Err(self.fail_last(format!(
                        "expected 000000 (or 000004 while provisioning), got {other} {:?}",
                        answer.reply.result_msg
                    )));
                }
            }
        }
    }

    /// The ready V1 newInstance answer: `encryptType` and the top-level `appInfo`, its
    /// credentials decrypting with the key. A debug call (`testFlag=1`) answers an instanceId
    /// alone (docs/protocol/decisions.md §7), so there they are checked only when present.
    fn v1_ready(&mut self, answer: &Answer) -> Result<(), SimError> {
        let app = match answer.reply.field::<Value>("appInfo") {
            None | Some(Value::Null) if self.opts.test_flag => {
                self.note_last("debug call: no appInfo".to_owned());
                return Ok(());
            }
            None | Some(Value::Null) => {
                return Err(self.fail_last(
                    "a ready V1 newInstance answer has no appInfo (§11: KooGallery shows it to the buyer)"
                        .to_owned(),
                ));
            }
            Some(raw) => serde_json::from_value::<AppInfo>(raw),
        };
        let checked = app
            .map_err(|e| format!("appInfo is malformed: {e}"))
            .and_then(|app| {
                require_encrypt_type(answer)?;
                check_app_info(answer, &app, "appInfo", &self.sim.access_key)
            });
        match checked {
            Ok(note) => {
                self.note_last(note);
                Ok(())
            }
            Err(detail) => Err(self.fail_last(detail)),
        }
    }

    /// queryInstance (V1): the instance info with encrypted credentials.
    async fn query_v1(&mut self, instance_id: &str) -> Result<(), SimError> {
        let query = self.v1_params("queryInstance", &[("instanceId", instance_id)]);
        let answer = self
            .v1("queryInstance", &query, &[ResultCode::Success])
            .await?;
        let checked =
            check_instance_info(&answer, instance_id, &self.sim.access_key).and_then(|note| {
                if !self.opts.test_flag {
                    require_encrypt_type(&answer)?;
                }
                Ok(note)
            });
        match checked {
            Ok(note) => {
                self.note_last(note);
                Ok(())
            }
            Err(detail) => Err(self.fail_last(detail)),
        }
    }

    /// refreshInstance, expireInstance, instanceStatus NORMAL, upgrade (§11), each `000000`.
    async fn change_v1(&mut self, instance_id: &str) -> Result<(), SimError> {
        use ResultCode::Success;
        let renewal_order = new_order_id();
        let expire_time = expire_in(13);
        // A positive orderAmount and no trialToFormal: a renewal (the translation of
        // protocol::v1::refresh_scene).
        let b = self.v1_params(
            "refreshInstance",
            &[
                ("instanceId", instance_id),
                ("orderId", &renewal_order),
                ("expireTime", &expire_time),
                ("periodType", "year"),
                ("periodNumber", "1"),
                ("orderAmount", "100"),
            ],
        );
        self.v1("refreshInstance", &b, &[Success]).await?;
        self.note_last(format!("expireTime {expire_time}"));

        let order_id = self.opts.order_id.clone();
        let b = self.v1_params(
            "expireInstance",
            &[("instanceId", instance_id), ("orderId", &order_id)],
        );
        self.v1("expireInstance", &b, &[Success]).await?;
        self.note_last("a freeze".to_owned());

        let b = self.v1_params(
            "instanceStatus",
            &[("instanceId", instance_id), ("instanceStatus", "NORMAL")],
        );
        self.v1("instanceStatus NORMAL", &b, &[Success]).await?;

        let upgrade_order = new_order_id();
        let b = self.v1_params(
            "upgrade",
            &[
                ("instanceId", instance_id),
                ("orderId", &upgrade_order),
                ("productId", PRODUCT_ID),
                ("skuCode", SKU_UPGRADED),
                ("amount", "5"),
            ],
        );
        self.v1("upgrade", &b, &[Success]).await?;
        self.note_last(format!("skuCode {SKU_UPGRADED}"));
        Ok(())
    }

    /// releaseInstance, idempotent; a query afterwards answers as the V2 script's does.
    async fn release_v1(&mut self, instance_id: &str) -> Result<(), SimError> {
        use ResultCode::Success;
        let order_id = self.opts.order_id.clone();
        let b = self.v1_params(
            "releaseInstance",
            &[("instanceId", instance_id), ("orderId", &order_id)],
        );
        self.v1("releaseInstance", &b, &[Success]).await?;
        self.v1("releaseInstance (repeat)", &b, &[Success]).await?;
        let query = self.v1_params("queryInstance", &[("instanceId", instance_id)]);
        let gone = self.gone();
        self.v1("queryInstance (after release)", &query, gone)
            .await?;
        Ok(())
    }

    /// The V1 probes: a token signed 20 minutes ago and one signed with another key answer
    /// `000001`; an unknown activity `000002`.
    async fn probe_v1(&mut self, instance_id: &str) -> Result<(), SimError> {
        use ResultCode::{AuthenticationFailed, InvalidParameter};
        let query = self.v1_params("queryInstance", &[("instanceId", instance_id)]);
        let stale = V1CallOptions {
            at: Some(Utc::now() - chrono::Duration::minutes(V1_STALE_BY_MINUTES)),
            key: None,
        };
        self.expect_v1(
            "stale token (timeStamp now - 20 min)",
            &query.pairs(),
            stale,
            &[AuthenticationFailed],
        )
        .await?;
        let forged = V1CallOptions {
            at: None,
            key: Some(format!("forged-{}", random_nonce())),
        };
        self.expect_v1(
            "forged token (wrong key)",
            &query.pairs(),
            forged,
            &[AuthenticationFailed],
        )
        .await?;
        let unknown = self.v1_params("simUnknownActivity", &[("instanceId", instance_id)]);
        self.v1("unknown activity", &unknown, &[InvalidParameter])
            .await?;
        Ok(())
    }
}
