//! Single sign-on for 联营 products over HTTP (docs/protocol/callbacks.md §10;
//! docs/protocol/decisions.md §19): the Kit syncs give the tenant, its app client and its users;
//! the simulator plays the unified login and the tenant's auth centre; a client of the OIDC
//! provider (here: plain HTTP calls, the browser test drives a real browser and library) signs a
//! user in with PKCE, gets an ES256 ID token and userinfo, is refused for a user authSync did not
//! authorize, hears a revoked user's session end on its back-channel, and logs out through the
//! auth centre.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use koogallery_e2e::sso_bed::{
    APP, SsoBed, claims, cookie, location, param, verifier_and_challenge,
};
use reqwest::{StatusCode, header};

/// Waits until the relying party has received `n` back-channel logouts.
async fn told(backchannel: &Mutex<Vec<String>>, n: usize, what: &str) {
    koogallery_e2e::eventually(Duration::from_secs(10), what, || {
        backchannel.lock().unwrap().len() == n
    })
    .await;
}

/// The relying party's back-channel endpoint: the logout tokens it received.
async fn relying_party() -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::{Router, extract::State, routing::post};
    let got = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/backchannel",
            post(
                |State(got): State<Arc<Mutex<Vec<String>>>>, body: String| async move {
                    got.lock().unwrap().push(body);
                    ""
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_signs_in_through_koogallery_and_the_vendors_app_gets_an_oidc_identity() {
    let (rp, backchannel) = relying_party().await;
    // The auth centre knows three users; authSync authorized the first two.
    let bed = SsoBed::start(&rp, 3, &[0, 1]).await;
    whole_flow(&bed, &backchannel).await;
    bed.host.shutdown().await;
}

/// The same on the AWS adapters (DynamoDB sessions, grants, clients and keys; the tenant found by
/// its locator item; the directory's events from SQS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the emulator: make test"]
async fn the_same_sign_in_works_on_the_aws_adapters() {
    let (rp, backchannel) = relying_party().await;
    let bed = SsoBed::start_aws(&rp, 3, &[0, 1]).await;
    whole_flow(&bed, &backchannel).await;
    bed.host.shutdown().await;
}

/// Discovery, a sign-in with PKCE, the ID token's claims, userinfo, a refused user, a revoke
/// mid-session told by back-channel logout, a logout through the auth centre.
async fn whole_flow<B>(bed: &SsoBed<B>, backchannel: &Mutex<Vec<String>>) {
    let (http, issuer) = (&bed.http, bed.issuer.as_str());
    let discovery: serde_json::Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], issuer);
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // Sign in as user 1 (authorized).
    let (verifier, challenge) = verifier_and_challenge();
    let signed = bed.sign_in(&bed.user(1), &challenge).await;
    assert_eq!(signed.answer.status(), StatusCode::FOUND);
    let to_rp = location(&signed.answer);
    assert!(to_rp.starts_with(&bed.redirect_uri()), "{to_rp}");
    assert_eq!(param(&to_rp, "state").as_deref(), Some("rp-state"));
    assert_eq!(param(&to_rp, "iss").as_deref(), Some(issuer));
    let set: Vec<String> = signed
        .answer
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        set.iter().any(|c| c.starts_with("kg_sso=")
            && c.contains("HttpOnly")
            && c.contains("SameSite=Lax")),
        "{set:?}"
    );
    let session = signed.session.expect("the session cookie");
    let code = param(&to_rp, "code").unwrap();
    let wrong = bed.token(&code, &format!("{verifier}x")).await;
    assert_eq!(
        wrong.status(),
        StatusCode::BAD_REQUEST,
        "a wrong PKCE verifier"
    );
    // The code was spent by the failed attempt: authorize again (the session is reused, no login).
    let again = bed
        .authorize(Some(&session), challenge.as_str(), &[("nonce", "n2")])
        .await;
    assert_eq!(again.status(), StatusCode::FOUND);
    let code = param(&location(&again), "code").expect("a code at once: the session is live");
    // Basic authentication naming one client and a form naming another is refused.
    let mixed = http
        .post(format!("{issuer}/oidc/token"))
        .basic_auth(&bed.client_id, Some(&bed.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "another-client"),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(mixed.status(), StatusCode::UNAUTHORIZED);
    assert!(mixed.headers().contains_key(header::WWW_AUTHENTICATE));
    let ok = bed.token(&code, &verifier).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let tokens: serde_json::Value = ok.json().await.unwrap();
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], issuer);
    assert_eq!(id["aud"], bed.client_id.as_str());
    assert_eq!(id["nonce"], "n2");
    assert_eq!(id["tenant_id"], bed.tenant.as_str());
    assert_eq!(id["tenant_name"], "华为软件技术有限公司");
    assert_eq!(id["instance_id"], bed.instance.as_str());
    assert_eq!(id["app_id"], APP);
    assert_eq!(id["preferred_username"], bed.user(1).as_str());
    assert_eq!(id["name"], bed.users[1]["name"]);
    assert_eq!(id["email"], bed.users[1]["email"]);
    assert_eq!(id["role"], "user");
    assert_eq!(
        bed.token(&code, &verifier).await.status(),
        StatusCode::BAD_REQUEST,
        "a code works once"
    );
    let userinfo = http
        .get(format!("{issuer}/oidc/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::OK);
    let info: serde_json::Value = userinfo.json().await.unwrap();
    assert_eq!(info["sub"], id["sub"]);

    // User 2 is known to the auth centre but not authorized by authSync: 403, no session.
    let (_, challenge2) = verifier_and_challenge();
    let refused = bed.sign_in(&bed.user(2), &challenge2).await;
    assert_eq!(refused.answer.status(), StatusCode::FORBIDDEN);
    assert!(refused.session.is_none(), "no session cookie on a refusal");
    assert!(
        refused
            .answer
            .text()
            .await
            .unwrap()
            .contains("not authorized")
    );

    // authSync revokes user 1 mid-session: the worker ends the session as it delivers the
    // directory event, and the app is told by back-channel logout without any further use.
    let revoke =
        koogallery_sim::kit::auth_sync(&bed.instance, &bed.tenant, APP, &bed.users[1..2], 3);
    bed.sync("authSync", &revoke).await;
    told(backchannel, 1, "the revoked session's back-channel logout").await;
    let after = http
        .get(format!("{issuer}/oidc/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let told = backchannel.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "{told:?}");
    let lt = claims(told[0].strip_prefix("logout_token=").unwrap());
    assert_eq!(lt["sub"], id["sub"]);
    assert_eq!(lt["sid"], id["sid"]);
    assert!(lt["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());

    // User 0 signs in and logs out: local session, back-channel, then the auth centre's logout.
    let (v0, c0) = verifier_and_challenge();
    let signed = bed.sign_in(&bed.user(0), &c0).await;
    assert_eq!(signed.answer.status(), StatusCode::FOUND);
    let code0 = param(&location(&signed.answer), "code").unwrap();
    let t0: serde_json::Value = bed.token(&code0, &v0).await.json().await.unwrap();
    assert_eq!(claims(t0["id_token"].as_str().unwrap())["role"], "admin");
    let session0 = signed.session.unwrap();
    let bye = format!("{}/bye", bed.rp);
    let logout = http
        .get(format!("{issuer}/oidc/logout"))
        .header(header::COOKIE, &session0)
        .query(&[
            ("client_id", bed.client_id.as_str()),
            ("post_logout_redirect_uri", bye.as_str()),
            ("state", "bye-state"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::FOUND);
    let to_centre = location(&logout);
    assert!(
        to_centre.starts_with(&format!(
            "{}/api/v1/logout?redirect_url=",
            bed.sim.primary_url()
        )),
        "{to_centre}"
    );
    assert_eq!(
        param(&to_centre, "redirect_url"),
        Some(format!("{bye}?state=bye-state"))
    );
    assert_eq!(backchannel.lock().unwrap().len(), 2);
    let centre = http.get(&to_centre).send().await.unwrap();
    assert_eq!(location(&centre), format!("{bye}?state=bye-state"));
    let reuse = bed
        .authorize(Some(&session0), c0.as_str(), &[("prompt", "none")])
        .await;
    assert_eq!(
        param(&location(&reuse), "error").as_deref(),
        Some("login_required"),
        "the session is gone"
    );
}

/// A tenant's deletion (tenantSync flag 0) ends its sessions at once: the app hears it by
/// back-channel logout, and the session is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_delete_ends_its_sessions_and_tells_the_app() {
    let (rp, backchannel) = relying_party().await;
    let vendor = koogallery_e2e::Vendor::start().await;
    let bed = SsoBed::start_with(&rp, 2, &[0, 1], vendor.config()).await;
    let mut sessions = Vec::new();
    for user in [0, 1] {
        let (verifier, challenge) = verifier_and_challenge();
        let signed = bed.sign_in(&bed.user(user), &challenge).await;
        let code = param(&location(&signed.answer), "code").expect("a code");
        assert_eq!(bed.token(&code, &verifier).await.status(), StatusCode::OK);
        sessions.push(signed.session.expect("a session"));
    }
    let delete = koogallery_sim::kit::tenant_sync(
        &bed.instance,
        "CSSSO1",
        &bed.tenant,
        &bed.sim.primary_url(),
        0,
    );
    bed.sync("tenantSync", &delete).await;
    told(&backchannel, 2, "both sessions' back-channel logouts").await;
    // The vendor's webhook hears it too, in the tenant's event stream after the deletion.
    let ended = || {
        vendor
            .received_for(&bed.instance)
            .into_iter()
            .filter(|r| r.status == 200 && r.body["event"] == "sessionsEnded")
            .flat_map(|r| r.body["sessions"].as_array().cloned().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    koogallery_e2e::eventually(
        Duration::from_secs(10),
        "sessionsEnded at the webhook",
        || ended().len() == 2,
    )
    .await;
    for s in ended() {
        assert_eq!(s["reason"], "tenant_or_app_deleted", "{s}");
        assert_eq!(s["appId"], APP);
        assert!(s["sid"].is_string() && s["sub"].is_string(), "{s}");
    }
    let (_, challenge) = verifier_and_challenge();
    let after = bed
        .authorize(
            Some(&sessions[0]),
            challenge.as_str(),
            &[("prompt", "none")],
        )
        .await;
    assert_eq!(
        param(&location(&after), "error").as_deref(),
        Some("login_required")
    );
    bed.host.shutdown().await;
}

/// A sign-in that did not start at the provider (the buyer came from KooGallery's side, or a link
/// to someone else's callback): the browser gets no session until the user confirms on a page
/// served to that browser; a confirmation posted from elsewhere (no `kg_confirm` cookie) or twice
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_started_at_koogallery_is_confirmed_in_the_browser_that_shows_it() {
    let (rp, _) = relying_party().await;
    let bed = SsoBed::start(&rp, 1, &[0]).await;
    let http = &bed.http;
    let back = http
        .post(format!("{}/unified-login/login", bed.sim.primary_url()))
        .form(&[
            ("appId", APP),
            ("tenant", bed.tenant.as_str()),
            ("userName", bed.user(0).as_str()),
        ])
        .send()
        .await
        .unwrap();
    let callback = location(&back);
    let page = http.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        cookie(&page, "kg_sso").is_none(),
        "no session before the user confirms"
    );
    let confirm = cookie(&page, "kg_confirm").expect("the confirmation's cookie");
    let html = page.text().await.unwrap();
    assert!(html.contains("Continue as"), "{html}");
    let token = html
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the form's token")
        .to_owned();
    let continue_url = format!("{}/sso/continue", bed.issuer);
    // Posted from another site: the form's token without this browser's cookie.
    let forged = http
        .post(&continue_url)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(cookie(&forged, "kg_sso").is_none());
    let ok = http
        .post(&continue_url)
        .header(header::COOKIE, &confirm)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let session = cookie(&ok, "kg_sso").expect("the session, once confirmed");
    assert!(ok.text().await.unwrap().contains("Signed in as"));
    let again = http
        .post(&continue_url)
        .header(header::COOKIE, &confirm)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::FORBIDDEN,
        "a confirmation works once"
    );
    let (_, challenge) = verifier_and_challenge();
    let authorize = bed
        .authorize(Some(&session), challenge.as_str(), &[("prompt", "none")])
        .await;
    assert!(
        param(&location(&authorize), "code").is_some(),
        "the confirmed session is live"
    );
    // max_age: a session older than it signs in again (OIDC Core §3.1.2.1).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let aged = bed
        .authorize(Some(&session), challenge.as_str(), &[("max_age", "0")])
        .await;
    assert!(
        location(&aged).contains("/unified-login/portal-login"),
        "{}",
        location(&aged)
    );
    // A state that is not this browser's pending login is refused before any exchange.
    let forged_state = format!(
        "{}&state={}",
        callback,
        koogallery::sso::Opaque::random().expose()
    );
    let refused = http.get(&forged_state).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    bed.host.shutdown().await;
}
