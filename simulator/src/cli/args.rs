//! The command line: `Cli`, its subcommands and the arguments each one takes.

use clap::{Args, Parser, Subcommand};
use koogallery_sim::{DEFAULT_ACCESS_KEY, DEFAULT_URL};

#[derive(Parser, Debug)]
#[command(
    name = "koogallery-sim",
    version,
    about = "Plays KooGallery against a vendor's production URL: signed calls and the whole purchase lifecycle"
)]
pub struct Cli {
    /// Also trust the certificate authorities in this PEM file, for a host serving its own TLS
    /// with a private CA (the system's roots are trusted as well).
    #[arg(
        long,
        global = true,
        env = "KOOGALLERY_SIM_CA_CERT",
        value_name = "FILE"
    )]
    pub ca_cert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct Target {
    /// The vendor's production URL.
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// The basic-interface access key (signs requests, checks Body-Sign).
    #[arg(
        long,
        env = "KOOGALLERY_ACCESS_KEY",
        default_value = DEFAULT_ACCESS_KEY,
        hide_env_values = true
    )]
    pub key: String,
}

/// What the Kit calls are signed with and how large they are.
#[derive(Args, Debug)]
pub struct KitArgs {
    /// The Kit key (signs x-sign, checks Body-Sign).
    #[arg(
        long,
        env = "KOOGALLERY_KIT_KEY",
        default_value = koogallery_sim::kit::DEFAULT_KIT_KEY,
        hide_env_values = true
    )]
    pub kit_key: String,
    /// Users in the authSync.
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Departments in the allOrgSync.
    #[arg(long, default_value_t = 5000)]
    pub orgs: usize,
    /// Depth of the department tree.
    #[arg(long, default_value_t = 1000)]
    pub depth: usize,
}

impl KitArgs {
    pub fn sizes(&self) -> koogallery_sim::kit::KitSizes {
        koogallery_sim::kit::KitSizes {
            users: self.users,
            departments: self.orgs,
            depth: self.depth,
        }
    }
}

// The structs below are what each subcommand takes. A subcommand's help text is the doc comment
// on its `Command` variant; the structs carry plain comments so that it is written in one place.

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Walk the whole purchase lifecycle, checking every answer; exits 1 on the first failure.
    Lifecycle(LifecycleArgs),
    /// Sign and send one Kit sync (docs/protocol/callbacks.md §9) with realistic data, or print the
    /// service's Kit public key; exits 1 unless 000000 with a valid Body-Sign.
    Kit(KitCallArgs),
    /// Drive one License code through its life against the vendor's host
    /// (docs/protocol/openapi.md §5, §6): GET /license/keys, activate (the token verified offline
    /// with the published keys), two checks, freeze / unfreeze / renew / release callbacks each
    /// followed by a check, an unknown code (404) and an unsigned request (401). Exits 1 unless
    /// every step passed.
    License(LicenseArgs),
    /// Sign and send one call, print the answer; exits 1 unless HTTP 200 with a valid Body-Sign.
    Call(CallArgs),
    /// Load the production URL with signed calls, each with its own nonce; report requests/s,
    /// latency percentiles and answers by result code. Exits 1 on any unexpected answer.
    Load(LoadArgs),
    /// The load's ceiling: a bare server answering every request with a fixed 300-byte
    /// queryInstance answer and a Body-Sign header, and nothing else (`load --ceiling` starts it).
    CeilingServer(CeilingServerArgs),
    /// newInstance deliveries with KooGallery's repeats (a share of them for order lines already
    /// sent, some in flight with their original), then checks one instance and one provisioning
    /// per order line: every repeat answered with the same instanceId, every line ready through
    /// queryInstance, one provision event per instance at the webhook this command serves. Start
    /// the host with KOOGALLERY_PROVISIONER=webhook,
    /// KOOGALLERY_WEBHOOK_URL=http://<--webhook-listen>/hook and the same
    /// KOOGALLERY_WEBHOOK_SECRET. Exits 1 on any violation.
    Storm(StormArgs),
    /// Report usage to the vendor's host as its application would (`POST /usage`, signed with the
    /// usage key), print the ingestion rate, then what KooGallery received per window (with
    /// `--openapi`: a running `serve-openapi`). Without `--instance`, one instance is bought first.
    Usage(UsageArgs),
    /// The vendor's bill estimate for an instance (`GET /usage/estimate`, signed with the usage
    /// key); with `--openapi` and `--pricing`, also what KooGallery would bill from the records a
    /// running `serve-openapi` accepted, for comparison.
    Estimate(EstimateArgs),
    /// Serve KooGallery's open API (Query Order) on two loopback ports, the primary and the
    /// fallback host, verifying every request's APIG signature; until Ctrl-C. Place orders with
    /// `POST /_sim/orders`, inject faults with `POST /_sim/faults` (see docs in the README).
    ///
    /// Also plays 联营 SSO: KooGallery's unified login page at
    /// `/unified-login/portal-login?ind=UNOP&appId=…` (the service's login-URL template) and
    /// every tenant's auth centre at `/api/v1/oauth2/token`, `/api/v1/oauth2/userinfo` and
    /// `/api/v1/logout` on the primary URL (a tenant's domainName). Register apps, tenants and
    /// users with `POST /_sim/sso/apps` and `/_sim/sso/tenants` (or `kit … --openapi`), change
    /// lifetimes with `/_sim/sso/settings`, inject faults with `/_sim/sso/faults`, read what was
    /// received at `GET /_sim/sso/seen`.
    ServeOpenapi(ServeOpenapiArgs),
}

