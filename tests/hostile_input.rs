//! Hostile month, round two (issue 11, cases 3 to 9): inputs that are valid but
//! unusual must be billed, inputs that are ambiguous or wrong must be refused or
//! quarantined with a reason. Expected totals are worked out by hand in comments.
//! docs/RELIABILITY.md lists the cases (74 onwards).

use std::fs;
use std::process::Output;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Date64Array, Float64Array, NullArray, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use serde_json::Value;

mod common;
use common::{manifest_org, parquet_bytes, Workdir};

/// Partner 900000000001; org acme with management account 111111111111.
fn config(transfer: &str) -> String {
    format!(
        r#"
[partner]
id = "partner"
name = "Partner"
management_account = "900000000001"

[[orgs]]
id = "acme"
name = "Acme"
management_account = "111111111111"
accounts = ["111111111112"]
files = ["input/*"]
plan = "basic"
transfer = {transfer}
"#
    )
}

const OPEN: &str = r#"{ start = "2026-01" }"#;

/// A folder with a config and input files.
fn month(transfer: &str, files: &[(&str, &[u8])]) -> Workdir {
    let m = Workdir::new();
    m.mkdir("input");
    m.write_config(config(transfer));
    for (name, bytes) in files {
        m.write(format!("input/{name}"), bytes);
    }
    m
}

fn run(m: &Workdir) -> Output {
    m.run_config("run", "2026-03", &["--quiet"])
}

/// Runs, expecting success; returns acme's manifest entry and quarantine text.
fn billed(w: &Workdir) -> (Value, String) {
    let o = run(w);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "expected success: {stderr}{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let m = w.json("out/2026-03/manifest.json");
    assert_eq!(m["all_checks_passed"], true);
    let acme = manifest_org(&m, "acme");
    let q = fs::read_to_string(w.join("out/2026-03/quarantine/acme.csv")).unwrap_or_default();
    (acme, q)
}

/// Runs, expecting a failure whose message contains every one of `parts`.
fn refused(m: &Workdir, parts: &[&str]) -> String {
    let o = run(m);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "expected a refusal, got success");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for p in parts {
        assert!(stderr.contains(p), "stderr lacks `{p}`: {stderr}");
    }
    assert!(!m.join("out/2026-03").exists());
    stderr
}

fn actual_total(m: &Workdir) -> String {
    let inv = m.json("out/2026-03/partner/invoices/acme.json");
    inv["exact_total"].as_str().unwrap().to_string()
}

fn rated(acme: &Value) -> u64 {
    acme["rows_rated"].as_u64().unwrap()
}

fn quarantined(acme: &Value) -> u64 {
    acme["rows_quarantined"].as_u64().unwrap()
}

const HEADER: &str = "bill_billing_period_start_date,bill_payer_account_id,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_usage_amount,line_item_unblended_cost,line_item_line_item_description";

/// One CSV row of [`HEADER`].
fn row(period: &str, payer: &str, line_type: &str, cost: &str, description: &str) -> String {
    format!("{period},{payer},111111111112,{line_type},AmazonEC2,USE1-BoxUsage:t3.micro,10,{cost},{description}")
}

fn csv(rows: &[String]) -> Vec<u8> {
    let mut s = String::from(HEADER);
    for r in rows {
        s.push('\n');
        s.push_str(r);
    }
    s.push('\n');
    s.into_bytes()
}

const P: &str = "2026-03-01T00:00:00Z";
const PARTNER: &str = "900000000001";

#[test]
fn case_3_a_quoted_line_break_is_valid_csv_and_rows_after_it_keep_their_lines() {
    // Line 1 header; row 1 spans lines 2-3; row 2 is line 4; row 3 (bad cost) line 5.
    let file = csv(&[
        row(P, PARTNER, "Usage", "1.25", "\"two\nlines, of text\""),
        row(P, PARTNER, "Usage", "2.50", "plain"),
        row(P, PARTNER, "Usage", "twelve", "bad cost"),
    ]);
    let m = month(OPEN, &[("cur.csv", &file)]);
    let (acme, q) = billed(&m);
    assert_eq!((rated(&acme), quarantined(&acme)), (2, 1), "{q}");
    // 1.25 + 2.50, both rows billed in full.
    assert_eq!(actual_total(&m), "3.75");
    assert!(!q.contains("unterminated quote"), "{q}");
    let bad = q.lines().find(|l| l.contains("twelve")).unwrap();
    assert!(bad.contains(",3,5,"), "row 3 on line 5: {bad}");
    // An unterminated quote that swallows whole rows is still caught.
    let swallowing = csv(&[
        row(P, PARTNER, "Usage", "1.25", "\"open quote"),
        row(P, PARTNER, "Usage", "2.50", "swallowed"),
        row(P, PARTNER, "Usage", "4.00", "swallowed too"),
    ]);
    let m = month(OPEN, &[("cur.csv", &swallowing)]);
    let (acme, q) = billed(&m);
    assert_eq!(rated(&acme), 0, "{q}");
    assert!(q.contains("unterminated quote"), "{q}");
}

