//! The checks of one lifecycle answer (docs/protocol/callbacks.md §3, §6.2): the body of a call,
//! the HTTP status and `Body-Sign`, a slow answer, and a ready `queryInstance`'s instance info.

use std::time::Duration;

use koogallery::ResultCode;
use koogallery::protocol::v2_basic::{Activity, AppInfo, InstanceInfo};
use serde_json::{Map, Value};

use super::SLOW;
use super::report::fmt_elapsed;
use crate::platform::credentials;
use crate::{Answer, KOOGALLERY_TIMEOUT};

/// The body of one call: `activity` first, then `fields`, then `"testFlag":"1"` when set.
pub(crate) fn body(activity: Activity, fields: &[(&str, Value)], test_flag: bool) -> Value {
    let mut map = Map::new();
    map.insert("activity".to_owned(), Value::from(activity.as_str()));
    for (k, v) in fields {
        map.insert((*k).to_owned(), v.clone());
    }
    if test_flag {
        map.insert("testFlag".to_owned(), Value::from("1"));
    }
    Value::Object(map)
}

/// Note for a slow answer, if it is one.
pub(super) fn slow_note(elapsed: Duration) -> Option<String> {
    (elapsed > KOOGALLERY_TIMEOUT).then(|| {
        format!(
            "{SLOW}: answered in {}, KooGallery gives up after {} s",
            fmt_elapsed(elapsed),
            KOOGALLERY_TIMEOUT.as_secs()
        )
    })
}

pub(super) fn join_notes(notes: impl IntoIterator<Item = String>) -> String {
    notes
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn codes(expected: &[ResultCode]) -> String {
    expected
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// What is wrong with an answer before looking at its result code: HTTP status and `Body-Sign`.
pub(super) fn transport_problem(answer: &Answer) -> Option<String> {
    if answer.http_status != 200 {
        return Some(format!(
            "HTTP {} (KooGallery expects 200 for every answer), resultCode {} {:?}",
            answer.http_status, answer.reply.result_code, answer.reply.result_msg
        ));
    }
    if !answer.body_sign_valid {
        return Some(
            "Body-Sign header missing or not valid for the body under the access key".to_owned(),
        );
    }
    None
}

/// The checks of a ready `queryInstance` answer: `info[0].instanceId` and `appInfo.frontEndUrl`;
/// encrypted credentials must decrypt with the access key. Returns a note (no secrets in it).
pub(crate) fn check_instance_info(
    answer: &Answer,
    instance_id: &str,
    access_key: &str,
) -> Result<String, String> {
    let info = answer
        .reply
        .field::<Value>("info")
        .ok_or("the answer has no info")?;
    let infos: Vec<InstanceInfo> =
        serde_json::from_value(info).map_err(|e| format!("info is malformed: {e}"))?;
    let first = infos.first().ok_or("info is empty")?;
    if first.instance_id != instance_id {
        return Err(format!(
            "info[0].instanceId is {:?}, expected {instance_id:?}",
            first.instance_id
        ));
    }
    let app = first
        .app_info
        .as_ref()
        .ok_or("info[0].appInfo is missing")?;
    check_app_info(answer, app, "info[0].appInfo", access_key)
}

/// The checks of an instance's `appInfo` in `answer` (a ready queryInstance's `info[0]`, a ready
/// V1 newInstance's top level): `frontEndUrl` set; encrypted credentials must decrypt with the
/// access key. `place` names where the appInfo is, for messages. Returns a note (no secrets in
/// it).
pub(crate) fn check_app_info(
    answer: &Answer,
    app: &AppInfo,
    place: &str,
    access_key: &str,
) -> Result<String, String> {
    if app.front_end_url.trim().is_empty() {
        return Err(format!("{place}.frontEndUrl is empty"));
    }
    let mut notes = vec![format!("frontEndUrl {}", app.front_end_url)];
    let credentials: Vec<(&str, &str)> = [
        ("userName", app.user_name.as_deref()),
        ("password", app.password.as_deref()),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.map(|v| (name, v)))
    .collect();
    if let Some(note) = credentials_note(answer, &credentials, access_key)? {
        notes.push(note);
    }
    Ok(notes.join(", "))
}

/// V1 answers always encrypt the credentials (docs/protocol/callbacks.md §11,
/// docs/protocol/decisions.md §20), so a V1 answer with credentials and no `encryptType` is wrong
/// where a V2 one is merely noted as plain text.
pub(super) fn require_encrypt_type(answer: &Answer) -> Result<(), String> {
    match answer.reply.field::<Value>("encryptType") {
        None | Some(Value::Null) => Err(
            "no encryptType: V1 answers carry their credentials encrypted (\"1\" or \"2\")"
                .to_owned(),
        ),
        Some(_) => Ok(()),
    }
}

/// What `encryptType` says of the credentials, checked: each must decrypt with the access key
/// (docs/protocol/callbacks.md §6.2). `None`: no note (no `encryptType`, no credentials).
fn credentials_note(
    answer: &Answer,
    credentials: &[(&str, &str)],
    access_key: &str,
) -> Result<Option<String>, String> {
    let note = match answer.reply.field::<Value>("encryptType") {
        None | Some(Value::Null) => (!credentials.is_empty())
            .then(|| "credentials in plain text (no encryptType)".to_owned()),
        Some(raw) => {
            let wire = match raw {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let kind = credentials::KeySize::from_wire(&wire)
                .ok_or_else(|| format!("encryptType {wire:?} is neither \"1\" nor \"2\""))?;
            for (name, value) in credentials {
                credentials::decrypt(access_key, value, kind).map_err(|e| {
                    format!("appInfo.{name} does not decrypt with the access key ({kind:?}): {e}")
                })?;
            }
            Some(format!(
                "encryptType {wire}: {} decrypted",
                if credentials.is_empty() {
                    "no credentials".to_owned()
                } else {
                    credentials
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(" and ")
                }
            ))
        }
    };
    Ok(note)
}
