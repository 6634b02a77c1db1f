//! Lambda entry point: the edge invokes this function synchronously with a verified body.

use koogallery_lambda::{Error, SecretUse, init_tracing, load, run_callback};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let deployment = load(SecretUse::None).await?;
    run_callback(deployment, |services, body| async move {
        upgrade_instance::handle(&services, &body).await
    })
    .await
}