// `koogallery-sim lifecycle`.
#[derive(Args, Debug)]
pub struct LifecycleArgs {
    #[command(flatten)]
    pub target: Target,
    /// Order ID of the purchase (default: CS + 15 random characters).
    #[arg(long)]
    pub order_id: Option<String>,
    /// Send "testFlag":"1" in every body (seller-console debugging).
    #[arg(long)]
    pub test_flag: bool,
    /// Seconds to poll queryInstance for the instance to become ready.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub poll_timeout: u64,
    /// Milliseconds between two polls.
    #[arg(long, default_value_t = 250, value_name = "MS")]
    pub poll_interval: u64,
    /// A running `serve-openapi` (its primary URL): the order is placed there first, a
    /// yearly purchase of 50 seats, so the service provisions from what Query Order answers.
    #[arg(long, value_name = "URL")]
    pub openapi: Option<String>,
    /// A 联营 purchase instead: newInstance, then the Kit syncs (tenant, app with an encrypted
    /// clientSecret, authSync, allOrgSync, single org syncs, revoke, deletes), then release.
    #[arg(long)]
    pub kit: bool,
    /// A V1 purchase through the retired GET interface instead: newInstance (encrypted
    /// mobilePhone and email, saasExtendParams) until ready, queryInstance, refreshInstance,
    /// expireInstance, instanceStatus NORMAL, upgrade, releaseInstance, a stale and a forged
    /// token, an unknown activity.
    #[arg(long, conflicts_with_all = ["kit", "openapi"])]
    pub v1: bool,
    #[command(flatten)]
    pub kit_args: KitArgs,
}

// `koogallery-sim kit`.
#[derive(Args, Debug)]
pub struct KitCallArgs {
    /// tenant-sync, application-sync, auth-sync, single-org-sync, all-org-sync, or public-key.
    #[arg(value_parser = ["tenant-sync", "application-sync", "auth-sync", "single-org-sync", "all-org-sync", "public-key"])]
    pub interface: String,
    /// The vendor's production URL.
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    #[command(flatten)]
    pub kit_args: KitArgs,
    /// instanceId (empty: the seller's own credential).
    #[arg(long, default_value = "sim-instance")]
    pub instance_id: String,
    #[arg(long, default_value = "sim-tenant")]
    pub tenant_id: String,
    #[arg(long, default_value = "sim-app")]
    pub app_id: String,
    /// The flag: 0 delete, 1 add, 2 modify (3 revoke, authSync).
    #[arg(long, default_value_t = 1)]
    pub flag: i64,
    /// Send the same call this many times in a row and report latency percentiles.
    #[arg(long, default_value_t = 1)]
    pub repeat: u64,
    /// A running `serve-openapi` (its primary URL) to play this tenant's auth centre:
    /// tenant-sync sends it as domainName, and after an answered add or modify,
    /// application-sync registers the tenant's client there (`client-{app}`, the plaintext
    /// secret) and auth-sync the same with its users, so they can log in through its unified
    /// login.
    #[arg(long, value_name = "URL")]
    pub openapi: Option<String>,
}

