//! The 联营 Kit syncs over HTTP, as KooGallery sends them: a whole joint purchase through the
//! simulator (newInstance, tenantSync, applicationSync with a secret encrypted for the service's
//! public key, a 500-user authSync, a 5 000-department allOrgSync 1 000 deep, the single org syncs,
//! revoke and delete, the deletes), on `make run`'s embedded store and on the AWS adapters.

use std::time::Duration;

use koogallery::directory::{TenantDirectory, TenantKey};
use koogallery_e2e::{KEY, Vendor, eventually, host};
use koogallery_sim::{
    Simulator,
    kit::{self, KitSimulator, KitSizes},
};
use serde_json::json;

const KIT_KEY: &str = "e2e-kit-key";

/// Every Kit answer within KooGallery's limit, every one `000000` and signed; the vendor hears the
/// directory's events in order per tenant, the last the tenant's deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joint_purchase_over_http_reaches_the_directory_and_the_vendor() {
    let vendor = Vendor::start().await;
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), vendor.config(), None).await;
    let basic = Simulator::new(&h.produce_url(), KEY).unwrap();
    let kit = KitSimulator::new(&h.produce_url(), KIT_KEY).unwrap();
    // The generated key is in the data directory, owner-only, and served.
    let pem = kit.public_key().await.unwrap();
    let file = dir
        .path()
        .join(koogallery::security::kit_client_secret::KEY_FILE);
    assert!(file.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(pem.contains("BEGIN PUBLIC KEY"));

    let (instance_id, steps) = kit::run_joint_purchase(
        &basic,
        &kit,
        &format!("CSKIT{}", koogallery_e2e::unique()),
        KitSizes::default(),
        Duration::from_secs(20),
    )
    .await
    .expect("the joint purchase passes");
    for s in &steps {
        println!(
            "{:<24} {} {:>8.1} ms {:>9} bytes",
            s.name,
            s.result_code,
            s.elapsed.as_secs_f64() * 1000.0,
            s.body_bytes
        );
        assert!(
            s.elapsed < Duration::from_secs(5),
            "{} took {:?}",
            s.name,
            s.elapsed
        );
    }
    // The vendor hears every directory event of the tenant, in seq order, the deletion last.
    let directory_events = || {
        vendor
            .received_for(&instance_id)
            .into_iter()
            .filter(|r| r.status == 200 && r.body.get("tenantId").is_some())
            .collect::<Vec<_>>()
    };
    eventually(
        Duration::from_secs(60),
        "the tenant's deletion reaches the vendor",
        || {
            directory_events()
                .last()
                .is_some_and(|r| r.event == "tenantDeleted")
        },
    )
    .await;
    let events = directory_events();
    let seqs: Vec<u64> = events.iter().map(|r| r.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, none twice: {seqs:?}"
    );
    let names: Vec<&str> = events.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "usersAuthorized").count(),
        5,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "orgsReplaced").count(),
        10,
        "{names:?}"
    );
    assert!(
        events
            .iter()
            .all(|r| !r.body.to_string().contains("client-secret")),
        "the client secret never leaves"
    );
    // Everything of the tenant is gone from the store.
    let tenant = events[0].body["tenantId"].as_str().unwrap().to_owned();
    let key = TenantKey::new(&instance_id, &tenant);
    let store = h.backend.store.clone();
    assert_eq!(store.tenant(&key).await.unwrap(), None);
    assert_eq!(store.departments(&key).await.unwrap(), []);
    h.shutdown().await;
}

/// What KooGallery gets for Kit calls that are wrong: signed refusals, nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_calls_signed_with_the_basic_key_or_replayed_are_refused_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), koogallery_e2e::config(), None).await;
    let kit = KitSimulator::new(&h.produce_url(), KIT_KEY).unwrap();
    let body = kit::tenant_sync("i-x", "CS1", "t-x", "https://idaas.example.com", 1);
    let wrong = kit
        .call_signed("tenantSync", &body, KEY, "n-wrong-key")
        .await
        .unwrap();
    assert_eq!(wrong.reply.result_code.as_str(), "000001");
    assert!(
        wrong.body_sign_valid,
        "refusals are signed with the Kit key too"
    );
    let first = kit
        .call_signed("tenantSync", &body, KIT_KEY, "n-once")
        .await
        .unwrap();
    assert_eq!(first.reply.result_code.as_str(), "000000");
    let replay = kit
        .call_signed("tenantSync", &body, KIT_KEY, "n-once")
        .await
        .unwrap();
    assert_eq!(replay.reply.result_code.as_str(), "000001");
    let debug = json!({"tenantId": "t-debug", "flag": 7, "testFlag": 1});
    assert_eq!(
        kit.call("tenantSync", &debug)
            .await
            .unwrap()
            .reply
            .result_code
            .as_str(),
        "000000"
    );
    let key = TenantKey::new("", "t-debug");
    assert_eq!(h.backend.store.tenant(&key).await.unwrap(), None);
    h.shutdown().await;
}

/// The same joint purchase on the AWS adapters (emulator), smaller: the emulator answers each
/// DynamoDB call in tens of milliseconds where DynamoDB takes a few.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_joint_purchase_on_the_aws_adapters() {
    let vendor = Vendor::start().await;
    let (h, _data) = koogallery_e2e::aws_host(vendor.config(), None, None).await;
    let url = format!("http://{}/produce", h.addr);
    let basic = Simulator::new(&url, KEY).unwrap();
    let kit = KitSimulator::new(&url, KIT_KEY).unwrap();
    let sizes = KitSizes {
        users: 120,
        departments: 300,
        depth: 100,
    };
    let (instance_id, steps) = kit::run_joint_purchase(
        &basic,
        &kit,
        &format!("CSKITAWS{}", koogallery_e2e::unique()),
        sizes,
        Duration::from_secs(30),
    )
    .await
    .expect("the joint purchase passes on the AWS adapters");
    for s in &steps {
        println!(
            "{:<24} {} {:>8.1} ms",
            s.name,
            s.result_code,
            s.elapsed.as_secs_f64() * 1000.0
        );
    }
    eventually(
        Duration::from_secs(60),
        "the tenant's deletion reaches the vendor",
        || {
            vendor
                .received_for(&instance_id)
                .into_iter()
                .rfind(|r| r.status == 200 && r.body.get("tenantId").is_some())
                .is_some_and(|r| r.event == "tenantDeleted")
        },
    )
    .await;
    h.shutdown().await;
}
