//! The packaged host (`make dist`): the tarball of this machine's architecture is unpacked, checked
//! against SHA256SUMS, its systemd unit verified (`systemd-analyze verify`, and `security` for its
//! sandbox), and its binary, a static one, started as a server would start it (a data
//! directory of its own, a port from the environment). It must answer `/healthz` and `/readyz`,
//! and stop on SIGTERM with exit status 0. `make test` builds the tarball (`make dist-host`) and
//! names its folder in `KOOGALLERY_DIST_DIR`. The container image of that tarball (`make image`,
//! named in `KOOGALLERY_IMAGE`) is run with `buildah run` the same way, as its own user.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use koogallery_e2e::packaged;

/// How long the binary may take to answer `/readyz` 200, and to exit after SIGTERM.
const START_LIMIT: Duration = Duration::from_secs(30);
const STOP_LIMIT: Duration = Duration::from_secs(10);

fn elf_machine_and_interpreter(path: &Path) -> (u16, bool) {
    let elf = std::fs::read(path).expect("read the binary");
    assert!(
        elf.len() > 64 && elf[..4] == *b"\x7fELF" && elf[4] == 2 && elf[5] == 1,
        "{} is not a 64-bit little-endian ELF file",
        path.display()
    );
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]);
    let machine = u16_at(0x12);
    let phoff = usize::try_from(u64::from_le_bytes(
        elf[0x20..0x28].try_into().expect("8 bytes"),
    ))
    .expect("offset");
    let (phentsize, phnum) = (usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    const PT_INTERP: u32 = 3;
    let interpreter = (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().expect("4 bytes")) == PT_INTERP
    });
    (machine, interpreter)
}

