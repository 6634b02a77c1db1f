//! `make run`: the production interface on 127.0.0.1:$PORT, data in $KOOGALLERY_DATA_DIR; on a
//! server, `KOOGALLERY_LISTEN` and, without a load balancer, `KOOGALLERY_TLS_CERT`/`_KEY`
//! (docs/huawei-cloud.md). `koogallery-local --help` lists every setting and subcommand.

/// mimalloc, not glibc's malloc: the host frees on one thread what another allocated (a call's
/// capture, handed to the exchange log's writer), which glibc's arenas serialise on a lock
/// (BENCHMARKS.md, "The exchange log's cost on queryInstance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    koogallery_local::cli::main("koogallery-local").await
}
