//! A month run on a Ballista cluster gives the bytes of a run here
//! (`cargo test --features distributed`). The cluster is in-process (a
//! scheduler and two executors on this test's runtime); the driver is the
//! real binary, `billxfer run --cluster`. .ci/run repeats this with separate
//! processes and kills an executor mid-run.
#![cfg(feature = "distributed")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// An in-process cluster: kept alive as long as its runtime is.
struct Cluster {
    _runtime: tokio::runtime::Runtime,
    url: String,
}

impl Cluster {
    fn start(executors: usize) -> Cluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let addr = runtime
            .block_on(billxfer::cluster::roles::standalone(executors, 2))
            .unwrap();
        Cluster {
            _runtime: runtime,
            url: format!("df://127.0.0.1:{}", addr.port()),
        }
    }
}

/// Every file of a finished month; the manifest's `engine` field (the one
/// documented difference) is blanked after checking which engine it names.
fn month_bytes(dir: &Path, engine: &str) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = tree_bytes(dir);
    let manifest = files
        .get_mut(Path::new("manifest.json"))
        .expect("a manifest");
    let text = String::from_utf8(manifest.clone()).unwrap();
    let line = format!("\"engine\": \"{engine}\"");
    assert!(
        text.contains(&line),
        "the manifest names the engine {engine}"
    );
    *manifest = text.replace(&line, "\"engine\": \"-\"").into_bytes();
    files
}

/// Every file of the month run here equals the one run on the cluster (the
/// manifest's `engine` aside); returns them.
fn assert_same_files(local: &Path, cluster: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let here = month_bytes(local, "local");
    let there = month_bytes(cluster, billxfer::cluster::ENGINE);
    let names = |m: &BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&here), names(&there), "the same files");
    for (path, bytes) in &here {
        assert!(
            &there[path] == bytes,
            "{} differs between a run here and on the cluster",
            path.display()
        );
    }
    assert!(here.contains_key(Path::new("partner/margin.csv")));
    here
}

/// [`assert_same_files`] for a month with exports (not vacuous: it has FOCUS files).
fn assert_same_month(local: &Path, cluster: &Path) {
    let here = assert_same_files(local, cluster);
    let export = |p: &PathBuf| p.components().any(|c| c.as_os_str() == "focus");
    assert!(here.keys().any(export), "the month has FOCUS exports");
}

/// Runs October here and on `cluster` with `extra` arguments (and `cluster_only` there).
fn run_both(
    config: &Path,
    w: &Workdir,
    cluster: &Cluster,
    extra: &[&str],
    cluster_only: &[&str],
) -> (PathBuf, PathBuf) {
    let local = run_october(config, &w.join("local"), extra);
    let mut args = vec!["--cluster", cluster.url.as_str()];
    args.extend_from_slice(extra);
    args.extend_from_slice(cluster_only);
    let there = run_october(config, &w.join("cluster"), &args);
    (local, there)
}

#[test]
fn the_sample_month_on_a_cluster_is_byte_identical_to_a_run_here() {
    let cluster = Cluster::start(2);
    let w = Workdir::new();
    let config = repo().join("sample_data/billxfer.toml");
    let (local, there) = run_both(&config, &w, &cluster, &[], &[]);
    assert_same_month(&local, &there);
    // The roll-ups too (the finish stage writes them).
    let w = Workdir::new();
    let (local, there) = run_both(
        &config,
        &w,
        &cluster,
        &["--granularity", "daily", "--format", "csv"],
        &[],
    );
    assert_same_month(&local, &there);
}

#[test]
fn a_generated_200k_line_base_on_a_cluster_is_byte_identical_to_a_run_here() {
    let cluster = Cluster::start(2);
    let w = Workdir::new();
    let base = w.join("base");
    ok(&run([
        "generate",
        "--orgs",
        "12",
        "--accounts-per-org",
        "3",
        "--lines",
        "200000",
        "--period",
        "2026-10",
        "--seed",
        "11",
        "--out",
        base.to_str().unwrap(),
    ]));
    let config = base.join("billxfer.toml");
    let (local, there) = run_both(&config, &w, &cluster, &[], &["--partitions", "5,3"]);
    assert_same_month(&local, &there);
    // Without exports, the invoices come from the shuffled partial ledgers alone.
    let w2 = Workdir::new();
    let (local, there) = run_both(
        &config,
        &w2,
        &cluster,
        &["--exports", "none"],
        &["--partitions", "5,3"],
    );
    assert_same_files(&local, &there);
    let manifest = json(&there.join("manifest.json"));
    let rows: u64 = manifest["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rows_read"].as_u64().unwrap())
        .sum();
    assert!(rows >= 200_000, "every generated row was read: {rows}");
}

#[test]
fn an_unreachable_scheduler_is_a_clear_error_soon_and_the_last_month_stays() {
    let w = Workdir::new();
    let config = repo().join("sample_data/billxfer.toml");
    let out = w.join("out");
    let month = run_october(&config, &out, &[]);
    let before = tree_bytes(&month);
    // Nothing listens on port 9 (discard) of this machine's loopback.
    let started = Instant::now();
    let o = w.run([
        "run",
        "--config",
        config.to_str().unwrap(),
        "--period",
        "2026-10",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--cluster",
        "df://127.0.0.1:9",
    ]);
    assert!(!o.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed within a bounded time"
    );
    let err = stderr(&o);
    assert!(
        err.contains("cannot reach the Ballista scheduler") && err.contains("127.0.0.1:9"),
        "{err}"
    );
    assert_eq!(tree_bytes(&month), before, "the previous output is intact");
}

#[test]
fn a_real_legacy_cur_file_nobody_on_the_project_wrote_gives_the_same_bytes_on_a_cluster() {
    let Some(data) = shared_data(ANONYMOUS_CUR) else {
        return;
    };
    let cluster = Cluster::start(2);
    let w = Workdir::new();
    let config = w.write_config(anonymous_cur_config(&data));
    let local = run_period(&config, "2023-11", &w.join("local"), &[]);
    let there = run_period(
        &config,
        "2023-11",
        &w.join("cluster"),
        &["--cluster", cluster.url.as_str()],
    );
    assert_same_month(&local, &there);
    // The same figure as tests/e2e.rs: Σ lineItem/UnblendedCost of the file (shared/data/README.md).
    let inv = json(&there.join("partner/invoices/anon.json"));
    assert_eq!(inv["exact_total"], "1.6823086974");
}
