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
            tasks.push(tokio::spawn(
                async move { poll_share(&sim, &next, &list).await },
            ));
        }
        for t in tasks {
            if let Ok(round) = t.await {
                pending.extend(round.still);
                ready += round.done;
                wrong.extend(round.wrong);
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

/// What one connection's polls of a round found.
#[derive(Default)]
struct Round {
    /// Instances to poll again next round.
    still: Vec<String>,
    /// Instances answered ready.
    done: usize,
    /// Wrong answers, each described.
    wrong: Vec<String>,
}

/// One connection's share of a round: it polls the next instance of `list` not yet taken
/// (`next`) until none is left.
async fn poll_share(sim: &Simulator, next: &AtomicUsize, list: &[String]) -> Round {
    let mut round = Round::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(id) = list.get(i) else { break };
        let body = json!({"activity":"queryInstance","instanceId":id,"testFlag":"0"});
        match sim.call(&body).await {
            Ok(a) if a.http_status == 200 && a.body_sign_valid => match a.reply.result_code {
                ResultCode::Success => round.done += 1,
                ResultCode::Processing | ResultCode::InternalError => {
                    round.still.push(id.clone());
                }
                _ => {
                    round
                        .wrong
                        .push(format!("queryInstance {id}: {:?}", a.reply));
                    round.still.push(id.clone());
                }
            },
            Ok(a) => {
                round.wrong.push(format!(
                    "queryInstance {id}: HTTP {}, Body-Sign {}",
                    a.http_status, a.body_sign_valid
                ));
                round.still.push(id.clone());
            }
            // KooGallery keeps polling through a failed poll.
            Err(_) => round.still.push(id.clone()),
        }
    }
    round
}