// `koogallery-sim license`.
#[derive(Args, Debug)]
pub struct LicenseArgs {
    #[command(flatten)]
    pub target: Target,
    /// The per-product license client key the vendor's software signs with
    /// (KOOGALLERY_LICENSE_CLIENT_KEY).
    #[arg(long, env = "KOOGALLERY_LICENSE_CLIENT_KEY", hide_env_values = true)]
    pub client_key: String,
    /// The code to walk (default: PLTEST + 12 random characters, known to `serve-openapi`).
    #[arg(long)]
    pub code: Option<String>,
    /// A running `serve-openapi` (its primary URL): the activation is checked there and the
    /// release recorded there too.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8081")]
    pub openapi: String,
}

// `koogallery-sim call`.
#[derive(Args, Debug)]
pub struct CallArgs {
    #[command(flatten)]
    pub target: Target,
    /// The activity (e.g. queryInstance); overrides "activity" of --body.
    #[arg(long)]
    pub activity: Option<String>,
    /// A body field: KEY=VALUE (string) or KEY:=JSON (raw JSON, e.g.
    /// productInfo:='{"skuCode":"s"}'); with --v1 a parameter (--param is the same option).
    #[arg(long = "field", visible_alias = "param", value_name = "KEY=VALUE")]
    pub fields: Vec<String>,
    /// The whole body as a JSON object (--field and --activity are added to it).
    #[arg(long, value_name = "JSON")]
    pub body: Option<String>,
    /// Add "testFlag":"1".
    #[arg(long)]
    pub test_flag: bool,
    /// Send this nonce instead of a random one (replay tests).
    #[arg(long)]
    pub nonce: Option<String>,
    /// Send this timestamp (epoch ms) instead of now (stale-timestamp tests); with --v1, sign
    /// the timeStamp of that instant.
    #[arg(long, value_name = "MS")]
    pub timestamp: Option<i64>,
    /// Sign with this key instead of --key (forged-signature tests); Body-Sign is still checked
    /// with --key.
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<String>,
    /// Send a V1 GET instead (docs/protocol/callbacks.md §3.6): the body's top-level fields
    /// become the query parameters (strings as they are, other values as JSON), with timeStamp
    /// and authToken; --test-flag adds testFlag=1.
    #[arg(long, conflicts_with = "nonce")]
    pub v1: bool,
}

// `koogallery-sim load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: Target,
    /// queryInstance, newInstance, or mix (nine queries to one newInstance).
    #[arg(long, default_value = "queryInstance")]
    pub activity: koogallery_sim::load::LoadActivity,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Requests per second across all connections (default: as fast as answered).
    #[arg(long)]
    pub rate: Option<u64>,
    /// The instance to query (default: one is bought first).
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Load a bare server first (`ceiling-server`, started here: same tokio and axum, a fixed
    /// 300-byte answer) with the same requests, then the URL, and report the URL's requests/s
    /// and p99 as a share of the bare server's.
    #[arg(long)]
    pub ceiling: bool,
    /// With `--ceiling`: the bare server and the URL loaded in turn this many times, each round's
    /// figures printed, and the ratio the median of the rounds' (a shared machine's noise moves
    /// one run by a third).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// With `--ceiling`: load the bare server already listening at this address (one that
    /// `koogallery-sim ceiling-server` runs, on CPUs of its own, say) instead of starting one.
    #[arg(long, requires = "ceiling")]
    pub ceiling_server: Option<std::net::SocketAddr>,
}

