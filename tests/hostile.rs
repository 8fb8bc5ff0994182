//! A hostile month: each bad input ends in a clear error or a quarantined row
//! with a reason, never a panic and never a silently wrong total. The CSV cases
//! are small files under tests/cases/; Parquet cases are built here from arrow
//! arrays; config cases are small texts. docs/RELIABILITY.md lists them all.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use serde_json::Value;

const CONFIG: &str = r#"
[partner]
id = "partner"
name = "Partner"
management_account = "900000000001"

[[orgs]]
id = "acme"
name = "Acme"
management_account = "111111111111"
accounts = ["111111111112", "011111111111"]
files = ["input/*"]
plan = "basic"
transfer = { start = "2026-01" }
"#;

fn cases() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

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

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(config: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("input")).unwrap();
        fs::write(dir.path().join("billxfer.toml"), config).unwrap();
        Case { dir }
    }

    fn with_file(self, name: &str, bytes: &[u8]) -> Case {
        fs::write(self.dir.path().join("input").join(name), bytes).unwrap();
        self
    }

    fn run(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_billxfer"))
            .args([
                "run",
                "--config",
                self.dir.path().join("billxfer.toml").to_str().unwrap(),
                "--period",
                "2026-03",
                "--out",
            ])
            .arg(self.dir.path().join("out"))
            .output()
            .unwrap()
    }

    fn check(&self, name: &str, expect: Expect) {
        let o = self.run();
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
                let m: Value = serde_json::from_slice(
                    &fs::read(self.dir.path().join("out/2026-03/manifest.json")).unwrap(),
                )
                .unwrap();
                let acme = m["orgs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["org_id"] == "acme")
                    .unwrap();
                assert_eq!(acme["rows_rated"].as_u64().unwrap(), rated, "{name}: rated");
                assert_eq!(
                    acme["rows_quarantined"].as_u64().unwrap(),
                    quarantined,
                    "{name}: quarantined"
                );
                assert_eq!(m["all_checks_passed"], true, "{name}: checks");
                let q = fs::read_to_string(self.dir.path().join("out/2026-03/quarantine/acme.csv"))
                    .unwrap();
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
                    !self.dir.path().join("out/2026-03").exists(),
                    "{name}: wrote output despite failing"
                );
            }
        }
    }
}

