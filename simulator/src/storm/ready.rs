//! After the deliveries: queryInstance polled for every instance until each is ready.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use koogallery::ResultCode;
use serde_json::json;
use tokio::time::Instant;

use crate::Simulator;

/// Polls in flight at once, and the pause between two rounds of polls: KooGallery's own cadence
/// is not published (docs/protocol/callbacks.md §5); a gentle one leaves the host's worker the
/// store.
const POLL_CONNECTIONS: usize = 16;
const POLL_PAUSE: Duration = Duration::from_secs(1);

/// Polls queryInstance for every instance until each answers `000000` or `timeout` passes;
/// returns the ready ones, when the last became ready, and any wrong answers.
pub(super) async fn wait_ready(
    sim: &Arc<Simulator>,
    ids: Vec<String>,
    connections: usize,
    timeout: Duration,
) -> (usize, Option<Duration>, Vec<String>) {
    let started = Instant::now();
    let mut pending = ids;
    let mut ready = 0;
    let mut wrong = Vec::new();
    loop {
        let next = Arc::new(AtomicUsize::new(0));
        let list = Arc::new(std::mem::take(&mut pending));
        let mut tasks = Vec::new();
        for _ in 0..connections.clamp(1, POLL_CONNECTIONS) {
            let (sim, next, list) = (sim.clone(), next.clone(), list.clone());
            tasks.push(tokio::spawn(async move {
                let (mut still, mut done, mut wrong) = (Vec::new(), 0usize, Vec::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = list.get(i) else { break };
                    let body = json!({"activity":"queryInstance","instanceId":id,"testFlag":"0"});
                    match sim.call(&body).await {
                        Ok(a) if a.http_status == 200 && a.body_sign_valid => {
                            match a.reply.result_code {
                                ResultCode::Success => done += 1,
                                ResultCode::Processing | ResultCode::InternalError => {
                                    still.push(id.clone());
                                }
                                _ => {
                                    wrong.push(format!("queryInstance {id}: {:?}", a.reply));
                                    still.push(id.clone());
                                }
                            }
                        }
                        Ok(a) => {
                            wrong.push(format!(
                                "queryInstance {id}: HTTP {}, Body-Sign {}",
                                a.http_status, a.body_sign_valid
                            ));
                            still.push(id.clone());
                        }
                        // KooGallery keeps polling through a failed poll.
                        Err(_) => still.push(id.clone()),
                    }
                }
                (still, done, wrong)
            }));
        }
        for t in tasks {
            if let Ok((still, done, w)) = t.await {
                pending.extend(still);
                ready += done;
                wrong.extend(w);
            }
        }
        if pending.is_empty() {
            return (ready, Some(started.elapsed()), wrong);
        }
        if started.elapsed() >= timeout {
            return (ready, None, wrong);
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
}
