//! What it costs the machine to make one group of nonces durable every 2 ms, the replay guard's
//! way (BENCHMARKS.md, "The replay guard's journal"): a redb commit of the group's row (the design
//! before the journal), durable or not, against an append to a file written with zeros beforehand
//! and one `fdatasync` (the journal's way).
//!
//! `cargo run --release -p koogallery-embedded --example durable_group -- WAY DIR`, WAY one of
//! `redb`, `redb-none`, `append`, `idle`.
//!
//! Prints the whole machine's CPU (every process and the kernel's threads, from `/proc/stat`) a
//! group: the fsync's work is the kernel's, much of it outside the process. `idle` only sleeps
//! between groups: what the machine spends anyway, to subtract.

use std::{
    os::unix::fs::FileExt,
    time::{Duration, Instant},
};

use redb::{ReadableTable, TableDefinition};

const GROUPS: TableDefinition<u64, &[u8]> = TableDefinition::new("nonce_groups");
const EXPIRY: TableDefinition<(i64, u64), ()> = TableDefinition::new("nonce_group_expiry");
/// Ten seconds of groups, one every 2 ms.
const ROUNDS: u64 = 5000;
/// About 60 nonces of 50 bytes: 2 ms at the local host's full rate.
const GROUP_BYTES: usize = 3000;

/// The machine's busy time so far, in clock ticks (all CPUs, every state but idle and iowait).
fn machine_busy() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .expect("cpu line")
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().expect("ticks"))
        .collect();
    ticks.iter().sum::<u64>() - ticks[3] - ticks[4]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (way, dir) = match (args.next(), args.next()) {
        (Some(way), Some(dir)) => (way, std::path::PathBuf::from(dir)),
        _ => {
            eprintln!("usage: durable_group redb|redb-none|append|idle DIR");
            std::process::exit(2);
        }
    };
    let row = vec![7u8; GROUP_BYTES];
    let (busy, started);
    match way.as_str() {
        "redb" | "redb-none" => {
            let db = redb::Database::create(dir.join("groups.redb")).expect("redb file");
            (busy, started) = (machine_busy(), Instant::now());
            for key in 0..ROUNDS {
                let mut txn = db.begin_write().expect("write");
                if way == "redb-none" {
                    txn.set_durability(redb::Durability::None)
                        .expect("durability");
                }
                {
                    let mut groups = txn.open_table(GROUPS).expect("table");
                    let mut expiry = txn.open_table(EXPIRY).expect("table");
                    // As the guard did: the oldest groups dropped as new ones come (a
                    // 5-minute lifetime at this pace is 150 000 groups; 150 keeps it small).
                    if key >= 150 {
                        let old = key - 150;
                        groups.remove(old).expect("remove");
                        expiry.remove((old as i64, old)).expect("remove");
                    }
                    groups.insert(key, row.as_slice()).expect("insert");
                    expiry.insert((key as i64, key), ()).expect("insert");
                    assert!(groups.get(key).expect("get").is_some());
                }
                txn.commit().expect("commit");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        "append" => {
            let file = std::fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(dir.join("segment"))
                .expect("segment file");
            let size = ROUNDS * GROUP_BYTES as u64;
            let zeros = vec![0u8; 1 << 20];
            let mut at = 0;
            while at < size {
                let n = zeros.len().min((size - at) as usize);
                file.write_all_at(&zeros[..n], at).expect("zeros");
                at += n as u64;
            }
            file.sync_all().expect("sync");
            (busy, started) = (machine_busy(), Instant::now());
            for i in 0..ROUNDS {
                file.write_all_at(&row, i * GROUP_BYTES as u64)
                    .expect("append");
                file.sync_data().expect("fdatasync");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        "idle" => {
            (busy, started) = (machine_busy(), Instant::now());
            for _ in 0..ROUNDS {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        other => {
            eprintln!("unknown way {other}: redb, redb-none, append or idle");
            std::process::exit(2);
        }
    }
    let ticks = machine_busy() - busy;
    let hz = 100.0; // USER_HZ, what /proc/stat counts in on Linux
    println!(
        "{way}: {ROUNDS} groups of {GROUP_BYTES} bytes in {:.1} s; machine CPU {:.0} µs a group",
        started.elapsed().as_secs_f64(),
        ticks as f64 / hz * 1e6 / ROUNDS as f64
    );
}
