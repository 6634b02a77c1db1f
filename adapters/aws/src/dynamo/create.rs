//! `create_for_order_line` (module docs, Writes): the order line, the instance and its events in
//! one transaction, whose cancellation reasons say which condition failed.

use aws_sdk_dynamodb::types::TransactWriteItem;
use koogallery::failure::Detail;
use koogallery::{
    StoreError,
    instance::{CreateOutcome, Instance, InstanceEvent},
};

use super::{
    DynamoStore,
    attr::{Item, string_attr},
    instances::too_many_events,
    items::{decode_instance, event_item, instance_item, order_line_item},
    keys::*,
    sdk::{
        CONDITION_FAILED, Condition, MAX_TRANSACTION_ITEMS, TRANSACTION_CONFLICT, backoff,
        reason_codes,
    },
};

/// Retries of a create whose transaction collided with another in-flight transaction.
const MAX_CONTENDED_RETRIES: u32 = 10;

impl DynamoStore {
    /// One transaction, sent again while it collides with another in-flight one.
    pub(super) async fn create(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
    ) -> Result<CreateOutcome, StoreError> {
        if events.len() + 2 > MAX_TRANSACTION_ITEMS {
            return Err(too_many_events("create", events.len(), 2));
        }
        let items = self.create_items(instance, events)?;
        let id = &instance.instance_id;
        let what = format!("TransactWriteItems (create instance {id})");
        let mut attempt = 0;
        loop {
            let Some(reasons) = self.table.transact(items.clone(), None, &what).await? else {
                return Ok(CreateOutcome::Created);
            };
            match classify_create(&reasons) {
                CreateCancel::OrderLineTaken(existing_id) => {
                    return self.existing(instance, existing_id).await;
                }
                CreateCancel::InstanceIdTaken => {
                    // A businessId reused across orders: never overwrite another order's instance.
                    tracing::warn!(
                        instance_id = %id,
                        order_id = %instance.order_id,
                        "instance ID already taken by another order line"
                    );
                    return Ok(CreateOutcome::InstanceIdTaken);
                }
                CreateCancel::Contended if attempt < MAX_CONTENDED_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                CreateCancel::Contended => {
                    return Err(StoreError::Unavailable(
                        format!("create instance {id}: still contended after {attempt} retries")
                            .into(),
                    ));
                }
                CreateCancel::Other(codes) => {
                    return Err(StoreError::Unavailable(
                        format!("create instance {id}: transaction cancelled ({codes})").into(),
                    ));
                }
            }
        }
    }

    /// The order line (its old item returned when it is taken), the instance at version 1 (both
    /// on `attribute_not_exists`), and each event.
    fn create_items(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut stored = instance.clone();
        stored.version = 1;
        let mut items = vec![
            self.table.tx_put(
                order_line_item(instance),
                Some(Condition::absent().returning_old()),
            )?,
            self.table
                .tx_put(instance_item(&stored)?, Some(Condition::absent()))?,
        ];
        for ev in events {
            items.push(
                self.table
                    .tx_put(event_item(&instance.instance_id, ev)?, None)?,
            );
        }
        Ok(items)
    }

    /// The instance an already-recorded order line points at (`Existing`). `instance_id` comes from
    /// the cancellation reason when DynamoDB returned the old item, else the order line is read.
    async fn existing(
        &self,
        instance: &Instance,
        instance_id: Option<String>,
    ) -> Result<CreateOutcome, StoreError> {
        let line_pk = order_line_pk(&instance.order_id, &instance.order_line_id);
        let instance_id = match instance_id {
            Some(id) => id,
            None => {
                let line = self
                    .table
                    .get_item(&line_pk, ORDER_LINE_SK)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Unavailable(
                            format!(
                                "order line {line_pk} was taken but cannot be read back; retry"
                            )
                            .into(),
                        )
                    })?;
                string_attr(&line, INSTANCE_ID)
                    .map_err(|m| {
                        StoreError::Corrupt(Detail::caused_by(format!("order line {line_pk}"), m))
                    })?
                    .to_owned()
            }
        };
        let item = self
            .table
            .get_item(&instance_pk(&instance_id), INSTANCE_SK)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(
                    format!("order line {line_pk} points at missing instance {instance_id}").into(),
                )
            })?;
        Ok(CreateOutcome::Existing(Box::new(decode_instance(&item)?)))
    }
}

/// What a cancelled create transaction means.
#[derive(Debug, PartialEq)]
pub(super) enum CreateCancel {
    /// The order line exists: answer `Existing` (with its instance ID if DynamoDB returned the item).
    OrderLineTaken(Option<String>),
    /// Only the instance ID exists, under another order line.
    InstanceIdTaken,
    /// Collided with another in-flight transaction on the same items: try again.
    Contended,
    /// Something else (throttling, validation, …): the codes, for the error.
    Other(String),
}

/// Reasons are positional: 0 = order line, 1 = instance, 2.. = events.
pub(super) fn classify_create(reasons: &[(String, Option<Item>)]) -> CreateCancel {
    let code = |i: usize| reasons.get(i).map(|(c, _)| c.as_str());
    if code(0) == Some(CONDITION_FAILED) {
        let id = reasons
            .first()
            .and_then(|(_, item)| item.as_ref())
            .and_then(|item| string_attr(item, INSTANCE_ID).ok())
            .map(str::to_owned);
        return CreateCancel::OrderLineTaken(id);
    }
    if code(1) == Some(CONDITION_FAILED) {
        return CreateCancel::InstanceIdTaken;
    }
    if reasons.iter().any(|(c, _)| c == TRANSACTION_CONFLICT) {
        return CreateCancel::Contended;
    }
    CreateCancel::Other(reason_codes(reasons))
}
