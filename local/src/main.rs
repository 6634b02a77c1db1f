//! `make run`: the production interface on 127.0.0.1:$PORT, data in $KOOGALLERY_DATA_DIR; on a
//! server, `KOOGALLERY_LISTEN` and, without a load balancer, `KOOGALLERY_TLS_CERT`/`_KEY`
//! (docs/huawei-cloud.md). `koogallery-local --help` lists every setting and subcommand.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    koogallery_local::cli::main("koogallery-local").await
}
