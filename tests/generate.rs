//! Generated bases: deterministic bytes for a seed, and run totals equal to sums
//! computed here straight from the generated Parquet (read with the parquet
//! crate's own row API, not billxfer's ingestion).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

mod common;
use common::{bin, files_under, manifest_org, tree_bytes, Workdir};

fn generate(out: &Path, seed: u64, threads: usize) {
    let o = bin()
        .args([
            "generate",
            "--orgs",
            "7",
            "--accounts-per-org",
            "3",
            "--lines",
            "30000",
            "--period",
            "2026-10",
            "--lines-per-file",
            "9000",
        ])
        .args([
            "--seed",
            &seed.to_string(),
            "--threads",
            &threads.to_string(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_same_seed_gives_the_same_bytes_whatever_the_threads() {
    let a = Workdir::new();
    let b = Workdir::new();
    let c = Workdir::new();
    generate(a.path(), 11, 1);
    generate(b.path(), 11, 2);
    generate(c.path(), 12, 2);
    let (fa, fb, fc) = (
        tree_bytes(a.path()),
        tree_bytes(b.path()),
        tree_bytes(c.path()),
    );
    assert!(fa.len() > 8, "{:?}", fa.keys());
    assert_eq!(fa, fb);
    assert_ne!(fa, fc);
}

/// Σ of a decimal column over a Parquet file, as exact decimals (via the value's shortest text).
fn parquet_sums(path: &Path) -> (u64, BTreeMap<String, rust_decimal::Decimal>) {
    let reader = SerializedFileReader::new(fs::File::open(path).unwrap()).unwrap();
    let mut rows = 0;
    let mut by_type: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        rows += 1;
        let mut lt = String::new();
        let mut product = String::new();
        let mut cost = rust_decimal::Decimal::ZERO;
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                ("line_item_line_item_type", Field::Str(s)) => lt = s.clone(),
                ("line_item_product_code", Field::Str(s)) => product = s.clone(),
                ("line_item_unblended_cost", Field::Double(d)) => {
                    cost = d.to_string().parse().unwrap()
                }
                _ => {}
            }
        }
        // Keys: "*" for everything, "basic" for what the basic plan keeps.
        *by_type.entry("*".into()).or_default() += cost;
        let kept = !matches!(
            lt.as_str(),
            "Tax"
                | "Credit"
                | "Refund"
                | "EdpDiscount"
                | "PrivateRateDiscount"
                | "SppDiscount"
                | "Discount"
        ) && !product.starts_with("AWSSupport");
        if kept {
            *by_type.entry("basic".into()).or_default() += cost;
        }
    }
    (rows, by_type)
}

#[test]
fn run_totals_equal_sums_of_the_generated_rows() {
    let base = Workdir::new();
    generate(base.path(), 5, 2);
    let o = base.run_config("run", "2026-10", &["--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config_text = base.read("billxfer.toml");

    let mut checked_basic = 0;
    for org in [
        "partner", "o00001", "o00002", "o00003", "o00004", "o00005", "o00006", "o00007",
    ] {
        let dir = base.join(if org == "partner" {
            "partner".to_string()
        } else {
            org.to_string()
        });
        let mut rows = 0;
        let mut sums: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
        for e in files_under(&dir, "parquet") {
            let (r, s) = parquet_sums(&e);
            rows += r;
            for (k, v) in s {
                *sums.entry(k).or_default() += v;
            }
        }
        assert!(rows > 0, "{org}: no rows generated");
        let inv = base.json(format!("out/2026-10/partner/invoices/{org}.json"));
        let exact: rust_decimal::Decimal = inv["exact_total"].as_str().unwrap().parse().unwrap();
        assert_eq!(exact, sums["*"].round_dp(10), "{org} actual total");
        let m = manifest_org(&base.json("out/2026-10/manifest.json"), org);
        assert_eq!(m["rows_read"].as_u64().unwrap(), rows, "{org} rows");
        assert_eq!(
            m["rows_quarantined"].as_u64().unwrap(),
            0,
            "{org} quarantined"
        );
        // Orgs on the basic plan: pro forma = Σ unblended of the kept line types.
        let on_basic = config_text.contains(&format!("id = \"{org}\"")) && {
            let start = config_text.find(&format!("id = \"{org}\"")).unwrap();
            config_text[start..]
                .lines()
                .find(|l| l.starts_with("plan = "))
                .is_some_and(|l| l.contains("\"basic\""))
        };
        if on_basic {
            let pf: rust_decimal::Decimal = m["proforma_exact"].as_str().unwrap().parse().unwrap();
            assert_eq!(pf, sums["basic"].round_dp(10), "{org} pro forma");
            checked_basic += 1;
        }
    }
    assert_eq!(
        checked_basic, 1,
        "the generator puts every 7th org on basic"
    );
}
