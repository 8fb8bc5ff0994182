//! A hostile month: each bad input ends in a clear error or a quarantined row
//! with a reason, never a panic and never a silently wrong total. The CSV cases
//! are small files under tests/cases/; Parquet cases are built here from arrow
//! arrays; config cases are small texts. docs/RELIABILITY.md lists them all.

use std::fs;
use std::process::Output;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};

mod common;
use common::{case_file, manifest_org, parquet_bytes, tree_bytes, Workdir, ACME_CONFIG as CONFIG};

/// What a case must end in.
#[derive(Debug)]
enum Expect {
    /// Exit 0; rows rated and quarantined; a reason the quarantine file must contain.
    Rated {
        rated: u64,
        quarantined: u64,
        reason: &'static str,
    },
    /// Exit code and a message stderr must contain.
    Fails { code: i32, message: &'static str },
}

/// A folder with `config` as `billxfer.toml` and `bytes` as `input/<name>`.
fn case(config: &str, name: &str, bytes: &[u8]) -> Workdir {
    let w = Workdir::new();
    w.write_config(config);
    w.write(format!("input/{name}"), bytes);
    w
}

/// The folder with tests/cases/good.csv as its input.
fn good_case(config: &str) -> Workdir {
    case(config, "good.csv", &case_file("good.csv"))
}

fn run(w: &Workdir) -> Output {
    w.run_config("run", "2026-03", &[])
}

fn check(w: &Workdir, name: &str, expect: Expect) {
    let o = run(w);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{name}: panic: {stderr}");
    match expect {
        Expect::Rated {
            rated,
            quarantined,
            reason,
        } => {
            assert!(
                o.status.success(),
                "{name}: expected success, got {}: {stderr}",
                o.status
            );
            let m = w.json("out/2026-03/manifest.json");
            let acme = manifest_org(&m, "acme");
            assert_eq!(acme["rows_rated"].as_u64().unwrap(), rated, "{name}: rated");
            assert_eq!(
                acme["rows_quarantined"].as_u64().unwrap(),
                quarantined,
                "{name}: quarantined"
            );
            assert_eq!(m["all_checks_passed"], true, "{name}: checks");
            let q = w.read("out/2026-03/quarantine/acme.csv");
            assert!(
                q.contains(reason),
                "{name}: quarantine lacks `{reason}`:\n{q}"
            );
        }
        Expect::Fails { code, message } => {
            assert_eq!(
                o.status.code(),
                Some(code),
                "{name}: exit code; stderr: {stderr}"
            );
            assert!(
                stderr.contains(message),
                "{name}: stderr lacks `{message}`: {stderr}"
            );
            assert!(stderr.starts_with("billxfer: error:"), "{name}: {stderr}");
            assert!(
                !w.join("out/2026-03").exists(),
                "{name}: wrote output despite failing"
            );
        }
    }
}

fn csv_case(file: &str, expect: Expect) {
    let bytes = case_file(file);
    check(&case(CONFIG, file, &bytes), file, expect);
}

#[test]
fn csv_cases() {
    use Expect::*;
    let ok = |rated| Rated {
        rated,
        quarantined: 0,
        reason: "",
    };
    csv_case("good.csv", ok(2));
    csv_case(
        "ragged_row.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "the row has 4 fields but the header has 12",
        },
    );
    csv_case("bom.csv", ok(2));
    csv_case("crlf.csv", ok(2));
    csv_case(
        "semicolon.csv",
        Fails {
            code: 1,
            message: "comma-separated",
        },
    );
    csv_case("header_only.csv", ok(0));
    csv_case("blank_lines.csv", ok(2));
    csv_case("quoted_fields.csv", ok(1));
    csv_case(
        "missing_column.csv",
        Fails {
            code: 1,
            message: "missing required column(s): line_item_unblended_cost",
        },
    );
    csv_case(
        "non_numeric_cost.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "line_item_unblended_cost,twelve,not a usable amount: not a decimal number",
        },
    );
    csv_case(
        "nan_cost.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "NaN,not a usable amount",
        },
    );
    csv_case(
        "infinite_cost.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "inf,not a usable amount",
        },
    );
    csv_case(
        "negative_usage.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "a Usage line cannot have a negative usage amount",
        },
    );
    csv_case(
        "huge_amount.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "out of range: billxfer accepts amounts up to ±10^18",
        },
    );
    csv_case(
        "negative_rate.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "a public rate cannot be negative",
        },
    );
    csv_case(
        "other_period.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "the line is for 2026-02, outside the billing period 2026-03",
        },
    );
    csv_case(
        "foreign_account.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "usage account 999988887777 is not an account of org `acme`",
        },
    );
    csv_case(
        "missing_account.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "missing usage account id",
        },
    );
    csv_case("duplicate_line_ids.csv", ok(2));
    csv_case(
        "unknown_type.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "unknown line item type `FlatRateSubscription`",
        },
    );
    csv_case(
        "mixed_currency.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "currency EUR differs from org `acme`'s billing currency USD",
        },
    );
    csv_case(
        "bad_date.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "not a date",
        },
    );
    csv_case(
        "missing_date.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "missing billing period date",
        },
    );
    csv_case(
        "non_utf8.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "not valid UTF-8",
        },
    );
    csv_case(
        "empty.csv",
        Fails {
            code: 1,
            message: "the file is empty",
        },
    );
    csv_case(
        "gzip_truncated.csv.gz",
        Fails {
            code: 1,
            message: "corrupt",
        },
    );
    csv_case("gzip_good.csv.gz", ok(100));
    csv_case("whitespace_and_exponent.csv", ok(2));
    // A formula in a cell ends up in the quarantine file as text, not as a formula.
    csv_case(
        "formula_injection.csv",
        Rated {
            rated: 2,
            quarantined: 1,
            reason: "'=cmd|",
        },
    );
}

