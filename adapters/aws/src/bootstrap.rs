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

/// The table's string attributes that key it or one of its indexes: DynamoDB wants a definition
/// for each of them, and for no other attribute.
const KEY_ATTRIBUTES: [&str; 6] = [PK, SK, UNSETTLED_SHARD, LEGACY_UNSETTLED, DUE, DUE_AT];

/// One of the table's global secondary indexes, as the template declares it.
struct Index {
    name: &'static str,
    /// The partition key: present only on the items the index is for, so every index is sparse.
    hash: &'static str,
    range: Option<&'static str>,
    projection: ProjectionType,
}

/// The table's indexes, in the template's order.
const INDEXES: [Index; 3] = [
    // The reconciler's sparse index: only unsettled instances carry the attribute, their
    // shard; keys only (as the template's table).
    Index {
        name: UNSETTLED_INDEX,
        hash: UNSETTLED_SHARD,
        range: None,
        projection: ProjectionType::KeysOnly,
    },
    // The legacy index of earlier releases, which the template keeps for now: the reconciler
    // still queries it for instances not saved since (see `dynamo::keys`).
    Index {
        name: LEGACY_UNSETTLED_INDEX,
        hash: LEGACY_UNSETTLED,
        range: None,
        projection: ProjectionType::All,
    },
    // The usage pusher's sparse index: only unsettled usage windows carry its keys (see
    // `crate::usage`), keys only.
    Index {
        name: DUE_INDEX,
        hash: DUE,
        range: Some(DUE_AT),
        projection: ProjectionType::KeysOnly,
    },
];

/// Creates the single table (on-demand, `pk`/`sk` string keys) if it does not exist, waits until it
/// is active, and turns on time to live on `ttl`.
pub async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), BootstrapError> {
    create_table(client, name).await?;
    wait_until_active(client, name).await?;
    ensure_ttl(client, name).await
}

/// A failed `step` on table `name`, as [`BootstrapError`] reports it.
fn table_error(step: &str, name: &str, e: &dyn std::fmt::Display) -> BootstrapError {
    BootstrapError(format!("{step} for table {name}: {e}"))
}

/// Sends CreateTable with [`KEY_ATTRIBUTES`], the `pk`/`sk` key schema and [`INDEXES`]. A table
/// that already exists is left as it is, so running the bootstrap again is harmless.
async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), BootstrapError> {
    let build =
        |e: aws_sdk_dynamodb::error::BuildError| table_error("building CreateTable", name, &e);
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for attribute in KEY_ATTRIBUTES {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        );
    }
    request = request
        .key_schema(key(PK, KeyType::Hash).map_err(build)?)
        .key_schema(key(SK, KeyType::Range).map_err(build)?);
    for index in &INDEXES {
        request = request.global_secondary_indexes(global_index(index).map_err(build)?);
    }
    match request.send().await {
        Ok(_) => tracing::info!(table = name, "table created"),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) => {}
        Err(e) => {
            return Err(table_error(
                "CreateTable",
                name,
                &aws_sdk_dynamodb::error::DisplayErrorContext(e),
            ));
        }
    }
    Ok(())
}

/// One element of a key schema: `attribute` as the partition (`Hash`) or sort (`Range`) key.
fn key(
    attribute: &str,
    key_type: KeyType,
) -> Result<KeySchemaElement, aws_sdk_dynamodb::error::BuildError> {
    KeySchemaElement::builder()
        .attribute_name(attribute)
        .key_type(key_type)
        .build()
}

/// `index` as CreateTable declares it.
fn global_index(
    index: &Index,
) -> Result<GlobalSecondaryIndex, aws_sdk_dynamodb::error::BuildError> {
    let mut builder = GlobalSecondaryIndex::builder()
        .index_name(index.name)
        .key_schema(key(index.hash, KeyType::Hash)?);
    if let Some(range) = index.range {
        builder = builder.key_schema(key(range, KeyType::Range)?);
    }
    builder
        .projection(
            Projection::builder()
                .projection_type(index.projection.clone())
                .build(),
        )
        .build()
}

/// Polls DescribeTable until the table is active, for at most [`TABLE_ACTIVE_TIMEOUT`]: a new
/// table takes writes only once it is.
async fn wait_until_active(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), BootstrapError> {
    let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| {
                table_error(
                    "DescribeTable",
                    name,
                    &aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        let status = out.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BootstrapError(format!(
                "table {name} not active after {TABLE_ACTIVE_TIMEOUT:?} (status {status:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Turns on time to live on [`TTL`] unless it is on or turning on already: DynamoDB refuses to
/// enable it twice.
async fn ensure_ttl(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), BootstrapError> {
    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| {
            table_error(
                "DescribeTimeToLive",
                name,
                &aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;
    let status = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .map_err(|e| table_error("building UpdateTimeToLive", name, &e))?,
        )
        .send()
        .await
        .map_err(|e| {
            table_error(
                "UpdateTimeToLive",
                name,
                &aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;
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