// `koogallery-sim ceiling-server`.
#[derive(Args, Debug)]
pub struct CeilingServerArgs {
    /// Where to listen; it prints `listening on http://ADDR` once it does.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// CPU time (µs) spent on every request before answering: a server of known cost, to compare
    /// a host's latency with a bare server's that costs as much (BENCHMARKS.md).
    #[arg(long, default_value_t = 0)]
    pub work_us: u64,
}

// `koogallery-sim storm`.
#[derive(Args, Debug)]
pub struct StormArgs {
    #[command(flatten)]
    pub target: Target,
    /// newInstance deliveries in all, repeats included.
    #[arg(long, default_value_t = 10_000)]
    pub deliveries: usize,
    /// The share of deliveries that repeat an order line already sent.
    #[arg(long, default_value_t = 0.3)]
    pub duplicates: f64,
    /// Deliveries in flight at once.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Deliveries started per second (default: as fast as answered).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Where the vendor's webhook is served (the host's KOOGALLERY_WEBHOOK_URL is
    /// http://ADDR/hook).
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub webhook_listen: std::net::SocketAddr,
    /// The secret the host signs webhook events with.
    #[arg(long, env = "KOOGALLERY_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: String,
    /// Seconds every order line has to become ready after the last delivery.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub ready_timeout: u64,
    /// Seed of the plan (default: random; the report names the run).
    #[arg(long)]
    pub seed: Option<u64>,
}

// `koogallery-sim usage`.
#[derive(Args, Debug)]
pub struct UsageArgs {
    #[command(flatten)]
    pub target: Target,
    /// The shared usage key (KOOGALLERY_USAGE_KEY).
    #[arg(long, env = "KOOGALLERY_USAGE_KEY", hide_env_values = true)]
    pub usage_key: String,
    /// Instances to report for (repeatable).
    #[arg(long = "instance")]
    pub instances: Vec<String>,
    /// Reports to send.
    #[arg(long, default_value_t = 1000)]
    pub records: usize,
    /// Reports per request (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// A running `serve-openapi` (its primary URL), to print what it received per window.
    #[arg(long)]
    pub openapi: Option<String>,
}

// `koogallery-sim estimate`.
#[derive(Args, Debug)]
pub struct EstimateArgs {
    #[command(flatten)]
    pub target: Target,
    /// The shared usage key (KOOGALLERY_USAGE_KEY).
    #[arg(long, env = "KOOGALLERY_USAGE_KEY", hide_env_values = true)]
    pub usage_key: String,
    #[arg(long = "instance")]
    pub instance: String,
    /// Start of the period, RFC 3339, inclusive (default: this UTC month).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the period, RFC 3339, exclusive (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// A running `serve-openapi` (its primary URL).
    #[arg(long, requires = "pricing")]
    pub openapi: Option<String>,
    /// The SKU's pricing as JSON (`{"model":"step","cycle":"day","bands":[…]}`), as in
    /// KOOGALLERY_PRICING.
    #[arg(long)]
    pub pricing: Option<String>,
}

