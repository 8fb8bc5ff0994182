//! The Partner Discount Business Report (docs/DISCOUNTS.md) on generated
//! change-data-capture deliveries: inserts, updates of one key, deletes,
//! deliveries out of order, a row for a line that does not exist, and a
//! restatement of a month two months back. Expected figures are by hand.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{ok, stderr, Workdir};

const PAYER: &str = "990000000001";
const CUR: &str = "bill_billing_period_start_date,bill_payer_account_id,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_usage_amount,line_item_currency_code,line_item_unblended_cost,pricing_public_on_demand_rate\n";
const DBR: &str = "dbr_id_pk,row_type,row_modified_date,payer_account_id,invoice_id,billing_period,product_code,linked_account_id,support_discount,psp_discount,total_discount\n";

/// A month of org `c` (account 111000000001): EC2 100.00 and S3 40.00, basic plan.
fn cur(month: &str) -> String {
    format!(
        "{CUR}{month}-01T00:00:00Z,{PAYER},111000000001,Usage,AmazonEC2,BoxUsage,1,USD,100.00,100.00\n{month}-01T00:00:00Z,{PAYER},111000000001,Usage,AmazonS3,Storage,1,USD,40.00,40.00\n"
    )
}

/// A CDC row: key, type, modified, month, product, account, support, psp.
#[allow(clippy::too_many_arguments)] // one argument per column of the report, in its order
fn row(
    key: &str,
    kind: &str,
    modified: &str,
    month: &str,
    product: &str,
    account: &str,
    support: &str,
    psp: &str,
) -> String {
    let total = |a: &str, b: &str| {
        let d = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap_or_default();
        (d(a) + d(b)).to_string()
    };
    format!(
        "{key},{kind},{modified},{PAYER},INV-1,{month},{product},{account},{support},{psp},{}\n",
        total(support, psp)
    )
}

fn month_dir(months: &[&str]) -> Workdir {
    let dir = Workdir::new();
    dir.write_config(
        "[partner]\nid = \"p\"\nname = \"P\"\nmanagement_account = \"990000000001\"\n\n[actual]\ndiscount_reports = [\"dbr/*.csv\"]\n\n[[orgs]]\nid = \"c\"\nname = \"C\"\nmanagement_account = \"111000000001\"\nfiles = [\"cur/*.csv\"]\nplan = \"basic\"\ntransfer = { start = \"2026-01\" }\n",
    );
    for m in months {
        dir.write(format!("cur/{m}.csv"), cur(m));
    }
    dir
}

fn run(dir: &Workdir, period: &str, out: &str) -> (Value, Value) {
    let o = dir
        .command()
        .args(["run", "--config"])
        .arg(dir.config())
        .args(["--period", period, "--out"])
        .arg(dir.join(out))
        .output()
        .unwrap();
    ok(&o);
    let base = Path::new(out).join(period);
    (
        dir.json(base.join("partner/invoices/c.json")),
        dir.json(base.join("manifest.json")),
    )
}

