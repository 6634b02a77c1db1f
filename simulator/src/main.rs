//! `koogallery-sim`: play KooGallery against a production URL.
//!
//! ```text
//! koogallery-sim lifecycle --url URL [--key K] [--order-id ID] [--test-flag]
//! koogallery-sim call --url URL [--key K] --activity queryInstance --field instanceId=abc
//! koogallery-sim call --url URL [--key K] --body '{"activity":"queryInstance","instanceId":"abc"}'
//! koogallery-sim storm --url URL [--key K] --webhook-secret S [--deliveries 10000] [--connections 64]
//! koogallery-sim lifecycle --kit --url URL [--key K] [--kit-key KK] [--users 500] [--orgs 5000]
//! koogallery-sim kit tenant-sync|application-sync|auth-sync|single-org-sync|all-org-sync|public-key
//!     --url URL [--kit-key KK] [--instance-id I] [--tenant-id T] [--flag F] [--users N] [--orgs N]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Prints a failure of a command other than a KooGallery call.
fn problem(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("koogallery-sim: {e}");
    ExitCode::FAILURE
}

/// `koogallery-sim estimate`: the vendor's estimate, and KooGallery's own bill beside it.
async fn estimate(
    target: &Target,
    usage_key: &str,
    instance: &str,
    from: Option<String>,
    to: Option<String>,
    openapi: Option<String>,
    pricing: Option<String>,
) -> ExitCode {
    let mut url = target.url.clone();
    if let Some(i) = url.rfind("/produce") {
        url.truncate(i);
    }
    let url = format!("{}/usage", url.trim_end_matches('/'));
    let client = match koogallery_sim::usage::UsageClient::new(&url, usage_key) {
        Ok(c) => c,
        Err(e) => return problem(&e),
    };
    let answer = match client
        .estimate(instance, from.as_deref(), to.as_deref())
        .await
    {
        Ok(a) => a,
        Err(e) => return problem(&e),
    };
    println!(
        "vendor's estimate (HTTP {}): {}",
        answer.status, answer.body
    );
    if answer.status != 200 {
        return ExitCode::FAILURE;
    }
    let (Some(openapi), Some(pricing)) = (openapi, pricing) else {
        return ExitCode::SUCCESS;
    };
    let pricing: koogallery::metering::pricing::Pricing = match serde_json::from_str(&pricing)
        .map_err(|e| e.to_string())
        .and_then(|p: koogallery::metering::pricing::Pricing| {
            p.validate().map(|()| p).map_err(|e| e.to_string())
        }) {
        Ok(p) => p,
        Err(e) => return problem(&format!("--pricing: {e}")),
    };
    // The period the vendor's answer names (`to` exclusive), so both cover the same records.
    let time = |k: &str| {
        answer.body[k]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.to_utc())
    };
    let (Some(from), Some(to)) = (time("from"), time("to")) else {
        return problem(&"the estimate names no period");
    };
    let accepted = match koogallery_sim::usage::accepted(&openapi).await {
        Ok(a) => a,
        Err(e) => return problem(&e),
    };
    match koogallery_sim::usage::koogallery_bill(&accepted, instance, from, to, &pricing) {
        Ok((quantity, amount)) => {
            println!(
                "KooGallery's bill from the records it accepted: quantity {quantity}, amount {amount}"
            );
            ExitCode::SUCCESS
        }
        Err(e) => problem(&e),
    }
}
use koogallery_sim::{
    CallOptions, DEFAULT_ACCESS_KEY, DEFAULT_URL, LifecycleOptions, SimError, Simulator,
};
use serde_json::{Map, Value};

#[derive(Parser, Debug)]
#[command(
    name = "koogallery-sim",
    version,
    about = "Plays KooGallery against a vendor's production URL: signed calls and the whole purchase lifecycle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Target {
    /// The vendor's production URL.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// The basic-interface access key (signs requests, checks Body-Sign).
    #[arg(
        long,
        env = "KOOGALLERY_ACCESS_KEY",
        default_value = DEFAULT_ACCESS_KEY,
        hide_env_values = true
    )]
    key: String,
}

