//! The worker on AWS Lambda: the SQS event source with partial batch failures.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use koogallery_aws::SqsQueue;
use koogallery_lambda::{Deployment, Error, required};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::{
    Worker,
    batch::{Message, Settle, process_batch},
};
use koogallery::error::QueueError;

/// The jobs queue and its DLQ on SQS.
pub struct SqsSettle {
    pub queue: SqsQueue,
    pub dlq_url: String,
}

#[async_trait::async_trait]
impl Settle for SqsSettle {
    async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        self.queue.change_visibility(receipt_handle, delay).await
    }
    async fn dead_letter(&self, body: &str) -> Result<(), QueueError> {
        self.queue.send_raw(&self.dlq_url, body).await
    }
}

/// SQS records as batch messages.
pub fn messages(event: SqsEvent) -> Vec<Message> {
    event
        .records
        .into_iter()
        .map(|m| Message {
            attempt: m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            message_id: m.message_id.unwrap_or_default(),
            receipt_handle: m.receipt_handle.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
        })
        .collect()
}

/// The worker built from the deployment: the configured provisioner, the marketplace client.
pub fn worker(deployment: &Deployment) -> Result<Worker, Error> {
    let config = &deployment.services.config;
    Ok(Worker::with_offline_marketplace(
        deployment.store.clone(),
        crate::provisioners::from_config(&config.provisioner)?,
        deployment.services.clock.clone(),
        config.worker,
    ))
}

/// Serves the SQS event source with partial batch failures.
pub async fn run(deployment: Deployment) -> Result<(), Error> {
    let worker = worker(&deployment)?;
    let queue = deployment
        .sqs
        .clone()
        .ok_or("KOOGALLERY_QUEUE_URL is not set (the SAM template sets it)")?;
    let settle = SqsSettle {
        queue,
        dlq_url: required("KOOGALLERY_DLQ_URL")?,
    };
    let (worker, settle) = (&worker, &settle);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let keep = process_batch(worker, settle, messages(event.payload)).await;
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = keep
            .into_iter()
            .map(|id| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                f
            })
            .collect();
        Ok::<_, Error>(response)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_event_records_become_messages_with_their_receive_count() {
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [{
            "messageId": "id-1", "receiptHandle": "rh", "body": "{}",
            "attributes": {"ApproximateReceiveCount": "3"}, "messageAttributes": {},
            "eventSource": "aws:sqs"
        }]}))
        .unwrap();
        let m = messages(event);
        assert_eq!((m[0].message_id.as_str(), m[0].attempt), ("id-1", 3));
    }
}
