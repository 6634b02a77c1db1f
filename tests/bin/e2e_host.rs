//! The local host as a child process, for the crash tests (SIGKILL mid-provisioning, then a
//! restart on the same data directory): exactly `make run`'s entry, configured by environment.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    koogallery_local::main_from_env("e2e-host").await
}
