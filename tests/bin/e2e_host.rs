//! The local host as a child process, for the crash tests (SIGKILL mid-provisioning, then a
//! restart on the same data directory): exactly `make run`'s entry, configured by environment.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match koogallery_local::run_from_env().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "e2e-host: {}",
                koogallery::callbacks::error_chain(e.as_ref())
            );
            std::process::ExitCode::FAILURE
        }
    }
}
