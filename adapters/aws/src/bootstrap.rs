//! Creates the table and the queues for the emulator and first-run tooling. On AWS the SAM
//! template creates them; nothing in the functions calls this. Every step is idempotent.

use std::time::Duration;

use aws_sdk_dynamodb::{
    operation::create_table::CreateTableError,
    types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
        TimeToLiveStatus,
    },
};
use aws_sdk_sqs::{operation::create_queue::CreateQueueError, types::QueueAttributeName};

use crate::{
    dynamo::keys::{
        LEGACY_UNSETTLED, LEGACY_UNSETTLED_INDEX, PK, SK, TTL, UNSETTLED_INDEX, UNSETTLED_SHARD,
    },
    usage::keys::{DUE, DUE_AT, DUE_INDEX},
};

/// A bootstrap step failed; the message names the step and the resource.
#[derive(Debug, thiserror::Error)]
#[error("bootstrap: {0}")]
pub struct BootstrapError(pub String);

/// How long [`ensure_table`] waits for a new table to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates the single table (on-demand, `pk`/`sk` string keys) if it does not exist, waits until it
/// is active, and turns on time to live on `ttl`.
pub async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), BootstrapError> {
    let err = |step: &str, e: &dyn std::fmt::Display| {
        BootstrapError(format!("{step} for table {name}: {e}"))
    };
    let build = |e: aws_sdk_dynamodb::error::BuildError| err("building CreateTable", &e);
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(SK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PK)
                .key_type(KeyType::Hash)
                .build()
                .map_err(build)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(SK)
                .key_type(KeyType::Range)
                .build()
                .map_err(build)?,
        )
        // The reconciler's sparse index: only unsettled instances carry the attribute, their
        // shard; keys only (as the template's table).
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(UNSETTLED_SHARD)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(UNSETTLED_INDEX)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(UNSETTLED_SHARD)
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(build)?,
                )
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(build)?,
        )
        // The legacy index of earlier releases, which the template keeps for now: the reconciler
        // still queries it for instances not saved since (see `dynamo::keys`).
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(LEGACY_UNSETTLED)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(LEGACY_UNSETTLED_INDEX)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(LEGACY_UNSETTLED)
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(build)?,
                )
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(build)?,
        )
        // The usage pusher's sparse index: only unsettled usage windows carry its keys (see
        // `crate::usage`), keys only.
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(DUE)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(DUE_AT)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(DUE_INDEX)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(DUE)
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(build)?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(DUE_AT)
                        .key_type(KeyType::Range)
                        .build()
                        .map_err(build)?,
                )
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(build)?,
        )
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(table = name, "table created"),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) => {}
        Err(e) => {
            return Err(err(
                "CreateTable",
                &aws_sdk_dynamodb::error::DisplayErrorContext(e),
            ));
        }
    }

    let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| {
                err(
                    "DescribeTable",
                    &aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        let status = out.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BootstrapError(format!(
                "table {name} not active after {TABLE_ACTIVE_TIMEOUT:?} (status {status:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| {
            err(
                "DescribeTimeToLive",
                &aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;
    let status = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    if !matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL)
                    .enabled(true)
                    .build()
                    .map_err(|e| err("building UpdateTimeToLive", &e))?,
            )
            .send()
            .await
            .map_err(|e| {
                err(
                    "UpdateTimeToLive",
                    &aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
    }
    Ok(())
}

/// The jobs queue's redrive `maxReceiveCount`: a safety net only (SQS's maximum). The worker
/// dead-letters by itself at its deadlines; deferrals and retries within them take many receives
/// (`WorkerSettings::check_queue_limits` checks that they fit).
pub const REDRIVE_MAX_RECEIVES: u32 = 1000;

/// How long the jobs queue keeps a message: 7 days, as the template's `JobsQueue`; longer than a
/// job can live within its deadlines (`WorkerSettings::longest_job_life`), and half the dead-letter
/// queue's 14 (a message redriven by the queue keeps its age).
pub const JOBS_RETENTION_SECS: u32 = 604_800;

/// Creates the dead-letter queue `{name}-dlq`, then the queue `name` redriving to it after
/// `max_receive_count` receives and keeping messages [`JOBS_RETENTION_SECS`]. An existing queue
/// gets its redrive policy and retention updated. Returns `(queue_url, dlq_url)`.
pub async fn ensure_queues(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
) -> Result<(String, String), BootstrapError> {
    let dlq_name = format!("{name}-dlq");
    // Keep dead letters for the maximum 14 days.
    let dlq_url = create_queue(
        client,
        &dlq_name,
        &[(QueueAttributeName::MessageRetentionPeriod, "1209600".into())],
    )
    .await?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| {
            BootstrapError(format!(
                "GetQueueAttributes for {dlq_name}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            ))
        })?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| BootstrapError(format!("queue {dlq_name} has no QueueArn")))?;
    let policy = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count,
    })
    .to_string();
    let queue_url = create_queue(
        client,
        name,
        &[
            (QueueAttributeName::RedrivePolicy, policy),
            (
                QueueAttributeName::MessageRetentionPeriod,
                JOBS_RETENTION_SECS.to_string(),
            ),
        ],
    )
    .await?;
    Ok((queue_url, dlq_url))
}

/// CreateQueue with `attributes`; if a queue of that name exists with other attributes, sets them.
async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, BootstrapError> {
    let sqs_err = |step: &str, e: &dyn std::fmt::Display| {
        BootstrapError(format!("{step} for queue {name}: {e}"))
    };
    let mut create = client.create_queue().queue_name(name);
    for (k, v) in attributes {
        create = create.attributes(k.clone(), v);
    }
    match create.send().await {
        Ok(out) => out
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| BootstrapError(format!("CreateQueue for {name} returned no URL"))),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateQueueError::QueueNameExists(_))
            ) =>
        {
            let url = client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| sqs_err("GetQueueUrl", &aws_sdk_sqs::error::DisplayErrorContext(e)))?
                .queue_url()
                .map(str::to_owned)
                .ok_or_else(|| BootstrapError(format!("GetQueueUrl for {name} returned no URL")))?;
            let mut set = client.set_queue_attributes().queue_url(&url);
            for (k, v) in attributes {
                set = set.attributes(k.clone(), v);
            }
            set.send().await.map_err(|e| {
                sqs_err(
                    "SetQueueAttributes",
                    &aws_sdk_sqs::error::DisplayErrorContext(e),
                )
            })?;
            Ok(url)
        }
        Err(e) => Err(sqs_err(
            "CreateQueue",
            &aws_sdk_sqs::error::DisplayErrorContext(e),
        )),
    }
}