#[test]
fn inserts_updates_and_deletes_apply_in_modification_order() {
    let dir = month_dir(&["2026-10"]);
    // First delivery: two keys inserted.
    dir.write(
        "dbr/1.csv",
        format!(
            "{DBR}{}{}",
            row(
                "K1",
                "INSERT",
                "2026-11-03T06:00:00Z",
                "2026-10",
                "AmazonEC2",
                "111000000001",
                "3.00",
                "1.50"
            ),
            row(
                "K2",
                "INSERT",
                "2026-11-03T06:00:00Z",
                "2026-10",
                "AmazonS3",
                "111000000001",
                "0.80",
                ""
            )
        ),
    );
    // Second delivery: K1 updated twice (the later wins), K2 deleted.
    dir.write(
        "dbr/2.csv",
        format!(
            "{DBR}{}{}{}",
            row(
                "K1",
                "UPDATE",
                "2026-11-10T06:00:00Z",
                "2026-10",
                "AmazonEC2",
                "111000000001",
                "3.20",
                "1.50"
            ),
            row(
                "K1",
                "UPDATE",
                "2026-11-12T06:00:00Z",
                "2026-10",
                "AmazonEC2",
                "111000000001",
                "3.25",
                "1.55"
            ),
            row(
                "K2",
                "DELETE",
                "2026-11-10T06:00:00Z",
                "2026-10",
                "AmazonS3",
                "111000000001",
                "",
                ""
            )
        ),
    );
    // Third delivery arrives last but holds an older change of K1: it must not win.
    dir.write(
        "dbr/3.csv",
        format!(
            "{DBR}{}",
            row(
                "K1",
                "UPDATE",
                "2026-11-05T06:00:00Z",
                "2026-10",
                "AmazonEC2",
                "111000000001",
                "9.99",
                "9.99"
            )
        ),
    );
    let (inv, m) = run(&dir, "2026-10", "out");
    // Billed 140.00; K1's latest state: support 3.25 + psp 1.55 = 4.80.
    assert_eq!(inv["total"], "140.00");
    assert_eq!(inv["partner_discount_total"], "4.80");
    assert_eq!(inv["net_total"], "135.20");
    let lines: Vec<(String, String)> = inv["partner_discounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["component"].as_str().unwrap().into(),
                l["amount"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("psp".to_string(), "1.55".to_string()),
            ("support".into(), "3.25".into())
        ]
    );
    let c = common::manifest_org(&m, "c");
    assert_eq!(c["actual_net_total"], "135.20");
    assert_eq!(c["partner_discounts_by_component"]["support"], "3.25");
    assert_eq!(m["discount_report"]["rows_read"], 6);
    assert_eq!(m["discount_report"]["matched"], 1);
    // The margin report nets the discounts: pro forma 140.00 (basic) - 135.20.
    let margin = dir.read("out/2026-10/partner/margin.csv");
    assert!(
        margin.contains("org,c,,135.20,140.00,4.80,3.43,USD,140.00\n"),
        "{margin}"
    );
    // Never in the customer's files.
    for f in ["invoice.json", "invoice.csv", "invoice.html"] {
        let text = dir.read(format!("out/2026-10/customers/c/{f}"));
        for secret in ["3.25", "1.55", "4.80", "135.20", "K1", "INV-1"] {
            assert!(!text.contains(secret), "{f} holds {secret}");
        }
    }
}

#[test]
fn rows_that_match_no_rated_line_are_reported_not_dropped() {
    let dir = month_dir(&["2026-10"]);
    dir.write(
        "dbr/1.csv",
        format!(
            "{DBR}{}{}{}",
            // A service the org has no line of this month.
            row(
                "K1",
                "INSERT",
                "2026-11-03T06:00:00Z",
                "2026-10",
                "AmazonRDS",
                "111000000001",
                "2.00",
                ""
            ),
            // An account of no org; a bigint that lost its leading zero.
            row(
                "K2",
                "INSERT",
                "2026-11-03T06:00:00Z",
                "2026-10",
                "AmazonEC2",
                "77700000001",
                "1.00",
                ""
            ),
            row(
                "K3",
                "INSERT",
                "2026-11-03T06:00:00Z",
                "2026-10",
                "AmazonEC2",
                "111000000001",
                "1.00",
                ""
            )
        ),
    );
    let (inv, m) = run(&dir, "2026-10", "out");
    assert_eq!(inv["net_total"], "139.00");
    let report = &m["discount_report"];
    assert_eq!(
        (
            report["states_for_period"].as_u64(),
            report["matched"].as_u64()
        ),
        (Some(3), Some(1))
    );
    let unmatched = report["unmatched"].as_array().unwrap();
    let reasons: Vec<&str> = unmatched
        .iter()
        .map(|u| u["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "org `c` has no rated line of account 111000000001 and service AmazonRDS this month",
            "account 077700000001 belongs to no org of the config"
        ]
    );
    assert_eq!(unmatched[0]["total_discount"], "2.00");
}