#[test]
fn case_4_a_column_twice_is_an_error_naming_both_positions() {
    let twice = format!(
        "{HEADER},line_item_unblended_cost\n{},9.99\n",
        row(P, PARTNER, "Usage", "1.25", "x")
    );
    refused(
        &month(OPEN, &[("twice.csv", twice.as_bytes())]),
        &[
            "twice.csv",
            "column 8 `line_item_unblended_cost` and column 10 `line_item_unblended_cost`",
        ],
    );
    // Legacy and CUR 2.0 spellings of the same column.
    let mixed = format!(
        "{HEADER},lineItem/UnblendedCost\n{},9.99\n",
        row(P, PARTNER, "Usage", "1.25", "x")
    );
    refused(
        &month(OPEN, &[("mixed.csv", mixed.as_bytes())]),
        &["column 8 `line_item_unblended_cost` and column 10 `lineItem/UnblendedCost`"],
    );
    // Duplicate names in a Parquet schema.
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let columns = vec![
        ("bill_billing_period_start_date", s(P)),
        ("line_item_usage_account_id", s("111111111112")),
        ("line_item_line_item_type", s("Usage")),
        ("line_item_product_code", s("AmazonEC2")),
        ("line_item_usage_amount", s("10")),
        ("line_item_unblended_cost", s("1.25")),
        ("line_item_unblended_cost", s("9.99")),
    ];
    refused(
        &month(OPEN, &[("dup.parquet", &parquet_bytes(columns))]),
        &[
            "dup.parquet",
            "column 6 `line_item_unblended_cost` and column 7",
        ],
    );
    // Unread columns may repeat (tags differing only in case, as real legacy CUR has).
    let tags = format!(
        "{HEADER},resourceTags/user:Name,resourceTags/user:name\n{},a,b\n",
        row(P, PARTNER, "Usage", "1.25", "x")
    );
    let (acme, _) = billed(&month(OPEN, &[("tags.csv", tags.as_bytes())]));
    assert_eq!(rated(&acme), 1);
}

#[test]
fn case_5_format_detection_uses_the_required_columns_of_each_format() {
    // CUR 2.0 with a column named like a FOCUS one: read as CUR.
    let cur = format!(
        "{HEADER},ChargeCategory\n{},Usage\n",
        row(P, PARTNER, "Usage", "1.25", "x")
    );
    let m = month(OPEN, &[("cur.csv", cur.as_bytes())]);
    let (acme, _) = billed(&m);
    assert_eq!(rated(&acme), 1);
    let manifest = m.json("out/2026-03/manifest.json");
    let format = manifest["inputs"][0]["format"].as_str().unwrap();
    assert!(
        format.contains("CUR") && !format.contains("FOCUS"),
        "{format}"
    );
    // Complete for both formats: refused as ambiguous.
    let both = format!(
        "{HEADER},BilledCost,ChargeCategory,BillingPeriodStart\n{},1.25,Usage,{P}\n",
        row(P, PARTNER, "Usage", "1.25", "x")
    );
    refused(
        &month(OPEN, &[("both.csv", both.as_bytes())]),
        &["both.csv", "ambiguous"],
    );
    // A FOCUS file missing BilledCost: the error says why it was taken for FOCUS.
    let focus = "BillingPeriodStart,ChargeCategory,SubAccountId,ServiceName\n2026-03-01T00:00:00Z,Usage,111111111112,AmazonEC2\n";
    refused(&month(OPEN, &[("focus.csv", focus.as_bytes())]), &[
        "read as FOCUS because it has 0 of the 6 columns CUR requires and 2 of the 3 FOCUS requires",
        "BilledCost",
    ]);
}

