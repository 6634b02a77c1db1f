//! Helpers for the end-to-end tests: a local host on a free port in a temporary data directory.

use std::{path::Path, sync::Arc, time::Duration};

use koogallery::{config::Config, ports::Provisioner};
use koogallery_local::{LocalSettings, RunningHost, start_with};
use koogallery_sim::Simulator;

pub const KEY: &str = "e2e-access-key";

pub fn config() -> Config {
    let mut c = Config::with_keys(KEY, "e2e-kit-key");
    c.worker.backoff_base = Duration::from_millis(20);
    c.worker.backoff_max = Duration::from_millis(200);
    c
}

pub async fn host(
    dir: &Path,
    config: Config,
    provisioner: Option<Arc<dyn Provisioner>>,
) -> RunningHost {
    let settings = LocalSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.to_path_buf(),
    };
    start_with(config, settings, provisioner)
        .await
        .expect("local host starts")
}

pub fn simulator(host: &RunningHost) -> Simulator {
    Simulator::new(&host.produce_url(), KEY).expect("simulator")
}
