//! `make run`: the production interface on 127.0.0.1:$PORT, data in $KOOGALLERY_DATA_DIR.
//! `make run-aws-local`: the same on the AWS adapters against the emulator (`KOOGALLERY_BACKEND=aws`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match koogallery_local::run_from_env().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A bad setting names its variable: say it plainly, not as a Debug dump.
            eprintln!(
                "koogallery-local: {}",
                koogallery::callbacks::error_chain(e.as_ref())
            );
            std::process::ExitCode::FAILURE
        }
    }
}
