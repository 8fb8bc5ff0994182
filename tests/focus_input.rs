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
use common::{manifest_org, shared_data, Workdir};

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

fn run_focus_file(file: &Path, w: &Workdir) -> Value {
    focus_config(w, "focus-org", file, "2023-01");
    let o = run(w, "2023-01");
    assert!(
        o.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let manifest = w.json("out/2023-01/manifest.json");
    let org = manifest_org(&manifest, "focus-org");
    assert_eq!(
        org["rows_quarantined"],
        0,
        "{}: rows were quarantined: {}",
        file.display(),
        fs::read_to_string(w.join("out/2023-01/quarantine/focus-org.csv")).unwrap_or_default()
    );
    assert_eq!(manifest["all_checks_passed"], true);
    w.json("out/2023-01/partner/invoices/focus-org.json")
}

#[test]
fn focus_examples_rate_to_their_billed_and_effective_sums() {
    let Some(dir) = shared_data("FOCUS_Spec/specification/data") else {
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
        let w = Workdir::new();
        let inv = run_focus_file(file, &w);
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
    use billxfer::normalize::focus_line_type;
    use billxfer::types::LineType;
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
fn focus_config(w: &Workdir, org: &str, file: &Path, start: &str) -> PathBuf {
    w.write_config(format!(
        "[partner]\nid = \"partner\"\nname = \"P\"\nmanagement_account = \"999999999999\"\n\n[actual]\nmode = \"billed\"\n\n[[orgs]]\nid = \"{org}\"\nname = \"FOCUS example\"\nmanagement_account = \"123456789012\"\nfiles = [{:?}]\nplan = \"basic\"\ntransfer = {{ start = \"{start}\" }}\n",
        file.to_str().unwrap()
    ))
}

/// `billxfer run --quiet` of the folder's config and period into `out/`.
fn run(w: &Workdir, period: &str) -> Output {
    w.run_config("run", period, &["--quiet"])
}

#[test]
fn bad_focus_input_is_quarantined_or_refused_with_its_column() {
    let w = Workdir::new();
    // An unknown ChargeCategory: the row is quarantined, naming the column and value; the other is rated.
    let file = w.write(
        "focus.csv",
        "BillingPeriodStart,ChargeCategory,SubAccountId,ServiceName,BilledCost,EffectiveCost,ListCost\n\
         2026-10-01T00:00:00Z,Usage,123456789012,AmazonEC2,1.25,1.25,1.50\n\
         2026-10-01T00:00:00Z,Rebate,123456789012,AmazonEC2,-0.50,-0.50,null\n",
    );
    focus_config(&w, "f", &file, "2026-01");
    let o = run(&w, "2026-10");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let q = w.read("out/2026-10/quarantine/f.csv");
    assert!(q.contains("ChargeCategory") && q.contains("Rebate"), "{q}");
    let inv = w.json("out/2026-10/partner/invoices/f.json");
    assert_eq!(inv["exact_total"], "1.25");
    // No BilledCost: the file is refused, naming it and the column.
    let bad = w.write(
        "nobilled.csv",
        "BillingPeriodStart,ChargeCategory,SubAccountId\n2026-10-01T00:00:00Z,Usage,123456789012\n",
    );
    focus_config(&w, "f", &bad, "2026-01");
    let o = run(&w, "2026-10");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nobilled.csv") && err.contains("BilledCost"),
        "{err}"
    );
}
