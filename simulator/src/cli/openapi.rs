//! `koogallery-sim serve-openapi`, and placing an order on a running one.

use std::process::ExitCode;

use super::args::ServeOpenapiArgs;

/// `koogallery-sim serve-openapi`: serves KooGallery's open API until Ctrl-C.
pub async fn serve_openapi(args: ServeOpenapiArgs) -> ExitCode {
    let ServeOpenapiArgs {
        listen,
        fallback_listen,
        ak,
        sk,
        interconnection_key,
        sso_app_id,
        sso_login_address,
    } = args;
    let keys = std::collections::HashMap::from([(ak.clone(), sk)]);
    match koogallery_sim::openapi::OpenApiSim::start(keys, listen, fallback_listen).await {
        Ok(sim) => {
            sim.set_interconnection_key(&interconnection_key);
            if let (Some(app), Some(address)) = (sso_app_id, sso_login_address) {
                if let Err(e) = sim.register_sso_app(&app, &address) {
                    eprintln!("koogallery-sim: --sso-login-address: {e}");
                    return ExitCode::FAILURE;
                }
                println!("联营 SSO app {app}: logins land at {address}");
            }
            println!(
                "KooGallery open API: primary {} fallback {} (AK {ak}); Ctrl-C stops",
                sim.primary_url(),
                sim.fallback_url()
            );
            println!(
                "License 2.0: PLTEST… codes are alive (30 days from activation), PLNOTYET… not yet \
                 delivered, others unknown; POST /_sim/license/{{code}}/status, /_sim/license/faults"
            );
            println!(
                "联营 SSO: unified login {0}/unified-login/portal-login?ind=UNOP&appId={{appId}}, \
                 auth centre {0}/api/v1/…",
                sim.primary_url()
            );
            let _ = tokio::signal::ctrl_c().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("koogallery-sim: cannot listen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Places a yearly 50-seat order for `order_id` on a running `serve-openapi`.
pub async fn place_order(openapi: &str, order_id: &str) -> Result<(), String> {
    let order = serde_json::json!({
        "orderId": order_id, "orderLineId": format!("{order_id}-000001"),
        "periodType": "year", "periodNumber": 1, "linearValue": 50,
        "skuCode": "sim-sku-pro",
        "expireTime": chrono::Utc::now().checked_add_months(chrono::Months::new(12)),
    });
    let response = reqwest::Client::new()
        .post(format!("{}/_sim/orders", openapi.trim_end_matches('/')))
        .json(&order)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    println!("placed a yearly 50-seat order {order_id} at {openapi}");
    Ok(())
}
