//! Lambda entry point of the reconciler, invoked by EventBridge Scheduler. Its logic is
//! `koogallery::reconciler` (the local host runs the same pass on a timer).

#[tokio::main]
async fn main() -> Result<(), koogallery_lambda::Error> {
    koogallery_lambda::init_tracing()?;
    koogallery_lambda::serve_reconciler().await
}
