//! End-to-end tests: the real binary on sample_data/, the real legacy CUR file,
//! re-runs, errors a person will meet.

use std::fs;

mod common;
use common::{
    anonymous_cur_config, json, ok, readable_text, repo, run, run_sample, shared_data, tree_bytes,
    Workdir, ANONYMOUS_CUR,
};

#[test]
fn sample_month_matches_the_hand_worked_totals() {
    let w = Workdir::new();
    let dir = run_sample(w.path(), &[]);
    // Figures from sample_data/EXPECTED.md, worked out by hand there.
    let expected = [
        ("acme", "83.58", "87.96", "157.14", "-25.00", "220.10"),
        ("globex", "34.80", "29.98", "4.70", "-0.16", "34.52"),
        ("initech", "184.51", "91.96", "113.44", "-20.00", "185.40"),
    ];
    for (org, actual, subtotal, fees, credits, total) in expected {
        let inv = json(&dir.join(format!("customers/{org}/invoice.json")));
        assert_eq!(inv["subtotal"], subtotal, "{org} subtotal");
        assert_eq!(inv["fees"], fees, "{org} fees");
        assert_eq!(inv["credits"], credits, "{org} credits");
        assert_eq!(inv["total"], total, "{org} total");
        let partner = json(&dir.join(format!("partner/invoices/{org}.json")));
        assert_eq!(partner["total"], actual, "{org} actual");
    }
    let own = json(&dir.join("partner/invoices/northwind.json"));
    assert_eq!(own["total"], "9.74");
    assert_eq!(own["exact_total"], "9.7392");

    let acme = json(&dir.join("customers/acme/invoice.json"));
    let lines: Vec<(String, String, String)> = acme["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["account_id"].as_str().unwrap().into(),
                l["service"].as_str().unwrap().into(),
                l["amount"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        ("111100000001", "AmazonEC2", "11.52"),
        ("111100000001", "AmazonS3", "21.85"),
        ("111100000002", "AmazonEC2", "4.58"),
        ("111100000002", "AmazonS3", "0.01"),
        ("111100000002", "prod-abc123", "50.00"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(lines, want);
    let support = &acme["custom_line_items"][1];
    assert_eq!(support["id"], "support-pct");
    assert_eq!(support["amount"], "7.14");

    let manifest = json(&dir.join("manifest.json"));
    assert_eq!(manifest["all_checks_passed"], true);
    // Net of the partner's program discounts (EXPECTED.md, "Partner discounts").
    assert_eq!(manifest["totals_customers"]["actual"], "343.54");
    assert_eq!(manifest["totals_customers"]["proforma"], "483.10");
    assert_eq!(manifest["totals_customers"]["margin"], "139.56");
    let report = &manifest["discount_report"];
    assert_eq!(
        (report["rows_read"].as_u64(), report["matched"].as_u64()),
        (Some(6), Some(2))
    );
    assert_eq!(report["unmatched"][0]["key"], "D-1004");
    for (org, net) in [("acme", "83.10"), ("globex", "34.11")] {
        let inv = json(&dir.join(format!("partner/invoices/{org}.json")));
        assert_eq!(inv["net_total"], net, "{org}");
    }
    let initech = json(&dir.join("partner/invoices/initech.json"));
    assert!(initech["net_total"].is_null(), "D-1003 was deleted");
    let orgs = manifest["orgs"].as_array().unwrap();
    let read: u64 = orgs.iter().map(|o| o["rows_read"].as_u64().unwrap()).sum();
    let rated: u64 = orgs.iter().map(|o| o["rows_rated"].as_u64().unwrap()).sum();
    let quarantined: u64 = orgs
        .iter()
        .map(|o| o["rows_quarantined"].as_u64().unwrap())
        .sum();
    assert_eq!((read, rated, quarantined), (38, 33, 5));

    let margin = fs::read_to_string(dir.join("partner/margin.csv")).unwrap();
    assert!(
        margin.contains("org,acme,,83.10,220.10,137.00,62.24,USD,220.10\n"),
        "{margin}"
    );
    assert!(
        margin.contains("org,globex,,34.11,34.52,0.41,1.19,USD,34.52\n"),
        "{margin}"
    );

    // The chain (EXPECTED.md, "Contoso"): what each level charges the one below.
    for (file, total) in [
        ("partner/invoices/contoso.json", "14.98"),
        ("partner/invoices/umbrella.json", "14.20"),
        ("partner/invoices/hooli.json", "12.64"),
        ("sellers/contoso/own/invoice.json", "15.43"),
        ("sellers/contoso/invoices/umbrella.json", "14.63"),
        ("sellers/contoso/invoices/hooli.json", "13.02"),
        // In euros (EXPECTED.md, "Umbrella in euros"): 41.33 USD at 0.8617.
        ("customers/umbrella/invoice.json", "35.61"),
        ("customers/hooli/invoice.json", "12.64"),
    ] {
        assert_eq!(json(&dir.join(file))["total"], total, "{file}");
    }
    let umbrella = json(&dir.join("customers/umbrella/invoice.json"));
    assert_eq!(umbrella["issuer"]["name"], "Contoso Resale Ltd");
    assert_eq!(umbrella["currency"], "EUR");
    let fx = &umbrella["exchange_rate"];
    assert_eq!(
        (fx["rate"].as_str(), fx["date"].as_str()),
        (Some("0.8617"), Some("2026-10-30"))
    );
    assert_eq!(fx["usd_total"], "41.33");
    let amounts: Vec<&str> = umbrella["lines"]
        .as_array()
        .unwrap()
        .iter()
        .chain(umbrella["custom_line_items"].as_array().unwrap())
        .map(|l| l["amount"].as_str().unwrap())
        .collect();
    // 11.04 x 0.8617 = 9.513168, 5.29 x 0.8617 = 4.558393, 25.00 x 0.8617 = 21.5425.
    assert_eq!(amounts, ["9.51", "4.56", "21.54"]);
    let seller = &manifest["sellers"][0];
    assert_eq!(seller["charged_by_top"], "43.08");
    assert_eq!(seller["customers_revenue"], "53.97");
    assert_eq!(seller["margin"], "26.32");
    assert!(
        margin.contains("seller,contoso,,41.82,43.08,1.26,2.92,,\n"),
        "{margin}"
    );
    let contoso = fs::read_to_string(dir.join("sellers/contoso/margin.csv")).unwrap();
    assert!(
        contoso.contains("org,umbrella,,14.63,41.33,26.70,64.60\n"),
        "{contoso}"
    );
    assert!(
        contoso.contains("org,hooli,,13.02,12.64,-0.38,-3.01\n"),
        "{contoso}"
    );
}

#[test]
fn each_quarantined_row_names_its_file_row_and_reason() {
    let w = Workdir::new();
    let dir = run_sample(w.path(), &[]);
    let acme = fs::read_to_string(dir.join("quarantine/acme.csv")).unwrap();
    assert!(acme.contains("acme/cur-2026-10-00001.snappy.parquet,6,,line_item_usage_account_id,222200000001,usage account 222200000001 is not an account of org `acme`"), "{acme}");
    assert!(acme.contains("FlatRateSubscription"), "{acme}");
    let globex = fs::read_to_string(dir.join("quarantine/globex.csv")).unwrap();
    assert!(
        globex.contains("outside the billing period 2026-10"),
        "{globex}"
    );
    let initech = fs::read_to_string(dir.join("quarantine/initech.csv")).unwrap();
    assert!(
        initech.contains("initech/legacy-cur-2026-10.csv,8,9,lineItem/UnblendedCost,abc,"),
        "{initech}"
    );
    assert!(
        initech.contains("the row has 6 fields but the header has 18"),
        "{initech}"
    );
}

#[test]
fn a_rerun_gives_byte_identical_outputs() {
    let a = Workdir::new();
    let b = Workdir::new();
    let first = tree_bytes(&run_sample(a.path(), &[]));
    let second = tree_bytes(&run_sample(b.path(), &[]));
    assert!(first.len() >= 15, "{:?}", first.keys());
    assert_eq!(first, second);
    // And a re-run into the same folder replaces it whole, leaving no temporary folders.
    let again = tree_bytes(&run_sample(a.path(), &[]));
    assert_eq!(first, again);
    let hidden: Vec<_> = fs::read_dir(a.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".2026"))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn customer_files_hold_no_partner_figures_and_no_other_org() {
    let w = Workdir::new();
    let dir = run_sample(w.path(), &[]);
    let files = tree_bytes(&dir.join("customers"));
    // The partner's payer id and AWS invoice id, and the non-public discount and actual figures of the sample.
    let secrets = [
        "900000000001",
        "EUINUS26-000123",
        "1.376",
        "1.38",
        "0.92",
        "2.448",
        "2.45",
        "83.58",
        "34.80",
        "184.51",
        // The chain: the AWS cost of Umbrella, what Northwind charges Contoso for
        // Umbrella and Hooli (Contoso's costs), and Contoso's margin.
        "14.20",
        "14.63",
        "13.02",
        "26.70",
        // The partner's program discounts (discounts/*.csv).
        "0.288",
        "0.192",
        "0.69",
        "D-100",
        "83.10",
        "34.11",
    ];
    let accounts = [
        ("acme", "1111000000"),
        ("globex", "2222000000"),
        ("initech", "3333000000"),
        ("contoso", "4444000000"),
        ("umbrella", "5555000000"),
        ("hooli", "6666000000"),
    ];
    for (path, bytes) in &files {
        let text = readable_text(&path.to_string_lossy(), bytes);
        for s in secrets {
            assert!(
                !text.contains(s),
                "{} contains partner figure {s}",
                path.display()
            );
        }
        for (org, prefix) in accounts {
            if !path.starts_with(format!("{org}/")) {
                assert!(
                    !text.contains(prefix),
                    "{} contains an account of {org}",
                    path.display()
                );
            }
        }
    }
    // invoice.{json,csv,html}, cur/ and focus/ exports for each of the 5 customers
    // (a seller's own files are under sellers/, not customers/).
    assert_eq!(files.len(), 25, "{:?}", files.keys());
}

#[test]
fn real_legacy_cur_file_rates_to_its_unblended_sum() {
    let Some(data) = shared_data(ANONYMOUS_CUR) else {
        return;
    };
    let w = Workdir::new();
    let config = w.write_config(anonymous_cur_config(&data));
    let out = w.join("out");
    ok(&w.run([
        "run",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    let inv = json(&out.join("2023-11/partner/invoices/anon.json"));
    // Σ lineItem/UnblendedCost of the file, per shared/data/README.md.
    assert_eq!(inv["exact_total"], "1.6823086974");
    let manifest = json(&out.join("2023-11/manifest.json"));
    assert_eq!(manifest["inputs"][0]["rows_read"], 1281);
    assert_eq!(manifest["inputs"][0]["rows_quarantined"], 0);
    assert_eq!(manifest["inputs"][0]["format"], "legacy CUR CSV");
    // Basic leaves out the 12 tax lines (0.08 in all) and keeps every usage line at its billed public price.
    let customer = json(&out.join("2023-11/customers/anon/invoice.json"));
    assert_eq!(customer["total"], "1.60");
}

#[test]
fn several_periods_without_period_is_a_clear_error() {
    let w = Workdir::new();
    let config = repo().join("sample_data/billxfer.toml");
    let o = w.run([
        "run",
        "--config",
        config.to_str().unwrap(),
        "--out",
        w.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("several billing periods (2026-09, 2026-10)") && err.contains("--period"),
        "{err}"
    );
    assert!(!w.join("2026-10").exists());
}

#[test]
fn a_month_outside_the_transfer_is_not_invoiced_and_says_so() {
    let w = Workdir::new();
    let text = fs::read_to_string(repo().join("sample_data/billxfer.toml")).unwrap();
    // Move initech's transfer to start after October.
    let text = text.replace(
        "transfer = { start = \"2026-03\", end = \"2026-12\" }",
        "transfer = { start = \"2026-11\" }",
    );
    let sample = repo().join("sample_data");
    let mut text = text;
    text = text.replace(
        "logo = \"logo.svg\"",
        &format!("logo = \"{}/logo.svg\"", sample.display()),
    );
    for dir in [
        "partner",
        "acme",
        "globex",
        "initech",
        "contoso",
        "umbrella",
        "hooli",
        "fx",
        "discounts",
    ] {
        text = text.replace(
            &format!("\"{dir}/"),
            &format!("\"{}/{dir}/", sample.display()),
        );
    }
    let config = w.write("not-billed.toml", text);
    let out = w.join("out");
    let o = w.run([
        "run",
        "--config",
        config.to_str().unwrap(),
        "--period",
        "2026-10",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("org `initech`: 2026-10 is outside the billing transfer"),
        "{err}"
    );
    assert!(!out.join("2026-10/customers/initech").exists());
    assert!(out.join("2026-10/customers/acme/invoice.json").exists());
    let manifest = json(&out.join("2026-10/manifest.json"));
    assert_eq!(manifest["not_billed_to_partner"][0]["org"], "initech");
}

#[test]
fn config_errors_are_all_reported_with_their_keys() {
    let w = Workdir::new();
    let config = w.write(
        "bad.toml",
        r#"
[partner]
id = "p"
name = "P"
management_account = "999999999999"

[[orgs]]
id = "a"
name = "A"
management_account = "111111111111"
files = ["nothing-here/*.csv"]
plan = "gold"
transfer = { start = "2026-01-15" }
"#,
    );
    let o = w.run(["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("orgs[0] (id `a`).plan: plan `gold` does not exist"),
        "{err}"
    );
    assert!(err.contains("START_DATE_NOT_BEGINNING_OF_MONTH"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn validate_reports_quarantine_without_writing() {
    let config = repo().join("sample_data/billxfer.toml");
    let o = run([
        "validate",
        "--config",
        config.to_str().unwrap(),
        "--period",
        "2026-10",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("5 row(s) would be quarantined"), "{out}");
    assert!(
        out.contains("row 8 line 9, column `lineItem/UnblendedCost`, value `abc`"),
        "{out}"
    );
}

#[test]
fn missing_input_and_bad_file_errors_name_the_file() {
    let w = Workdir::new();
    w.write(
        "bad.csv",
        "line_item_usage_account_id,line_item_line_item_type\n111111111111,Usage\n",
    );
    let config = w.write(
        "c.toml",
        "[partner]\nid = \"p\"\nname = \"P\"\nmanagement_account = \"999999999999\"\n[[orgs]]\nid = \"a\"\nname = \"A\"\nmanagement_account = \"111111111111\"\nfiles = [\"bad.csv\"]\nplan = \"basic\"\ntransfer = { start = \"2026-01\" }\n",
    );
    let o = w.run([
        "run",
        "--config",
        config.to_str().unwrap(),
        "--period",
        "2026-03",
        "--out",
        w.join("out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.csv")
            && err.contains("missing required column(s)")
            && err.contains("line_item_product_code"),
        "{err}"
    );
    assert!(!w.join("out/2026-03").exists());
}

#[test]
fn every_unreadable_file_is_reported_at_once() {
    let w = Workdir::new();
    let header_only = "line_item_usage_account_id,line_item_line_item_type\n";
    w.write("a.csv", header_only);
    w.write("b.csv", header_only);
    let config = w.write(
        "c.toml",
        "[partner]\nid = \"p\"\nname = \"P\"\nmanagement_account = \"999999999999\"\n[[orgs]]\nid = \"a\"\nname = \"A\"\nmanagement_account = \"111111111111\"\nfiles = [\"*.csv\"]\nplan = \"basic\"\ntransfer = { start = \"2026-01\" }\n",
    );
    let o = w.run([
        "validate",
        "--config",
        config.to_str().unwrap(),
        "--period",
        "2026-03",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("2 problem(s)") && err.contains("a.csv") && err.contains("b.csv"),
        "{err}"
    );
}

#[test]
fn help_teaches_the_concepts() {
    let o = run(["run", "--help"]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    for word in [
        "bill-transfer account",
        "bill-source account",
        "pro forma",
        "actual",
        "manifest.json",
    ] {
        assert!(text.contains(word), "--help lacks {word}");
    }
}

/// A CUR 2.0 Parquet file of two usage rows (0.50 and 0.25 USD) of account 123412340534
/// whose billing period starts at `period_start` (µs since 1970, UTC).
fn two_row_cur_parquet(period_start: i64) -> Vec<u8> {
    use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
    use std::sync::Arc;
    let text = |v: &str| Arc::new(StringArray::from(vec![v; 2])) as ArrayRef;
    common::parquet_bytes(vec![
        ("bill_payer_account_id", text("123412340534")),
        ("line_item_usage_account_id", text("123412340534")),
        ("line_item_line_item_type", text("Usage")),
        ("line_item_product_code", text("AmazonEC2")),
        (
            "line_item_usage_amount",
            Arc::new(Float64Array::from(vec![1.0, 1.0])),
        ),
        (
            "line_item_unblended_cost",
            Arc::new(Float64Array::from(vec![0.5, 0.25])),
        ),
        (
            "bill_billing_period_start_date",
            Arc::new(TimestampMicrosecondArray::from(vec![period_start; 2])),
        ),
    ])
}

#[test]
fn the_period_of_parquet_inputs_is_found_without_period() {
    // 2026-10-01 and 2026-12-01 at 00:00 UTC: each file's footer statistics tell its month.
    let (oct, dec) = (1_790_812_800_000_000, 1_796_083_200_000_000);
    let w = Workdir::new();
    let october = w.write("oct.parquet", two_row_cur_parquet(oct));
    let config = anonymous_cur_config(&october).replace("2023-11", "2026-10");
    w.write_config(&config);
    let out = w.join("out");
    ok(&w.run([
        "run",
        "--config",
        w.config().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    let inv = json(&out.join("2026-10/partner/invoices/anon.json"));
    assert_eq!(inv["exact_total"], "0.75");
    // With a December file beside it, the run refuses to choose.
    let december = w.write("dec.parquet", two_row_cur_parquet(dec));
    let both = config.replace(
        &format!("files = [{:?}]", october.to_str().unwrap()),
        &format!(
            "files = [{:?}, {:?}]",
            october.to_str().unwrap(),
            december.to_str().unwrap()
        ),
    );
    assert_ne!(both, config);
    w.write_config(&both);
    let o = w.run([
        "run",
        "--config",
        w.config().to_str().unwrap(),
        "--out",
        w.join("out2").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("several billing periods (2026-10, 2026-12)"),
        "{err}"
    );
}
