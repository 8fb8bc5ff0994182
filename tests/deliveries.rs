//! Real AWS deliveries (issue 10): export roots with several versions, duplicate files
//! and rows, multi-cloud FOCUS, account ids without leading zeros, loader columns. Each
//! case is a small month the test writes; expected totals are worked out by hand in
//! the comments.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use common::{manifest_org, ok, stderr, Workdir};
use serde_json::Value;

const HEADER: &str = "identity_line_item_id,identity_time_interval,bill_billing_period_start_date,bill_payer_account_id,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_operation,line_item_usage_amount,line_item_currency_code,line_item_unblended_cost,pricing_public_on_demand_rate,pricing_public_on_demand_cost";

/// One CUR 2.0 CSV row of acme's account 111111111112 in March 2026: id, usage type, cost.
fn row(id: &str, usage_type: &str, cost: &str) -> String {
    format!("{id},2026-03-01T00:00:00Z/2026-03-02T00:00:00Z,2026-03-01T00:00:00Z,900000000001,111111111112,Usage,AmazonEC2,{usage_type},RunInstances,1,USD,{cost},{cost},{cost}")
}

fn csv(rows: &[String]) -> String {
    let mut s = String::from(HEADER);
    for r in rows {
        s.push('\n');
        s.push_str(r);
    }
    s.push('\n');
    s
}

fn config(files: &str, extra_run: &str, accounts: &str, plan: &str) -> String {
    format!(
        r#"
[run]
{extra_run}

[partner]
id = "partner"
name = "Partner"
management_account = "900000000001"

{plan}

[[orgs]]
id = "acme"
name = "Acme"
management_account = "111111111111"
accounts = [{accounts}]
files = [{files}]
plan = "{plan_id}"
transfer = {{ start = "2026-01" }}
"#,
        plan_id = if plan.is_empty() { "basic" } else { "p" }
    )
}

/// A folder holding `config_text` as `billxfer.toml`.
fn month(config_text: &str) -> Workdir {
    let m = Workdir::new();
    m.write_config(config_text);
    m
}

/// `billxfer run` of March 2026.
fn run(m: &Workdir) -> Output {
    m.run_config("run", "2026-03", &[])
}

fn manifest(m: &Workdir) -> Value {
    m.json("out/2026-03/manifest.json")
}

fn acme(m: &Workdir) -> Value {
    manifest_org(&manifest(m), "acme")
}

fn fails(o: &Output, code: i32, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {e}");
    assert!(!e.contains("panicked"), "{e}");
    for n in needles {
        assert!(e.contains(n), "stderr lacks `{n}`:\n{e}");
    }
}

fn set_mtime(p: &Path, secs_after_epoch: u64) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs_after_epoch))
        .unwrap();
}

#[test]
fn byte_identical_copies_are_refused_naming_both_paths() {
    let m = month(&config(
        r#""a/*.csv", "b/*.csv""#,
        "",
        r#""111111111112""#,
        "",
    ));
    let text = csv(&[row("L1", "BoxUsage", "10")]);
    m.write("a/cur.csv", &text);
    m.write("b/cur-copy.csv", &text);
    let o = run(&m);
    fails(&o, 1, &["a/cur.csv", "b/cur-copy.csv", "same content"]);
    assert!(!m.join("out/2026-03").exists());
}

#[test]
fn overlapping_snapshots_stop_the_run_by_default() {
    // Two month-to-date snapshots of one export, globbed together: 15.00 and 22.00.
    let m = month(&config(
        r#""export/*/x-*.csv""#,
        "",
        r#""111111111112""#,
        "",
    ));
    m.write(
        "export/snap1/x-00001.csv",
        csv(&[row("L1", "A", "10"), row("L2", "B", "5")]),
    );
    m.write(
        "export/snap2/x-00001.csv",
        csv(&[
            row("L1", "A", "10"),
            row("L2", "B", "5"),
            row("L3", "C", "7"),
        ]),
    );
    let o = run(&m);
    fails(
        &o,
        1,
        &[
            "overlap",
            "snap1/x-00001.csv",
            "snap2/x-00001.csv",
            "share 2 line item(s)",
            "keep-latest",
        ],
    );
}

