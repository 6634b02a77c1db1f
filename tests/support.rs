//! Helpers for the end-to-end tests: a local host on a free port in a temporary data directory.

use std::{path::Path, sync::Arc, time::Duration};

use koogallery::{ResultCode, config::Config, protocol::Reply, provisioning::Provisioner};
use koogallery_local::{LocalSettings, RunningHost, start_with};
use koogallery_sim::Simulator;

pub const KEY: &str = "e2e-access-key";

pub fn config() -> Config {
    let mut c = Config::with_keys(KEY, "e2e-kit-key");
    c.settings.worker.backoff_base = Duration::from_millis(20);
    c.settings.worker.backoff_max = Duration::from_millis(200);
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

/// Sends 16 concurrent newInstance calls for one order line, each with its own businessId, and
/// asserts that every answer is signed, in progress or done, and names the same instance: its ID.
pub async fn sixteen_concurrent_duplicates(sim: Arc<Simulator>, order_id: &str) -> String {
    let mut calls = Vec::new();
    for i in 0..16 {
        let (sim, order_id) = (sim.clone(), order_id.to_owned());
        calls.push(tokio::spawn(async move {
            let body = serde_json::json!({"activity":"newInstance","orderId":order_id,
                "orderLineId":format!("{order_id}-000001"),"businessId":format!("biz-{i}-{order_id}")});
            sim.call(&body).await.expect("newInstance answered")
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for c in calls {
        let a = c.await.expect("call task");
        assert!(a.body_sign_valid, "every answer carries a valid Body-Sign");
        assert!(
            matches!(
                a.reply.result_code,
                ResultCode::Processing | ResultCode::Success
            ),
            "{:?}",
            a.reply
        );
        ids.insert(a.reply.field::<String>("instanceId").expect("instanceId"));
    }
    assert_eq!(ids.len(), 1, "one instanceId for every duplicate");
    ids.into_iter().next().expect("one id")
}

/// Polls queryInstance until it answers `code` (about 10 s at most).
pub async fn wait_for(sim: &Simulator, id: &str, code: ResultCode) -> Reply {
    for _ in 0..400 {
        let a = sim
            .call(&serde_json::json!({"activity":"queryInstance","instanceId":id}))
            .await
            .expect("queryInstance answered");
        if a.reply.result_code == code {
            return a.reply;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("instance {id} never answered {code}");
}
