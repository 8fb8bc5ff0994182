//! FOCUS 1.3 exports (`--focus-version 1.3`, docs/EXPORTS.md "FOCUS versions"):
//! every file passes `validate-focus --version 1.3`; the service and host
//! providers; each invoice's charges sum exactly to that invoice's total
//! (FOCUS 1.3 InvoiceHandling), in its currency; each rule broken on purpose;
//! a 1.3 export fed back as input gives the invoice again.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;

mod common;
use common::{files_under, json, ok, run, run_sample, Workdir};

/// (InvoiceId, BillingCurrency) → (Σ BilledCost, distinct ServiceProviderName, HostProviderName).
type ByInvoice = BTreeMap<(String, String), (Decimal, Vec<String>, Vec<String>)>;

/// [`ByInvoice`] of a Parquet file.
fn by_invoice(path: &Path) -> ByInvoice {
    use arrow::array::{Array, AsArray};
    let file = fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut out = ByInvoice::new();
    for batch in reader {
        let b = batch.unwrap();
        let text = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
        let (id, cur, sp, hp) = (
            text("InvoiceId"),
            text("BillingCurrency"),
            text("ServiceProviderName"),
            text("HostProviderName"),
        );
        let cost = b
            .column_by_name("BilledCost")
            .unwrap()
            .as_primitive::<arrow::datatypes::Decimal128Type>()
            .clone();
        for i in 0..b.num_rows() {
            let e = out
                .entry((id.value(i).to_string(), cur.value(i).to_string()))
                .or_default();
            e.0 += Decimal::from_i128_with_scale(cost.value(i), 10);
            for (list, a) in [(&mut e.1, &sp), (&mut e.2, &hp)] {
                let v = if a.is_valid(i) {
                    a.value(i).to_string()
                } else {
                    "(null)".into()
                };
                if !list.contains(&v) {
                    list.push(v);
                }
            }
        }
    }
    out
}

fn dec(v: &serde_json::Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn a_1_3_run_passes_the_1_3_rules_and_each_invoice_sums_to_its_total() {
    let w = Workdir::new();
    let dir = run_sample(w.path(), &["--focus-version", "1.3"]);
    let focus: Vec<PathBuf> = files_under(&dir, "parquet")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/focus/"))
        .collect();
    assert_eq!(focus.len(), 13);
    let mut args = vec![
        "validate-focus".to_string(),
        "--version".into(),
        "1.3".into(),
    ];
    args.extend(focus.iter().map(|p| p.to_string_lossy().to_string()));
    let out = ok(&run(&args));
    assert_eq!(out.matches(": ok").count(), 13, "{out}");
    // Customers: one invoice each, summing to the invoice's total in its currency.
    for (org, currency, provider) in [
        ("acme", "USD", "Northwind Cloud Partners"),
        ("globex", "USD", "Northwind Cloud Partners"),
        ("initech", "USD", "Northwind Cloud Partners"),
        ("umbrella", "EUR", "Contoso Resale Ltd"),
        ("hooli", "USD", "Contoso Resale Ltd"),
    ] {
        let invoice = json(&dir.join(format!("customers/{org}/invoice.json")));
        let sums = by_invoice(&dir.join(format!("customers/{org}/focus/{org}-2026-10.parquet")));
        let key = (format!("{org}-2026-10"), currency.to_string());
        let (sum, service, host) = &sums[&key];
        assert_eq!(sums.len(), 1, "{org}: {sums:?}");
        assert_eq!(*sum, dec(&invoice["total"]), "{org}");
        assert_eq!(service, &[provider.to_string()], "{org}");
        assert!(host.contains(&"AWS".to_string()), "{org}: {host:?}");
    }
    // The partner's: AWS's invoice per org, AWS as service and host provider.
    for org in [
        "acme",
        "globex",
        "initech",
        "contoso",
        "umbrella",
        "hooli",
        "northwind",
    ] {
        let invoice = json(&dir.join(format!("partner/invoices/{org}.json")));
        let sums = by_invoice(&dir.join(format!("partner/focus/{org}-2026-10.parquet")));
        let total: Decimal = sums.values().map(|v| v.0).sum();
        assert_eq!(total, dec(&invoice["total"]), "{org}");
        for (_, service, host) in sums.values() {
            assert_eq!(
                (service.as_slice(), host.as_slice()),
                (&["AWS".to_string()][..], &["AWS".to_string()][..])
            );
        }
    }
}

/// A CSV FOCUS 1.3 export of the sample's acme, as text.
fn acme_csv(w: &Workdir) -> String {
    let dir = run_sample(
        w.path(),
        &[
            "--focus-version",
            "1.3",
            "--format",
            "csv",
            "--exports",
            "focus",
        ],
    );
    fs::read_to_string(dir.join("customers/acme/focus/acme-2026-10.csv")).unwrap()
}

fn validate(w: &Workdir, name: &str, text: &str, version: &str) -> String {
    let path = w.write(name, text);
    let o = run([
        "validate-focus",
        "--version",
        version,
        path.to_str().unwrap(),
    ]);
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The text with column `name` edited by `f` on the first data row.
fn edit(text: &str, name: &str, f: impl Fn(&str) -> String) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let col = rdr
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == name)
        .unwrap();
    let mut record: Vec<String> = rdr
        .records()
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(String::from)
        .collect();
    record[col] = f(&record[col]);
    let mut wtr = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    wtr.write_record(&record).unwrap();
    lines[1] = String::from_utf8(wtr.into_inner().unwrap())
        .unwrap()
        .trim_end()
        .to_string();
    lines.join("\n") + "\n"
}