#[test]
fn bad_quoting_is_contained() {
    // An unterminated quote swallows the rest of the file into one field: that
    // record is quarantined with the reason, never rated.
    let bytes = case_file("bad_quoting.csv");
    let w = case(CONFIG, "bad_quoting.csv", &bytes);
    check(
        &w,
        "bad_quoting.csv",
        Expect::Rated {
            rated: 2,
            quarantined: 1,
            reason: "unterminated quote swallowed the rows after it",
        },
    );
}

#[test]
fn a_whole_file_error_names_the_file() {
    let w = case(CONFIG, "données 2026 (v2).csv", &case_file("semicolon.csv"));
    let o = run(&w);
    assert!(String::from_utf8_lossy(&o.stderr).contains("données 2026 (v2).csv"));
    // Odd characters in a file name are fine when the file is good.
    let good = case(CONFIG, "données 2026 (v2).csv", &case_file("good.csv"));
    check(
        &good,
        "unicode file name",
        Expect::Rated {
            rated: 2,
            quarantined: 0,
            reason: "",
        },
    );
}

fn parquet_columns(n: usize, cost: ArrayRef, account: ArrayRef) -> Vec<(&'static str, ArrayRef)> {
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
    vec![
        ("bill_billing_period_start_date", s("2026-03-01T00:00:00Z")),
        ("line_item_usage_account_id", account),
        ("line_item_line_item_type", s("Usage")),
        ("line_item_product_code", s("AmazonEC2")),
        ("line_item_usage_type", s("USE1-BoxUsage:t3.micro")),
        (
            "line_item_usage_amount",
            Arc::new(Float64Array::from(vec![10.0; n])),
        ),
        ("line_item_unblended_cost", cost),
        ("pricing_public_on_demand_rate", s("0.0104")),
    ]
}

