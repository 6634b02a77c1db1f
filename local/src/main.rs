//! `make run`: the production interface on 127.0.0.1:$PORT, data in $KOOGALLERY_DATA_DIR.
//! `make run-aws-local`: the same on the AWS adapters against the emulator
//! (`KOOGALLERY_BACKEND=aws`). `koogallery-local kit-public-key`: print the Kit RSA public key the
//! seller uploads (docs/protocol/callbacks.md §3.5). `koogallery-local oidc-client add …`: register
//! one of the vendor's applications as an OIDC client (docs/protocol/decisions.md §19).
//! `koogallery-local license-upload --event-id ID (--characters TEXT | --file PATH)`: deliver a
//! string or a file for a marketplace event with the seller's AK/SK (docs/protocol/openapi.md §4).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("kit-public-key") => koogallery_local::print_kit_public_key("koogallery-local"),
        Some("oidc-client") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            koogallery_local::oidc_client_command("koogallery-local", &args)
        }
        Some("license-upload") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            koogallery_local::license_upload_command("koogallery-local", &args).await
        }
        _ => koogallery_local::main_from_env("koogallery-local").await,
    }
}
