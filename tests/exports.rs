//! The analyst exports: round trips back through billxfer, FOCUS validity of
//! every file written, roll-ups that still sum to the invoices, polars reading
//! arrow-rs output (`report`), and the CSV formula rule.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

mod common;
use common::{files_under, json, manifest_org, ok, readable_text, repo, run, run_sample, Workdir};

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))).unwrap()
}

const CUSTOMERS: [(&str, &str, &str); 3] = [
    ("acme", "111100000001", "\"111100000002\""),
    (
        "globex",
        "222200000001",
        "\"222200000002\", \"222200000003\"",
    ),
    ("initech", "333300000001", "\"333300000002\""),
];

/// Feeds one export file back as the only input of an org with the same
/// accounts, actual rates `billed`, and returns the re-run's partner invoice.
fn rerun(export: &Path, org: &str, mgmt: &str, accounts: &str, w: &Workdir) -> Value {
    let config = w.write(
        format!("{org}.toml"),
        format!(
            "[partner]\nid = \"p\"\nname = \"P\"\nmanagement_account = \"999999999999\"\n\n[actual]\nmode = \"billed\"\n\n[[orgs]]\nid = \"{org}\"\nname = \"again\"\nmanagement_account = \"{mgmt}\"\naccounts = [{accounts}]\nfiles = [{:?}]\nplan = \"passthrough\"\nallow_passthrough = true\ntransfer = {{ start = \"2026-01\", source_payer = true }}\n",
            export.to_str().unwrap()
        ),
    );
    let out = w.join(format!("out-{org}"));
    common::run_october(&config, &out, &["--exports", "none"]);
    let o = manifest_org(&json(&out.join("2026-10/manifest.json")), org);
    assert_eq!(o["rows_quarantined"], 0, "{}", export.display());
    json(&out.join(format!("2026-10/partner/invoices/{org}.json")))
}

/// The customer's exact (unrounded) pro forma total, from the manifest.
fn proforma_exact(dir: &Path, org: &str) -> Decimal {
    let o = manifest_org(&json(&dir.join("manifest.json")), org);
    dec(&o["proforma_invoice_exact"])
}

