//! `koogallery-sim load`: signed calls at a steady rate, and the report of what was answered;
//! with `--ceiling`, the same calls to a bare server first, and the URL's figures as a share of
//! its (`ceiling-server`).

use std::process::ExitCode;
use std::time::Duration;

use koogallery_sim::load::{LoadActivity, LoadOptions, LoadReport, ready_instance, run_load};
use tokio::io::AsyncBufReadExt;

use super::args::{CeilingServerArgs, LoadArgs};
use super::fail;

/// `koogallery-sim load`: runs the load and prints its report.
pub async fn load(args: LoadArgs) -> ExitCode {
    let LoadArgs {
        target,
        activity,
        connections,
        duration,
        rate,
        instance_id,
        ceiling,
        rounds,
        ceiling_server,
    } = args;
    let mut opts = LoadOptions {
        activity,
        connections,
        duration: Duration::from_secs(duration),
        rate,
        instance_id,
    };
    if !ceiling {
        return match run_load(&target.url, &target.key, &opts).await {
            Ok(report) => {
                println!("{report}");
                verdict(&report)
            }
            Err(e) => fail(&e),
        };
    }
    // One instance for both runs: the same requests to each.
    if opts.instance_id.is_none() && activity != LoadActivity::NewInstance {
        let sim = match koogallery_sim::Simulator::new(&target.url, &target.key) {
            Ok(s) => s,
            Err(e) => return fail(&e),
        };
        match ready_instance(&sim).await {
            Ok(id) => opts.instance_id = Some(id),
            Err(e) => return fail(&e),
        }
    }
    let bare = match ceiling_server {
        Some(addr) => Ok(Bare::at(addr)),
        None => Bare::start().await,
    };
    let bare = match bare {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let ceiling_url = match bare.url_like(&target.url) {
        Ok(u) => u,
        Err(e) => return fail(&e),
    };
    let mut done = Vec::new();
    for round in 1..=rounds {
        let ceiling = match run_load(&ceiling_url, &target.key, &opts).await {
            Ok(r) => r,
            Err(e) => return fail(&e),
        };
        let service = match run_load(&target.url, &target.key, &opts).await {
            Ok(r) => r,
            Err(e) => return fail(&e),
        };
        let of = if rounds > 1 {
            format!(" (round {round} of {rounds})")
        } else {
            String::new()
        };
        println!(
            "# ceiling{of}: a bare server, same requests (koogallery-sim ceiling-server): {ceiling_url}\n{ceiling}"
        );
        println!("# service{of}: {}\n{service}", target.url);
        if rounds > 1 {
            let (rate, p99) = service.against(&ceiling);
            println!(
                "round {round}: service/ceiling {:.1} % of the requests/s, p99 {:.2} x",
                rate * 100.0,
                p99
            );
        }
        done.push((ceiling, service));
    }
    drop(bare);
    let Some((rate, p99)) = koogallery_sim::load::median_against(&done) else {
        return fail(&"no round ran");
    };
    let median = if rounds > 1 {
        format!(" (the median of {rounds} rounds)")
    } else {
        String::new()
    };
    println!(
        "ratio: service/ceiling {:.1} % of the requests/s, p99 {:.2} x{median}",
        rate * 100.0,
        p99
    );
    // Every round's answers count: one with an unexpected answer fails the run.
    done.iter()
        .map(|(_, service)| verdict(service))
        .find(|code| *code != ExitCode::SUCCESS)
        .unwrap_or(ExitCode::SUCCESS)
}

fn verdict(report: &LoadReport) -> ExitCode {
    if report.unexpected == 0 && report.requests > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `koogallery-sim ceiling-server`: serves the fixed answer until stopped.
pub async fn ceiling_server(args: CeilingServerArgs) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", args.listen)),
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on http://{addr}"),
        Err(e) => return fail(&e),
    }
    let work = std::time::Duration::from_micros(args.work_us);
    match koogallery_sim::ceiling::serve_with(listener, work).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The bare server, a process of its own as the host is (this binary's `ceiling-server`): one
/// started here, stopped when dropped, or one already running at an address given.
struct Bare {
    child: Option<tokio::process::Child>,
    addr: String,
}

impl Bare {
    async fn start() -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
        let mut child = tokio::process::Command::new(exe)
            .args(["ceiling-server", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the ceiling server: {e}"))?;
        let stdout = child.stdout.take().ok_or("the ceiling server's output")?;
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("the ceiling server's address: {e}"))?;
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .ok_or_else(|| format!("the ceiling server said {line:?}"))?
            .to_owned();
        Ok(Self {
            child: Some(child),
            addr,
        })
    }

    /// The bare server already listening at `addr`, left running.
    fn at(addr: std::net::SocketAddr) -> Self {
        Self {
            child: None,
            addr: addr.to_string(),
        }
    }

    /// `url` with its scheme, host and port replaced by the bare server's (path and query kept).
    fn url_like(&self, url: &str) -> Result<String, String> {
        let mut u = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let bare =
            reqwest::Url::parse(&format!("http://{}", self.addr)).map_err(|e| e.to_string())?;
        u.set_scheme("http").map_err(|()| "scheme")?;
        u.set_host(bare.host_str()).map_err(|e| e.to_string())?;
        u.set_port(bare.port()).map_err(|()| "port")?;
        Ok(u.to_string())
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}
