//! Hostile configs and command lines (issue 11, items 10-14): absurd `--threads`,
//! org ids equal but for case, file names holding glob characters, FIFOs and
//! devices as inputs, and decimals in scientific notation. docs/RELIABILITY.md
//! lists them.

mod common;

use std::path::Path;
use std::process::Output;

use common::{bin, case_file, ok, stderr, Workdir, ACME_CONFIG as CONFIG};

/// A folder with `billxfer.toml` and `input/`.
fn case_dir(config: &str) -> Workdir {
    let w = Workdir::new();
    w.mkdir("input");
    w.write_config(config);
    w
}

/// Such a folder with tests/cases/good.csv (2 rows, 0.104 + 2.30) as `input/<name>`.
fn good_case(config: &str, name: &str) -> Workdir {
    let w = case_dir(config);
    w.write(format!("input/{name}"), case_file("good.csv"));
    w
}

fn run(w: &Workdir, extra: &[&str]) -> Output {
    w.run_config("run", "2026-03", &[&["--quiet"], extra].concat())
}

/// Like `run`, but kills billxfer and fails the test if it has not ended in
/// 60 s (an input opened for reading that never delivers would hang it).
fn run_with_deadline(w: &Workdir) -> Output {
    let mut child = w
        .command()
        .arg("run")
        .arg("--config")
        .arg(w.config())
        .args(["--period", "2026-03", "--quiet", "--out"])
        .arg(w.join("out"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("billxfer did not end within 60 s: it blocked on an input");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn invoice(w: &Workdir) -> serde_json::Value {
    w.json("out/2026-03/customers/acme/invoice.json")
}

/// Asserts a failing run: exit code, a message on stderr, no panic, no output.
fn fails(case: &Workdir, o: &Output, code: i32, message: &str) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(err.contains(message), "stderr lacks `{message}`: {err}");
    assert!(
        !case.join("out/2026-03").exists(),
        "wrote output despite failing"
    );
}

fn with_flat_fee(flat: &str) -> String {
    format!("{CONFIG}\n  [[orgs.custom_line_items]]\n  id = \"fee\"\n  description = \"Fee\"\n  kind = \"fee\"\n  flat = {flat}\n  start = \"2026-01\"\n")
}

// 10. --threads

#[test]
fn absurd_thread_counts_are_refused_at_once() {
    let case = good_case(CONFIG, "good.csv");
    let o = run(&case, &["--threads", "100000000"]);
    fails(
        &case,
        &o,
        2,
        "--threads 100000000 is too many: at most 65536",
    );
    let o = run(&case, &["--threads", "0"]);
    fails(&case, &o, 2, "--threads 0: give 1 to 65536");
    // The limit is in --help.
    let help = bin().args(["run", "--help"]).output().unwrap();
    assert!(
        ok(&help).contains("1 to 65536"),
        "{}",
        String::from_utf8_lossy(&help.stdout)
    );
    let help = bin().args(["generate", "--help"]).output().unwrap();
    assert!(ok(&help).contains("1 to 65536"));
}

#[test]
fn many_threads_are_lowered_with_a_warning() {
    let case = good_case(CONFIG, "good.csv");
    let o = run(&case, &["--threads", "10000"]);
    ok(&o);
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "billxfer: warning: --threads 10000 is more than 4 per CPU ({cpus} CPUs available); using {} threads",
            (cpus * 4).min(65536)
        )),
        "{err}"
    );
    assert_eq!(invoice(&case)["total"], "2.40");
    // A count within the limit gives no warning.
    let again = good_case(CONFIG, "good.csv");
    let o = run(&again, &["--threads", "1"]);
    ok(&o);
    assert!(!stderr(&o).contains("warning: --threads"), "{}", stderr(&o));
}

// 11. Org ids equal but for case.

#[test]
fn org_ids_differing_only_by_case_are_refused() {
    let config = format!("{CONFIG}\n[[orgs]]\nid = \"Acme\"\nname = \"Acme again\"\nmanagement_account = \"222222222222\"\nfiles = [\"other/*\"]\nplan = \"basic\"\ntransfer = {{ start = \"2026-01\" }}\n");
    let case = good_case(&config, "good.csv");
    let o = run(&case, &[]);
    fails(
        &case,
        &o,
        2,
        "orgs[1] (id `Acme`).id: org id `Acme` differs from `acme` (orgs[0] (id `acme`).id) only by case",
    );
    let partner = CONFIG.replace("id = \"acme\"", "id = \"Partner\"");
    let case = good_case(&partner, "good.csv");
    let o = run(&case, &[]);
    fails(
        &case,
        &o,
        2,
        "org id `Partner` differs from `partner` (partner.id) only by case",
    );
}

// 12. File names holding glob characters.