#[test]
fn case_6_the_payer_of_each_row_is_checked_against_the_transfer() {
    let file = csv(&[
        row(P, PARTNER, "Usage", "1.25", "paid by the partner"),
        row(P, "111111111111", "Usage", "2.50", "paid by the org itself"),
        row(P, "555555555555", "Usage", "4.00", "paid by a stranger"),
        row(P, "", "Usage", "8.00", "no payer"),
    ]);
    let m = month(OPEN, &[("cur.csv", &file)]);
    let (acme, q) = billed(&m);
    assert_eq!((rated(&acme), quarantined(&acme)), (1, 3), "{q}");
    assert_eq!(actual_total(&m), "1.25");
    assert!(
        q.contains("payer 111111111111 is not the partner's bill-transfer account 900000000001"),
        "{q}"
    );
    assert!(q.contains("payer 555555555555 is not"), "{q}");
    assert!(q.contains("missing payer account id"), "{q}");
    // The transfer says the files come from the customer's organization.
    let m = month(
        r#"{ start = "2026-01", source_payer = true }"#,
        &[("cur.csv", &file)],
    );
    let (acme, q) = billed(&m);
    assert_eq!((rated(&acme), quarantined(&acme)), (2, 2), "{q}");
    // 1.25 + 2.50.
    assert_eq!(actual_total(&m), "3.75");
    assert!(q.contains("payer 555555555555 is neither the partner's bill-transfer account 900000000001 nor org `acme`'s management account 111111111111"), "{q}");
}

#[test]
fn case_7_signs_are_checked_per_line_item_type() {
    let file = csv(&[
        row(P, PARTNER, "Usage", "-5.00", "negative usage"),
        row(P, PARTNER, "Credit", "1.00", "positive credit"),
        row(P, PARTNER, "Usage", "10.00", "usage"),
        row(P, PARTNER, "Credit", "-1.00", "credit"),
        row(P, PARTNER, "Tax", "-0.50", "tax on a credit"),
        row(P, PARTNER, "Refund", "0.25", "refund reversal"),
    ]);
    let m = month(OPEN, &[("cur.csv", &file)]);
    let (acme, q) = billed(&m);
    assert_eq!((rated(&acme), quarantined(&acme)), (4, 2), "{q}");
    // 10.00 - 1.00 - 0.50 + 0.25.
    assert_eq!(actual_total(&m), "8.75");
    assert!(
        q.contains("a Usage line cannot have a negative cost"),
        "{q}"
    );
    assert!(
        q.contains("a Credit line cannot have a positive cost"),
        "{q}"
    );
    // FOCUS has no negation category: a negative Usage row is a Savings Plan
    // negation (billed, cancelling its covered usage); a positive Credit is not.
    let focus = "BillingPeriodStart,ChargeCategory,SubAccountId,ServiceName,BilledCost\n\
        2026-03-01T00:00:00Z,Usage,111111111112,AmazonEC2,17.00\n\
        2026-03-01T00:00:00Z,Usage,111111111112,AmazonEC2,-17.00\n\
        2026-03-01T00:00:00Z,Usage,111111111112,AmazonEC2,3.00\n\
        2026-03-01T00:00:00Z,Credit,111111111112,AmazonEC2,1.00\n";
    let m = month(OPEN, &[("focus.csv", focus.as_bytes())]);
    let (acme, q) = billed(&m);
    assert_eq!((rated(&acme), quarantined(&acme)), (3, 1), "{q}");
    // 17.00 - 17.00 + 3.00.
    assert_eq!(actual_total(&m), "3.00");
    assert!(
        q.contains("a Credit line cannot have a positive cost"),
        "{q}"
    );
}

#[test]
fn case_8_timestamps_are_parsed_whole() {
    let cells = [
        ("2026-03-45T99:99:99Z", false),
        ("2026-03-01T24:00:00Z", false),
        ("2026-02-29T00:00:00Z", false), // 2026 is not a leap year
        ("2026-03-01Tgarbage", false),
        ("2026-03-01T00:00:00.0000000001Z", false), // ten fraction digits
        ("2026-03-01", true),
        ("2026-03-01 00:00:00", true),
        ("2026-03-01T00:00:00.000Z", true),
        ("2026-03-15T10:30:00.123456789Z", true),
        ("2026-03-31T23:00:00-00:30", true), // 23:30 UTC, still March
    ];
    let rows: Vec<String> = cells
        .iter()
        .map(|(p, _)| row(p, PARTNER, "Usage", "1.00", "x"))
        .collect();
    let m = month(OPEN, &[("cur.csv", &csv(&rows))]);
    let (acme, q) = billed(&m);
    assert_eq!((rated(&acme), quarantined(&acme)), (5, 5), "{q}");
    for (cell, good) in cells {
        assert_eq!(!q.contains(&format!(",{cell},")), good, "{cell}: {q}");
    }
    assert!(q.contains("2026-03-45T99:99:99Z,not a date"), "{q}");
    // An offset that moves the instant into another month (UTC decides).
    let moved = csv(&[
        row("2026-03-01T00:00:00+02:00", PARTNER, "Usage", "1.00", "x"),
        row(P, PARTNER, "Usage", "1.00", "x"),
    ]);
    let (acme, q) = billed(&month(OPEN, &[("cur.csv", &moved)]));
    assert_eq!(quarantined(&acme), 1);
    assert!(q.contains("the line is for 2026-02"), "{q}");
}

