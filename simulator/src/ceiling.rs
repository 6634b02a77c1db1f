//! The load's ceiling: a bare server built from the workspace (same tokio, same axum) that
//! answers every request with a fixed queryInstance answer of 300 bytes and a `Body-Sign` header,
//! doing no other work. `koogallery-sim load --ceiling` loads it and the vendor's host with the
//! same requests in one run, so the host's figure is read as a share of what the machine can do
//! over HTTP at all (BENCHMARKS.md, "Close to the machine's ceiling").
//!
//! With `--work-us N` it also spends N µs of its own CPU on every request before answering: a
//! server of known cost, to tell how much of a server's latency under this load comes from its CPU
//! a request alone (the host's, measured the same way, is then compared with a bare server that
//! costs as much).

use std::time::Duration;

use axum::{
    Router,
    body::Bytes,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

/// The answer's size, as the service's answer to a signed queryInstance.
pub const ANSWER_BYTES: usize = 300;

/// The fixed answer: a `000000` queryInstance answer padded to [`ANSWER_BYTES`].
pub fn answer() -> Bytes {
    let head = r#"{"resultCode":"000000","resultMsg":"success","info":[{"instanceId":"ceiling","appInfo":{"frontEndUrl":"https://app.example.com/ceiling","memo":""#;
    let tail = r#""}}]}"#;
    let pad = ANSWER_BYTES - head.len() - tail.len();
    Bytes::from(format!("{head}{}{tail}", "x".repeat(pad)))
}

/// A `Body-Sign` header of the shape the service sends (its value fixed: nobody checks it here).
const BODY_SIGN: &str =
    "sign_type=\"HMAC-SHA256\", signature=\"Y2VpbGluZy1zZXJ2ZXItZml4ZWQtc2lnbmF0dXJlLTAwMDA=\"";

/// Every path, every method: the fixed answer, after spending `work` of the thread's CPU.
pub fn router(work: Duration) -> Router {
    let body = answer();
    Router::new().fallback(move || {
        let body = body.clone();
        async move {
            spend_cpu(work);
            fixed(body)
        }
    })
}

/// Works on the calling thread until it has used `work` of CPU time (its own CPU clock, so time
/// spent preempted does not count): a fixed cost whatever else runs on the machine.
pub fn spend_cpu(work: Duration) {
    if work.is_zero() {
        return;
    }
    // No clock: nothing is spent, rather than a spin that never ends.
    let Some(start) = thread_cpu() else { return };
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while thread_cpu().is_some_and(|now| now.saturating_sub(start) < work) {
        // A few hundred ns of arithmetic between two reads of the clock.
        for _ in 0..256 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
        std::hint::black_box(state);
    }
}

/// The calling thread's CPU time so far, or `None` where the clock cannot be read.
fn thread_cpu() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec this call writes; the clock is the calling thread's.
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0;
    (!failed).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

fn fixed(body: Bytes) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json;charset=UTF-8"),
            ),
            (
                header::HeaderName::from_static("body-sign"),
                HeaderValue::from_static(BODY_SIGN),
            ),
        ],
        body,
    )
        .into_response()
}

/// Serves [`router`] (no work) on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_with(listener, Duration::ZERO).await
}

/// Serves [`router`] with `work` on `listener` until the process ends.
pub async fn serve_with(listener: tokio::net::TcpListener, work: Duration) -> std::io::Result<()> {
    axum::serve(listener, router(work)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_cpu_uses_at_least_the_cpu_time_asked_of_the_thread() {
        let before = thread_cpu().unwrap();
        spend_cpu(Duration::from_millis(20));
        assert!(thread_cpu().unwrap() - before >= Duration::from_millis(20));
        let before = thread_cpu().unwrap();
        spend_cpu(Duration::ZERO);
        assert!(
            thread_cpu().unwrap() - before < Duration::from_millis(5),
            "no work asked"
        );
    }

    #[tokio::test]
    async fn every_request_gets_the_fixed_answer_of_300_bytes_with_a_body_sign() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));
        let answer = reqwest::Client::new()
            .post(format!("http://{addr}/produce/any?signature=x"))
            .body(r#"{"activity":"queryInstance"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert!(
            answer.headers()["body-sign"]
                .to_str()
                .unwrap()
                .starts_with("sign_type=")
        );
        let body = answer.bytes().await.unwrap();
        assert_eq!(body.len(), ANSWER_BYTES);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["resultCode"], "000000");
    }
}