#[test]
fn keep_latest_bills_the_newer_snapshot_once_and_counts_duplicates() {
    let m = month(&config(
        r#""export/*/x-*.csv""#,
        r#"duplicates = "keep-latest""#,
        r#""111111111112""#,
        "",
    ));
    let old = m.write(
        "export/snap1/x-00001.csv",
        csv(&[row("L1", "A", "10"), row("L2", "B", "5")]),
    );
    let new = m.write(
        "export/snap2/x-00001.csv",
        csv(&[
            row("L1", "A", "10"),
            row("L2", "B", "5"),
            row("L3", "C", "7"),
        ]),
    );
    set_mtime(&old, 1_700_000_000);
    set_mtime(&new, 1_700_100_000);
    ok(&run(&m));
    let acme = acme(&m);
    // Only snap2 is billed: 10 + 5 + 7 = 22.00; snap1's two rows are duplicates.
    assert_eq!(acme["actual_invoice_total"], "22.00");
    assert_eq!(acme["rows_read"], 5);
    assert_eq!(acme["rows_rated"], 3);
    assert_eq!(acme["rows_duplicate"], 2);
    assert_eq!(acme["rows_quarantined"], 0);
    assert_eq!(manifest(&m)["all_checks_passed"], true);
    let q = m.read("out/2026-03/quarantine/acme.csv");
    assert!(q.contains("duplicate of export/snap2/x-00001.csv:1"), "{q}");
    assert!(q.contains("duplicate of export/snap2/x-00001.csv:2"), "{q}");
    // The pro forma export carries the billed rows only.
    let listing = m.json("out/2026-03/exports.json");
    let cur = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().contains("customers/acme/cur/"))
        .unwrap()
        .clone();
    assert_eq!(cur["rows"], 3);
}

