//! `koogallery-sim call`: one signed call, its body built from `--body`, `--activity` and
//! `--field`s; with `--v1` the same fields sent as a V1 GET (docs/protocol/callbacks.md §3.6).

use std::process::ExitCode;

use koogallery_sim::{Answer, CallOptions, SimError, Simulator, V1CallOptions};
use serde_json::{Map, Value};

use super::args::{CallArgs, Target};
use super::fail;

/// `koogallery-sim call`: builds the body (exit 2 if the arguments make none), then sends it.
pub async fn call(args: CallArgs) -> ExitCode {
    let CallArgs {
        target,
        activity,
        fields,
        body,
        test_flag,
        nonce,
        timestamp,
        sign_key,
        v1,
    } = args;
    let body = match build_body(activity.as_deref(), &fields, body.as_deref(), test_flag) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let how = if v1 {
        let at = match timestamp.map(chrono::DateTime::from_timestamp_millis) {
            None => None,
            Some(Some(at)) => Some(at),
            Some(None) => {
                eprintln!("error: --timestamp {timestamp:?} is not a time");
                return ExitCode::from(2);
            }
        };
        How::V1(V1CallOptions { at, key: sign_key })
    } else {
        How::V2(CallOptions {
            nonce,
            timestamp_ms: timestamp,
            key: sign_key,
        })
    };
    send(&target, &body, how).await
}

/// Which interface carries the call, with its overrides.
enum How {
    /// A signed POST (§3.1).
    V2(CallOptions),
    /// A V1 GET (§3.6): the body's top-level fields as parameters.
    V1(V1CallOptions),
}

async fn exchange(sim: &Simulator, body: &Value, how: How) -> Result<Answer, SimError> {
    match how {
        How::V2(opts) => sim.call_with(body, opts).await,
        How::V1(opts) => {
            let params = koogallery_sim::v1::params_of_body(body)?;
            let pairs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            sim.call_v1_with(&pairs, opts).await
        }
    }
}

async fn send(target: &Target, body: &Value, how: How) -> ExitCode {
    let sim = match Simulator::new(&target.url, &target.key) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let answer = match exchange(&sim, body, how).await {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    // Re-parse the raw bytes so the JSON is printed in the order received.
    let pretty = serde_json::from_slice::<Value>(&answer.raw)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| String::from_utf8_lossy(&answer.raw).into_owned());
    println!("{pretty}");
    let slow = if answer.is_slow() {
        " (SLOW: KooGallery gives up after 5 s)"
    } else {
        ""
    };
    println!(
        "HTTP {} · resultCode {} · Body-Sign {} · {} ms{slow}",
        answer.http_status,
        answer.reply.result_code,
        if answer.body_sign_valid {
            "valid"
        } else {
            "INVALID or missing"
        },
        answer.elapsed.as_millis()
    );
    if answer.http_status == 200 && answer.body_sign_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The body of `call`: `--body` (an object), then `--activity`, `--field`s and `--test-flag`.
fn build_body(
    activity: Option<&str>,
    fields: &[String],
    body: Option<&str>,
    test_flag: bool,
) -> Result<Value, String> {
    let mut map = match body {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err("--body must be a JSON object".to_owned()),
            Err(e) => return Err(format!("--body is not JSON: {e}")),
        },
    };
    if let Some(activity) = activity {
        // `activity` first, as KooGallery's bodies have it (the signature does not depend on it).
        let mut with_activity = Map::new();
        with_activity.insert("activity".to_owned(), Value::from(activity));
        map.remove("activity");
        with_activity.extend(map);
        map = with_activity;
    }
    for field in fields {
        let (key, value) = parse_field(field)?;
        map.insert(key, value);
    }
    if test_flag {
        map.insert("testFlag".to_owned(), Value::from("1"));
    }
    if !map.get("activity").is_some_and(Value::is_string) {
        return Err("no activity: pass --activity NAME or a --body with \"activity\"".to_owned());
    }
    Ok(Value::Object(map))
}

/// `KEY=VALUE` → string value; `KEY:=JSON` → raw JSON value.
fn parse_field(field: &str) -> Result<(String, Value), String> {
    let (key, value) = field
        .split_once('=')
        .ok_or_else(|| format!("--field {field:?} is not KEY=VALUE or KEY:=JSON"))?;
    let (key, value) = match key.strip_suffix(':') {
        Some(key) => (
            key,
            serde_json::from_str(value)
                .map_err(|e| format!("--field {key}:= value is not JSON: {e}"))?,
        ),
        None => (key, Value::from(value)),
    };
    if key.is_empty() {
        return Err(format!("--field {field:?} has an empty name"));
    }
    Ok((key.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_and_activity_build_the_body() {
        let body = build_body(
            Some("changeInstanceCheck"),
            &[
                "instanceId=abc".to_owned(),
                r#"productInfo:={"skuCode":"s","linearValue":5}"#.to_owned(),
                "memo=a=b".to_owned(),
            ],
            None,
            true,
        )
        .unwrap();
        assert_eq!(
            body.to_string(),
            r#"{"activity":"changeInstanceCheck","instanceId":"abc","productInfo":{"skuCode":"s","linearValue":5},"memo":"a=b","testFlag":"1"}"#
        );
    }

    #[test]
    fn body_json_is_merged_and_activity_overridden() {
        let body = build_body(
            Some("queryInstance"),
            &["instanceId=x".to_owned()],
            Some(r#"{"instanceId":"y","activity":"newInstance"}"#),
            false,
        )
        .unwrap();
        assert_eq!(body, json!({"activity":"queryInstance","instanceId":"x"}));
        let kept = build_body(None, &[], Some(r#"{"activity":"releaseInstance"}"#), false);
        assert_eq!(kept.unwrap(), json!({"activity":"releaseInstance"}));
    }

    #[test]
    fn bad_call_arguments_are_errors() {
        assert!(build_body(None, &["instanceId=x".to_owned()], None, false).is_err());
        assert!(build_body(Some("x"), &["noequals".to_owned()], None, false).is_err());
        assert!(build_body(Some("x"), &["=v".to_owned()], None, false).is_err());
        assert!(build_body(Some("x"), &["k:={".to_owned()], None, false).is_err());
        assert!(build_body(Some("x"), &[], Some("[1]"), false).is_err());
        assert!(build_body(Some("x"), &[], Some("{"), false).is_err());
    }
}