#[test]
fn each_1_3_rule_broken_on_purpose_is_reported() {
    let w = Workdir::new();
    let good = acme_csv(&w);
    assert!(validate(&w, "good.csv", &good, "1.3").contains(": ok"));
    // A sub-cent charge more: the invoice's charges no longer sum to whole cents.
    let bad = edit(&good, "BilledCost", |v| {
        (v.parse::<Decimal>().unwrap() + Decimal::new(1, 3)).to_string()
    });
    let out = validate(&w, "residue.csv", &bad, "1.3");
    assert!(
        out.contains("the charges of invoice `acme-2026-10` sum to"),
        "{out}"
    );
    assert!(out.contains("FOCUS 1.3 InvoiceHandling"), "{out}");
    // A null ServiceProviderName.
    let bad = edit(&good, "ServiceProviderName", |_| String::new());
    let out = validate(&w, "null.csv", &bad, "1.3");
    assert!(
        out.contains("column ServiceProviderName: must not be null"),
        "{out}"
    );
    // Without the 1.3 columns (a 1.2 file): fine as 1.2, refused as 1.3.
    let dir12 = run_sample(&w.join("v12"), &["--format", "csv", "--exports", "focus"]);
    let v12 = fs::read_to_string(dir12.join("customers/acme/focus/acme-2026-10.csv")).unwrap();
    assert!(validate(&w, "v12.csv", &v12, "1.2").contains(": ok"));
    let out = validate(&w, "v12-as-13.csv", &v12, "1.3");
    assert!(
        out.contains("column ServiceProviderName: mandatory FOCUS 1.3 column is missing"),
        "{out}"
    );
    assert!(
        out.contains("column HostProviderName: mandatory FOCUS 1.3 column is missing"),
        "{out}"
    );
    // The 1.2 file's rows sum to the exact total, 220.094165: not whole cents.
    assert!(out.contains("sum to 220.094165 USD"), "{out}");
}

#[test]
fn a_1_3_export_fed_back_as_input_gives_the_invoice_total() {
    fed_back_gives_the_invoice_total("1.3");
}

#[test]
fn a_1_4_export_fed_back_as_input_gives_the_invoice_total() {
    fed_back_gives_the_invoice_total("1.4");
}

fn fed_back_gives_the_invoice_total(version: &str) {
    let w = Workdir::new();
    let dir = run_sample(
        &w.join("run"),
        &["--focus-version", version, "--exports", "focus"],
    );
    let export = dir.join("customers/acme/focus/acme-2026-10.parquet");
    let config = w.write(
        "again.toml",
        format!(
            "[partner]\nid = \"p\"\nname = \"P\"\nmanagement_account = \"999999999999\"\n\n[[orgs]]\nid = \"acme\"\nname = \"again\"\nmanagement_account = \"111100000001\"\naccounts = [\"111100000002\"]\nfiles = [{:?}]\nplan = \"passthrough\"\nallow_passthrough = true\ntransfer = {{ start = \"2026-01\", source_payer = true }}\n",
            export.to_str().unwrap()
        ),
    );
    let out = w.join("again");
    common::run_october(&config, &out, &["--exports", "none"]);
    let again = json(&out.join("2026-10/partner/invoices/acme.json"));
    // 220.10: the usage rows (220.094165) and the rounding row(s) (0.005835 in all) read back.
    assert_eq!(again["exact_total"], "220.10", "{version}");
    let m = json(&out.join("2026-10/manifest.json"));
    assert_eq!(common::manifest_org(&m, "acme")["rows_quarantined"], 0);
}