fn csv_case(file: &str, expect: Expect) {
    let bytes = fs::read(cases().join(file)).unwrap();
    Case::new(CONFIG)
        .with_file(file, &bytes)
        .check(file, expect);
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
    let bytes = fs::read(cases().join("bad_quoting.csv")).unwrap();
    let case = Case::new(CONFIG).with_file("bad_quoting.csv", &bytes);
    case.check(
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
    let case = Case::new(CONFIG).with_file(
        "données 2026 (v2).csv",
        &fs::read(cases().join("semicolon.csv")).unwrap(),
    );
    let o = case.run();
    assert!(String::from_utf8_lossy(&o.stderr).contains("données 2026 (v2).csv"));
    // Odd characters in a file name are fine when the file is good.
    let good = Case::new(CONFIG).with_file(
        "données 2026 (v2).csv",
        &fs::read(cases().join("good.csv")).unwrap(),
    );
    good.check(
        "unicode file name",
        Expect::Rated {
            rated: 2,
            quarantined: 0,
            reason: "",
        },
    );
}

fn parquet_bytes(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf
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
    Case::new(CONFIG).with_file("good.parquet", &good).check(
        "parquet good",
        Rated {
            rated: 3,
            quarantined: 0,
            reason: "",
        },
    );

    Case::new(CONFIG)
        .with_file("truncated.parquet", &good[..good.len() / 2])
        .check(
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
    let o = Case::new(CONFIG)
        .with_file("corrupt.parquet", &corrupt)
        .run();
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
    Case::new(CONFIG)
        .with_file("wrong_types.parquet", &wrong)
        .check(
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
    Case::new(CONFIG)
        .with_file("int_accounts.parquet", &ints)
        .check(
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
    Case::new(CONFIG).with_file("nan.parquet", &nan).check(
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
        let o = Case::new(CONFIG)
            .with_file("crash.parquet", &fs::read(cases().join(crash)).unwrap())
            .run();
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
    Case::new(CONFIG).with_file("empty.parquet", &empty).check(
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
    Case::new(CONFIG)
        .with_file("missing.parquet", &missing)
        .check(
            "parquet missing column",
            Fails {
                code: 1,
                message: "missing required column(s): line_item_product_code",
            },
        );
}

fn config_case(name: &str, config: &str, code: i32, message: &'static str) {
    Case::new(config)
        .with_file("good.csv", &fs::read(cases().join("good.csv")).unwrap())
        .check(name, Expect::Fails { code, message });
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
    let case =
        Case::new(CONFIG).with_file("good.csv", &fs::read(cases().join("good.csv")).unwrap());
    fs::write(
        case.dir.path().join("billxfer.toml"),
        b"[partner]\nid = \"\xff\"\n",
    )
    .unwrap();
    case.check(
        "config not UTF-8",
        Expect::Fails {
            code: 2,
            message: "not valid UTF-8",
        },
    );
}

fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_run_that_cannot_write_fails_clearly_and_keeps_earlier_outputs() {
    let case =
        Case::new(CONFIG).with_file("good.csv", &fs::read(cases().join("good.csv")).unwrap());
    assert!(case.run().status.success());
    let before = tree(&case.dir.path().join("out/2026-03"));
    // Disk full: a file size limit of 1 KiB (ulimit -f) makes writes fail with EFBIG.
    let big = fs::read(cases().join("gzip_good.csv.gz")).unwrap();
    fs::write(case.dir.path().join("input/more.csv.gz"), big).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_billxfer"));
    cmd.args([
        "run",
        "--config",
        case.dir.path().join("billxfer.toml").to_str().unwrap(),
        "--period",
        "2026-03",
        "--out",
    ])
    .arg(case.dir.path().join("out"));
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
        tree(&case.dir.path().join("out/2026-03")),
        before,
        "earlier output changed"
    );
    let stray: Vec<_> = fs::read_dir(case.dir.path().join("out"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".2026"))
        .collect();
    assert!(stray.is_empty(), "temporary folders left: {stray:?}");

    // An output path that is a file cannot be written either.
    let blocked = case.dir.path().join("blocked");
    fs::write(&blocked, b"not a folder").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_billxfer"))
        .args([
            "run",
            "--config",
            case.dir.path().join("billxfer.toml").to_str().unwrap(),
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
    let case =
        Case::new(CONFIG).with_file("good.csv", &fs::read(cases().join("good.csv")).unwrap());
    let out = case.dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let lock = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(out.join(".billxfer.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let o = case.run();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another billxfer run is writing"));
    drop(lock);
    assert!(case.run().status.success());
}

#[test]
fn a_restated_input_produces_the_new_month_and_a_diff() {
    let case =
        Case::new(CONFIG).with_file("good.csv", &fs::read(cases().join("good.csv")).unwrap());
    assert!(case.run().status.success());
    let old = case.dir.path().join("before");
    fs::rename(case.dir.path().join("out/2026-03"), &old).unwrap();
    // A late credit arrives... and a changed usage figure.
    let restated = fs::read_to_string(cases().join("good.csv"))
        .unwrap()
        .replace(",100,USD,2.3,", ",200,USD,4.6,");
    fs::write(case.dir.path().join("input/good.csv"), restated).unwrap();
    assert!(case.run().status.success());
    let o = Command::new(env!("CARGO_BIN_EXE_billxfer"))
        .arg("diff")
        .arg(&old)
        .arg(case.dir.path().join("out/2026-03"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("acme") && text.contains("2.40") && text.contains("4.70"),
        "{text}"
    );
    assert!(text.contains("input changed: input/good.csv"), "{text}");
    let same = Command::new(env!("CARGO_BIN_EXE_billxfer"))
        .arg("diff")
        .arg(case.dir.path().join("out/2026-03"))
        .arg(case.dir.path().join("out/2026-03"))
        .output()
        .unwrap();
    assert_eq!(same.status.code(), Some(0));
}
