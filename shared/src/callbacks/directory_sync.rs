//! What the five Kit syncs share (docs/protocol/callbacks.md §9;
//! docs/protocol/decisions.md §16–17): apply one change to the tenant directory together with its
//! events in one durable write, queue their delivery to the vendor, answer `000000`. A store
//! failure answers a retryable `000005` and stores nothing; Kit calls are not retried by KooGallery
//! on their own (docs/protocol/callbacks.md §9), so the buyer or the seller retries, and a repeat
//! applies the same records again.

use std::sync::Arc;

use super::{CallbackError, Resources};
use crate::{
    clock::Clock,
    config::ConfigError,
    directory::{DirectoryChange, TenantDirectory, TenantKey},
    jobs::{Job, JobQueue},
    protocol::Reply,
};

pub(crate) struct DirectorySync {
    pub(crate) directory: Arc<dyn TenantDirectory>,
    queue: Arc<dyn JobQueue>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl DirectorySync {
    pub(crate) fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        Ok(Self {
            directory: r.directory()?,
            queue: r.queue()?,
            clock: r.clock.clone(),
        })
    }

    /// Applies `change` to the tenant `key` and queues the delivery of its events.
    pub(crate) async fn apply(
        &self,
        key: &TenantKey,
        change: DirectoryChange,
    ) -> Result<Reply, CallbackError> {
        let applied = self
            .directory
            .apply(key, &change, self.clock.now())
            .await
            .map_err(CallbackError::Directory)?;
        tracing::info!(
            instance_id = key.instance_id,
            tenant_id = key.tenant_id.as_str(),
            change = change.name(),
            first_seq = applied.first_seq,
            last_seq = applied.last_seq,
            "directory changed"
        );
        // The events are stored: should the queue fail now, the retryable answer brings a repeat,
        // whose own job delivers these too (a delivery drains every pending event of the tenant).
        self.queue
            .enqueue(&Job::DirectoryNotice {
                instance_id: key.instance_id.clone(),
                tenant_id: key.tenant_id.clone(),
            })
            .await?;
        Ok(Reply::success())
    }
}

