//! `koogallery-sim kit` (one Kit sync, or the Kit public key) and `lifecycle --kit` (a 联营
//! purchase).

use std::process::ExitCode;
use std::time::Duration;

use koogallery_sim::Simulator;
use koogallery_sim::kit::{self, KitSimulator};
use serde_json::Value;

use super::args::{KitArgs, KitCallArgs, Target};
use super::problem;

/// The plaintext clientSecret `kit application-sync` encrypts and sends.
const SIM_CLIENT_SECRET: &str = "sim-client-secret";

/// `koogallery-sim lifecycle --kit`.
pub async fn joint_purchase(
    target: &Target,
    kit_args: &KitArgs,
    order_id: &str,
    poll: Duration,
) -> ExitCode {
    let (basic, kit) = match (
        Simulator::new(&target.url, &target.key),
        KitSimulator::new(&target.url, &kit_args.kit_key),
    ) {
        (Ok(b), Ok(k)) => (b, k),
        (Err(e), _) | (_, Err(e)) => return problem(&e),
    };
    match kit::run_joint_purchase(&basic, &kit, order_id, kit_args.sizes(), poll).await {
        Ok((instance_id, steps)) => {
            println!("联营 purchase of instance {instance_id}: every answer 000000 and signed");
            for s in steps {
                println!(
                    "  {:<24} {}  {:>8.1} ms  {:>9} bytes",
                    s.name,
                    s.result_code,
                    s.elapsed.as_secs_f64() * 1000.0,
                    s.body_bytes
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => problem(&e),
    }
}

/// `koogallery-sim kit …`: one Kit sync.
pub async fn kit_call(args: KitCallArgs) -> ExitCode {
    let sim = match KitSimulator::new(&args.url, &args.kit_args.kit_key) {
        Ok(s) => s,
        Err(e) => return problem(&e),
    };
    if args.interface == "public-key" {
        return match sim.public_key().await {
            Ok(pem) => {
                print!("{pem}");
                ExitCode::SUCCESS
            }
            Err(e) => problem(&e),
        };
    }
    let (name, body) = match sync_body(&sim, &args).await {
        Ok(b) => b,
        Err(code) => return code,
    };
    if args.repeat > 1 {
        return match kit::repeat(&sim, name, &body, args.repeat).await {
            Ok(report) => {
                print!("{report}");
                if report.wrong == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => problem(&e),
        };
    }
    match sim.call(name, &body).await {
        Ok(a) => {
            println!(
                "{name}: HTTP {} {} {} (Body-Sign {}) in {:.1} ms",
                a.http_status,
                a.reply.result_code.as_str(),
                a.reply.result_msg,
                if a.body_sign_valid {
                    "valid"
                } else {
                    "INVALID"
                },
                a.elapsed.as_secs_f64() * 1000.0
            );
            if a.http_status == 200 && a.body_sign_valid && a.reply.result_code.as_str() == "000000"
            {
                match &args.openapi {
                    Some(openapi) => register_sso(openapi, &args, &body).await,
                    None => ExitCode::SUCCESS,
                }
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => problem(&e),
    }
}

/// The Kit interface `args.interface` names and its body with realistic data; the
/// application-sync asks the service for its public key first. `Err` is the exit code of a
/// failure already printed.
async fn sync_body(
    sim: &KitSimulator,
    args: &KitCallArgs,
) -> Result<(&'static str, Value), ExitCode> {
    let (instance_id, tenant_id, app_id, flag) = (
        args.instance_id.as_str(),
        args.tenant_id.as_str(),
        args.app_id.as_str(),
        args.flag,
    );
    let kit_args = &args.kit_args;
    Ok(match args.interface.as_str() {
        "tenant-sync" => (
            "tenantSync",
            kit::tenant_sync(
                instance_id,
                "CS-SIM",
                tenant_id,
                args.openapi
                    .as_deref()
                    .unwrap_or("https://idaas.example.com"),
                flag,
            ),
        ),
        "application-sync" => {
            let pem = sim.public_key().await.map_err(|e| problem(&e))?;
            match kit::application_sync(
                instance_id,
                tenant_id,
                app_id,
                SIM_CLIENT_SECRET,
                &pem,
                flag,
            ) {
                Ok(b) => ("applicationSync", b),
                Err(e) => return Err(problem(&e)),
            }
        }
        "auth-sync" => (
            "authSync",
            kit::auth_sync(
                instance_id,
                tenant_id,
                app_id,
                &kit::users(kit_args.users),
                flag,
            ),
        ),
        "single-org-sync" => (
            "singleOrgSync",
            kit::single_org_sync(instance_id, tenant_id, "D-SIM", "模拟部门", "", flag),
        ),
        _ => (
            "allOrgSync",
            kit::all_org_sync(
                instance_id,
                tenant_id,
                &kit::departments(kit_args.orgs, kit_args.depth),
            ),
        ),
    })
}

/// After an answered application-sync or auth-sync add or modify: registers the tenant, its
/// client (`client-{app}`, [`SIM_CLIENT_SECRET`]) and the synced users at the `serve-openapi`
/// playing its auth centre. Other syncs register nothing.
async fn register_sso(openapi: &str, args: &KitCallArgs, body: &Value) -> ExitCode {
    if !matches!(args.interface.as_str(), "application-sync" | "auth-sync")
        || !matches!(args.flag, 1 | 2)
    {
        return ExitCode::SUCCESS;
    }
    let users = body
        .get("userList")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    let tenant = serde_json::json!({
        "tenantId": args.tenant_id, "name": koogallery_sim::sso::KIT_TENANT_NAME,
        "appId": args.app_id, "clientId": format!("client-{}", args.app_id),
        "clientSecret": SIM_CLIENT_SECRET, "users": users,
    });
    let sent = reqwest::Client::new()
        .post(format!(
            "{}/_sim/sso/tenants",
            openapi.trim_end_matches('/')
        ))
        .json(&tenant)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            println!(
                "registered tenant {} (app {}) at {openapi} for SSO",
                args.tenant_id, args.app_id
            );
            ExitCode::SUCCESS
        }
        Ok(r) => problem(&format!(
            "cannot register the tenant at {openapi}: HTTP {}",
            r.status()
        )),
        Err(e) => problem(&format!("cannot register the tenant at {openapi}: {e}")),
    }
}
