//! Lambda entry point: API Gateway `POST /usage` → verify, guard the nonce, ingest the batch.

use koogallery_lambda::{Error, init_tracing, load};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing()?;
    let deployment = load(usage_ingest::LOAD).await?;
    let usage = deployment.usage_store();
    usage_ingest::run(deployment, usage).await
}
