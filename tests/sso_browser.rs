//! Single sign-on for 联营 products in a real browser (docs/protocol/callbacks.md §10): the same
//! deployment as `sso.rs` (`sso_bed.rs`) (the simulator plays the unified login and the tenant's auth centre, the Kit
//! syncs give the tenant, its app client and its users), but the relying party is an ordinary
//! Node app on `openid-client` (a certified OIDC library) and the buyer is headless Chromium
//! driven by `playwright-core`: `tests/browser/sso.mjs` signs a user in through the login page,
//! logs out (back-channel logout verified with `jose`), is refused for a user authSync did not
//! authorize, and sees a revoked user's session end mid-session.
//!
//! Needs `node`, Debian's `/usr/bin/chromium` and `tests/browser/node_modules`:
//! `scripts/browser.sh` installs them (`make test` runs it first). Without them the test fails.

use std::{path::Path, sync::Arc, time::Duration};

use koogallery_e2e::sso_bed::{APP, KIT_KEY, SsoBed, free_port};
use koogallery_sim::{
    kit::{self, KitSimulator},
    sso::KIT_TENANT_NAME,
};
use serde_json::Value;

/// The whole browser run: Chromium's start, four sign-ins, the logouts.
const NODE_TIMEOUT: Duration = Duration::from_secs(120);

/// What the browser script calls to revoke `USER_REVOKE` mid-session: authSync with flag 3.
async fn control_server(kit: KitSimulator, revoke: Value) -> String {
    use axum::{Router, extract::State, http::StatusCode, routing::post};
    let state = Arc::new((kit, revoke));
    let app = Router::new()
        .route(
            "/revoke",
            post(|State(s): State<Arc<(KitSimulator, Value)>>| async move {
                match s.0.call("authSync", &s.1).await {
                    Ok(a) if a.reply.result_code.as_str() == "000000" => {
                        (StatusCode::OK, "revoked".to_owned())
                    }
                    Ok(a) => (
                        StatusCode::BAD_GATEWAY,
                        format!("authSync: {} {}", a.reply.result_code, a.reply.result_msg),
                    ),
                    Err(e) => (StatusCode::BAD_GATEWAY, format!("authSync: {e}")),
                }
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the Node packages: scripts/browser.sh (make test runs it)"]
async fn a_buyer_signs_in_with_a_real_browser_and_an_off_the_shelf_oidc_library() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    koogallery_e2e::node::prerequisites(&project, &["openid-client", "playwright-core"]);

    // The relying party is the Node app on its own port; users 0, 1 and 3 are authorized by
    // authSync (not 2), the auth centre knows all four.
    let rp_port = free_port();
    let bed = SsoBed::start(&format!("http://127.0.0.1:{rp_port}"), 4, &[0, 1, 3]).await;
    let revoke = kit::auth_sync(&bed.instance, &bed.tenant, APP, &bed.users[3..4], 3);
    let control = control_server(
        KitSimulator::new(&bed.host.produce_url(), KIT_KEY).unwrap(),
        revoke,
    )
    .await;

    koogallery_e2e::node::run_script(
        &project,
        "sso.mjs",
        &[
            ("ISSUER", bed.issuer.clone()),
            ("CLIENT_ID", bed.client_id.clone()),
            ("CLIENT_SECRET", bed.client_secret.clone()),
            ("RP_PORT", rp_port.to_string()),
            ("TENANT", bed.tenant.clone()),
            ("TENANT_NAME", KIT_TENANT_NAME.to_owned()),
            ("USER_OK", bed.user(1)),
            ("NAME_OK", bed.users[1]["name"].as_str().unwrap().to_owned()),
            ("USER_REFUSED", bed.user(2)),
            ("USER_REVOKE", bed.user(3)),
            ("CONTROL_URL", control.clone()),
        ],
        NODE_TIMEOUT,
    )
    .await;
    bed.host.shutdown().await;
}
