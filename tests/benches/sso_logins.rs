//! 联营 sign-ins end to end, as many as the local host takes (docs/protocol/decisions.md §19):
//! each one the client's authorization request, the simulated unified login, KooGallery's
//! callback to the login address (the code exchanged and userinfo read on the simulated auth
//! centre, the user checked against authSync, the session stored with its tokens sealed), the code
//! back to the client and its exchange for an ES256 ID token. Prints sign-ins per second and the
//! latency of the callback step and of a whole sign-in.
//! Run: `cargo bench -p koogallery-e2e --bench sso_logins` (`SSO_LOGINS`, default 2000;
//! `SSO_CONCURRENCY`, default 16).

use std::{sync::Arc, time::Instant};

use hdrhistogram::Histogram;
use koogallery_e2e::sso_bed::{SsoBed, location, param, verifier_and_challenge};
use tokio::sync::Mutex;

fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let logins = size("SSO_LOGINS", 2000);
    let concurrency = size("SSO_CONCURRENCY", 16);
    let users = 100;
    let authorized: Vec<usize> = (0..users).collect();
    // No logout here: the relying party's back-channel is never called.
    let bed = Arc::new(SsoBed::start("http://127.0.0.1:9", users, &authorized).await);
    let callback = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    let whole = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (bed, callback, whole) = (bed.clone(), callback.clone(), whole.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while i < logins {
                let begun = Instant::now();
                let (verifier, challenge) = verifier_and_challenge();
                let signed = bed.sign_in(&bed.user(i % users), &challenge).await;
                assert_eq!(signed.answer.status(), reqwest::StatusCode::FOUND);
                let code = param(&location(&signed.answer), "code").expect("a code");
                let token = bed.token(&code, &verifier).await;
                assert_eq!(token.status(), reqwest::StatusCode::OK);
                callback
                    .lock()
                    .await
                    .record(signed.callback_step.as_micros() as u64)
                    .ok();
                whole
                    .lock()
                    .await
                    .record(begun.elapsed().as_micros() as u64)
                    .ok();
                i += concurrency;
            }
        }));
    }
    for t in tasks {
        t.await.expect("a sign-in worker");
    }
    let elapsed = started.elapsed();
    let (c, w) = (callback.lock().await, whole.lock().await);
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{logins} sign-ins, {concurrency} at a time, in {:.2} s: {:.0} sign-ins/s",
        elapsed.as_secs_f64(),
        logins as f64 / elapsed.as_secs_f64()
    );
    println!(
        "callback step (KooGallery → /sso/callback): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(&c, 0.5),
        ms(&c, 0.99),
        c.max() as f64 / 1000.0
    );
    println!(
        "whole sign-in (authorize → unified login → callback → token): p50 {:.2} ms, p99 {:.2} ms",
        ms(&w, 0.5),
        ms(&w, 0.99)
    );
}