/// The packaged unit, installed with the packaged binary in a scratch root beside this machine's
/// systemd units, must pass `systemd-analyze verify` and score an exposure of 1.5 or less on
/// `systemd-analyze security` (its sandbox; 10 is none).
fn check_unit(unpacked: &Path, scratch: &Path) {
    let root = scratch.join("root");
    for dir in [
        "usr/local/bin",
        "etc/systemd/system",
        "bin",
        "usr/lib/systemd",
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    let copied = Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(root.join("usr/lib/systemd"))
        .status()
        .expect("run cp");
    assert!(copied.success(), "cp -a /usr/lib/systemd/system failed");
    std::fs::copy(
        unpacked.join("bin/koogallery-local"),
        root.join("usr/local/bin/koogallery-local"),
    )
    .expect("copy the binary");
    std::fs::copy("/bin/kill", root.join("bin/kill")).expect("copy /bin/kill (ExecReload)");
    let unit = root.join("etc/systemd/system/koogallery.service");
    std::fs::copy(unpacked.join("koogallery.service"), &unit).expect("copy the unit");
    let analyze = |args: &[&str]| {
        let out = Command::new("systemd-analyze")
            .args(args)
            .arg(format!("--root={}", root.display()))
            .output()
            .expect("systemd-analyze (Debian's systemd package) must be installed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = analyze(&["verify", unit.to_str().expect("UTF-8 path")]);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify koogallery.service:\n{text}"
    );
    let (ok, text) = analyze(&[
        "security",
        "--offline=true",
        "--threshold=15",
        "koogallery.service",
    ]);
    let score = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("no overall exposure level");
    assert!(ok, "systemd-analyze security: above 1.5: {score}\n{text}");
    println!(
        "dist: koogallery.service: {}",
        score.trim_start_matches("→ ")
    );

    // With the drop-in for port 443 (the host's own TLS): still a unit systemd accepts, and one
    // that can bind a privileged port.
    let drop_in = root.join("etc/systemd/system/koogallery.service.d");
    std::fs::create_dir_all(&drop_in).expect("the drop-in folder");
    std::fs::copy(
        unpacked.join("koogallery-443.conf"),
        drop_in.join("443.conf"),
    )
    .expect("the tarball holds koogallery-443.conf");
    let (ok, text) = analyze(&["verify", unit.to_str().expect("UTF-8 path")]);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify koogallery.service with 443.conf:\n{text}"
    );
    let (_, text) = analyze(&[
        "security",
        "--offline=true",
        "--threshold=100",
        "koogallery.service",
    ]);
    let cap_line = text
        .lines()
        .find(|l| l.contains("CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE"))
        .unwrap_or_default();
    assert!(
        cap_line.trim_start().starts_with('✗'),
        "with 443.conf the unit must keep CAP_NET_BIND_SERVICE: {cap_line:?}\n{text}"
    );
}

/// The status code of `GET path`, or `None` while nothing answers.
fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Kills the host if the test fails before it stops it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
#[ignore = "needs the tarball of `make dist`: `make test` builds it and sets KOOGALLERY_DIST_DIR"]
fn the_packaged_host_starts_answers_its_probes_and_stops_on_sigterm() {
    let work = tempfile::tempdir().expect("temp dir");
    let (unpacked, tarball, name) = packaged::unpack(work.path());
    for file in ["koogallery.service", "koogallery.env", "INSTALL.md"] {
        assert!(
            unpacked.join(file).is_file(),
            "{tarball} has no {name}/{file}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(unpacked.join("koogallery.env")).expect("koogallery.env"),
        koogallery::config::catalog::env_template(),
        "the packaged koogallery.env is not the catalog's template"
    );
    check_unit(&unpacked, work.path());

    let binary = unpacked.join("bin/koogallery-local");
    let (machine, interpreter) = elf_machine_and_interpreter(&binary);
    let want = match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        other => panic!("no tarball is built for {other}"),
    };
    assert_eq!(machine, want, "bin/koogallery-local is for another machine");
    assert!(
        !interpreter,
        "bin/koogallery-local asks for a dynamic loader: it is not static"
    );

    let data = work.path().join("data");
    let log_path = work.path().join("host.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let spawned = Instant::now();
    let child = Command::new(&binary)
        // Only what a server's environment file would give it: nothing of the test's own
        // environment (the emulator's variables, a backend) reaches the host.
        .env_clear()
        .env("KOOGALLERY_LISTEN", addr.to_string())
        .env("KOOGALLERY_DATA_DIR", &data)
        .env("KOOGALLERY_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start bin/koogallery-local");
    let mut host = Running(child);

    let ready = loop {
        if let Some(status) = host.0.try_wait().expect("wait") {
            panic!(
                "bin/koogallery-local exited ({status}) before it was ready:\n{}",
                log_of(&log_path)
            );
        }
        if get_status(addr, "/readyz") == Some(200) {
            break spawned.elapsed();
        }
        assert!(
            spawned.elapsed() < START_LIMIT,
            "bin/koogallery-local did not answer /readyz 200 within {START_LIMIT:?}:\n{}",
            log_of(&log_path)
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(get_status(addr, "/healthz"), Some(200), "/healthz");
    println!(
        "dist: {tarball}: start-up (spawn to /readyz 200) {} ms",
        ready.as_millis()
    );

    let pid = host.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = host.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stopping.elapsed() < STOP_LIMIT,
            "bin/koogallery-local still runs {STOP_LIMIT:?} after SIGTERM:\n{}",
            log_of(&log_path)
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "dist: {tarball}: stopped {} ms after SIGTERM",
        stopping.elapsed().as_millis()
    );
    assert_eq!(
        status.code(),
        Some(0),
        "bin/koogallery-local did not exit 0 on SIGTERM ({status}):\n{}",
        log_of(&log_path)
    );
    assert!(
        std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some()),
        "the host wrote nothing in its data directory"
    );
}

/// `buildah` with the global flags `make image` used (`BUILDAH_ARGS`; default `--storage-driver
/// vfs`): the same image store.
fn buildah() -> Command {
    let mut command = Command::new("buildah");
    let args = std::env::var("BUILDAH_ARGS").unwrap_or_else(|_| "--storage-driver vfs".into());
    command.args(args.split_whitespace());
    command
}

fn buildah_output(args: &[&str]) -> String {
    let out = buildah().args(args).output().expect("run buildah");
    assert!(
        out.status.success(),
        "buildah {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// A working container of the image, removed when the test ends.
struct WorkingContainer(String);

impl Drop for WorkingContainer {
    fn drop(&mut self) {
        let _ = buildah().args(["rm", &self.0]).output();
    }
}

/// The process under `root` (its children, theirs…) whose command name is `name`.
fn descendant_named(root: u32, name: &str) -> Option<u32> {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            // The kernel keeps the first 15 bytes of a command's name.
            if comm.trim_end() != &name[..name.len().min(15)] {
                return None;
            }
            let mut at = pid;
            while let Some(parent) = parent_of(at) {
                if parent == root {
                    return Some(pid);
                }
                if parent <= 1 {
                    break;
                }
                at = parent;
            }
            None
        })
}

fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
#[ignore = "needs the image of `make image` and buildah: `make test` builds it and sets KOOGALLERY_IMAGE"]
fn the_image_runs_the_packaged_host_as_its_own_user_and_stops_on_sigterm() {
    let Ok(image) = std::env::var("KOOGALLERY_IMAGE") else {
        panic!(
            "KOOGALLERY_IMAGE is not set: this test runs the image of `make image`; run it with \
             `make test`, or `make image` then KOOGALLERY_IMAGE=koogallery:latest cargo test -p \
             koogallery-e2e --test dist -- --include-ignored"
        )
    };
    let inspected: serde_json::Value =
        serde_json::from_str(&buildah_output(&["inspect", "--type", "image", &image]))
            .expect("buildah inspect's JSON");
    let config = &inspected["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532", "the image's user: {config}");
    assert_eq!(config["StopSignal"], "SIGTERM", "{config}");
    assert!(
        config["Volumes"].get("/data").is_some(),
        "no /data volume: {config}"
    );
    assert!(config["ExposedPorts"].get("8080/tcp").is_some(), "{config}");
    let env: Vec<&str> = config["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    for wanted in [
        "KOOGALLERY_LISTEN=0.0.0.0:8080",
        "KOOGALLERY_DATA_DIR=/data",
    ] {
        assert!(
            env.contains(&wanted),
            "the image's environment lacks {wanted}: {env:?}"
        );
    }

    let container = WorkingContainer(buildah_output(&["from", "--pull=never", &image]));
    let work = tempfile::tempdir().expect("temp dir");
    let log_path = work.path().join("container.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // chroot isolation: the host's network, no runtime (runc and crun need privileges a CI
    // container may not have). The image's user and environment apply; the port is the test's.
    let spawned = Instant::now();
    let child = buildah()
        .args(["run", "--isolation", "chroot", "--env"])
        .arg(format!("KOOGALLERY_LISTEN={addr}"))
        .args([&container.0, "--", "/usr/local/bin/koogallery-local"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("buildah run");
    let mut run = Running(child);
    let ready = loop {
        if let Some(status) = run.0.try_wait().expect("wait") {
            panic!(
                "the image's host exited ({status}) before it was ready:\n{}",
                log_of(&log_path)
            );
        }
        if get_status(addr, "/readyz") == Some(200) {
            break spawned.elapsed();
        }
        assert!(
            spawned.elapsed() < START_LIMIT,
            "the image's host did not answer /readyz 200 within {START_LIMIT:?}:\n{}",
            log_of(&log_path)
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "dist: image {image}: start-up (buildah run to /readyz 200) {} ms",
        ready.as_millis()
    );
    let host = descendant_named(run.0.id(), "koogallery-local")
        .expect("the koogallery-local process under buildah run");
    assert_eq!(uid_of(host), Some(65532), "the image's host runs as root");
    assert!(
        log_of(&log_path).contains("\"data\":\"/data\""),
        "the host does not keep its data in /data:\n{}",
        log_of(&log_path)
    );

    // buildah run does not pass SIGTERM on (it kills its child): signal the host as a container
    // runtime's stop does, and buildah run exits with the host's status.
    let sent = Command::new("kill")
        .args(["-TERM", &host.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {host} failed");
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = run.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stopping.elapsed() < STOP_LIMIT,
            "the image's host still runs {STOP_LIMIT:?} after SIGTERM:\n{}",
            log_of(&log_path)
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "the image's host did not exit 0 on SIGTERM ({status}):\n{}",
        log_of(&log_path)
    );
}
