//! The purchase lifecycle's script, in KooGallery's order (docs/protocol/callbacks.md
//! §6.1–§6.7): create and retry, poll until ready, renew, freeze and unfreeze, upgrade, check a
//! change, the negative probes of §3.1, and release.

use chrono::{Months, Utc};
use koogallery::ResultCode;
use koogallery::protocol::v2_basic::Activity;
use serde_json::{Value, json};

use super::run::Run;
use super::{STALE_BY_MS, new_order_id};
use crate::{CallOptions, SimError, random_nonce};

impl Run<'_> {
    pub(super) async fn all(&mut self) -> Result<(), SimError> {
        let opts = self.opts;
        if opts.order_id.trim().is_empty() {
            return Err(SimError::InvalidOptions("order_id is empty".to_owned()));
        }
        if opts.poll_interval.is_zero() {
            return Err(SimError::InvalidOptions(
                "poll_interval must be positive".to_owned(),
            ));
        }
        if opts.v1 {
            return self.all_v1().await;
        }
        let instance_id = self.create().await?;

        // §6.2 queryInstance until ready.
        self.poll_ready(&instance_id).await?;
        self.change(&instance_id).await?;
        self.probe(&instance_id).await?;
        self.release(&instance_id).await
    }

    /// §6.1: newInstance, then KooGallery's retry of it; both must give the same instance.
    async fn create(&mut self) -> Result<String, SimError> {
        use ResultCode::{Processing, Success};
        let none = CallOptions::default;
        let opts = self.opts;
        let order_id = opts.order_id.clone();
        let order_line_id = format!("{order_id}-000001");
        let new_instance = |sim_run: &Self| {
            sim_run.body(
                Activity::NewInstance,
                &[
                    ("orderId", Value::from(order_id.as_str())),
                    ("orderLineId", Value::from(order_line_id.as_str())),
                    (
                        "businessId",
                        Value::from(uuid::Uuid::new_v4().hyphenated().to_string()),
                    ),
                ],
            )
        };
        let b = new_instance(self);
        let answer = self
            .expect("newInstance", &b, none(), &[Success, Processing])
            .await?;
        let instance_id = self.instance_id_of(&answer)?;
        self.note_last(format!("instanceId {instance_id}"));
        self.report.instance_id.clone_from(&instance_id);

        // A KooGallery retry: same order line, new businessId.
        let b = new_instance(self);
        let answer = self
            .expect(
                "newInstance retry (new businessId)",
                &b,
                none(),
                &[Success, Processing],
            )
            .await?;
        let again = self.instance_id_of(&answer)?;
        if again != instance_id {
            return Err(self.fail_last(format!(
                "a retry of the same order line got instanceId {again:?}, the first call {instance_id:?}"
            )));
        }
        self.note_last("same instanceId".to_owned());

        Ok(instance_id)
    }

    /// §6.3–§6.7 on the ready instance: renew, freeze and unfreeze, upgrade, check a change.
    async fn change(&mut self, instance_id: &str) -> Result<(), SimError> {
        self.renew(instance_id).await?;
        self.freeze(instance_id).await?;
        self.upgrade(instance_id).await
    }

    /// §6.3 refreshInstance RENEWAL, and KooGallery's retry of it.
    async fn renew(&mut self, instance_id: &str) -> Result<(), SimError> {
        use ResultCode::Success;
        let none = CallOptions::default;
        let id = || ("instanceId", Value::from(instance_id));
        let renewal_order = new_order_id();
        let expire_time = crate::openapi::time_14(
            Utc::now()
                .checked_add_months(Months::new(12))
                .unwrap_or_else(Utc::now),
        );
        let b = self.body(
            Activity::RefreshInstance,
            &[
                id(),
                ("orderId", Value::from(renewal_order.as_str())),
                (
                    "orderLineId",
                    Value::from(format!("{renewal_order}-000001")),
                ),
                ("scene", Value::from("RENEWAL")),
                ("expireTime", Value::from(expire_time.as_str())),
            ],
        );
        self.expect("refreshInstance RENEWAL", &b, none(), &[Success])
            .await?;
        self.note_last(format!("expireTime {expire_time}"));
        self.expect("refreshInstance RENEWAL (repeat)", &b, none(), &[Success])
            .await?;
        Ok(())
    }

    /// §6.4 updateInstanceStatus: freeze, freeze again (idempotent), unfreeze.
    async fn freeze(&mut self, instance_id: &str) -> Result<(), SimError> {
        use ResultCode::Success;
        let none = CallOptions::default;
        let id = || ("instanceId", Value::from(instance_id));
        let status = |s: &Self, action: &str| {
            s.body(
                Activity::UpdateInstanceStatus,
                &[id(), ("status", Value::from(action))],
            )
        };
        let b = status(self, "FREEZE");
        self.expect("updateInstanceStatus FREEZE", &b, none(), &[Success])
            .await?;
        self.expect(
            "updateInstanceStatus FREEZE (repeat)",
            &b,
            none(),
            &[Success],
        )
        .await?;
        let b = status(self, "UNFREEZE");
        self.expect("updateInstanceStatus UNFREEZE", &b, none(), &[Success])
            .await?;
        Ok(())
    }

    /// §6.6 upgradeInstance with a new order, §6.7 changeInstanceCheck, and the instance still
    /// there.
    async fn upgrade(&mut self, instance_id: &str) -> Result<(), SimError> {
        use ResultCode::Success;
        let none = CallOptions::default;
        let id = || ("instanceId", Value::from(instance_id));
        // §6.6 upgradeInstance with a new order.
        let upgrade_order = new_order_id();
        let b = self.body(
            Activity::UpgradeInstance,
            &[
                id(),
                ("orderId", Value::from(upgrade_order.as_str())),
                (
                    "orderLineId",
                    Value::from(format!("{upgrade_order}-000001")),
                ),
            ],
        );
        self.expect("upgradeInstance", &b, none(), &[Success])
            .await?;

        // §6.7 changeInstanceCheck (nested productInfo: exercises nested canonicalisation).
        let b = self.body(
            Activity::ChangeInstanceCheck,
            &[
                id(),
                (
                    "productInfo",
                    json!({"productId": "OFFI000000000000SIM", "skuCode": "sim-sku-002", "linearValue": 10}),
                ),
            ],
        );
        self.expect("changeInstanceCheck", &b, none(), &[Success])
            .await?;

        let query = self.body(Activity::QueryInstance, &[id()]);
        self.expect("queryInstance (still there)", &query, none(), &[Success])
            .await?;
        Ok(())
    }

    /// What a query for an instance that is not there answers: debug calls answer 000000 with
    /// plausible appInfo for any ID (docs/protocol/decisions.md §7), so the probes pass whatever
    /// order they replay the cases in.
    pub(super) fn gone(&self) -> &'static [ResultCode] {
        if self.opts.test_flag {
            &[ResultCode::Success]
        } else {
            &[ResultCode::InstanceNotFound]
        }
    }

    /// The negative probes (§3.1): replay, forged signature, stale timestamp, unknown instance.
    async fn probe(&mut self, instance_id: &str) -> Result<(), SimError> {
        use ResultCode::{AuthenticationFailed, InvalidParameter, Success};
        let none = CallOptions::default;
        let query = self.body(
            Activity::QueryInstance,
            &[("instanceId", Value::from(instance_id))],
        );
        let nonce = random_nonce();
        let now_ms = Utc::now().timestamp_millis();
        let fixed = || CallOptions {
            nonce: Some(nonce.clone()),
            timestamp_ms: Some(now_ms),
            key: None,
        };
        self.expect(
            "queryInstance (nonce first use)",
            &query,
            fixed(),
            &[Success],
        )
        .await?;
        self.expect(
            "replayed request (same nonce)",
            &query,
            fixed(),
            &[AuthenticationFailed],
        )
        .await?;
        let forged = CallOptions {
            key: Some(format!("forged-{}", random_nonce())),
            ..CallOptions::default()
        };
        self.expect(
            "forged signature (wrong key)",
            &query,
            forged,
            &[AuthenticationFailed],
        )
        .await?;
        let stale = CallOptions {
            timestamp_ms: Some(Utc::now().timestamp_millis() - STALE_BY_MS),
            ..CallOptions::default()
        };
        self.expect(
            "stale timestamp (now - 10 min)",
            &query,
            stale,
            &[InvalidParameter],
        )
        .await?;
        let unknown = self.body(
            Activity::QueryInstance,
            &[(
                "instanceId",
                Value::from(format!("sim-unknown-{}", uuid::Uuid::new_v4().simple())),
            )],
        );
        let gone = self.gone();
        self.expect("queryInstance (unknown instanceId)", &unknown, none(), gone)
            .await?;
        Ok(())
    }

    /// §6.5 releaseInstance, idempotent; the instance is gone afterwards.
    async fn release(&mut self, instance_id: &str) -> Result<(), SimError> {
        use ResultCode::Success;
        let none = CallOptions::default;
        let id = || ("instanceId", Value::from(instance_id));
        let query = self.body(Activity::QueryInstance, &[id()]);
        let gone = self.gone();
        let b = self.body(Activity::ReleaseInstance, &[id()]);
        self.expect("releaseInstance", &b, none(), &[Success])
            .await?;
        self.expect("releaseInstance (repeat)", &b, none(), &[Success])
            .await?;
        self.expect("queryInstance (after release)", &query, none(), gone)
            .await?;
        Ok(())
    }
}
