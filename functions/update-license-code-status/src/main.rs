//! Lambda entry point of the `updateLicenseCodeStatus` callback. Its logic is `koogallery::callbacks` (the local host
//! runs the same code); the edge invokes this function synchronously with a verified body.

#[tokio::main]
async fn main() -> Result<(), koogallery_lambda::Error> {
    koogallery_lambda::init_tracing()?;
    koogallery_lambda::serve_callback("update-license-code-status").await
}