#[test]
fn a_line_split_across_two_files_of_one_delivery_is_billed_once_in_full() {
    // AWS repeats identity_line_item_id across the files of one delivery for a split line.
    let m = month(&config(r#""export/x-*.csv""#, "", r#""111111111112""#, ""));
    m.write(
        "export/x-00001.csv",
        csv(&[row("L9", "A", "3"), row("L1", "B", "1")]),
    );
    m.write("export/x-00002.csv", csv(&[row("L9", "A", "4")]));
    ok(&run(&m));
    // 3 + 1 + 4 = 8.00: both parts of L9 are billed.
    assert_eq!(acme(&m)["actual_invoice_total"], "8.00");
    assert_eq!(acme(&m)["rows_rated"], 3);
}

/// A Data Exports root in "create new" mode: two executions and the period-level
/// manifest that AWS rewrites to point at the latest one, plus a stale chunk.
fn data_exports_root(m: &Workdir, period_level: bool) {
    let base = "acme-export/x";
    let e1 = "2026-03-10T01:02:03.000Z-aaaa";
    let e2 = "2026-03-20T01:02:03.000Z-bbbb";
    m.write(
        format!("{base}/data/BILLING_PERIOD=2026-03/{e1}/x-00001.csv"),
        csv(&[row("L1", "A", "10")]),
    );
    m.write(
        format!("{base}/data/BILLING_PERIOD=2026-03/{e2}/x-00001.csv"),
        csv(&[row("M1", "A", "10"), row("M2", "B", "2.5")]),
    );
    // A chunk the latest manifest does not list (AWS empties or leaves them): never billed.
    m.write(
        format!("{base}/data/BILLING_PERIOD=2026-03/{e2}/x-00002.csv"),
        csv(&[row("Z1", "Z", "1000")]),
    );
    let manifest = |e: &str| {
        format!(
            r#"{{"executionId":"{e}","exportArn":"arn:aws:bcm-data-exports:us-east-1:111111111111:export/x","columns":[],"dataFiles":["s3://bucket/prefix/x/data/BILLING_PERIOD=2026-03/{e}/x-00001.csv"],"additionalOutputFiles":[]}}"#
        )
    };
    m.write(
        format!("{base}/metadata/BILLING_PERIOD=2026-03/{e1}/x-Manifest.json"),
        manifest(e1),
    );
    m.write(
        format!("{base}/metadata/BILLING_PERIOD=2026-03/{e2}/x-Manifest.json"),
        manifest(e2),
    );
    if period_level {
        m.write(
            format!("{base}/metadata/BILLING_PERIOD=2026-03/x-Manifest.json"),
            manifest(e2),
        );
    }
}

#[test]
fn a_data_exports_root_bills_the_latest_delivery_from_its_manifests() {
    for period_level in [true, false] {
        let m = month(&config(r#""acme-export/x""#, "", r#""111111111112""#, ""));
        data_exports_root(&m, period_level);
        ok(&run(&m));
        // The second execution only: 10 + 2.5 = 12.50 (not 10 more, not the stale 1000).
        assert_eq!(
            acme(&m)["actual_invoice_total"],
            "12.50",
            "period_level={period_level}"
        );
        let d = &manifest(&m)["deliveries"][0];
        assert_eq!(d["org"], "acme");
        assert_eq!(d["period"], "2026-03");
        assert_eq!(d["files"], 1);
        let chosen = d["manifest"].as_str().unwrap();
        if period_level {
            assert_eq!(
                chosen,
                "acme-export/x/metadata/BILLING_PERIOD=2026-03/x-Manifest.json"
            );
            assert_eq!(d["ignored"].as_array().unwrap().len(), 2);
        } else {
            assert!(chosen.contains("2026-03-20T01:02:03.000Z-bbbb"), "{chosen}");
        }
    }
}

#[test]
fn an_incomplete_latest_delivery_falls_back_to_the_latest_complete_one() {
    let m = month(&config(r#""acme-export/x""#, "", r#""111111111112""#, ""));
    data_exports_root(&m, false);
    fs::remove_file(m.join(
        "acme-export/x/data/BILLING_PERIOD=2026-03/2026-03-20T01:02:03.000Z-bbbb/x-00001.csv",
    ))
    .unwrap();
    ok(&run(&m));
    assert_eq!(acme(&m)["actual_invoice_total"], "10.00");
    let rule = manifest(&m)["deliveries"][0]["rule"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(rule.contains("incomplete"), "{rule}");
}

#[test]
fn a_legacy_cur_root_needs_its_period_level_manifest_to_choose() {
    let m = month(&config(r#""acme-cur/report""#, "", r#""111111111112""#, ""));
    let base = "acme-cur/report/20260301-20260401";
    m.write(
        format!("{base}/aaaa-1111/report-1.csv"),
        csv(&[row("L1", "A", "4")]),
    );
    m.write(
        format!("{base}/bbbb-2222/report-1.csv"),
        csv(&[row("L1", "A", "4"), row("L2", "B", "6")]),
    );
    let manifest = |a: &str| {
        format!(
            r#"{{"assemblyId":"{a}","reportKeys":["prefix/report/20260301-20260401/{a}/report-1.csv"],"billingPeriod":{{"start":"20260301T000000.000Z","end":"20260401T000000.000Z"}}}}"#
        )
    };
    m.write(
        format!("{base}/aaaa-1111/report-Manifest.json"),
        manifest("aaaa-1111"),
    );
    m.write(
        format!("{base}/bbbb-2222/report-Manifest.json"),
        manifest("bbbb-2222"),
    );
    // Without the period-level manifest nothing says which assembly is the latest.
    fails(&run(&m), 1, &["no period-level manifest", "2026-03"]);
    m.write(
        format!("{base}/report-Manifest.json"),
        manifest("bbbb-2222"),
    );
    ok(&run(&m));
    assert_eq!(acme(&m)["actual_invoice_total"], "10.00");
}

#[test]
fn a_period_with_no_rows_fails_listing_the_periods_found() {
    let m = month(&config(r#""in/*.csv""#, "", r#""111111111112""#, ""));
    m.write("in/cur.csv", csv(&[row("L1", "A", "4")]));
    let o = m.run_config("run", "2026-04", &[]);
    fails(
        &o,
        2,
        &[
            "none for 2026-04",
            "periods found: 2026-03",
            "allow_empty_period",
        ],
    );
    assert!(!m.join("out/2026-04").exists());
    let m = month(&config(
        r#""in/*.csv""#,
        "allow_empty_period = true",
        r#""111111111112""#,
        "",
    ));
    m.write("in/cur.csv", csv(&[row("L1", "A", "4")]));
    ok(&m.run_config("run", "2026-04", &[]));
}

#[test]
fn account_ids_without_leading_zeros_are_padded_in_config_and_rows() {
    // The config and the file both lost the leading zero of 011111111112.
    let m = month(&config(r#""in/*.csv""#, "", r#""11111111112""#, ""));
    let text = csv(&[row("L1", "A", "4")]).replace(",111111111112,", ",11111111112,");
    m.write("in/cur.csv", &text);
    let o = m.run_config("run", "2026-03", &[]);
    ok(&o);
    let acme = acme(&m);
    assert_eq!(acme["rows_rated"], 1);
    assert_eq!(acme["actual_invoice_total"], "4.00");
    let inv = m.json("out/2026-03/customers/acme/invoice.json");
    assert_eq!(inv["lines"][0]["account_id"], "011111111112");
    let v = m.run_config("validate", "2026-03", &[]);
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(
        out.contains("`11111111112`") && out.contains("read as 011111111112"),
        "{out}"
    );
    // A 13-digit id is still an error.
    let m = month(&config(r#""in/*.csv""#, "", r#""1111111111123""#, ""));
    m.write("in/cur.csv", &text);
    fails(&run(&m), 2, &["1111111111123", "12 digits"]);
}

#[test]
fn validate_summarizes_by_reason_and_account() {
    let m = month(&config(r#""in/*.csv""#, "", r#""111111111112""#, ""));
    let rows: Vec<String> = (0..50)
        .map(|i| {
            row(&format!("L{i}"), "A", "1")
                .replace(",111111111112,", &format!(",2222222222{:02},", i % 5))
        })
        .collect();
    m.write("in/cur.csv", csv(&rows));
    let o = m.run_config("validate", "2026-03", &[]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("50 row(s) quarantined, by reason:"), "{out}");
    assert!(
        out.contains("      50  usage account N is not an account of org `…`"),
        "{out}"
    );
    assert!(out.contains("by usage account:"), "{out}");
    assert!(out.contains("      10  222222222200 (org `acme`)"), "{out}");
    assert!(out.contains("... and 47 more"), "{out}");
    assert!(out.lines().count() < 30, "{out}");
    let all = m.run_config("validate", "2026-03", &["--all"]);
    assert!(String::from_utf8_lossy(&all.stdout).lines().count() > 50);
}

#[test]
fn loader_columns_never_travel_to_the_customer_cur_export() {
    let m = month(&config(r#""in/*.csv""#, "", r#""111111111112""#, ""));
    let text = csv(&[row("L1", "A", "4")])
        .replacen(
            HEADER,
            &format!("{HEADER},_dlt_id,_dlt_load_id,billing_period,year,month"),
            1,
        )
        .replace(
            "RunInstances,1,USD,4,4,4",
            "RunInstances,1,USD,4,4,4,abc,123,2026-03,2026,3",
        );
    m.write("in/cur.csv", &text);
    ok(&run(&m));
    let listing = m.json("out/2026-03/exports.json");
    let dropped: Vec<&str> = listing["dropped_input_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        dropped,
        ["_dlt_id", "_dlt_load_id", "billing_period", "month", "year"]
    );
    let cur_dir = m.join("out/2026-03/customers/acme/cur");
    for e in fs::read_dir(cur_dir).unwrap() {
        let p = e.unwrap().path();
        let text = common::readable_text(p.to_str().unwrap(), &fs::read(&p).unwrap());
        for c in [
            "_dlt_id",
            "_dlt_load_id",
            "billing_period\n",
            "year\n",
            "month\n",
        ] {
            assert!(!text.contains(c), "{} carries {c}", p.display());
        }
        assert!(text.contains("identity_line_item_id"));
    }
}

#[test]
fn zero_priced_lines_give_no_free_tier_warning_and_no_zero_invoice_lines() {
    let plan = r#"[[plans]]
id = "p"
rules = [{ id = "no-free-tier", scope = "global", type = "tiering", free_tier = false }]"#;
    let m = month(&config(r#""in/*.csv""#, "", r#""111111111112""#, plan));
    let inbound =
        row("L2", "DataTransfer-In-Bytes", "0").replace(",AmazonEC2,", ",AWSDataTransfer,");
    m.write("in/cur.csv", csv(&[row("L1", "A", "4"), inbound]));
    let o = m.run_config("run", "2026-03", &[]);
    ok(&o);
    let e = stderr(&o);
    assert!(!e.contains("free tier"), "{e}");
    let inv = m.json("out/2026-03/customers/acme/invoice.json");
    let lines = inv["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{inv}");
    assert_eq!(lines[0]["service"], "AmazonEC2");
    assert_eq!(inv["total"], "4.00");
    assert_eq!(
        acme(&m)["free_tier_off_unpriced_skus"][0],
        "AWSDataTransfer DataTransfer-In-Bytes"
    );
}

const FOCUS_HEADER: &str = "BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ProviderName,SubAccountId,ServiceName,SkuPriceId,ListCost,BilledCost,EffectiveCost,PricingQuantity,ListUnitPrice,BillingCurrency";

fn focus_row(provider: &str, service: &str, cost: &str) -> String {
    format!("2026-03-01T00:00:00Z,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z,Usage,{provider},111111111112,{service},sku1,{cost},{cost},{cost},1,{cost},USD")
}

#[test]
fn focus_service_names_map_to_product_codes_so_service_rules_match() {
    let plan = r#"[[plans]]
id = "p"
rules = [{ id = "ec2", scope = "service", service = "AmazonEC2", type = "markup", percent = "10" }]"#;
    let m = month(&config(r#""in/*.csv""#, "", r#""111111111112""#, plan));
    m.write(
        "in/focus.csv",
        format!(
            "{FOCUS_HEADER}\n{}\n{}\n",
            focus_row("AWS", "Amazon Elastic Compute Cloud", "100"),
            focus_row("AWS", "Amazon Simple Storage Service", "20")
        ),
    );
    ok(&run(&m));
    let inv = m.json("out/2026-03/customers/acme/invoice.json");
    let lines = inv["lines"].as_array().unwrap();
    let amount = |svc: &str| {
        lines
            .iter()
            .find(|l| l["service"] == svc)
            .unwrap_or_else(|| panic!("no {svc} line: {inv}"))["amount"]
            .clone()
    };
    // 100 × 1.10 = 110.00 for EC2 (the rule matched); S3 at list, 20.00.
    assert_eq!(amount("AmazonEC2"), "110.00");
    assert_eq!(amount("AmazonS3"), "20.00");
}

#[test]
fn rows_of_other_clouds_are_quarantined_as_not_aws() {
    let m = month(&config(r#""in/*.csv""#, "", r#""111111111112""#, ""));
    m.write(
        "in/focus.csv",
        format!(
            "{FOCUS_HEADER}\n{}\n{}\n{}\n{}\n",
            focus_row("AWS", "Amazon Elastic Compute Cloud", "100"),
            focus_row("Microsoft", "Virtual Machines", "30")
                .replace("111111111112", "9f1c2d3e-0000-4a5b-8c7d-123456789abc"),
            focus_row("Google Cloud", "Compute Engine", "40")
                .replace("111111111112", "my-gcp-project"),
            focus_row("Microsoft", "Storage", "5")
                .replace("111111111112", "9f1c2d3e-0000-4a5b-8c7d-123456789abc")
        ),
    );
    let o = m.run_config("run", "2026-03", &[]);
    ok(&o);
    let q = m.read("out/2026-03/quarantine/acme.csv");
    assert!(q.contains("provider Microsoft is not AWS"), "{q}");
    assert!(q.contains("provider Google Cloud is not AWS"), "{q}");
    assert!(!q.contains("is not an account of"), "{q}");
    assert_eq!(acme(&m)["rows_quarantined"], 3);
    assert_eq!(acme(&m)["actual_invoice_total"], "100.00");
    // The run's summary counts them per reason kind.
    let e = stderr(&o);
    assert!(e.contains("3 row(s) quarantined, by reason:"), "{e}");
}