#[test]
fn an_existing_file_with_brackets_is_read_literally() {
    let config = CONFIG.replace("input/*", "input/report[1].csv");
    let case = good_case(&config, "report[1].csv");
    ok(&run(&case, &[]));
    let inv = invoice(&case);
    assert_eq!(inv["total"], "2.40", "{inv}");
    let m = case.json("out/2026-03/manifest.json");
    assert!(m.to_string().contains("input/report[1].csv"), "{m}");

    // The documented escape forces a literal `[` in a pattern.
    let escaped = CONFIG.replace("input/*", "input/report[[]1].csv");
    let case = good_case(&escaped, "report[1].csv");
    ok(&run(&case, &[]));
    assert_eq!(invoice(&case)["total"], "2.40");

    // A bracket pattern that matches nothing says how to write a literal `[`.
    let missing = CONFIG.replace("input/*", "input/rep[1].csv");
    let case = good_case(&missing, "report[1].csv");
    let o = run(&case, &[]);
    fails(
        &case,
        &o,
        1,
        "the pattern `input/rep[1].csv` matches no file",
    );
    assert!(
        stderr(&o).contains("for a literal `[` write `[[]`, e.g. `input/rep[[]1].csv`"),
        "{}",
        stderr(&o)
    );
}

// 13. FIFOs and devices.

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed");
}

#[test]
fn a_fifo_is_refused_without_being_opened() {
    // Nobody writes to the FIFO: opening it would block, so a hang (killed
    // after 60 s) or "does not exist" both fail this test.
    let config = CONFIG.replace("input/*", "input/pipe.csv");
    let case = case_dir(&config);
    mkfifo(&case.join("input/pipe.csv"));
    let o = run_with_deadline(&case);
    fails(
        &case,
        &o,
        1,
        "pipe.csv is a FIFO (named pipe), not a regular file: billxfer reads each input more than once (checksum, then rows), which only a regular file allows; copy it to a file",
    );
    assert!(!stderr(&o).contains("does not exist"), "{}", stderr(&o));

    // A glob matching a FIFO reports it too, beside the good file.
    let case = good_case(CONFIG, "good.csv");
    mkfifo(&case.join("input/pipe.csv"));
    let o = run_with_deadline(&case);
    fails(&case, &o, 1, "pipe.csv is a FIFO (named pipe)");
}

#[test]
fn a_device_is_refused() {
    let config = CONFIG.replace("input/*", "/dev/null");
    let case = case_dir(&config);
    let o = run(&case, &[]);
    fails(
        &case,
        &o,
        1,
        "input /dev/null is a character device, not a regular file",
    );
}

// 14. Decimals: one rule, exponents allowed, converted exactly.

#[test]
fn a_flat_amount_in_scientific_notation_is_billed_exactly() {
    let case = good_case(&with_flat_fee("\"1E6\""), "good.csv");
    ok(&run(&case, &[]));
    let inv = invoice(&case);
    assert_eq!(inv["custom_line_items"][0]["amount"], "1000000.00", "{inv}");
    assert_eq!(inv["fees"], "1000000.00");
    assert_eq!(inv["total"], "1000002.40");
}

#[test]
fn a_decimal_needing_too_many_places_names_the_key_the_value_and_the_limit() {
    let case = good_case(&with_flat_fee("\"1e-12\""), "good.csv");
    let o = run(&case, &[]);
    fails(
        &case,
        &o,
        2,
        "orgs[0] (id `acme`).custom_line_items[0] (id `fee`).flat: `1e-12`: needs 12 decimal places, but this key takes at most 10 (it is never rounded)",
    );
    let case = good_case(&with_flat_fee("\"1e6x\""), "good.csv");
    let o = run(&case, &[]);
    fails(&case, &o, 2, ".flat: `1e6x`: not a decimal number");
}

fn tiered(from: &str) -> String {
    format!("{CONFIG}\n[[plans]]\nid = \"t\"\nrules = [ {{ id = \"s3\", scope = \"sku\", service = \"AmazonS3\", usage_type = \"USE1-TimedStorage-ByteHrs\", type = \"custom\", tiers = [ {{ from = \"0\", rate = \"0.03\" }}, {{ from = {from}, rate = \"0.01\" }} ] }} ]\n")
        .replace("plan = \"basic\"", "plan = \"t\"")
}

#[test]
fn a_tier_bound_in_scientific_notation_equals_the_plain_one() {
    // good.csv bills 100 S3 units: with the second tier from 50 or 100 the
    // totals differ, so equal totals mean 1e2 was read as 100.
    let totals: Vec<String> = ["\"1e2\"", "\"100\"", "\"50\""]
        .iter()
        .map(|from| {
            let case = good_case(&tiered(from), "good.csv");
            ok(&run(&case, &[]));
            invoice(&case)["total"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(totals[0], totals[1]);
    assert_ne!(
        totals[1], totals[2],
        "the case cannot tell the bounds apart"
    );
}

#[test]
fn a_percentage_in_scientific_notation_still_works() {
    let config = format!("{CONFIG}\n[[plans]]\nid = \"p\"\nrules = [ {{ id = \"g\", scope = \"global\", type = \"markup\", percent = \"1e2\" }} ]\n")
        .replace("plan = \"basic\"", "plan = \"p\"");
    let case = good_case(&config, "good.csv");
    ok(&run(&case, &[]));
    // 100% markup on public prices: 0.104 -> 0.208 (0.21), 2.30 -> 4.60.
    let inv = invoice(&case);
    assert_eq!(inv["total"], "4.81", "{inv}");
}
