//! The server guide's commands, held to the code: every shell command in `docs/huawei-cloud.md`
//! and in the tarball's `INSTALL.md` is one of the project's own (a `make` target that exists, a
//! subcommand and options our binaries parse) or a standard tool used as the package allows
//! (`install` of a file the tarball holds, `systemctl` on the unit it ships, `curl` of a probe).

use std::{collections::BTreeSet, fs, path::Path};

use clap::Parser;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The commands of the ```sh blocks, backslash continuations joined, comments dropped.
fn shell_commands(markdown: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_block = !in_block && trimmed == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let code = trimmed.split(" #").next().unwrap_or("").trim();
        if code.is_empty() || code.starts_with('#') {
            continue;
        }
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(code);
        commands.push(std::mem::take(&mut pending));
    }
    commands
}

/// The Makefile's targets.
fn make_targets() -> BTreeSet<String> {
    read("Makefile")
        .lines()
        .filter_map(|l| l.split_once(':').map(|(t, _)| t))
        .filter(|t| !t.is_empty() && !t.contains([' ', '\t', '$', '=', '.', '%', '#']))
        .map(str::to_owned)
        .collect()
}

/// What the tarball holds besides `bin/`: scripts/dist.sh packs these files of `local/dist/`.
fn packaged_files() -> BTreeSet<String> {
    let script = read("scripts/dist.sh");
    let mut files: BTreeSet<String> = fs::read_dir(root().join("local/dist"))
        .expect("local/dist")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| script.contains(name.as_str()))
        .collect();
    let makefile = read("Makefile");
    let bins = makefile
        .lines()
        .find_map(|l| l.strip_prefix("DIST_BINS ?= "))
        .expect("the Makefile's DIST_BINS");
    for bin in bins.split_whitespace() {
        files.insert(format!("bin/{bin}"));
    }
    files
}

/// Checks one command; `Err` says what is wrong with it.
fn check(
    command: &str,
    targets: &BTreeSet<String>,
    packaged: &BTreeSet<String>,
) -> Result<(), String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let (program, args) = words.split_first().ok_or("empty")?;
    let program = program.trim_start_matches("/usr/local/bin/");
    match program {
        "make" => {
            let target = args.first().ok_or("make without a target")?;
            if targets.contains(*target) {
                Ok(())
            } else {
                Err(format!("no make target {target}"))
            }
        }
        "koogallery-admin" => koogallery_local::admin_cli::Cli::try_parse_from(&words)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "koogallery-local" => koogallery_local::cli::command("koogallery-local")
            .try_get_matches_from(&words)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "systemd-run" => {
            // The command it runs as the service's user: the first absolute path on the line.
            let inner = args
                .iter()
                .position(|a| a.starts_with("/usr/local/bin/"))
                .ok_or("systemd-run of no packaged binary")?;
            check(&args[inner..].join(" "), targets, packaged)
        }
        "systemctl" => match args {
            ["daemon-reload"] => Ok(()),
            ["enable", "--now", "koogallery"]
            | [
                "start" | "stop" | "restart" | "reload" | "status",
                "koogallery",
            ] => Ok(()),
            _ => Err("systemctl on something but the packaged unit".into()),
        },
        "install" => {
            // `install -d …` makes a folder; otherwise the sources (every argument before the
            // destination that is not an option or its value) must be files of the tarball.
            if args.contains(&"-d") {
                return Ok(());
            }
            let mut sources = Vec::new();
            let mut skip = false;
            for a in &args[..args.len().saturating_sub(1)] {
                if skip {
                    skip = false;
                } else if matches!(*a, "-m" | "-o" | "-g") {
                    skip = true;
                } else if !a.starts_with('-') {
                    sources.push(*a);
                }
            }
            // A certificate the vendor brings is theirs, not the tarball's.
            let foreign = ["fullchain.pem", "privkey.pem"];
            // A glob (`bin/*`) must match something of the tarball.
            let held = |s: &str| match s.strip_suffix('*') {
                Some(prefix) => packaged.iter().any(|p| p.starts_with(prefix)),
                None => packaged.contains(s),
            };
            match sources.iter().find(|s| !held(s) && !foreign.contains(*s)) {
                None if !sources.is_empty() => Ok(()),
                None => Err("install of nothing".into()),
                Some(s) => Err(format!("{s} is not in the tarball")),
            }
        }
        "curl" => {
            let url = args.last().ok_or("curl without a URL")?;
            if url.ends_with("/readyz") || url.ends_with("/healthz") {
                Ok(())
            } else {
                Err(format!("curl of {url}, not a probe"))
            }
        }
        "sha256sum" => (args.first() == Some(&"-c"))
            .then_some(())
            .ok_or("sha256sum without -c".into()),
        "useradd" | "mv" | "journalctl" => Ok(()),
        other => Err(format!("{other} is not a command the guide may use")),
    }
}

#[test]
fn every_command_of_the_server_guide_and_install_md_is_one_the_project_has() {
    let (targets, packaged) = (make_targets(), packaged_files());
    let mut seen = 0;
    let mut wrong = Vec::new();
    for doc in ["docs/huawei-cloud.md", "local/dist/INSTALL.md"] {
        for command in shell_commands(&read(doc)) {
            seen += 1;
            if let Err(e) = check(&command, &targets, &packaged) {
                wrong.push(format!("{doc}: `{command}`: {e}"));
            }
        }
    }
    assert!(
        seen >= 15,
        "only {seen} commands found: is the parser broken?"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_refuses_what_the_project_does_not_have() {
    let (targets, packaged) = (make_targets(), packaged_files());
    for bad in [
        "make deploy-huawei",
        "koogallery-admin backup --to",
        "koogallery-admin snapshot --to x",
        "koogallery-local --no-such-option 1",
        "install -m 0644 koogallery.socket /etc/systemd/system/",
        "systemctl restart nginx",
        "curl -fsS http://127.0.0.1:8080/produce",
        "docker run koogallery",
    ] {
        assert!(check(bad, &targets, &packaged).is_err(), "{bad} passed");
    }
    for good in [
        "make dist",
        "koogallery-admin backup --to f",
        "koogallery-local --listen 0.0.0.0:8080",
        "install -m 0644 koogallery.service /etc/systemd/system/koogallery.service",
    ] {
        check(good, &targets, &packaged).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}
