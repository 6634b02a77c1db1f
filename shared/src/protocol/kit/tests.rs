//! Parsing of the Kit bodies: flags, mandatory fields, lists as arrays or strings
//! (docs/protocol/decisions.md §15).

use serde_json::json;

use super::*;
use crate::protocol::request::parse_request;

fn tenant(flag: Value) -> Value {
    json!({
        "instanceId": "huaiweitest123456", "orderId": "CS1906666666ABCDE",
        "tenantId": "68cbc86abc51458880d92f36422fa0e", "tenantCode": "huawei",
        "name": "华为技术有限公司", "domainName": "https://example.tenantaccount.com",
        "flag": flag, "testFlag": 0, "timeStamp": "20220413093539534"
    })
}

#[test]
fn flags_outside_the_documented_sets_are_refused_naming_the_field() {
    for flag in [json!(3), json!(-1), json!("7"), json!(1.5), json!(null)] {
        let err = parse_request::<TenantSyncRequest>(&tenant(flag.clone())).unwrap_err();
        assert!(err.contains("flag"), "{flag}: {err}");
    }
    for (flag, want) in [
        (json!(0), SyncFlag::Delete),
        (json!("1"), SyncFlag::Add),
        (json!(2), SyncFlag::Modify),
    ] {
        assert_eq!(
            parse_request::<TenantSyncRequest>(&tenant(flag))
                .unwrap()
                .flag,
            want
        );
    }
    let mut auth = json!({"tenantId":"t","appId":"a","userList":[],"timeStamp":"x","flag":3});
    assert_eq!(
        parse_request::<AuthSyncRequest>(&auth).unwrap().flag,
        AuthFlag::Revoke
    );
    auth["flag"] = json!(4);
    assert!(
        parse_request::<AuthSyncRequest>(&auth)
            .unwrap_err()
            .contains("flag")
    );
}

#[test]
fn a_missing_mandatory_field_is_named() {
    for field in [
        "tenantId",
        "tenantCode",
        "name",
        "domainName",
        "flag",
        "timeStamp",
    ] {
        let mut body = tenant(json!(1));
        body.as_object_mut().unwrap().remove(field);
        let err = parse_request::<TenantSyncRequest>(&body).unwrap_err();
        assert!(err.contains(field), "{field}: {err}");
    }
    // A delete needs only its key.
    let mut delete = tenant(json!(0));
    for field in ["tenantCode", "name", "domainName"] {
        delete.as_object_mut().unwrap().remove(field);
    }
    assert!(parse_request::<TenantSyncRequest>(&delete).is_ok());
    // The seller's own credential: instanceId and orderId empty or absent.
    let mut seller = tenant(json!(1));
    seller["instanceId"] = json!("");
    seller.as_object_mut().unwrap().remove("orderId");
    assert_eq!(
        parse_request::<TenantSyncRequest>(&seller)
            .unwrap()
            .instance_id,
        ""
    );
}

#[test]
fn control_characters_never_reach_a_key() {
    let mut body = tenant(json!(1));
    body["tenantId"] = json!("t\u{1f}x");
    assert!(
        parse_request::<TenantSyncRequest>(&body)
            .unwrap_err()
            .contains("tenantId")
    );
}

fn user(name: &str) -> Value {
    json!({"userName": name, "name": "张三", "orgCode": "10000", "role": "admin", "enable": "true"})
}

