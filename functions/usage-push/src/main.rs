//! Lambda entry point of the usage push, invoked by EventBridge Scheduler: one pass per invocation.

use koogallery_lambda::{Error, init_tracing, load};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing()?;
    let deployment = load(usage_push::lambda::LOAD).await?;
    let usage = deployment.usage_store();
    usage_push::lambda::run(deployment, usage).await
}