#[test]
fn parquet_cases() {
    use Expect::*;
    let accounts = |n| -> ArrayRef { Arc::new(StringArray::from(vec!["111111111111"; n])) };
    let good = parquet_bytes(parquet_columns(
        3,
        Arc::new(Float64Array::from(vec![0.104; 3])),
        accounts(3),
    ));
    check(
        &case(CONFIG, "good.parquet", &good),
        "parquet good",
        Rated {
            rated: 3,
            quarantined: 0,
            reason: "",
        },
    );

    check(
        &case(CONFIG, "truncated.parquet", &good[..good.len() / 2]),
        "parquet truncated",
        Fails {
            code: 1,
            message: "not a readable Parquet file",
        },
    );

    // Flip bytes inside the data pages (after the magic, before the footer).
    let mut corrupt = good.clone();
    for b in corrupt[8..good.len() / 3].iter_mut() {
        *b = !*b;
    }
    let o = run(&case(CONFIG, "corrupt.parquet", &corrupt));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("panicked") && o.status.code() == Some(1) && err.contains("corrupt.parquet"),
        "corrupt parquet: {err}"
    );

    let wrong = parquet_bytes(parquet_columns(
        3,
        Arc::new(BooleanArray::from(vec![true; 3])),
        accounts(3),
    ));
    check(
        &case(CONFIG, "wrong_types.parquet", &wrong),
        "parquet wrong types",
        Fails {
            code: 1,
            message: "column `line_item_unblended_cost` has type Boolean",
        },
    );

    // Account ids typed as integers (as some readers write them) lose the leading zero; it is restored.
    let ints = parquet_bytes(parquet_columns(
        2,
        Arc::new(Float64Array::from(vec![1.0; 2])),
        Arc::new(Int64Array::from(vec![11111111111i64; 2])),
    ));
    check(
        &case(CONFIG, "int_accounts.parquet", &ints),
        "parquet integer accounts",
        Rated {
            rated: 2,
            quarantined: 0,
            reason: "",
        },
    );

    let nan = parquet_bytes(parquet_columns(
        3,
        Arc::new(Float64Array::from(vec![0.1, f64::NAN, f64::INFINITY])),
        accounts(3),
    ));
    check(
        &case(CONFIG, "nan.parquet", &nan),
        "parquet NaN",
        Rated {
            rated: 1,
            quarantined: 2,
            reason: "not a finite number",
        },
    );

    // Fuzzing findings: corrupt files that made a dependency's decoder panic (a corrupt
    // embedded arrow schema in arrow-ipc; an out-of-bounds bitmap in arrow-buffer).
    for crash in [
        "fuzz_parquet_bad_arrow_schema.parquet",
        "fuzz_parquet_bitmap_out_of_bounds.parquet",
    ] {
        let o = run(&case(CONFIG, "crash.parquet", &case_file(crash)));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("internal error"),
            "{crash}: {err}"
        );
        assert_eq!(o.status.code(), Some(1), "{crash}: {err}");
        assert!(err.contains("crash.parquet"), "{crash}: {err}");
    }

    let empty = parquet_bytes(parquet_columns(
        0,
        Arc::new(Float64Array::from(Vec::<f64>::new())),
        accounts(0),
    ));
    check(
        &case(CONFIG, "empty.parquet", &empty),
        "parquet empty",
        Rated {
            rated: 0,
            quarantined: 0,
            reason: "",
        },
    );

    let missing = parquet_bytes(
        parquet_columns(1, Arc::new(Float64Array::from(vec![1.0])), accounts(1))
            .into_iter()
            .filter(|(n, _)| *n != "line_item_product_code")
            .collect(),
    );
    check(
        &case(CONFIG, "missing.parquet", &missing),
        "parquet missing column",
        Fails {
            code: 1,
            message: "missing required column(s): line_item_product_code",
        },
    );
}

fn config_case(name: &str, config: &str, code: i32, message: &'static str) {
    check(&good_case(config), name, Expect::Fails { code, message });
}

#[test]
fn config_cases() {
    let two_orgs = format!("{CONFIG}\n[[orgs]]\nid = \"beta\"\nname = \"Beta\"\nmanagement_account = \"222222222222\"\naccounts = [\"111111111112\"]\nfiles = [\"input/*\"]\nplan = \"basic\"\ntransfer = {{ start = \"2026-01\" }}\n");
    config_case(
        "account in two orgs",
        &two_orgs,
        2,
        "account 111111111112 is claimed by both org `acme` and org `beta`",
    );
    let same_file = two_orgs.replace("accounts = [\"111111111112\"]\nfiles", "files");
    config_case(
        "file in two orgs",
        &same_file,
        1,
        "is listed for two organizations",
    );
    config_case(
        "no files",
        &CONFIG.replace("files = [\"input/*\"]", "files = []"),
        2,
        "no input files",
    );
    config_case(
        "glob matches nothing",
        &CONFIG.replace("input/*", "nothing/*.csv"),
        1,
        "matches no file",
    );
    config_case(
        "unknown key",
        &CONFIG.replace("plan = \"basic\"", "plan = \"basic\"\nplna = \"x\""),
        2,
        "unknown field `plna`",
    );
    config_case(
        "missing plan",
        &CONFIG.replace("plan = \"basic\"", "plan = \"gold\""),
        2,
        "plan `gold` does not exist",
    );
    let overlapping = format!("{CONFIG}\n[[plans]]\nid = \"p\"\nrules = [ {{ id = \"a\", scope = \"service\", service = \"AmazonEC2\", type = \"markup\", percent = \"1\" }}, {{ id = \"b\", scope = \"service\", service = \"AmazonEC2\", type = \"discount\", percent = \"2\" }} ]\n").replace("plan = \"basic\"", "plan = \"p\"");
    config_case("overlapping rules", &overlapping, 2, "same scope and match");
    let pct = format!("{CONFIG}\n[[plans]]\nid = \"p\"\nrules = [ {{ id = \"a\", scope = \"global\", type = \"discount\", percent = \"120\" }} ]\n").replace("plan = \"basic\"", "plan = \"p\"");
    config_case(
        "discount over 100%",
        &pct,
        2,
        "a discount is 0 to 100 percent",
    );
    config_case(
        "mid-month transfer",
        &CONFIG.replace("start = \"2026-01\"", "start = \"2026-01-15\""),
        2,
        "START_DATE_NOT_BEGINNING_OF_MONTH",
    );
    config_case(
        "org id escapes",
        &CONFIG.replace("id = \"acme\"", "id = \"../acme\""),
        2,
        "not a valid org id",
    );
    config_case(
        "absolute org id",
        &CONFIG.replace("id = \"acme\"", "id = \"/etc/acme\""),
        2,
        "not a valid org id",
    );
    config_case(
        "odd org id",
        &CONFIG.replace("id = \"acme\"", "id = \"ac me$\""),
        2,
        "not a valid org id",
    );
    config_case(
        "toml syntax",
        &CONFIG.replace("name = \"Acme\"", "name = \"Acme"),
        2,
        "TOML parse error",
    );
    config_case(
        "passthrough without opt-in",
        &CONFIG.replace("plan = \"basic\"", "plan = \"passthrough\""),
        2,
        "allow_passthrough",
    );
    config_case(
        "bad account id",
        &CONFIG.replace("\"111111111112\"", "\"1111-1111\""),
        2,
        "is not an AWS account id",
    );
    let w = good_case(CONFIG);
    w.write_config(b"[partner]\nid = \"\xff\"\n");
    check(
        &w,
        "config not UTF-8",
        Expect::Fails {
            code: 2,
            message: "not valid UTF-8",
        },
    );
}

