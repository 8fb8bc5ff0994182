//! FOCUS as input: the FOCUS 1.2 example datasets of the specification
//! (`../shared/data/FOCUS_Spec/specification/data/`) are rated, and the actual
//! (billed) and amortized totals billxfer computes equal the BilledCost and
//! EffectiveCost sums of each file, computed here independently with
//! rust_decimal.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

mod common;
use common::{bin, repo};

fn spec_data() -> Option<PathBuf> {
    let dir = repo().join("../shared/data/FOCUS_Spec/specification/data");
    if dir.exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing",
        dir.display()
    );
    eprintln!("skipping: {} not present", dir.display());
    None
}

/// Σ of a column, by header matched case-insensitively; `null` and empty cells count 0.
fn column_sum(path: &Path, column: &str) -> Decimal {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().clone();
    let idx = headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case(column))
        .unwrap_or_else(|| panic!("{}: no {column}", path.display()));
    let mut sum = Decimal::ZERO;
    for rec in r.records() {
        let rec = rec.unwrap();
        if rec.len() <= 1 {
            continue;
        }
        let cell = rec[idx].trim();
        if cell.is_empty() || cell.eq_ignore_ascii_case("null") {
            continue;
        }
        sum += Decimal::from_str(cell).unwrap();
    }
    sum
}

fn run_focus_file(file: &Path, tmp: &Path) -> Value {
    let config = focus_config(tmp, "focus-org", file, "2023-01");
    let out = tmp.join("out");
    let o = run(&config, "2023-01", &out);
    assert!(
        o.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&fs::read(out.join("2023-01/manifest.json")).unwrap()).unwrap();
    let org = manifest["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["org_id"] == "focus-org")
        .unwrap()
        .clone();
    assert_eq!(
        org["rows_quarantined"],
        0,
        "{}: rows were quarantined: {}",
        file.display(),
        fs::read_to_string(out.join("2023-01/quarantine/focus-org.csv")).unwrap_or_default()
    );
    assert_eq!(manifest["all_checks_passed"], true);
    serde_json::from_slice(&fs::read(out.join("2023-01/partner/invoices/focus-org.json")).unwrap())
        .unwrap()
}

#[test]
fn focus_examples_rate_to_their_billed_and_effective_sums() {
    let Some(dir) = spec_data() else {
        return;
    };
    let mut files: Vec<PathBuf> = [
        "commitment_discount_scenarios",
        "commitment_discount_flexibility",
    ]
    .iter()
    .flat_map(|sub| fs::read_dir(dir.join(sub)).unwrap().flatten())
    .map(|e| e.path())
    .filter(|p| p.extension().is_some_and(|x| x == "csv"))
    .collect();
    files.sort();
    assert_eq!(
        files.len(),
        11,
        "expected the 11 commitment discount examples"
    );
    for file in &files {
        let tmp = tempfile::tempdir().unwrap();
        let inv = run_focus_file(file, tmp.path());
        let billed = column_sum(file, "BilledCost");
        let effective = column_sum(file, "EffectiveCost");
        let got_billed = Decimal::from_str(inv["exact_total"].as_str().unwrap()).unwrap();
        let got_effective =
            Decimal::from_str(inv["effective_exact_total"].as_str().unwrap()).unwrap();
        assert_eq!(got_billed, billed, "{}: BilledCost", file.display());
        assert_eq!(
            got_effective,
            effective,
            "{}: EffectiveCost",
            file.display()
        );
    }
}

#[test]
fn focus_line_types_follow_charge_category_and_commitment() {
    use billxfer::ingest::{focus_line_type, LineType};
    let lt = |c, f, id, cat| focus_line_type(c, f, id, cat).unwrap();
    assert_eq!(
        lt("Usage", Some("Usage-Based"), None, None),
        LineType::Usage
    );
    assert_eq!(
        lt("usage", None, Some("arn:sp"), Some("Spend")),
        LineType::SavingsPlanCoveredUsage
    );
    assert_eq!(
        lt("Usage", None, Some("ri-1"), Some("Usage")),
        LineType::DiscountedUsage
    );
    assert_eq!(
        lt("Purchase", Some("One-Time"), Some("sp"), Some("Spend")),
        LineType::SavingsPlanUpfrontFee
    );
    assert_eq!(
        lt("Purchase", Some("Recurring"), Some("sp"), Some("Spend")),
        LineType::SavingsPlanRecurringFee
    );
    assert_eq!(
        lt("Purchase", Some("Recurring"), Some("ri"), None),
        LineType::RIFee
    );
    assert_eq!(lt("Purchase", Some("One-Time"), None, None), LineType::Fee);
    assert_eq!(lt("Tax", None, None, None), LineType::Tax);
    assert_eq!(lt("Credit", None, None, None), LineType::Credit);
    assert_eq!(lt("Adjustment", None, None, None), LineType::Refund);
    assert!(focus_line_type("Refund", None, None, None).is_none());
}

/// A config with one org reading `file`, billed actual rates, the basic plan.
fn focus_config(tmp: &Path, org: &str, file: &Path, start: &str) -> PathBuf {
    let config = tmp.join("billxfer.toml");
    fs::write(
        &config,
        format!(
            "[partner]\nid = \"partner\"\nname = \"P\"\nmanagement_account = \"999999999999\"\n\n[actual]\nmode = \"billed\"\n\n[[orgs]]\nid = \"{org}\"\nname = \"FOCUS example\"\nmanagement_account = \"123456789012\"\nfiles = [{:?}]\nplan = \"basic\"\ntransfer = {{ start = \"{start}\" }}\n",
            file.to_str().unwrap()
        ),
    )
    .unwrap();
    config
}

/// `billxfer run --quiet` of a config and period into `out`.
fn run(config: &Path, period: &str, out: &Path) -> Output {
    bin()
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--period",
            period,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap()
}

#[test]
fn bad_focus_input_is_quarantined_or_refused_with_its_column() {
    let tmp = tempfile::tempdir().unwrap();
    // An unknown ChargeCategory: the row is quarantined, naming the column and value; the other is rated.
    let file = tmp.path().join("focus.csv");
    fs::write(
        &file,
        "BillingPeriodStart,ChargeCategory,SubAccountId,ServiceName,BilledCost,EffectiveCost,ListCost\n\
         2026-10-01T00:00:00Z,Usage,123456789012,AmazonEC2,1.25,1.25,1.50\n\
         2026-10-01T00:00:00Z,Rebate,123456789012,AmazonEC2,-0.50,-0.50,null\n",
    )
    .unwrap();
    let config = focus_config(tmp.path(), "f", &file, "2026-01");
    let out = tmp.path().join("out");
    let o = run(&config, "2026-10", &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let q = fs::read_to_string(out.join("2026-10/quarantine/f.csv")).unwrap();
    assert!(q.contains("ChargeCategory") && q.contains("Rebate"), "{q}");
    let inv: Value =
        serde_json::from_slice(&fs::read(out.join("2026-10/partner/invoices/f.json")).unwrap())
            .unwrap();
    assert_eq!(inv["exact_total"], "1.25");
    // No BilledCost: the file is refused, naming it and the column.
    let bad = tmp.path().join("nobilled.csv");
    fs::write(
        &bad,
        "BillingPeriodStart,ChargeCategory,SubAccountId\n2026-10-01T00:00:00Z,Usage,123456789012\n",
    )
    .unwrap();
    let config = focus_config(tmp.path(), "f", &bad, "2026-01");
    let o = run(&config, "2026-10", &out);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nobilled.csv") && err.contains("BilledCost"),
        "{err}"
    );
}
