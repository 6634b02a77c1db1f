//! The load's ceiling: a bare server built from the workspace (same tokio, same axum) that
//! answers every request with a fixed queryInstance answer of 300 bytes and a `Body-Sign` header,
//! doing no other work. `koogallery-sim load --ceiling` loads it and the vendor's host with the
//! same requests in one run, so the host's figure is read as a share of what the machine can do
//! over HTTP at all (BENCHMARKS.md, "Close to the machine's ceiling").

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

/// Every path, every method: the fixed answer.
pub fn router() -> Router {
    let body = answer();
    Router::new().fallback(move || {
        let body = body.clone();
        async move { fixed(body) }
    })
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

/// Serves [`router`] on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
