//! Lambda entry point of the admin function: the operator console and its API behind a function
//! URL with `AuthType: AWS_IAM` (`admin::lambda`).

use koogallery_lambda::{Error, init_tracing, load};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing()?;
    admin::lambda::run(load(admin::lambda::LOAD).await?).await
}