// `koogallery-sim serve-openapi`.
#[derive(Args, Debug)]
pub struct ServeOpenapiArgs {
    /// The primary host's address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: std::net::SocketAddr,
    /// The fallback host's address.
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub fallback_listen: std::net::SocketAddr,
    /// The access key the vendor signs with (KOOGALLERY_AK).
    #[arg(long, env = "KOOGALLERY_AK", default_value = "sim-ak")]
    pub ak: String,
    /// Its secret (KOOGALLERY_SK).
    #[arg(
        long,
        env = "KOOGALLERY_SK",
        default_value = "sim-sk",
        hide_env_values = true
    )]
    pub sk: String,
    /// The seller's interconnection key, which body-signs usage pushes (the basic interfaces'
    /// access key).
    #[arg(long = "key", env = "KOOGALLERY_ACCESS_KEY", default_value = koogallery::config::DEV_ACCESS_KEY, hide_env_values = true)]
    pub interconnection_key: String,
    /// Register this 联营 SSO app at start (with --sso-login-address): the unified login then
    /// sends its users to that address with `?code=…&tenant=…`.
    #[arg(long, requires = "sso_login_address", value_name = "APP_ID")]
    pub sso_app_id: Option<String>,
    /// The app's registered login address (应用登录地址), e.g. the service's SSO callback.
    #[arg(long, requires = "sso_app_id", value_name = "URL")]
    pub sso_login_address: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
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
            Command::Lifecycle(LifecycleArgs {
                target,
                order_id,
                test_flag,
                poll_timeout,
                ..
            }) => {
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
    fn v1_flags_parse_and_exclude_what_v1_has_not() {
        let cli =
            Cli::try_parse_from(["koogallery-sim", "lifecycle", "--v1", "--test-flag"]).unwrap();
        match cli.command {
            Command::Lifecycle(LifecycleArgs {
                v1, test_flag, kit, ..
            }) => assert!(v1 && test_flag && !kit),
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["koogallery-sim", "lifecycle", "--v1", "--kit"]).is_err());
        let cli = Cli::try_parse_from([
            "koogallery-sim",
            "call",
            "--v1",
            "--activity",
            "queryInstance",
            "--param",
            "instanceId=abc",
            "--field",
            "testFlag=1",
            "--timestamp",
            "1680508066618",
        ])
        .unwrap();
        match cli.command {
            Command::Call(CallArgs {
                v1,
                fields,
                timestamp,
                ..
            }) => {
                assert!(v1);
                assert_eq!(fields, ["instanceId=abc", "testFlag=1"]);
                assert_eq!(timestamp, Some(1_680_508_066_618));
            }
            other => panic!("parsed as {other:?}"),
        }
        // V1 has no nonce.
        let with_nonce = [
            "koogallery-sim",
            "call",
            "--v1",
            "--activity",
            "x",
            "--nonce",
            "n",
        ];
        assert!(Cli::try_parse_from(with_nonce).is_err());
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
            Command::Kit(KitCallArgs {
                interface,
                kit_args,
                flag,
                ..
            }) => {
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
            Command::Lifecycle(LifecycleArgs { kit, kit_args, .. }) => {
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
    fn license_takes_its_keys_and_code() {
        let cli = Cli::try_parse_from([
            "koogallery-sim",
            "license",
            "--url",
            "http://h:1/produce",
            "--key",
            "k",
            "--client-key",
            "ck",
            "--code",
            "PLTEST42",
            "--openapi",
            "http://h:2",
        ])
        .unwrap();
        match cli.command {
            Command::License(LicenseArgs {
                target,
                client_key,
                code,
                openapi,
            }) => {
                assert_eq!(
                    (target.url.as_str(), target.key.as_str()),
                    ("http://h:1/produce", "k")
                );
                assert_eq!(client_key, "ck");
                assert_eq!(code.as_deref(), Some("PLTEST42"));
                assert_eq!(openapi, "http://h:2");
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
            Command::Storm(StormArgs {
                deliveries,
                duplicates,
                connections,
                webhook_listen,
                webhook_secret,
                ..
            }) => {
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
            Command::ServeOpenapi(ServeOpenapiArgs {
                listen,
                fallback_listen,
                ak,
                sk,
                ..
            }) => {
                assert_eq!(listen.port(), 9001);
                assert_eq!(fallback_listen.port(), 8082);
                assert_eq!((ak.as_str(), sk.as_str()), ("my-ak", "my-sk"));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn serve_openapi_registers_an_sso_app_only_with_its_login_address() {
        let cli = Cli::try_parse_from([
            "koogallery-sim",
            "serve-openapi",
            "--sso-app-id",
            "app-1",
            "--sso-login-address",
            "http://127.0.0.1:8080/sso/callback",
        ])
        .unwrap();
        match cli.command {
            Command::ServeOpenapi(ServeOpenapiArgs {
                sso_app_id,
                sso_login_address,
                ..
            }) => {
                assert_eq!(sso_app_id.as_deref(), Some("app-1"));
                assert_eq!(
                    sso_login_address.as_deref(),
                    Some("http://127.0.0.1:8080/sso/callback")
                );
            }
            other => panic!("parsed as {other:?}"),
        }
        let alone = Cli::try_parse_from(["koogallery-sim", "serve-openapi", "--sso-app-id", "a"]);
        assert!(alone.is_err());
    }
}