/// The Kit debug call (`testFlag` 1, docs/protocol/decisions.md §17): verified by the edge,
/// answered `000000`, nothing stored that a real login or sync could see, nothing sent to the
/// vendor.
pub(crate) fn debug_reply() -> Reply {
    Reply::success()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::{
        ResultCode,
        directory::{TenantDirectory, TenantKey},
        jobs::Job,
        security::kit_client_secret::{OaepVariant, encrypt_for},
        testing::TestBed,
    };

    fn tenant(flag: i64) -> Value {
        json!({"instanceId":"i-1","orderId":"CS1","tenantId":"t-1","tenantCode":"huawei","name":"华为","domainName":"https://idaas.example.com","flag":flag,"testFlag":0,"timeStamp":"20240101120000000"})
    }

    fn key() -> TenantKey {
        TenantKey::new("i-1", "t-1")
    }

    fn users(n: usize, flag: i64) -> Value {
        let list: Vec<Value> = (0..n)
            .map(|i| json!({"userName": format!("u{i:03}"), "name": "李四", "orgCode": "10000", "role": if i == 0 { "admin" } else { "user" }, "enable": if i == 1 { "false" } else { "true" }}))
            .collect();
        json!({"instanceId":"i-1","tenantId":"t-1","appId":"app-1","userList":list,"currentSyncTime":"20240101120000000","flag":flag,"testFlag":0,"timeStamp":"20240101120000000"})
    }

    fn app(secret: &str, flag: i64) -> Value {
        json!({"instanceId":"i-1","tenantId":"t-1","appId":"app-1","clientId":"client-1","clientSecret":secret,"flag":flag,"testFlag":0,"timeStamp":"20240101120000000"})
    }

    fn directory_jobs(bed: &TestBed) -> usize {
        bed.queue
            .jobs()
            .iter()
            .filter(|j| matches!(j, Job::DirectoryNotice { .. }))
            .count()
    }

    #[tokio::test]
    async fn tenant_sync_adds_modifies_and_deletes_with_everything_under_it() {
        let bed = TestBed::default_keys();
        assert_eq!(
            bed.call("tenantSync", &tenant(1)).await.result_code,
            ResultCode::Success
        );
        let mut modify = tenant(2);
        modify["name"] = json!("华为云");
        assert_eq!(
            bed.call("tenantSync", &modify).await.result_code,
            ResultCode::Success
        );
        let stored = bed.directory.tenant(&key()).await.unwrap().unwrap();
        assert_eq!(
            (stored.name.as_str(), stored.tenant_code.as_str()),
            ("华为云", "huawei")
        );
        bed.call("authSync", &users(3, 1)).await;
        let delete =
            json!({"instanceId":"i-1","tenantId":"t-1","flag":0,"testFlag":0,"timeStamp":"x"});
        assert_eq!(
            bed.call("tenantSync", &delete).await.result_code,
            ResultCode::Success
        );
        assert_eq!(bed.directory.tenant(&key()).await.unwrap(), None);
        assert_eq!(bed.directory.users(&key(), "app-1").await.unwrap(), []);
        // Deleting again, or what never was, is a success.
        assert_eq!(
            bed.call("tenantSync", &delete).await.result_code,
            ResultCode::Success
        );
        assert_eq!(
            directory_jobs(&bed),
            5,
            "each change queues the delivery of its events"
        );
    }

    #[tokio::test]
    async fn auth_sync_authorizes_revokes_and_deletes_500_users() {
        let bed = TestBed::default_keys();
        assert_eq!(
            bed.call("authSync", &users(500, 1)).await.result_code,
            ResultCode::Success
        );
        let stored = bed.directory.users(&key(), "app-1").await.unwrap();
        assert_eq!(stored.len(), 500);
        assert!(stored[0].is_admin() && stored[0].may_use_app());
        assert!(!stored[1].may_use_app(), "enable=false");
        bed.call("authSync", &users(3, 3)).await;
        let revoked = bed
            .directory
            .user(&key(), "app-1", "u002")
            .await
            .unwrap()
            .unwrap();
        assert!(revoked.revoked, "flag 3 keeps the record, revoked");
        bed.call("authSync", &users(3, 0)).await;
        assert_eq!(
            bed.directory.user(&key(), "app-1", "u002").await.unwrap(),
            None
        );
        assert_eq!(
            bed.directory.users(&key(), "app-1").await.unwrap().len(),
            497
        );
        let events = bed.directory.pending_events(&key(), 100).await.unwrap();
        assert_eq!(
            events.len(),
            5 + 1 + 1,
            "500 users in five events, then the revoke and the delete"
        );
    }

    #[tokio::test]
    async fn org_syncs_replace_and_edit_the_department_set() {
        let bed = TestBed::default_keys();
        let all = json!({"instanceId":"i-1","tenantId":"t-1","testFlag":0,"timeStamp":"x",
            "orgInfoList":[{"orgCode":"2","orgName":"研发部","parentCode":"1"},{"orgCode":"1","orgName":"总部","parentCode":""}]});
        assert_eq!(
            bed.call("allOrgSync", &all).await.result_code,
            ResultCode::Success
        );
        let single = json!({"instanceId":"i-1","tenantId":"t-1","orgCode":"3","orgName":"销售部","parentCode":"1","flag":1,"testFlag":0,"timeStamp":"x"});
        assert_eq!(
            bed.call("singleOrgSync", &single).await.result_code,
            ResultCode::Success
        );
        let depts = bed.directory.departments(&key()).await.unwrap();
        assert_eq!(depts.len(), 3);
        assert_eq!(
            depts[0].parent_code, None,
            "an empty parentCode is the top department"
        );
        // A cycle and a missing parent are stored as given, never walked
        // (docs/protocol/decisions.md §16).
        let cycle = json!({"instanceId":"i-1","tenantId":"t-1","testFlag":0,"timeStamp":"x",
            "orgInfoList":[{"orgCode":"A","orgName":"甲","parentCode":"B"},{"orgCode":"B","orgName":"乙","parentCode":"A"},{"orgCode":"C","orgName":"丙","parentCode":"nowhere"}]});
        assert_eq!(
            bed.call("allOrgSync", &cycle).await.result_code,
            ResultCode::Success
        );
        let stored = bed.directory.departments(&key()).await.unwrap();
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[0].parent_code.as_deref(), Some("B"));
        assert_eq!(stored[2].parent_code.as_deref(), Some("nowhere"));
        let again = json!({"instanceId":"i-1","tenantId":"t-1","testFlag":0,"timeStamp":"x","orgInfoList":[{"orgCode":"9","orgName":"新"}]});
        bed.call("allOrgSync", &again).await;
        assert_eq!(
            bed.directory.departments(&key()).await.unwrap().len(),
            1,
            "replaced, not merged"
        );
    }

    #[tokio::test]
    async fn application_sync_decrypts_seals_and_stores_the_client_secret() {
        let bed = TestBed::default_keys();
        let public = bed.client_secret_key.public_key_pem();
        // What Java's default OAEP (SHA-256, MGF1-SHA-1) makes, as KooGallery's platform would.
        let cipher = encrypt_for(&public, "s3cret-客户端", OaepVariant::Sha256Mgf1Sha1).unwrap();
        assert_eq!(
            bed.call("applicationSync", &app(&cipher, 1))
                .await
                .result_code,
            ResultCode::Success
        );
        let apps = bed.directory.apps(&key()).await.unwrap();
        assert_eq!(apps[0].client_id, "client-1");
        assert!(
            !apps[0].sealed_client_secret.contains("s3cret"),
            "sealed at rest"
        );
        use crate::security::at_rest::CredentialSealer;
        let opened = bed
            .sealer
            .open(&key().app_binding("app-1"), &apps[0].sealed_client_secret)
            .await
            .unwrap();
        assert_eq!(opened, "s3cret-客户端");
        assert!(
            bed.sealer
                .open(
                    &TenantKey::new("i-1", "t-2").app_binding("app-1"),
                    &apps[0].sealed_client_secret
                )
                .await
                .is_err(),
            "bound to its tenant and app"
        );
        // A secret for another key, or not Base64: 000101, nothing stored.
        let other = include_str!("../../tests/fixtures/kit/kit_rsa_java_vectors.json");
        let other: Value = serde_json::from_str(other).unwrap();
        let foreign = other["other_key_sha256_mgf1sha1"]
            .as_str()
            .unwrap()
            .to_owned();
        let bad = vec!["%%% not base64 %%%".to_owned(), foreign];
        for secret in bad {
            let bed = TestBed::default_keys();
            let r = bed.call("applicationSync", &app(&secret, 1)).await;
            assert_eq!(r.result_code.as_str(), "000101", "{r:?}");
            assert_eq!(r.result_msg, "something wrong with appSecret");
            assert_eq!(bed.directory.apps(&key()).await.unwrap(), []);
            assert_eq!(directory_jobs(&bed), 0);
        }
        // Delete needs no secret.
        let delete = json!({"instanceId":"i-1","tenantId":"t-1","appId":"app-1","flag":0,"testFlag":0,"timeStamp":"x"});
        assert_eq!(
            bed.call("applicationSync", &delete).await.result_code,
            ResultCode::Success
        );
        assert_eq!(bed.directory.apps(&key()).await.unwrap(), []);
    }

    #[tokio::test]
    async fn debug_calls_answer_success_and_store_nothing_whatever_they_hold() {
        let bed = TestBed::default_keys();
        for (name, mut body) in [
            ("tenantSync", tenant(1)),
            ("authSync", users(2, 1)),
            ("applicationSync", app("not even base64", 1)),
            ("tenantSync", tenant(9)),
            ("authSync", json!({"testFlag": 1})),
        ] {
            body["testFlag"] = json!(1);
            assert_eq!(
                bed.call(name, &body).await.result_code,
                ResultCode::Success,
                "{name} {body}"
            );
        }
        assert_eq!(bed.directory.tenant(&key()).await.unwrap(), None);
        assert_eq!(bed.directory.pending_events(&key(), 10).await.unwrap(), []);
        assert_eq!(directory_jobs(&bed), 0);
    }

    #[tokio::test]
    async fn an_unknown_flag_or_a_missing_field_is_000002_naming_it_and_stores_nothing() {
        let bed = TestBed::default_keys();
        let r = bed.call("tenantSync", &tenant(5)).await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
        assert!(r.result_msg.contains("flag"), "{r:?}");
        let mut missing = users(2, 1);
        missing["userList"][1]
            .as_object_mut()
            .unwrap()
            .remove("role");
        let r = bed.call("authSync", &missing).await;
        assert!(r.result_msg.contains("userList[1].role"), "{r:?}");
        assert_eq!(bed.directory.users(&key(), "app-1").await.unwrap(), []);
        assert_eq!(directory_jobs(&bed), 0);
    }
}