fn cents(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

#[test]
fn pro_forma_exports_fed_back_reproduce_the_invoices() {
    let w = Workdir::new();
    for format in ["parquet", "csv"] {
        let dir = run_sample(&w.join(format), &["--format", format]);
        for (org, mgmt, accounts) in CUSTOMERS {
            let invoice = json(&dir.join(format!("customers/{org}/invoice.json")));
            let exact = proforma_exact(&dir, org);
            let total = dec(&invoice["total"]);
            for kind in ["cur", "focus"] {
                let export = dir.join(format!("customers/{org}/{kind}/{org}-2026-10.{format}"));
                let again = rerun(&export, org, mgmt, accounts, &w);
                let re_exact = dec(&again["exact_total"]);
                assert_eq!(re_exact, exact, "{org} {kind} {format}: exact total");
                assert_eq!(cents(re_exact), cents(exact), "{org} {kind} {format}");
                assert_eq!(
                    dec(&again["total"]),
                    total,
                    "{org} {kind} {format}: invoice total to the cent"
                );
            }
        }
    }
}

#[test]
fn every_focus_file_written_passes_the_validator_and_rollups_keep_the_totals() {
    let w = Workdir::new();
    let line = run_sample(&w.join("line"), &[]);
    let listing = json(&line.join("exports.json"));
    for (granularity, format) in [
        ("line", "parquet"),
        ("line", "csv"),
        ("daily", "parquet"),
        ("daily", "csv"),
        ("monthly", "parquet"),
        ("monthly", "csv"),
    ] {
        let dir = run_sample(
            &w.join(format!("{granularity}-{format}")),
            &["--granularity", granularity, "--format", format],
        );
        let focus: Vec<PathBuf> = files_under(&dir, format)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/focus/"))
            .collect();
        assert_eq!(focus.len(), 13, "{granularity} {format}: {focus:?}");
        let mut args: Vec<&str> = vec!["validate-focus"];
        args.extend(focus.iter().map(|p| p.to_str().unwrap()));
        let out = ok(&run(&args));
        assert_eq!(out.matches(": ok").count(), 13, "{out}");
        // Each export sums to the same exact amount at every granularity.
        let l = json(&dir.join("exports.json"));
        let totals = |v: &Value| -> Vec<(String, String, String)> {
            let mut t: Vec<_> = v["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["org"].as_str().unwrap().to_string(),
                        f["kind"].as_str().unwrap().to_string(),
                        f["cost_total"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            t.sort();
            t
        };
        assert_eq!(totals(&l), totals(&listing), "{granularity} {format}");
        // A re-run gives the same bytes.
        let again = run_sample(
            &w.join(format!("{granularity}-{format}-again")),
            &["--granularity", granularity, "--format", format],
        );
        for f in files_under(&dir, format) {
            let rel = f.strip_prefix(&dir).unwrap();
            assert_eq!(
                fs::read(&f).unwrap(),
                fs::read(again.join(rel)).unwrap(),
                "{granularity} {format}: {} differs on a re-run",
                rel.display()
            );
        }
        // Roll-ups have fewer or as many rows as lines.
        for (f, g) in listing["files"]
            .as_array()
            .unwrap()
            .iter()
            .zip(l["files"].as_array().unwrap())
        {
            assert!(g["rows"].as_u64() <= f["rows"].as_u64(), "{g}");
        }
    }
}

#[test]
fn exports_sum_to_the_invoices() {
    let w = Workdir::new();
    let dir = run_sample(w.path(), &[]);
    let listing = json(&dir.join("exports.json"));
    for f in listing["files"].as_array().unwrap() {
        let org = f["org"].as_str().unwrap();
        let expected = if f["kind"] == "partner_focus" {
            dec(&json(&dir.join(format!("partner/invoices/{org}.json")))["exact_total"])
        } else if f["currency"] == "EUR" {
            // Umbrella's FOCUS is in euros, row by row (EXPECTED.md, "Umbrella in euros").
            assert_eq!((org, f["kind"].as_str()), ("umbrella", Some("focus")));
            "35.614061".parse().unwrap()
        } else {
            proforma_exact(&dir, org)
        };
        assert_eq!(dec(&f["cost_total"]), expected, "{f}");
    }
    // Independently of exports.json: polars (report) reads the arrow-rs files.
    if cfg!(feature = "report") {
        report_matches_the_invoices(&w, &dir);
    }
}

/// `billxfer report --by org` of a finished run equals its invoices, org by org.
fn report_matches_the_invoices(w: &Workdir, dir: &std::path::Path) {
    let report = ok(&w.run([
        "report",
        "--out",
        w.path().to_str().unwrap(),
        "--period",
        "2026-10",
        "--by",
        "org",
        "--json",
    ]));
    let report: Value = serde_json::from_str(&report).unwrap();
    let rows = report["rows"].as_array().unwrap();
    // The three direct customers and the seller's own usage; the seller's two
    // customers are priced by the seller, so the top's view leaves them out.
    let mut orgs: Vec<&str> = rows.iter().map(|r| r["org"].as_str().unwrap()).collect();
    orgs.sort();
    assert_eq!(orgs, ["acme", "contoso", "globex", "initech"], "{report}");
    for r in rows {
        let org = r["org"].as_str().unwrap();
        let customer = proforma_exact(dir, org);
        let partner = json(&dir.join(format!("partner/invoices/{org}.json")));
        assert_eq!(dec(&r["proforma"]), customer, "{org}");
        assert_eq!(dec(&r["actual"]), dec(&partner["exact_total"]), "{org}");
        assert_eq!(
            dec(&r["margin"]),
            customer - dec(&partner["exact_total"]),
            "{org}"
        );
    }
    // Largest pro forma first.
    let p: Vec<Decimal> = rows.iter().map(|r| dec(&r["proforma"])).collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]), "{p:?}");
}

#[test]
#[cfg(not(feature = "report"))]
fn report_without_the_feature_says_how_to_get_it() {
    let w = Workdir::new();
    let o = w.run([
        "report",
        "--out",
        w.path().to_str().unwrap(),
        "--period",
        "2026-10",
    ]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("--features report"), "{stderr}");
}

#[test]
#[cfg(not(feature = "distributed"))]
fn cluster_without_the_feature_says_how_to_get_it() {
    let w = Workdir::new();
    let config = repo().join("sample_data/billxfer.toml");
    let out = w.join("out");
    for args in [
        vec![
            "run",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--cluster",
            "df://127.0.0.1:50050",
        ],
        vec!["cluster", "scheduler"],
    ] {
        let o = w.run(&args);
        assert!(!o.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains("--features distributed"), "{stderr}");
    }
    assert!(!out.join("2026-10").exists(), "nothing was published");
}

