//! `koogallery-admin`: backups of the local host's store and key files (`backup`, `restore`);
//! see `koogallery_local::admin_cli`.

fn main() -> std::process::ExitCode {
    koogallery_local::admin_cli::main()
}
