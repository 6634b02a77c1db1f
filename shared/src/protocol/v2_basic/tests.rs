//! Parsing of the documented V2 bodies and their lenient forms.

use super::*;
use crate::ResultCode;
use crate::protocol::{Reply, reply::MAX_RESULT_MSG};
use serde_json::{Value, json};

#[test]
fn new_instance_doc_body_parses_and_test_flag_forms_are_accepted() {
    let body = json!({"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8",
            "orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"});
    let r: NewInstanceRequest = parse_request(&body).unwrap();
    assert!(r.test_flag);
    assert_eq!(r.order_line_id, "CS2211181819B4LVS-000001");
    for (flag, expected) in [
        (json!("0"), false),
        (json!(1), true),
        (json!(0), false),
        (Value::Null, false),
    ] {
        let mut b = body.clone();
        b["testFlag"] = flag;
        assert_eq!(
            parse_request::<NewInstanceRequest>(&b).unwrap().test_flag,
            expected
        );
    }
}

#[test]
fn missing_or_empty_mandatory_fields_name_the_field() {
    let err =
        parse_request::<NewInstanceRequest>(&json!({"orderId":"A","businessId":"b"})).unwrap_err();
    assert!(err.contains("orderLineId"), "{err}");
    let err = parse_request::<NewInstanceRequest>(
        &json!({"orderId":" ","orderLineId":"x","businessId":"b"}),
    )
    .unwrap_err();
    assert!(err.contains("orderId must not be empty"), "{err}");
}

#[test]
fn query_instance_splits_ids_and_caps_at_one_hundred() {
    let r: QueryInstanceRequest = parse_request(&json!({"instanceId":" a, b,,a ,c"})).unwrap();
    assert_eq!(r.instance_ids(), vec!["a", "b", "c"]);
    let many: Vec<String> = (0..101).map(|i| format!("i{i}")).collect();
    let err =
        parse_request::<QueryInstanceRequest>(&json!({"instanceId": many.join(",")})).unwrap_err();
    assert!(err.contains("at most 100"), "{err}");
    let ok: Vec<String> = (0..100).map(|i| format!("i{i}")).collect();
    assert!(parse_request::<QueryInstanceRequest>(&json!({"instanceId": ok.join(",")})).is_ok());
}

#[test]
fn refresh_accepts_both_time_widths_and_rejects_garbage() {
    let mut b = json!({"instanceId":"i","orderId":"o","orderLineId":"l","scene":"RENEWAL",
            "expireTime":"20221124023618256"});
    assert!(parse_request::<RefreshInstanceRequest>(&b).is_ok());
    b["expireTime"] = json!("20221124023618");
    assert!(parse_request::<RefreshInstanceRequest>(&b).is_ok());
    b["expireTime"] = json!("2022-11-24");
    assert!(
        parse_request::<RefreshInstanceRequest>(&b)
            .unwrap_err()
            .contains("expireTime")
    );
    b["expireTime"] = json!("20221124023618");
    // docs/protocol/decisions.md §11 (revised): an unknown scene is kept by name, not refused; a
    // missing one is.
    b["scene"] = json!("SOMETHING_ELSE");
    assert_eq!(
        parse_request::<RefreshInstanceRequest>(&b).unwrap().scene,
        RefreshScene::Other("SOMETHING_ELSE".into())
    );
    b["scene"] = json!(" ");
    assert!(
        parse_request::<RefreshInstanceRequest>(&b)
            .unwrap_err()
            .contains("scene")
    );
}

#[test]
fn status_accepts_v1_normal_alias() {
    let r: UpdateInstanceStatusRequest =
        parse_request(&json!({"instanceId":"i","status":"NORMAL"})).unwrap();
    assert_eq!(r.status, StatusAction::Unfreeze);
    assert!(
        parse_request::<UpdateInstanceStatusRequest>(&json!({"instanceId":"i","status":"PAUSE"}))
            .is_err()
    );
}

#[test]
fn product_info_as_object_or_string() {
    let a: ChangeInstanceCheckRequest = parse_request(
            &json!({"instanceId":"i","productInfo":{"productId":"p","skuCode":"s","linearValue":5,"x":"y"}}),
        )
        .unwrap();
    let b: ChangeInstanceCheckRequest = parse_request(
            &json!({"instanceId":"i","productInfo":"{\"productId\":\"p\",\"skuCode\":\"s\",\"linearValue\":5,\"x\":\"y\"}"}),
        )
        .unwrap();
    assert_eq!(a.product_info, b.product_info);
    assert_eq!(a.product_info[0].linear_value, Some(5.0));
    assert_eq!(a.product_info[0].other["x"], "y");
}

/// docs/protocol/decisions.md §11: an array, a JSON string of an array, numbers
/// as strings, or no productInfo at all are accepted; only what cannot be a product is refused.
#[test]
fn product_info_in_every_form_koogallery_may_send() {
    let parse = |v: serde_json::Value| {
        parse_request::<ChangeInstanceCheckRequest>(&json!({"instanceId":"i","productInfo":v}))
    };
    let list =
        parse(json!([{"skuCode":"s1","linearValue":"10"},{"skuCode":"s2","linearValue":2.5}]))
            .unwrap();
    assert_eq!(list.product_info.len(), 2);
    assert_eq!(list.product_info[0].linear_value, Some(10.0));
    assert_eq!(list.product_info[1].sku_code.as_deref(), Some("s2"));
    let string_list = parse(json!("[{\"productId\":123,\"linearValue\":\" 7 \"}]")).unwrap();
    assert_eq!(
        string_list.product_info[0].product_id.as_deref(),
        Some("123")
    );
    assert_eq!(string_list.product_info[0].linear_value, Some(7.0));
    let absent = parse_request::<ChangeInstanceCheckRequest>(&json!({"instanceId":"i"})).unwrap();
    assert!(absent.product_info.is_empty());
    assert!(parse(json!(null)).unwrap().product_info.is_empty());
    let err = parse(json!(42)).unwrap_err();
    assert!(err.contains("productInfo"), "{err}");
    let err = parse(json!({"linearValue":"lots"})).unwrap_err();
    assert!(
        err.contains("linearValue") && err.contains("number"),
        "{err}"
    );
}

#[test]
fn reply_serialises_result_code_first_and_truncates_long_messages() {
    let r = Reply::new(ResultCode::Processing, "x".repeat(400)).with("instanceId", "abc");
    let s = String::from_utf8(r.to_bytes()).unwrap();
    assert!(
        s.starts_with(r#"{"resultCode":"000004","resultMsg":"xxx"#),
        "{s}"
    );
    assert!(s.ends_with(r#"...","instanceId":"abc"}"#), "{s}");
    let back: Reply = serde_json::from_str(&s).unwrap();
    assert_eq!(back.result_msg.chars().count(), MAX_RESULT_MSG);
    assert_eq!(back.field::<String>("instanceId").as_deref(), Some("abc"));
}