#[test]
#[cfg(feature = "report")]
fn report_views_and_their_limits() {
    let w = Workdir::new();
    let dir = run_sample(w.path(), &[]);
    let out = w.path().to_str().unwrap();
    // The customer view shows pro forma only, for one org.
    let csv = ok(&w.run([
        "report",
        "--out",
        out,
        "--period",
        "2026-10",
        "--org",
        "acme",
        "--by",
        "account,service",
        "--customer-view",
        "--csv",
    ]));
    let header = csv.lines().next().unwrap();
    assert_eq!(header, "account,service,proforma");
    assert!(!csv.contains("2222"), "{csv}");
    let sum: Decimal = csv
        .lines()
        .skip(1)
        .map(|l| Decimal::from_str(l.rsplit(',').next().unwrap()).unwrap())
        .sum();
    assert_eq!(sum, proforma_exact(&dir, "acme"));
    // --top keeps the N largest.
    let top = ok(&w.run([
        "report",
        "--out",
        out,
        "--period",
        "2026-10",
        "--by",
        "org,service",
        "--top",
        "2",
        "--json",
    ]));
    let top: Value = serde_json::from_str(&top).unwrap();
    assert_eq!(top["rows"].as_array().unwrap().len(), 2);
    // The actual track covers the partner's own org as well.
    let actual = ok(&w.run([
        "report", "--out", out, "--period", "2026-10", "--track", "actual", "--json",
    ]));
    let actual: Value = serde_json::from_str(&actual).unwrap();
    let orgs: Vec<&str> = actual["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["org"].as_str().unwrap())
        .collect();
    assert!(orgs.contains(&"northwind"), "{orgs:?}");
    assert!(actual["rows"][0].get("proforma").is_none());
    // Refusals.
    for (args, expect) in [
        (vec!["--customer-view"], "--org"),
        (
            vec!["--customer-view", "--org", "acme", "--track", "actual"],
            "confidential",
        ),
        (vec!["--by", "colour"], "unknown --by"),
    ] {
        let mut a = vec!["report", "--out", out, "--period", "2026-10"];
        a.extend(args);
        let o = w.run(&a);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{a:?}: {err}");
    }
    // No exports: a clear message.
    let none = w.join("none");
    run_sample(&none, &["--exports", "none"]);
    let o = w.run([
        "report",
        "--out",
        none.to_str().unwrap(),
        "--period",
        "2026-10",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--exports"));
    assert!(!none.join("2026-10/customers/acme/cur").exists());
}

#[test]
fn validate_focus_rejects_a_broken_file_naming_row_and_column() {
    let w = Workdir::new();
    let dir = run_sample(w.path(), &["--format", "csv"]);
    let good = dir.join("customers/acme/focus/acme-2026-10.csv");
    let text = fs::read_to_string(&good).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let cat = header.iter().position(|h| *h == "ChargeCategory").unwrap();
    let mut cells: Vec<String> = lines[1].split(',').map(String::from).collect();
    cells[cat] = "Fee".into();
    lines[1] = cells.join(",");
    let bad = w.write("bad.csv", lines.join("\n") + "\n");
    let o = w.run(["validate-focus", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("row 1, column ChargeCategory"), "{out}");
}

#[test]
fn csv_exports_neutralize_formulas() {
    // A config whose org name starts with `=`: the CUR CSV carries it in bill_payer_account_name.
    let w = Workdir::new();
    let sample = repo().join("sample_data");
    let config = fs::read_to_string(sample.join("billxfer.toml"))
        .unwrap()
        .replace(
            "name = \"Acme Corporation\"",
            "name = \"=HYPERLINK(\\\"http://x\\\")\"",
        )
        .replace("files = [\"", &format!("files = [\"{}/", sample.display()))
        .replace(", \"acme/", &format!(", \"{}/acme/", sample.display()))
        .replace("rates = \"", &format!("rates = \"{}/", sample.display()))
        .replace(
            "discount_reports = [\"",
            &format!("discount_reports = [\"{}/", sample.display()),
        )
        .replace(
            "logo = \"logo.svg\"",
            &format!("logo = \"{}/logo.svg\"", sample.display()),
        );
    let path = w.write("f.toml", config);
    let out = w.join("out");
    ok(&w.run([
        "run",
        "--config",
        path.to_str().unwrap(),
        "--period",
        "2026-10",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--format",
        "csv",
    ]));
    let cur = fs::read_to_string(out.join("2026-10/customers/acme/cur/acme-2026-10.csv")).unwrap();
    assert!(
        cur.contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
        "{}",
        cur.lines().nth(1).unwrap()
    );
    for line in cur.lines() {
        for cell in line.split(',') {
            assert!(!cell.starts_with('='), "{line}");
        }
    }
    // Negative numbers are numbers, not text: they keep their sign.
    assert!(cur.contains(",-25.0,") || cur.contains(",-25,"), "{cur}");
}

#[test]
fn customer_exports_of_a_generated_month_hold_no_partner_secret() {
    use arrow::array::{Array, AsArray};
    let w = Workdir::new();
    let base = w.join("base");
    ok(&w.run([
        "generate",
        "--orgs",
        "4",
        "--lines",
        "20000",
        "--period",
        "2026-10",
        "--seed",
        "7",
        "--out",
        base.to_str().unwrap(),
    ]));
    let out = w.join("out");
    ok(&w.run([
        "run",
        "--config",
        base.join("billxfer.toml").to_str().unwrap(),
        "--period",
        "2026-10",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    let dir = out.join("2026-10");
    // Secrets from the inputs: payer and invoice ids, and every non-public discount amount.
    let mut secrets: std::collections::BTreeSet<String> = Default::default();
    // Customer orgs' inputs only (the partner's own org has discounts of its own).
    for f in files_under(&base, "parquet")
        .into_iter()
        .filter(|f| !f.starts_with(base.join("partner")))
    {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            fs::File::open(&f).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for b in reader {
            let b = b.unwrap();
            let text = |n: &str| {
                arrow::compute::cast(
                    b.column_by_name(n).unwrap(),
                    &arrow::datatypes::DataType::Utf8,
                )
                .unwrap()
            };
            let (payer, invoice, types) = (
                text("bill_payer_account_id"),
                text("bill_invoice_id"),
                text("line_item_line_item_type"),
            );
            let cost = b
                .column_by_name("line_item_unblended_cost")
                .unwrap()
                .as_primitive::<arrow::datatypes::Float64Type>()
                .clone();
            for i in 0..b.num_rows() {
                for a in [&payer, &invoice] {
                    let s = a.as_string::<i32>();
                    if s.is_valid(i) && !s.value(i).is_empty() {
                        secrets.insert(s.value(i).to_string());
                    }
                }
                let t = types.as_string::<i32>().value(i);
                if t.ends_with("Discount") && t != "BundledDiscount" {
                    let c = cost.value(i);
                    if c.abs() >= 0.1 {
                        secrets.insert(format!("{c}"));
                    }
                }
            }
        }
    }
    assert!(secrets.len() >= 3, "{secrets:?}");
    let customers: Vec<PathBuf> = files_under(&dir.join("customers"), "parquet")
        .into_iter()
        .chain(files_under(&dir.join("customers"), "json"))
        .chain(files_under(&dir.join("customers"), "csv"))
        .chain(files_under(&dir.join("customers"), "html"))
        .collect();
    assert!(customers.len() >= 4 * 5, "{customers:?}");
    let mut partner_totals = Vec::new();
    for inv in files_under(&dir.join("partner/invoices"), "json") {
        let v = json(&inv);
        partner_totals.push((inv.clone(), v["exact_total"].as_str().unwrap().to_string()));
    }
    // Amounts are compared as whole numbers (so -0.43 does not match -0.4312), ids as text.
    let secret_numbers: Vec<Decimal> = secrets
        .iter()
        .filter_map(|s| Decimal::from_str(s).ok())
        .collect();
    for path in &customers {
        let text = readable_text(&path.to_string_lossy(), &fs::read(path).unwrap());
        for s in secrets.iter().filter(|s| Decimal::from_str(s).is_err()) {
            assert!(
                !text.contains(s.as_str()),
                "{} contains the partner secret {s}",
                path.display()
            );
        }
        for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')) {
            if let Ok(v) = Decimal::from_str(token) {
                assert!(
                    !secret_numbers.contains(&v),
                    "{} contains the partner's discount amount {token}",
                    path.display()
                );
            }
        }
        for t in [
            "EdpDiscount",
            "SppDiscount",
            "PrivateRateDiscount",
            "net_unblended",
        ] {
            assert!(!text.contains(t), "{} contains {t}", path.display());
        }
        for (inv, total) in &partner_totals {
            if total.len() > 5 {
                assert!(
                    !text.contains(total.as_str()),
                    "{} contains the actual total {total} of {}",
                    path.display(),
                    inv.display()
                );
            }
        }
    }
}

/// A hand-made month for the roll-up tests: org `acme` (management account
/// 111100000001, member 111100000002), passthrough, actual = billed, so every
/// exported amount is the input's own cost.
///
/// | # | account | type  | product   | usage type           | start (UTC)   | end           | amount | cost   | resource |
/// |---|---------|-------|-----------|----------------------|---------------|---------------|--------|--------|----------|
/// | 1 | …0002   | Usage | AmazonEC2 | USE1-BoxUsage:t3.micro | 10-01 01:00 | 10-01 02:00   | 1      | 0.0104 | i-1 |
/// | 2 | …0002   | Usage | AmazonEC2 | USE1-BoxUsage:t3.micro | 10-01 02:00 | 10-01 03:00   | 1      | 0.0104 | i-2 |
/// | 3 | …0002   | Usage | AmazonEC2 | USE1-BoxUsage:t3.micro | 10-02 05:00 | 10-02 06:00   | 2      | 0.0208 | i-1 |
/// | 4 | …0002   | Usage | AmazonS3  | TimedStorage-ByteHrs   | 10-01 00:00 | 10-02 00:00   | 10.5   | 0.2415 | b   |
/// | 5 | …0002   | Usage | AmazonS3  | TimedStorage-ByteHrs   | 10-02 00:00 | 10-03 00:00   | 10.5   | 0.2415 | b   |
/// | 6 | …0002   | Tax   | AmazonEC2 |                        | 10-01 00:00 | 11-01 00:00   | 1      | 0.01   |     |
/// | 7 | …0001   | Usage | AmazonEC2 | USE1-BoxUsage:t3.micro | 10-01 20:00 | 10-01 21:00   | 1      | 0.0104 | i-7 |
/// | 8 | …0002   | Usage | AmazonEC2 | USE1-BoxUsage:t3.micro | 10-02 07:00 | 10-02 08:00   | 1      | 0.0104 | i-3 |
///
/// Total 0.5554. Line-only columns (resource id, rates) differ between rows of
/// a group and are dropped; every other column is a key.
fn rollup_month(w: &Workdir) -> PathBuf {
    let rows = [
        (
            "111100000002",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:t3.micro",
            "RunInstances",
            "2026-10-01T01:00:00Z",
            "2026-10-01T02:00:00Z",
            "1",
            "0.0104",
            "i-1",
            "t3.micro hour",
        ),
        (
            "111100000002",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:t3.micro",
            "RunInstances",
            "2026-10-01T02:00:00Z",
            "2026-10-01T03:00:00Z",
            "1",
            "0.0104",
            "i-2",
            "t3.micro hour",
        ),
        (
            "111100000002",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:t3.micro",
            "RunInstances",
            "2026-10-02T05:00:00Z",
            "2026-10-02T06:00:00Z",
            "2",
            "0.0208",
            "i-1",
            "t3.micro hour",
        ),
        (
            "111100000002",
            "Usage",
            "AmazonS3",
            "TimedStorage-ByteHrs",
            "PutObject",
            "2026-10-01T00:00:00Z",
            "2026-10-02T00:00:00Z",
            "10.5",
            "0.2415",
            "b",
            "S3 storage",
        ),
        (
            "111100000002",
            "Usage",
            "AmazonS3",
            "TimedStorage-ByteHrs",
            "PutObject",
            "2026-10-02T00:00:00Z",
            "2026-10-03T00:00:00Z",
            "10.5",
            "0.2415",
            "b",
            "S3 storage",
        ),
        (
            "111100000002",
            "Tax",
            "AmazonEC2",
            "",
            "",
            "2026-10-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
            "1",
            "0.01",
            "",
            "Tax for product code AmazonEC2",
        ),
        (
            "111100000001",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:t3.micro",
            "RunInstances",
            "2026-10-01T20:00:00Z",
            "2026-10-01T21:00:00Z",
            "1",
            "0.0104",
            "i-7",
            "t3.micro hour",
        ),
        (
            "111100000002",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:t3.micro",
            "RunInstances",
            "2026-10-02T07:00:00Z",
            "2026-10-02T08:00:00Z",
            "1",
            "0.0104",
            "i-3",
            "t3.micro hour",
        ),
    ];
    let mut csv = String::from("bill_billing_period_start_date,bill_payer_account_id,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_operation,line_item_usage_start_date,line_item_usage_end_date,line_item_usage_amount,line_item_unblended_cost,line_item_unblended_rate,line_item_resource_id,line_item_line_item_description\n");
    for (account, lt, product, usage_type, op, start, end, amount, cost, resource, description) in
        rows
    {
        // The rate differs per row (a line-only column): it must not split groups.
        let rate = format!("0.0{}", resource.len() + cost.len());
        csv.push_str(&format!(
            "2026-10-01T00:00:00Z,900000000001,{account},{lt},{product},{usage_type},{op},{start},{end},{amount},{cost},{rate},{resource},{description}\n"
        ));
    }
    let input = w.write("in/acme.csv", csv);
    w.write(
        "in/billxfer.toml",
        format!(
            "[partner]\nid = \"p\"\nname = \"P\"\nmanagement_account = \"900000000001\"\n\n[actual]\nmode = \"billed\"\n\n[[orgs]]\nid = \"acme\"\nname = \"Acme\"\nmanagement_account = \"111100000001\"\naccounts = [\"111100000002\"]\nfiles = [{:?}]\nplan = \"passthrough\"\nallow_passthrough = true\ntransfer = {{ start = \"2026-01\" }}\n",
            input.to_str().unwrap()
        ),
    )
}

/// The named columns of a CSV export, row by row (numbers normalized, so
/// `0.0208`, `0.02080` and `2.08E-2` compare equal), sorted.
fn csv_columns(path: &Path, names: &[&str]) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r.headers().unwrap().clone();
    let at: Vec<usize> = names
        .iter()
        .map(|n| {
            header
                .iter()
                .position(|h| h == *n)
                .unwrap_or_else(|| panic!("{}: no column {n} in {header:?}", path.display()))
        })
        .collect();
    let mut rows: Vec<Vec<String>> = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            at.iter()
                .map(|&i| {
                    let c = &rec[i];
                    match Decimal::from_str(c).or_else(|_| Decimal::from_scientific(c)) {
                        Ok(d) if !c.contains('T') => d.normalize().to_string(),
                        _ => c.to_string(),
                    }
                })
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    v.sort();
    v
}

#[test]
fn daily_and_monthly_rollups_of_a_hand_made_month() {
    let w = Workdir::new();
    let config = rollup_month(&w);
    let cur_cols = [
        "line_item_usage_account_id",
        "line_item_line_item_type",
        "line_item_product_code",
        "line_item_usage_start_date",
        "line_item_usage_end_date",
        "line_item_usage_amount",
        "line_item_unblended_cost",
    ];
    let focus_cols = [
        "SubAccountId",
        "ChargeCategory",
        "x_ServiceCode",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "ConsumedQuantity",
        "BilledCost",
    ];
    // By hand: rows 1+2 and 3+8 merge (same keys, same day); the tax keeps its month-long end.
    let daily: &[&[&str]] = &[
        &[
            "111100000002",
            "Usage",
            "AmazonEC2",
            "2026-10-01T00:00:00Z",
            "2026-10-01T03:00:00Z",
            "2",
            "0.0208",
        ],
        &[
            "111100000002",
            "Usage",
            "AmazonEC2",
            "2026-10-02T00:00:00Z",
            "2026-10-02T08:00:00Z",
            "3",
            "0.0312",
        ],
        &[
            "111100000002",
            "Usage",
            "AmazonS3",
            "2026-10-01T00:00:00Z",
            "2026-10-02T00:00:00Z",
            "10.5",
            "0.2415",
        ],
        &[
            "111100000002",
            "Usage",
            "AmazonS3",
            "2026-10-02T00:00:00Z",
            "2026-10-03T00:00:00Z",
            "10.5",
            "0.2415",
        ],
        &[
            "111100000002",
            "Tax",
            "AmazonEC2",
            "2026-10-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
            "1",
            "0.01",
        ],
        &[
            "111100000001",
            "Usage",
            "AmazonEC2",
            "2026-10-01T00:00:00Z",
            "2026-10-01T21:00:00Z",
            "1",
            "0.0104",
        ],
    ];
    // By hand: one row per key over the month, dated by the billing period.
    let monthly: &[&[&str]] = &[
        &[
            "111100000002",
            "Usage",
            "AmazonEC2",
            "2026-10-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
            "5",
            "0.052",
        ],
        &[
            "111100000002",
            "Usage",
            "AmazonS3",
            "2026-10-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
            "21",
            "0.483",
        ],
        &[
            "111100000002",
            "Tax",
            "AmazonEC2",
            "2026-10-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
            "1",
            "0.01",
        ],
        &[
            "111100000001",
            "Usage",
            "AmazonEC2",
            "2026-10-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
            "1",
            "0.0104",
        ],
    ];
    // FOCUS: the same groups; ChargeCategory for the line type, a Tax row's quantity is null.
    let focus_of = |rows: &[&[&str]]| -> Vec<Vec<String>> {
        let mut v: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut r: Vec<String> = r.iter().map(|c| c.to_string()).collect();
                if r[1] == "Tax" {
                    r[5] = String::new();
                }
                r
            })
            .collect();
        v.sort();
        v
    };
    for (granularity, expected) in [("daily", daily), ("monthly", monthly)] {
        let dir = common::run_october(
            &config,
            &w.join(format!("{granularity}-csv")),
            &["--granularity", granularity, "--format", "csv"],
        );
        let cur = dir.join("customers/acme/cur/acme-2026-10.csv");
        assert_eq!(
            csv_columns(&cur, &cur_cols),
            strings(expected),
            "{granularity} CUR"
        );
        // Line-only columns are gone.
        let header = fs::read_to_string(&cur).unwrap();
        let header = header.lines().next().unwrap();
        for gone in ["line_item_resource_id", "line_item_unblended_rate"] {
            assert!(!header.contains(gone), "{granularity}: {header}");
        }
        for focus in [
            dir.join("customers/acme/focus/acme-2026-10.csv"),
            dir.join("partner/focus/acme-2026-10.csv"),
        ] {
            assert_eq!(
                csv_columns(&focus, &focus_cols),
                focus_of(expected),
                "{granularity} {}",
                focus.display()
            );
            let header = fs::read_to_string(&focus).unwrap();
            assert!(!header.lines().next().unwrap().contains("ResourceId"));
        }
        // The listing counts rolled-up rows and keeps the exact totals.
        let listing = json(&dir.join("exports.json"));
        assert_eq!(listing["granularity"], granularity);
        let files = listing["files"].as_array().unwrap();
        // The partner's own org has no input: an empty partner file.
        let (acme, own): (Vec<&Value>, Vec<&Value>) =
            files.iter().partition(|f| f["org"] == "acme");
        assert_eq!((acme.len(), own.len()), (3, 1), "{listing}");
        assert_eq!(own[0]["rows"], 0, "{listing}");
        for f in acme {
            assert_eq!(f["rows"].as_u64(), Some(expected.len() as u64), "{f}");
            assert_eq!(
                dec(&f["cost_total"]),
                Decimal::from_str("0.5554").unwrap(),
                "{f}"
            );
            assert!(dir.join(f["path"].as_str().unwrap()).is_file(), "{f}");
        }
        // No staging folder is left (or made).
        assert!(!dir.join(".line").exists());
        // Parquet: the same rows; CUR sums as doubles, FOCUS sums as exact decimals.
        let pq = common::run_october(
            &config,
            &w.join(format!("{granularity}-parquet")),
            &["--granularity", granularity],
        );
        for (rel, cost, t) in [
            (
                "customers/acme/cur/acme-2026-10.parquet",
                "line_item_unblended_cost",
                "Float64",
            ),
            (
                "customers/acme/focus/acme-2026-10.parquet",
                "BilledCost",
                "Decimal128(38, 10)",
            ),
            (
                "partner/focus/acme-2026-10.parquet",
                "BilledCost",
                "Decimal128(38, 10)",
            ),
        ] {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                fs::File::open(pq.join(rel)).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            let mut rows = 0;
            for b in reader {
                let b = b.unwrap();
                rows += b.num_rows();
                let f = b.schema().field_with_name(cost).unwrap().clone();
                assert_eq!(f.data_type().to_string(), t, "{granularity} {rel}");
            }
            assert_eq!(rows, expected.len(), "{granularity} {rel}");
        }
        // A re-run, with another thread count, gives the same bytes.
        for (format, first) in [("csv", &dir), ("parquet", &pq)] {
            let again = common::run_october(
                &config,
                &w.join(format!("{granularity}-{format}-again")),
                &[
                    "--granularity",
                    granularity,
                    "--format",
                    format,
                    "--threads",
                    "1",
                ],
            );
            let mut n = 0;
            for f in files_under(first, format) {
                let rel = f.strip_prefix(first).unwrap();
                if rel.starts_with("customers/acme/invoice.csv") || rel.starts_with("quarantine") {
                    continue;
                }
                n += 1;
                assert_eq!(
                    fs::read(&f).unwrap(),
                    fs::read(again.join(rel)).unwrap(),
                    "{granularity}: {} differs on a re-run",
                    rel.display()
                );
            }
            assert!(n >= 3, "{granularity} {format}: {n} files compared");
        }
    }
}

/// An org of two files (Parquet, then CSV) under a custom tiered rate: each file
/// is its own rating task, whose export part is joined to the other's, and the
/// tier charge, known only at month end, is split over the S3 rows of both
/// files in file order.
#[test]
fn an_orgs_files_are_exported_in_one_pass_with_month_end_charges_split_across_them() {
    use arrow::array::{ArrayRef, StringArray};
    use std::sync::Arc;
    let w = Workdir::new();
    let header = [
        "bill_billing_period_start_date",
        "bill_payer_account_id",
        "line_item_usage_account_id",
        "line_item_line_item_type",
        "line_item_product_code",
        "line_item_usage_type",
        "line_item_usage_start_date",
        "line_item_usage_amount",
        "line_item_unblended_cost",
        "line_item_resource_id",
    ];
    let row = |usage_type: &str, product: &str, amount: &str, cost: &str, resource: &str| {
        vec![
            "2026-10-01T00:00:00Z".to_string(),
            "900000000001".into(),
            "111111111112".into(),
            "Usage".into(),
            product.into(),
            usage_type.into(),
            "2026-10-03T00:00:00Z".into(),
            amount.into(),
            cost.into(),
            resource.into(),
        ]
    };
    let first = [
        row(
            "USE1-TimedStorage-ByteHrs",
            "AmazonS3",
            "6",
            "0.138",
            "bucket-a",
        ),
        row("USE1-BoxUsage:t3.micro", "AmazonEC2", "1", "0.0104", "i-1"),
    ];
    let columns: Vec<(&str, ArrayRef)> = header
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let values: Vec<&str> = first.iter().map(|r| r[c].as_str()).collect();
            (*name, Arc::new(StringArray::from(values)) as ArrayRef)
        })
        .collect();
    w.write("input/a.parquet", common::parquet_bytes(columns));
    let second = row(
        "USE1-TimedStorage-ByteHrs",
        "AmazonS3",
        "8",
        "0.184",
        "bucket-b",
    );
    w.write(
        "input/b.csv",
        format!("{}\n{}\n", header.join(","), second.join(",")),
    );
    w.write_config(format!(
        "{}\n[[plans]]\nid = \"tiers\"\nrules = [ {{ id = \"s3\", scope = \"sku\", service = \"AmazonS3\", usage_type = \"USE1-TimedStorage-ByteHrs\", type = \"custom\", tiers = [ {{ from = \"0\", rate = \"0.03\" }}, {{ from = \"10\", rate = \"0.01\" }} ] }} ]\n",
        common::ACME_CONFIG.replace("plan = \"basic\"", "plan = \"tiers\"")
    ));
    for format in ["csv", "parquet"] {
        ok(&w.run_config("run", "2026-10", &["--format", format]));
        let dir = w.join("out/2026-10");
        // By hand: 14 units of S3 in the month, 10 at 0.03 and 4 at 0.01 = 0.34, split by
        // cumulative usage in file order: 0.34 × 6/14 = 0.1457142857 (floored) for
        // bucket-a (file a), the rest, 0.1942857143, for bucket-b (file b).
        let focus = dir.join(format!("customers/acme/focus/acme-2026-10.{format}"));
        let mut found = resource_costs(&focus);
        found.sort();
        assert_eq!(
            found,
            vec![
                ("bucket-a".to_string(), "0.1457142857".to_string()),
                ("bucket-b".to_string(), "0.1942857143".to_string()),
                ("i-1".to_string(), "0.0104".to_string()),
            ],
            "{format}"
        );
        let listing = json(&dir.join("exports.json"));
        let files: Vec<&Value> = listing["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["org"] == "acme")
            .collect();
        assert_eq!(files.len(), 3, "{format}");
        let inv = manifest_org(&json(&dir.join("manifest.json")), "acme");
        for f in files {
            assert_eq!(f["rows"], 3, "{format}: {f}");
            let total = Decimal::from_str(f["cost_total"].as_str().unwrap()).unwrap();
            if f["kind"] == "partner_focus" {
                // Actual: 0.138 + 0.0104 + 0.184.
                assert_eq!(total, Decimal::from_str("0.3324").unwrap(), "{f}");
            } else {
                assert_eq!(total, Decimal::from_str("0.3504").unwrap(), "{f}");
            }
        }
        assert_eq!(inv["proforma_invoice_total"], "0.35", "{inv}");
        // Nothing of the parts is left behind.
        assert!(!dir.join(".parts").exists());
    }
}

/// (ResourceId, BilledCost normalized) of each row of a FOCUS export, CSV or Parquet.
fn resource_costs(path: &Path) -> Vec<(String, String)> {
    use arrow::array::{Array, AsArray};
    let norm = |t: &str| Decimal::from_str(t).unwrap().normalize().to_string();
    if path.extension().is_some_and(|e| e == "csv") {
        let mut r = csv::Reader::from_path(path).unwrap();
        let h = r.headers().unwrap().clone();
        let at = |n: &str| h.iter().position(|x| x == n).unwrap();
        let (res, cost) = (at("ResourceId"), at("BilledCost"));
        return r
            .records()
            .map(|rec| {
                let rec = rec.unwrap();
                (rec[res].to_string(), norm(&rec[cost]))
            })
            .collect();
    }
    let file = fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let text = |n: &str| {
            arrow::compute::cast(
                batch.column_by_name(n).unwrap(),
                &arrow::datatypes::DataType::Utf8,
            )
            .unwrap()
        };
        let (res, cost) = (text("ResourceId"), text("BilledCost"));
        let (res, cost) = (res.as_string::<i32>(), cost.as_string::<i32>());
        for i in 0..batch.num_rows() {
            out.push((res.value(i).to_string(), norm(cost.value(i))));
            assert!(res.is_valid(i));
        }
    }
    out
}