#[test]
fn user_lists_come_as_arrays_or_json_strings_and_each_user_is_checked() {
    let body = |list: Value, flag: i64| json!({"instanceId":"i","tenantId":"t","appId":"a","userList":list,"flag":flag,"testFlag":0,"timeStamp":"20240101120000000"});
    let array =
        parse_request::<AuthSyncRequest>(&body(json!([user("u1"), user("u2")]), 1)).unwrap();
    assert_eq!(array.user_list.len(), 2);
    assert!(array.user_list[0].enabled() && array.user_list[0].is_admin());
    let string = json!([user("u1")]).to_string();
    let parsed = parse_request::<AuthSyncRequest>(&body(json!(string), 1)).unwrap();
    assert_eq!(parsed.user_list, array.user_list[..1]);

    for (list, field) in [
        (json!({"userName":"u"}), "userList"),
        (json!("not a list"), "userList"),
        (json!([{"name":"x"}]), "userName"),
        (json!([user("u1"), user("u1")]), "userList[1].userName"),
        (
            json!([{"userName":"u","name":"n","orgCode":"o","role":"user","enable":"yes"}]),
            "userList[0].enable",
        ),
        (
            json!([{"userName":"u","name":"n","role":"user","enable":"true"}]),
            "userList[0].orgCode",
        ),
    ] {
        let err = parse_request::<AuthSyncRequest>(&body(list.clone(), 1)).unwrap_err();
        assert!(err.contains(field), "{list}: {err}");
    }
    // Revoking or deleting names users by userName only.
    let bare = json!([{"userName": "u1"}]);
    assert!(parse_request::<AuthSyncRequest>(&body(bare.clone(), 3)).is_ok());
    assert!(parse_request::<AuthSyncRequest>(&body(bare, 0)).is_ok());
}

#[test]
fn the_department_list_of_the_pages_example_reads_though_its_keys_are_unquoted() {
    // The V2 page's example: a string, keys not quoted, an extra flag
    // (docs/protocol/callbacks.md §9.5).
    let body = json!({
        "instanceId": "i", "tenantId": "t", "flag": 1, "testFlag": 0, "timeStamp": "20220413093539534",
        "orgInfoList": "[{orgCode:\"00000001\", orgName:\"产品部\", parentCode:\"\"},{orgCode:\"00000002\", orgName:\"研发部\", parentCode:\"00000001\"}]"
    });
    let parsed = parse_request::<AllOrgSyncRequest>(&body).unwrap();
    assert_eq!(parsed.org_info_list.len(), 2);
    assert_eq!(parsed.org_info_list[1].org_name.as_deref(), Some("研发部"));
    assert_eq!(
        parsed.org_info_list[1].parent_code.as_deref(),
        Some("00000001")
    );
    // V1's field name and item shape.
    let v1 =
        json!({"tenantId":"t","timeStamp":"x","orgInfo":"[{\"orgCode\":\"1\",\"name\":\"总部\"}]"});
    let parsed = parse_request::<AllOrgSyncRequest>(&v1).unwrap();
    assert_eq!(parsed.org_info_list[0].org_name.as_deref(), Some("总部"));
    // Duplicates and nameless departments are refused, naming the item.
    let dup = json!({"tenantId":"t","timeStamp":"x","orgInfoList":[{"orgCode":"1","orgName":"a"},{"orgCode":"1","orgName":"b"}]});
    assert!(
        parse_request::<AllOrgSyncRequest>(&dup)
            .unwrap_err()
            .contains("orgInfoList[1].orgCode")
    );
    let nameless = json!({"tenantId":"t","timeStamp":"x","orgInfoList":[{"orgCode":"1"}]});
    assert!(
        parse_request::<AllOrgSyncRequest>(&nameless)
            .unwrap_err()
            .contains("orgInfoList[0].orgName")
    );
}

#[test]
fn application_sync_needs_the_client_on_add_only() {
    let body = |flag: i64| json!({"instanceId":"i","tenantId":"t","appId":"a","flag":flag,"testFlag":0,"timeStamp":"x"});
    assert!(
        parse_request::<ApplicationSyncRequest>(&body(1))
            .unwrap_err()
            .contains("clientId")
    );
    let mut add = body(1);
    add["clientId"] = json!("c");
    assert!(
        parse_request::<ApplicationSyncRequest>(&add)
            .unwrap_err()
            .contains("clientSecret")
    );
    assert!(parse_request::<ApplicationSyncRequest>(&body(0)).is_ok());
}

#[test]
fn every_interface_has_one_name() {
    for k in KitInterface::ALL {
        assert_eq!(KitInterface::parse(k.as_str()), Some(k));
    }
    assert_eq!(KitInterface::parse("tenantsync"), None);
}
