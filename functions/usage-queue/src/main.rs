//! Lambda entry point: the usage queue (SQS) → ingest each batch; refused ones to the usage DLQ.

use koogallery_lambda::{Error, init_tracing, load};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing()?;
    let deployment = load(usage_queue::lambda::LOAD).await?;
    let usage = deployment.usage_store();
    usage_queue::lambda::run(deployment, usage).await
}