/// What the Kit calls are signed with and how large they are.
#[derive(Args, Debug)]
struct KitArgs {
    /// The Kit key (signs x-sign, checks Body-Sign).
    #[arg(
        long,
        env = "KOOGALLERY_KIT_KEY",
        default_value = koogallery_sim::kit::DEFAULT_KIT_KEY,
        hide_env_values = true
    )]
    kit_key: String,
    /// Users in the authSync.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Departments in the allOrgSync.
    #[arg(long, default_value_t = 5000)]
    orgs: usize,
    /// Depth of the department tree.
    #[arg(long, default_value_t = 1000)]
    depth: usize,
}

impl KitArgs {
    fn sizes(&self) -> koogallery_sim::kit::KitSizes {
        koogallery_sim::kit::KitSizes {
            users: self.users,
            departments: self.orgs,
            depth: self.depth,
        }
    }
}

/// `koogallery-sim lifecycle --kit`.
async fn joint_purchase(
    target: &Target,
    kit_args: &KitArgs,
    order_id: &str,
    poll: Duration,
) -> ExitCode {
    let (basic, kit) = match (
        Simulator::new(&target.url, &target.key),
        koogallery_sim::kit::KitSimulator::new(&target.url, &kit_args.kit_key),
    ) {
        (Ok(b), Ok(k)) => (b, k),
        (Err(e), _) | (_, Err(e)) => return problem(&e),
    };
    match koogallery_sim::kit::run_joint_purchase(&basic, &kit, order_id, kit_args.sizes(), poll)
        .await
    {
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
async fn kit_call(
    interface: &str,
    url: &str,
    kit_args: &KitArgs,
    ids: (&str, &str, &str),
    flag: i64,
    repeat: u64,
) -> ExitCode {
    use koogallery_sim::kit;
    let (instance_id, tenant_id, app_id) = ids;
    let sim = match kit::KitSimulator::new(url, &kit_args.kit_key) {
        Ok(s) => s,
        Err(e) => return problem(&e),
    };
    if interface == "public-key" {
        return match sim.public_key().await {
            Ok(pem) => {
                print!("{pem}");
                ExitCode::SUCCESS
            }
            Err(e) => problem(&e),
        };
    }
    let (name, body) = match interface {
        "tenant-sync" => (
            "tenantSync",
            kit::tenant_sync(
                instance_id,
                "CS-SIM",
                tenant_id,
                "https://idaas.example.com",
                flag,
            ),
        ),
        "application-sync" => {
            let pem = match sim.public_key().await {
                Ok(p) => p,
                Err(e) => return problem(&e),
            };
            match kit::application_sync(
                instance_id,
                tenant_id,
                app_id,
                "sim-client-secret",
                &pem,
                flag,
            ) {
                Ok(b) => ("applicationSync", b),
                Err(e) => return problem(&e),
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
    };
    if repeat > 1 {
        return match kit::repeat(&sim, name, &body, repeat).await {
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
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => problem(&e),
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Walk the whole purchase lifecycle, checking every answer; exits 1 on the first failure.
    Lifecycle {
        #[command(flatten)]
        target: Target,
        /// Order ID of the purchase (default: CS + 15 random characters).
        #[arg(long)]
        order_id: Option<String>,
        /// Send "testFlag":"1" in every body (seller-console debugging).
        #[arg(long)]
        test_flag: bool,
        /// Seconds to poll queryInstance for the instance to become ready.
        #[arg(long, default_value_t = 30, value_name = "SECONDS")]
        poll_timeout: u64,
        /// Milliseconds between two polls.
        #[arg(long, default_value_t = 250, value_name = "MS")]
        poll_interval: u64,
        /// A running `serve-openapi` (its primary URL): the order is placed there first, a
        /// yearly purchase of 50 seats, so the service provisions from what Query Order answers.
        #[arg(long, value_name = "URL")]
        openapi: Option<String>,
        /// A 联营 purchase instead: newInstance, then the Kit syncs (tenant, app with an encrypted
        /// clientSecret, authSync, allOrgSync, single org syncs, revoke, deletes), then release.
        #[arg(long)]
        kit: bool,
        #[command(flatten)]
        kit_args: KitArgs,
    },
    /// Sign and send one Kit sync (docs/protocol/callbacks.md §9) with realistic data, or print the
    /// service's Kit public key; exits 1 unless 000000 with a valid Body-Sign.
    Kit {
        /// tenant-sync, application-sync, auth-sync, single-org-sync, all-org-sync, or public-key.
        #[arg(value_parser = ["tenant-sync", "application-sync", "auth-sync", "single-org-sync", "all-org-sync", "public-key"])]
        interface: String,
        /// The vendor's production URL.
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
        #[command(flatten)]
        kit_args: KitArgs,
        /// instanceId (empty: the seller's own credential).
        #[arg(long, default_value = "sim-instance")]
        instance_id: String,
        #[arg(long, default_value = "sim-tenant")]
        tenant_id: String,
        #[arg(long, default_value = "sim-app")]
        app_id: String,
        /// The flag: 0 delete, 1 add, 2 modify (3 revoke, authSync).
        #[arg(long, default_value_t = 1)]
        flag: i64,
        /// Send the same call this many times in a row and report latency percentiles.
        #[arg(long, default_value_t = 1)]
        repeat: u64,
    },
    /// Sign and send one call, print the answer; exits 1 unless HTTP 200 with a valid Body-Sign.
    Call {
        #[command(flatten)]
        target: Target,
        /// The activity (e.g. queryInstance); overrides "activity" of --body.
        #[arg(long)]
        activity: Option<String>,
        /// A body field: KEY=VALUE (string) or KEY:=JSON (raw JSON, e.g.
        /// productInfo:='{"skuCode":"s"}').
        #[arg(long = "field", value_name = "KEY=VALUE")]
        fields: Vec<String>,
        /// The whole body as a JSON object (--field and --activity are added to it).
        #[arg(long, value_name = "JSON")]
        body: Option<String>,
        /// Add "testFlag":"1".
        #[arg(long)]
        test_flag: bool,
        /// Send this nonce instead of a random one (replay tests).
        #[arg(long)]
        nonce: Option<String>,
        /// Send this timestamp (epoch ms) instead of now (stale-timestamp tests).
        #[arg(long, value_name = "MS")]
        timestamp: Option<i64>,
        /// Sign with this key instead of --key (forged-signature tests); Body-Sign is still checked
        /// with --key.
        #[arg(long, value_name = "KEY")]
        sign_key: Option<String>,
    },
    /// Load the production URL with signed calls, each with its own nonce; report requests/s,
    /// latency percentiles and answers by result code. Exits 1 on any unexpected answer.
    Load {
        #[command(flatten)]
        target: Target,
        /// queryInstance, newInstance, or mix (nine queries to one newInstance).
        #[arg(long, default_value = "queryInstance")]
        activity: koogallery_sim::load::LoadActivity,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Requests per second across all connections (default: as fast as answered).
        #[arg(long)]
        rate: Option<u64>,
        /// The instance to query (default: one is bought first).
        #[arg(long)]
        instance_id: Option<String>,
    },
    /// newInstance deliveries with KooGallery's repeats (a share of them for order lines already
    /// sent, some in flight with their original), then checks one instance and one provisioning
    /// per order line: every repeat answered with the same instanceId, every line ready through
    /// queryInstance, one provision event per instance at the webhook this command serves. Start
    /// the host with KOOGALLERY_PROVISIONER=webhook,
    /// KOOGALLERY_WEBHOOK_URL=http://<--webhook-listen>/hook and the same
    /// KOOGALLERY_WEBHOOK_SECRET. Exits 1 on any violation.
    Storm {
        #[command(flatten)]
        target: Target,
        /// newInstance deliveries in all, repeats included.
        #[arg(long, default_value_t = 10_000)]
        deliveries: usize,
        /// The share of deliveries that repeat an order line already sent.
        #[arg(long, default_value_t = 0.3)]
        duplicates: f64,
        /// Deliveries in flight at once.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Deliveries started per second (default: as fast as answered).
        #[arg(long)]
        rate: Option<f64>,
        /// Where the vendor's webhook is served (the host's KOOGALLERY_WEBHOOK_URL is
        /// http://ADDR/hook).
        #[arg(long, default_value = "127.0.0.1:8091")]
        webhook_listen: std::net::SocketAddr,
        /// The secret the host signs webhook events with.
        #[arg(long, env = "KOOGALLERY_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: String,
        /// Seconds every order line has to become ready after the last delivery.
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        ready_timeout: u64,
        /// Seed of the plan (default: random; the report names the run).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Report usage to the vendor's host as its application would (`POST /usage`, signed with the
    /// usage key), print the ingestion rate, then what KooGallery received per window (with
    /// `--openapi`: a running `serve-openapi`). Without `--instance`, one instance is bought first.
    Usage {
        #[command(flatten)]
        target: Target,
        /// The shared usage key (KOOGALLERY_USAGE_KEY).
        #[arg(long, env = "KOOGALLERY_USAGE_KEY", hide_env_values = true)]
        usage_key: String,
        /// Instances to report for (repeatable).
        #[arg(long = "instance")]
        instances: Vec<String>,
        /// Reports to send.
        #[arg(long, default_value_t = 1000)]
        records: usize,
        /// Reports per request (at most 1000).
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// A running `serve-openapi` (its primary URL), to print what it received per window.
        #[arg(long)]
        openapi: Option<String>,
    },
    /// The vendor's bill estimate for an instance (`GET /usage/estimate`, signed with the usage
    /// key); with `--openapi` and `--pricing`, also what KooGallery would bill from the records a
    /// running `serve-openapi` accepted, for comparison.
    Estimate {
        #[command(flatten)]
        target: Target,
        /// The shared usage key (KOOGALLERY_USAGE_KEY).
        #[arg(long, env = "KOOGALLERY_USAGE_KEY", hide_env_values = true)]
        usage_key: String,
        #[arg(long = "instance")]
        instance: String,
        /// Start of the period, RFC 3339, inclusive (default: this UTC month).
        #[arg(long)]
        from: Option<String>,
        /// End of the period, RFC 3339, exclusive (default: now).
        #[arg(long)]
        to: Option<String>,
        /// A running `serve-openapi` (its primary URL).
        #[arg(long, requires = "pricing")]
        openapi: Option<String>,
        /// The SKU's pricing as JSON (`{"model":"step","cycle":"day","bands":[…]}`), as in
        /// KOOGALLERY_PRICING.
        #[arg(long)]
        pricing: Option<String>,
    },
    /// Serve KooGallery's open API (Query Order) on two loopback ports, the primary and the
    /// fallback host, verifying every request's APIG signature; until Ctrl-C. Place orders with
    /// `POST /_sim/orders`, inject faults with `POST /_sim/faults` (see docs in the README).
    ServeOpenapi {
        /// The primary host's address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// The fallback host's address.
        #[arg(long, default_value = "127.0.0.1:8082")]
        fallback_listen: std::net::SocketAddr,
        /// The access key the vendor signs with (KOOGALLERY_AK).
        #[arg(long, env = "KOOGALLERY_AK", default_value = "sim-ak")]
        ak: String,
        /// Its secret (KOOGALLERY_SK).
        #[arg(
            long,
            env = "KOOGALLERY_SK",
            default_value = "sim-sk",
            hide_env_values = true
        )]
        sk: String,
        /// The seller's interconnection key, which body-signs usage pushes (the basic interfaces'
        /// access key).
        #[arg(long = "key", env = "KOOGALLERY_ACCESS_KEY", default_value = koogallery::config::DEV_ACCESS_KEY, hide_env_values = true)]
        interconnection_key: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    match Cli::parse().command {
        Command::Storm {
            target,
            deliveries,
            duplicates,
            connections,
            rate,
            webhook_listen,
            webhook_secret,
            ready_timeout,
            seed,
        } => {
            let mut opts = koogallery_sim::storm::StormOptions {
                deliveries,
                duplicate_share: duplicates,
                connections,
                rate,
                ready_timeout: Duration::from_secs(ready_timeout),
                ..Default::default()
            };
            if let Some(seed) = seed {
                opts.seed = seed;
            }
            storm(&target, &opts, webhook_listen, &webhook_secret).await
        }
        Command::Load {
            target,
            activity,
            connections,
            duration,
            rate,
            instance_id,
        } => {
            let opts = koogallery_sim::load::LoadOptions {
                activity,
                connections,
                duration: Duration::from_secs(duration),
                rate,
                instance_id,
            };
            match koogallery_sim::load::run_load(&target.url, &target.key, &opts).await {
                Ok(report) => {
                    println!("{report}");
                    if report.unexpected == 0 && report.requests > 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => fail(&e),
            }
        }
        Command::Usage {
            target,
            usage_key,
            mut instances,
            records,
            batch,
            connections,
            openapi,
        } => {
            if instances.is_empty() {
                let sim = match Simulator::new(&target.url, &target.key) {
                    Ok(s) => s,
                    Err(e) => return fail(&e),
                };
                match koogallery_sim::load::ready_instance(&sim).await {
                    Ok(id) => instances.push(id),
                    Err(e) => return fail(&e),
                }
            }
            let mut url = target.url.clone();
            if let Some(i) = url.rfind("/produce") {
                url.truncate(i);
            }
            let opts = koogallery_sim::usage::UsageDrive {
                url: format!("{}/usage", url.trim_end_matches('/')),
                usage_key,
                instances,
                records,
                batch,
                connections,
            };
            let report = match koogallery_sim::usage::drive(&opts).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("koogallery-sim: {e}");
                    return ExitCode::FAILURE;
                }
            };
            print!("{report}");
            if let Some(openapi) = openapi {
                match koogallery_sim::usage::received(&openapi).await {
                    Ok(table) => print!("{table}"),
                    Err(e) => eprintln!("koogallery-sim: cannot read {openapi}: {e}"),
                }
            }
            if report.refused.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Estimate {
            target,
            usage_key,
            instance,
            from,
            to,
            openapi,
            pricing,
        } => estimate(&target, &usage_key, &instance, from, to, openapi, pricing).await,
        Command::ServeOpenapi {
            listen,
            fallback_listen,
            ak,
            sk,
            interconnection_key,
        } => {
            let keys = std::collections::HashMap::from([(ak.clone(), sk)]);
            match koogallery_sim::openapi::OpenApiSim::start(keys, listen, fallback_listen).await {
                Ok(sim) => {
                    sim.set_interconnection_key(&interconnection_key);
                    println!(
                        "KooGallery open API: primary {} fallback {} (AK {ak}); Ctrl-C stops",
                        sim.primary_url(),
                        sim.fallback_url()
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
        Command::Lifecycle {
            target,
            order_id,
            test_flag,
            poll_timeout,
            poll_interval,
            openapi,
            kit,
            kit_args,
        } => {
            if kit {
                let order = order_id.unwrap_or_else(koogallery_sim::new_order_id);
                return joint_purchase(
                    &target,
                    &kit_args,
                    &order,
                    Duration::from_secs(poll_timeout),
                )
                .await;
            }
            let mut opts = LifecycleOptions {
                test_flag,
                poll_timeout: Duration::from_secs(poll_timeout),
                poll_interval: Duration::from_millis(poll_interval),
                ..LifecycleOptions::default()
            };
            if let Some(order_id) = order_id {
                opts.order_id = order_id;
            }
            if let Some(openapi) = openapi
                && let Err(e) = place_order(&openapi, &opts.order_id).await
            {
                eprintln!("koogallery-sim: cannot place the order at {openapi}: {e}");
                return ExitCode::FAILURE;
            }
            lifecycle(&target, &opts).await
        }
        Command::Kit {
            interface,
            url,
            kit_args,
            instance_id,
            tenant_id,
            app_id,
            flag,
            repeat,
        } => {
            kit_call(
                &interface,
                &url,
                &kit_args,
                (&instance_id, &tenant_id, &app_id),
                flag,
                repeat,
            )
            .await
        }
        Command::Call {
            target,
            activity,
            fields,
            body,
            test_flag,
            nonce,
            timestamp,
            sign_key,
        } => {
            let body = match build_body(activity.as_deref(), &fields, body.as_deref(), test_flag) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = CallOptions {
                nonce,
                timestamp_ms: timestamp,
                key: sign_key,
            };
            call(&target, &body, opts).await
        }
    }
}

/// `koogallery-sim storm`: serves the webhook, runs the storm, prints the report.
async fn storm(
    target: &Target,
    opts: &koogallery_sim::storm::StormOptions,
    webhook_listen: std::net::SocketAddr,
    webhook_secret: &str,
) -> ExitCode {
    let webhook =
        match koogallery_sim::storm::WebhookReceiver::start(webhook_listen, webhook_secret).await {
            Ok(w) => w,
            Err(e) => {
                return problem(&format!(
                    "cannot serve the webhook on {webhook_listen}: {e}"
                ));
            }
        };
    println!(
        "vendor webhook on {} (the host's KOOGALLERY_WEBHOOK_URL); storm against {}",
        webhook.url(),
        target.url
    );
    match koogallery_sim::storm::run_storm(&target.url, &target.key, opts, &webhook).await {
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => fail(&e),
    }
}

/// Places a yearly 50-seat order for `order_id` on a running `serve-openapi`.
async fn place_order(openapi: &str, order_id: &str) -> Result<(), String> {
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

async fn lifecycle(target: &Target, opts: &LifecycleOptions) -> ExitCode {
    let sim = match Simulator::new(&target.url, &target.key) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    println!(
        "KooGallery lifecycle against {} (order {}{})",
        sim.url(),
        opts.order_id,
        if opts.test_flag { ", testFlag 1" } else { "" }
    );
    let (report, outcome) = sim.run_lifecycle_report(opts).await;
    println!("{report}");
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn call(target: &Target, body: &Value, opts: CallOptions) -> ExitCode {
    let sim = match Simulator::new(&target.url, &target.key) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let answer = match sim.call_with(body, opts).await {
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

fn fail(e: &SimError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
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
    use clap::CommandFactory;
    use serde_json::json;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

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

    #[test]
    fn lifecycle_arguments_parse() {
        let cli = Cli::try_parse_from([
            "koogallery-sim",
            "lifecycle",
            "--url",
            "http://h/p",
            "--key",
            "k",
            "--order-id",
            "CS1",
            "--test-flag",
        ])
        .unwrap();
        match cli.command {
            Command::Lifecycle {
                target,
                order_id,
                test_flag,
                poll_timeout,
                ..
            } => {
                assert_eq!(
                    (target.url.as_str(), target.key.as_str()),
                    ("http://h/p", "k")
                );
                assert_eq!(order_id.as_deref(), Some("CS1"));
                assert!(test_flag);
                assert_eq!(poll_timeout, 30);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn kit_commands_take_their_interface_and_sizes() {
        let cli = Cli::try_parse_from([
            "koogallery-sim",
            "kit",
            "auth-sync",
            "--kit-key",
            "kk",
            "--users",
            "20",
            "--flag",
            "3",
        ])
        .unwrap();
        match cli.command {
            Command::Kit {
                interface,
                kit_args,
                flag,
                ..
            } => {
                assert_eq!(
                    (interface.as_str(), kit_args.kit_key.as_str()),
                    ("auth-sync", "kk")
                );
                assert_eq!((kit_args.users, flag), (20, 3));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["koogallery-sim", "kit", "tenantsync"]).is_err());
        let cli =
            Cli::try_parse_from(["koogallery-sim", "lifecycle", "--kit", "--orgs", "50"]).unwrap();
        match cli.command {
            Command::Lifecycle { kit, kit_args, .. } => {
                assert!(kit);
                assert_eq!(
                    (kit_args.orgs, kit_args.users, kit_args.depth),
                    (50, 500, 1000)
                );
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn storm_takes_its_figures() {
        let cli = Cli::try_parse_from([
            "koogallery-sim",
            "storm",
            "--webhook-secret",
            "s",
            "--deliveries",
            "500",
            "--connections",
            "8",
        ])
        .unwrap();
        match cli.command {
            Command::Storm {
                deliveries,
                duplicates,
                connections,
                webhook_listen,
                webhook_secret,
                ..
            } => {
                assert_eq!((deliveries, connections), (500, 8));
                assert!((duplicates - 0.3).abs() < f64::EPSILON);
                assert_eq!(webhook_listen.port(), 8091);
                assert_eq!(webhook_secret, "s");
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn serve_openapi_takes_its_addresses_and_keys() {
        let cli = Cli::try_parse_from([
            "koogallery-sim",
            "serve-openapi",
            "--listen",
            "127.0.0.1:9001",
            "--ak",
            "my-ak",
            "--sk",
            "my-sk",
        ])
        .unwrap();
        match cli.command {
            Command::ServeOpenapi {
                listen,
                fallback_listen,
                ak,
                sk,
                ..
            } => {
                assert_eq!(listen.port(), 9001);
                assert_eq!(fallback_listen.port(), 8082);
                assert_eq!((ak.as_str(), sk.as_str()), ("my-ak", "my-sk"));
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