/// One Parquet row of 2.00 whose billing period column is `period`.
fn parquet_with_period(period: ArrayRef) -> Vec<u8> {
    parquet_row(period, Vec::new())
}

/// [`parquet_with_period`]'s row with `more` columns after its own.
fn parquet_row(period: ArrayRef, more: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let mut columns = vec![
        ("bill_billing_period_start_date", period),
        ("bill_payer_account_id", s(PARTNER)),
        ("line_item_usage_account_id", s("111111111112")),
        ("line_item_line_item_type", s("Usage")),
        ("line_item_product_code", s("AmazonEC2")),
        (
            "line_item_usage_amount",
            Arc::new(Float64Array::from(vec![1.0])),
        ),
        ("line_item_unblended_cost", s("2.00")),
    ];
    columns.extend(more);
    parquet_bytes(columns)
}

#[test]
fn case_9b_parquet_columns_of_null_type_read_as_empty() {
    // pyarrow writes a CSV column without any value as arrow's Null type: here the
    // public on-demand cost, the currency and the usage start (an optional number,
    // text and period column). The row rates as if the columns were absent.
    let none = || -> ArrayRef { Arc::new(NullArray::new(1)) };
    let file = parquet_row(
        Arc::new(StringArray::from(vec![P])),
        vec![
            ("pricing_public_on_demand_cost", none()),
            ("line_item_currency_code", none()),
            ("line_item_usage_start_date", none()),
        ],
    );
    let m = month(OPEN, &[("nulls.parquet", &file)]);
    let (acme, q) = billed(&m);
    assert_eq!((rated(&acme), quarantined(&acme)), (1, 0), "{q}");
    assert_eq!(actual_total(&m), "2.00");
}

#[test]
fn case_9_parquet_dates_and_timestamps_of_every_unit_are_read() {
    // 2026-03-01T00:00:00Z = 20513 days = 1772323200 s since 1970.
    let (days, secs) = (20_513i32, 1_772_323_200i64);
    let periods: Vec<(&str, ArrayRef)> = vec![
        ("date32", Arc::new(Date32Array::from(vec![days]))),
        ("date64", Arc::new(Date64Array::from(vec![secs * 1000]))),
        ("ts_s", Arc::new(TimestampSecondArray::from(vec![secs]))),
        (
            "ts_ms_utc",
            Arc::new(TimestampMillisecondArray::from(vec![secs * 1000]).with_timezone("UTC")),
        ),
        (
            "ts_us",
            Arc::new(TimestampMicrosecondArray::from(vec![secs * 1_000_000])),
        ),
        (
            "ts_ns_utc",
            Arc::new(
                TimestampNanosecondArray::from(vec![secs * 1_000_000_000]).with_timezone("+00:00"),
            ),
        ),
    ];
    let files: Vec<(String, Vec<u8>)> = periods
        .into_iter()
        .map(|(name, a)| (format!("{name}.parquet"), parquet_with_period(a)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let m = month(OPEN, &refs);
    let (acme, q) = billed(&m);
    assert_eq!((rated(&acme), quarantined(&acme)), (6, 0), "{q}");
    // Six rows of 2.00.
    assert_eq!(actual_total(&m), "12.00");
    // The day before March, as Date32, is February.
    let feb = parquet_with_period(Arc::new(Date32Array::from(vec![days - 1])));
    let march = parquet_with_period(Arc::new(Date32Array::from(vec![days])));
    let (acme, q) = billed(&month(
        OPEN,
        &[("feb.parquet", &feb), ("mar.parquet", &march)],
    ));
    assert_eq!(quarantined(&acme), 1);
    assert!(q.contains("the line is for 2026-02"), "{q}");
}