#[test]
fn a_restatement_two_months_back_changes_that_months_rerun_and_diff_lists_it() {
    let dir = month_dir(&["2026-08", "2026-10"]);
    dir.write(
        "dbr/2026-09-03.csv",
        format!(
            "{DBR}{}",
            row(
                "A1",
                "INSERT",
                "2026-09-03T06:00:00Z",
                "2026-08",
                "AmazonEC2",
                "111000000001",
                "2.00",
                ""
            )
        ),
    );
    let (inv, _) = run(&dir, "2026-08", "before");
    assert_eq!(inv["net_total"], "138.00");
    // November's delivery restates August (two months back) and adds a psp discount.
    dir.write(
        "dbr/2026-11-03.csv",
        format!(
            "{DBR}{}",
            row(
                "A1",
                "UPDATE",
                "2026-11-03T06:00:00Z",
                "2026-08",
                "AmazonEC2",
                "111000000001",
                "2.50",
                "0.75"
            )
        ),
    );
    let (inv, _) = run(&dir, "2026-08", "after");
    assert_eq!(inv["net_total"], "136.75");
    let o = dir.run([
        "diff",
        dir.join("before/2026-08").to_str().unwrap(),
        dir.join("after/2026-08").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("c: partner discount `psp` (none) -> 0.75"),
        "{text}"
    );
    assert!(
        text.contains("c: partner discount `support` 2.00 -> 2.50"),
        "{text}"
    );
    assert!(text.contains("1 org(s) with changed totals"), "{text}");
}

#[test]
fn a_bad_delivery_names_its_file_row_and_column() {
    let dir = month_dir(&["2026-10"]);
    dir.write(
        "dbr/1.csv",
        format!("{DBR}K1,UPSERT,2026-11-03T06:00:00Z,{PAYER},INV-1,2026-10,AmazonEC2,111000000001,1,,1\n"),
    );
    let o = dir.run_config("run", "2026-10", &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("dbr/1.csv: row 2, column `row_type`: `UPSERT` is not INSERT, UPDATE or DELETE"),
        "{e}"
    );
    dir.write("dbr/1.csv", "dbr_id_pk,row_type\nK1,INSERT\n");
    let e = stderr(&dir.run_config("run", "2026-10", &[]));
    assert!(
        e.contains(
            "not a Partner Discount Business Report file: missing column(s) row_modified_date"
        ),
        "{e}"
    );
}

#[test]
fn a_parquet_delivery_with_doubles_and_bigints_reads_as_its_csv_would() {
    use arrow::array::{
        ArrayRef, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use std::sync::Arc;
    let dir = month_dir(&["2026-10"]);
    let text = |v: &[&str]| -> ArrayRef { Arc::new(StringArray::from(v.to_vec())) };
    // 2026-11-03T06:00:00Z and 2026-11-12T06:00:00Z in ms; the update comes first in the file.
    let times: ArrayRef = Arc::new(
        TimestampMillisecondArray::from(vec![1_794_463_200_000, 1_793_685_600_000])
            .with_timezone("UTC"),
    );
    let bytes = common::parquet_bytes(vec![
        ("dbr_id_pk", text(&["K1", "K1"])),
        ("row_type", text(&["UPDATE", "INSERT"])),
        ("row_modified_date", times),
        (
            "payer_account_id",
            Arc::new(Int64Array::from(vec![990000000001, 990000000001])),
        ),
        ("invoice_id", text(&["INV-1", "INV-1"])),
        ("billing_period", text(&["2026-10", "2026-10"])),
        ("product_code", text(&["AmazonEC2", "AmazonEC2"])),
        (
            "linked_account_id",
            Arc::new(Int64Array::from(vec![111000000001, 111000000001])),
        ),
        (
            "support_discount",
            Arc::new(Float64Array::from(vec![3.25, 3.0])),
        ),
        (
            "psp_discount",
            Arc::new(Float64Array::from(vec![1.55, 1.5])),
        ),
        (
            "total_discount",
            Arc::new(Float64Array::from(vec![4.8, 4.5])),
        ),
    ]);
    dir.write("dbr/1.parquet", bytes);
    dir.write_config(
        dir.read("billxfer.toml")
            .replace("dbr/*.csv", "dbr/*.parquet"),
    );
    let (inv, m) = run(&dir, "2026-10", "out");
    // The later modification (listed first) wins: 3.25 + 1.55 = 4.80 off 140.00.
    assert_eq!(inv["partner_discount_total"], "4.80");
    assert_eq!(inv["net_total"], "135.20");
    assert!(m["discount_report"]["warnings"]
        .as_array()
        .unwrap()
        .is_empty());
}