#[test]
fn a_run_that_cannot_write_fails_clearly_and_keeps_earlier_outputs() {
    let w = good_case(CONFIG);
    assert!(run(&w).status.success());
    let before = tree_bytes(&w.join("out/2026-03"));
    // Disk full: a file size limit of 1 KiB (ulimit -f) makes writes fail with EFBIG.
    let big = case_file("gzip_good.csv.gz");
    w.write("input/more.csv.gz", big);
    let mut cmd = w.command();
    cmd.args([
        "run",
        "--config",
        w.config().to_str().unwrap(),
        "--period",
        "2026-03",
        "--out",
    ])
    .arg(w.join("out"));
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write output"), "{err}");
    assert_eq!(
        tree_bytes(&w.join("out/2026-03")),
        before,
        "earlier output changed"
    );
    let stray: Vec<_> = fs::read_dir(w.join("out"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".2026"))
        .collect();
    assert!(stray.is_empty(), "temporary folders left: {stray:?}");

    // An output path that is a file cannot be written either.
    let blocked = w.write("blocked", b"not a folder");
    let o = w
        .command()
        .args([
            "run",
            "--config",
            w.config().to_str().unwrap(),
            "--period",
            "2026-03",
            "--out",
        ])
        .arg(&blocked)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot write output"));
}

#[test]
fn a_second_run_on_the_same_folder_fails_clearly() {
    let w = good_case(CONFIG);
    let out = w.join("out");
    fs::create_dir_all(&out).unwrap();
    let lock = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(out.join(".billxfer.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let o = run(&w);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another billxfer run is writing"));
    drop(lock);
    assert!(run(&w).status.success());
}

#[test]
fn a_restated_input_produces_the_new_month_and_a_diff() {
    let w = good_case(CONFIG);
    assert!(run(&w).status.success());
    let old = w.join("before");
    fs::rename(w.join("out/2026-03"), &old).unwrap();
    // A late credit arrives... and a changed usage figure.
    let restated = String::from_utf8(case_file("good.csv"))
        .unwrap()
        .replace(",100,USD,2.3,", ",200,USD,4.6,");
    w.write("input/good.csv", restated);
    assert!(run(&w).status.success());
    let o = w
        .command()
        .arg("diff")
        .arg(&old)
        .arg(w.join("out/2026-03"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("acme") && text.contains("2.40") && text.contains("4.70"),
        "{text}"
    );
    assert!(text.contains("input changed: input/good.csv"), "{text}");
    let same = w
        .command()
        .arg("diff")
        .arg(w.join("out/2026-03"))
        .arg(w.join("out/2026-03"))
        .output()
        .unwrap();
    assert_eq!(same.status.code(), Some(0));
}