mod focus14 {
    //! FOCUS 1.4 (`--focus-version 1.4`): the Cost and Usage dataset without
    //! ProviderName/PublisherName and with InvoiceDetailId, the InvoiceDetail and
    //! BillingPeriod datasets, their joins, and the rules broken on purpose.
    use super::*;

    /// The named columns of a Parquet file, as text (null as ""), row by row.
    fn rows(path: &Path, columns: &[&str]) -> Vec<Vec<String>> {
        use arrow::array::Array;
        let file = fs::File::open(path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let mut out = Vec::new();
        for batch in reader {
            let b = batch.unwrap();
            let cols: Vec<arrow::array::StringArray> = columns
                .iter()
                .map(|c| {
                    let a = b
                        .column_by_name(c)
                        .unwrap_or_else(|| panic!("{c} not in {}", path.display()));
                    let t = arrow::compute::cast(a, &arrow::datatypes::DataType::Utf8).unwrap();
                    t.as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .unwrap()
                        .clone()
                })
                .collect();
            for i in 0..b.num_rows() {
                out.push(
                    cols.iter()
                        .map(|c| {
                            if c.is_valid(i) {
                                c.value(i).to_string()
                            } else {
                                String::new()
                            }
                        })
                        .collect(),
                );
            }
        }
        out
    }

    #[test]
    fn each_charge_joins_its_invoice_line_and_the_lines_sum_to_the_invoice() {
        let w = Workdir::new();
        let dir = run_sample(w.path(), &["--focus-version", "1.4", "--exports", "focus"]);
        let all: Vec<PathBuf> = files_under(&dir, "parquet");
        let mut args = vec![
            "validate-focus".to_string(),
            "--version".into(),
            "1.4".into(),
        ];
        args.extend(all.iter().map(|p| p.to_string_lossy().to_string()));
        let out = ok(&run(&args));
        assert_eq!(out.matches(": ok").count(), all.len(), "{out}");
        for org in ["acme", "globex", "initech", "umbrella", "hooli"] {
            let invoice = json(&dir.join(format!("customers/{org}/invoice.json")));
            let detail = dir.join(format!(
                "customers/{org}/focus-invoice-detail/{org}-2026-10.parquet"
            ));
            let lines: BTreeMap<String, Decimal> =
                rows(&detail, &["InvoiceDetailId", "BilledCost"])
                    .into_iter()
                    .map(|r| (r[0].clone(), r[1].parse().unwrap()))
                    .collect();
            // The invoice's lines: usage per account and service, then each custom item.
            let mut want: BTreeMap<String, Decimal> = BTreeMap::new();
            for l in invoice["lines"].as_array().unwrap() {
                want.insert(
                    format!(
                        "{}:{}",
                        l["account_id"].as_str().unwrap(),
                        l["service"].as_str().unwrap()
                    ),
                    dec(&l["amount"]),
                );
            }
            for c in invoice["custom_line_items"].as_array().unwrap() {
                want.insert(
                    format!("item:{}", c["id"].as_str().unwrap()),
                    dec(&c["amount"]),
                );
            }
            let listed: BTreeMap<String, Decimal> = lines
                .iter()
                .filter(|(_, v)| !v.is_zero())
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            assert_eq!(listed, want, "{org}");
            assert_eq!(
                lines.values().copied().sum::<Decimal>(),
                dec(&invoice["total"]),
                "{org}"
            );
            // Each charge's InvoiceDetailId is a line, and each line's charges sum to it exactly.
            let cost = dir.join(format!("customers/{org}/focus/{org}-2026-10.parquet"));
            let mut sums: BTreeMap<String, Decimal> = BTreeMap::new();
            for r in rows(&cost, &["InvoiceDetailId", "BilledCost"]) {
                *sums.entry(r[0].clone()).or_default() += r[1].parse::<Decimal>().unwrap();
            }
            assert_eq!(sums, lines, "{org}");
            let bp = rows(
                &dir.join(format!(
                    "customers/{org}/focus-billing-period/{org}-2026-10.parquet"
                )),
                &["BillingPeriodStatus", "InvoiceIssuerName"],
            );
            assert_eq!(bp.len(), 1);
            assert_eq!(bp[0][0], "Closed");
        }
        // No ProviderName or PublisherName in 1.4.
        let text = common::readable_text(
            "x.parquet",
            &fs::read(dir.join("customers/acme/focus/acme-2026-10.parquet")).unwrap(),
        );
        assert!(!text.contains("\nProviderName\n") && !text.contains("\nPublisherName\n"));
        // The partner's: AWS's invoice lines, summing to the org's actual invoice.
        let detail = dir.join("partner/focus-invoice-detail/acme-2026-10.parquet");
        let total: Decimal = rows(&detail, &["BilledCost"])
            .iter()
            .map(|r| r[0].parse::<Decimal>().unwrap())
            .sum();
        assert_eq!(
            total,
            dec(&json(&dir.join("partner/invoices/acme.json"))["total"])
        );
    }

    #[test]
    fn each_1_4_rule_broken_on_purpose_is_reported() {
        let w = Workdir::new();
        let dir = run_sample(
            w.path(),
            &[
                "--focus-version",
                "1.4",
                "--exports",
                "focus",
                "--format",
                "csv",
            ],
        );
        let cost = fs::read_to_string(dir.join("customers/acme/focus/acme-2026-10.csv")).unwrap();
        let detail =
            fs::read_to_string(dir.join("customers/acme/focus-invoice-detail/acme-2026-10.csv"))
                .unwrap();
        let bp =
            fs::read_to_string(dir.join("customers/acme/focus-billing-period/acme-2026-10.csv"))
                .unwrap();
        let check = |files: &[(&str, &str)]| -> String {
            let mut args = vec![
                "validate-focus".to_string(),
                "--version".into(),
                "1.4".into(),
            ];
            for (name, text) in files {
                args.push(w.write(*name, text).to_string_lossy().to_string());
            }
            String::from_utf8_lossy(&run(&args).stdout).to_string()
        };
        let out = check(&[("c.csv", &cost), ("d.csv", &detail), ("b.csv", &bp)]);
        assert_eq!(out.matches(": ok").count(), 3, "{out}");
        // A charge whose InvoiceDetailId is no record of InvoiceDetail.
        let bad = edit(&cost, "InvoiceDetailId", |_| {
            "111100000001:AmazonGhost".into()
        });
        let out = check(&[("c1.csv", &bad), ("d1.csv", &detail)]);
        assert!(out.contains("`111100000001:AmazonGhost` of invoice `acme-2026-10` is not a record of the InvoiceDetail dataset"), "{out}");
        // A detail record whose BilledCost is off by more than the tolerance ($1.00 here).
        let bad = edit(&detail, "BilledCost", |v| {
            (v.parse::<Decimal>().unwrap() + Decimal::new(250, 2)).to_string()
        });
        let out = check(&[("c2.csv", &cost), ("d2.csv", &bad)]);
        assert!(out.contains("but its InvoiceDetail record says"), "{out}");
        // A status InvoiceDetail does not allow, and a null payment term.
        let bad = edit(&detail, "InvoiceIssueStatus", |_| "Paid".into());
        let bad = edit(&bad, "PaymentTerms", |_| String::new());
        let out = check(&[("d3.csv", &bad)]);
        assert!(
            out.contains("`Paid` is not one of Open, Issued, Voided"),
            "{out}"
        );
        assert!(
            out.contains("column PaymentTerms: must not be null"),
            "{out}"
        );
        // BillingPeriod status, and a 1.3 file checked as 1.4.
        let out = check(&[(
            "b4.csv",
            &edit(&bp, "BillingPeriodStatus", |_| "Final".into()),
        )]);
        assert!(out.contains("`Final` is not one of Open, Closed"), "{out}");
        let v13 = run_sample(
            &w.join("v13"),
            &[
                "--focus-version",
                "1.3",
                "--exports",
                "focus",
                "--format",
                "csv",
            ],
        );
        let v13 = fs::read_to_string(v13.join("customers/acme/focus/acme-2026-10.csv")).unwrap();
        let out = check(&[("v13.csv", &v13)]);
        assert!(
            out.contains("column ProviderName: removed in FOCUS 1.4: must not be present"),
            "{out}"
        );
        assert!(
            out.contains("column InvoiceDetailId: FOCUS 1.4 column is missing"),
            "{out}"
        );
    }
}
