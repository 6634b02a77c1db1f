//! `make run`: the production interface on 127.0.0.1:$PORT, data in $KOOGALLERY_DATA_DIR.
//! `make run-aws-local`: the same on the AWS adapters against the emulator (`KOOGALLERY_BACKEND=aws`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    koogallery_local::main_from_env("koogallery-local").await
}
