//! Property tests over random organizations, lines and plans. Each case writes
//! CUR 2.0 CSV files and a config, runs the library end to end (rate, render),
//! and checks the invariants against figures computed here from the generated rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use billxfer::config::Config;
use billxfer::money::{format_fixed_exact, parse_fixed};
use billxfer::pipeline::{rate_all, Silent};
use billxfer::render::render;
use billxfer::types::BillingPeriod;
use proptest::prelude::*;
use serde_json::Value;

mod common;
use common::Workdir;

const PAYER: &str = "990000000001";
const INVOICE_ID: &str = "CANARY-INVOICE-77";
const HEADER: &str = "bill_billing_period_start_date,bill_payer_account_id,bill_invoice_id,bill_billing_entity,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_operation,line_item_usage_amount,line_item_currency_code,line_item_unblended_cost,pricing_public_on_demand_rate,product_region_code\n";

#[derive(Debug, Clone)]
enum Bad {
    None,
    OtherOrgAccount,
    UnknownType,
    UnreadableAmount,
    /// A Usage line with a negative cost (docs/DOMAIN.md, decision 26).
    WrongSign,
}

#[derive(Debug, Clone)]
struct GenLine {
    account: usize,
    line_type: &'static str,
    product: &'static str,
    usage_type: &'static str,
    usage_milli: i64,
    rate_micro: i64,
    cost_cents: i64,
    bad: Bad,
}

#[derive(Debug, Clone)]
struct GenOrg {
    accounts: usize,
    plan: usize,
    lines: Vec<GenLine>,
    fee_cents: i64,
    pct: i64,
}

fn line() -> impl Strategy<Value = GenLine> {
    (
        0usize..3,
        prop::sample::select(vec![
            "Usage",
            "Usage",
            "Usage",
            "Tax",
            "Credit",
            "EdpDiscount",
            "SppDiscount",
            "SavingsPlanNegation",
            "RIFee",
            "Fee",
        ]),
        prop::sample::select(vec![
            "AmazonEC2",
            "AmazonS3",
            "AWSLambda",
            "AWSSupportBusiness",
        ]),
        prop::sample::select(vec![
            "USE1-BoxUsage:m5.large",
            "USE1-TimedStorage-ByteHrs",
            "USE1-Request",
        ]),
        0i64..5_000_000,
        0i64..2_000_000,
        -50_000i64..500_000,
        prop::sample::select(vec![0u8, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
    )
        .prop_map(
            |(
                account,
                line_type,
                product,
                usage_type,
                usage_milli,
                rate_micro,
                cost_cents,
                bad,
            )| GenLine {
                account,
                line_type,
                product,
                usage_type,
                usage_milli,
                rate_micro,
                cost_cents,
                bad: match bad {
                    1 => Bad::OtherOrgAccount,
                    2 => Bad::UnknownType,
                    3 => Bad::UnreadableAmount,
                    4 => Bad::WrongSign,
                    _ => Bad::None,
                },
            },
        )
}

fn org() -> impl Strategy<Value = GenOrg> {
    (
        1usize..4,
        0usize..4,
        prop::collection::vec(line(), 0..25),
        0i64..100_000,
        0i64..2000,
    )
        .prop_map(|(accounts, plan, lines, fee_cents, pct)| GenOrg {
            accounts,
            plan,
            lines,
            fee_cents,
            pct,
        })
}

fn account_id(org: usize, j: usize) -> String {
    // Org k's accounts are 1k0000000000 + j: a distinctive prefix per org.
    format!("{}{:010}", 10 + org, j + 1)
}

fn cents(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", c.abs() / 100, c.abs() % 100)
}

struct Case {
    _dir: Workdir,
    out: BTreeMap<PathBuf, Vec<u8>>,
    /// Σ billed cost of valid rows per org index (0 = partner) and the expected row counts.
    expected_actual: BTreeMap<usize, i128>,
    expected_rows: BTreeMap<usize, (u64, u64)>,
    org_accounts: BTreeMap<usize, Vec<String>>,
    passthrough: BTreeSet<usize>,
}

fn build(orgs: &[GenOrg], partner_lines: &[GenLine]) -> Case {
    let dir = Workdir::new();
    let mut config = format!(
        "[partner]\nid = \"partner\"\nname = \"Partner\"\nmanagement_account = \"{PAYER}\"\nfiles = [\"partner.csv\"]\n\n\
[[plans]]\nid = \"custom\"\nrules = [\n  {{ id = \"g\", scope = \"global\", type = \"markup\", percent = \"12.5\" }},\n  {{ id = \"s3\", scope = \"service\", service = \"AmazonS3\", type = \"discount\", percent = \"3\" }},\n  {{ id = \"m5\", scope = \"sku\", service = \"AmazonEC2\", usage_type = \"USE1-BoxUsage:m5.large\", type = \"markup\", percent = \"20\" }},\n  {{ id = \"req\", scope = \"sku\", service = \"AWSLambda\", usage_type = \"USE1-Request\", type = \"custom\", tiers = [{{ from = \"0\", rate = \"0.0002\" }}, {{ from = \"1000\", rate = \"0.0001\" }}] }},\n  {{ id = \"ft\", scope = \"global\", type = \"tiering\", free_tier = false }},\n]\n\n"
    );
    let mut expected_actual = BTreeMap::new();
    let mut expected_rows = BTreeMap::new();
    let mut org_accounts = BTreeMap::new();
    let mut passthrough = BTreeSet::new();
    let all: Vec<(usize, usize, &[GenLine])> = std::iter::once((0usize, 1usize, partner_lines))
        .chain(
            orgs.iter()
                .enumerate()
                .map(|(i, o)| (i + 1, o.accounts, o.lines.as_slice())),
        )
        .collect();
    for (idx, n_accounts, lines) in &all {
        let accounts: Vec<String> = if *idx == 0 {
            vec![PAYER.to_string()]
        } else {
            (0..*n_accounts).map(|j| account_id(*idx, j)).collect()
        };
        org_accounts.insert(*idx, accounts.clone());
        let mut csv = String::from(HEADER);
        let (mut sum, mut good, mut bad) = (0i128, 0u64, 0u64);
        for l in lines.iter() {
            let mut account = accounts[l.account % accounts.len()].clone();
            let mut lt = l.line_type.to_string();
            // Charges are never negative, discounts and credits never positive; Tax and Fee either.
            let signed = match l.line_type {
                "Usage" | "RIFee" => l.cost_cents.abs(),
                "Credit" | "EdpDiscount" | "SppDiscount" | "SavingsPlanNegation" => {
                    -l.cost_cents.abs()
                }
                _ => l.cost_cents,
            };
            let mut cost = cents(signed);
            let mut product = l.product.to_string();
            if lt == "EdpDiscount" {
                // A canary: a non-public discount on its own service.
                product = "CanaryService".into();
                cost = "-4242.42".into();
            }
            match l.bad {
                Bad::None => {}
                // An account of no org at all (prefix 99…, not the partner's).
                Bad::OtherOrgAccount => account = format!("99{:010}", 5 + l.account),
                Bad::UnknownType => lt = "Bogus".into(),
                Bad::UnreadableAmount => cost = "x1".into(),
                Bad::WrongSign => {
                    lt = "Usage".into();
                    cost = cents(-l.cost_cents.abs() - 1);
                }
            }
            if matches!(l.bad, Bad::None) {
                good += 1;
                sum += parse_fixed(&cost).unwrap();
            } else {
                bad += 1;
            }
            csv.push_str(&format!(
                "2026-05-01T00:00:00Z,{PAYER},{INVOICE_ID},AWS,{account},{lt},{product},{},Op,{}.{:03},USD,{cost},0.{:06},us-east-1\n",
                l.usage_type,
                l.usage_milli / 1000,
                l.usage_milli % 1000,
                l.rate_micro
            ));
        }
        let name = if *idx == 0 {
            "partner.csv".to_string()
        } else {
            format!("org{idx}.csv")
        };
        dir.write(&name, csv);
        expected_actual.insert(*idx, sum);
        expected_rows.insert(*idx, (good + bad, bad));
        if *idx > 0 {
            let o = &orgs[idx - 1];
            let plan = ["basic", "custom", "passthrough", "custom"][o.plan];
            if plan == "passthrough" {
                passthrough.insert(*idx);
            }
            let others: Vec<String> = accounts[1..].iter().map(|a| format!("\"{a}\"")).collect();
            config.push_str(&format!(
                "[[orgs]]\nid = \"org{idx}\"\nname = \"Org {idx}\"\nmanagement_account = \"{}\"\naccounts = [{}]\nfiles = [\"{name}\"]\nplan = \"{plan}\"\nallow_passthrough = true\ntransfer = {{ start = \"2026-01\" }}\n\
  [[orgs.custom_line_items]]\n  id = \"fee\"\n  description = \"Fee\"\n  kind = \"fee\"\n  flat = \"{}\"\n  start = \"2026-01\"\n\
  [[orgs.custom_line_items]]\n  id = \"pct\"\n  description = \"Pct\"\n  kind = \"credit\"\n  percent = \"{}\"\n  include_items = [\"fee\"]\n  exclude_savings_plan_negation = true\n  start = \"2026-01\"\n\n",
                accounts[0],
                others.join(", "),
                cents(o.fee_cents),
                cents(o.pct)
            ));
        }
    }
    let path = dir.write_config(&config);
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{config}"));
    let period = BillingPeriod::new(2026, 5).unwrap();
    let result = rate_all(&cfg, period, &Silent).unwrap();
    let out: BTreeMap<PathBuf, Vec<u8>> = render(&cfg, &result).unwrap().into_iter().collect();
    // Rendering is a pure function of the inputs: a second rating gives the same bytes.
    let again: BTreeMap<PathBuf, Vec<u8>> = render(&cfg, &rate_all(&cfg, period, &Silent).unwrap())
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(out, again);
    Case {
        _dir: dir,
        out,
        expected_actual,
        expected_rows,
        org_accounts,
        passthrough,
    }
}

fn money(v: &Value) -> i128 {
    parse_fixed(
        v.as_str()
            .unwrap_or_else(|| panic!("not a money string: {v}")),
    )
    .unwrap()
}

fn json(case: &Case, path: &str) -> Value {
    serde_json::from_slice(
        case.out
            .get(Path::new(path))
            .unwrap_or_else(|| panic!("{path} not written")),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn invoices_reconcile_and_stay_segregated(orgs in prop::collection::vec(org(), 1..4), partner in prop::collection::vec(line(), 0..6)) {
        let case = build(&orgs, &partner);
        let manifest = json(&case, "manifest.json");
        prop_assert_eq!(&manifest["all_checks_passed"], &Value::Bool(true));

        let mut actual_sum = 0i128;
        for idx in case.org_accounts.keys() {
            let id = if *idx == 0 { "partner".to_string() } else { format!("org{idx}") };
            // Actual invoices sum to the actual total of all rated input (billed mode).
            let inv = json(&case, &format!("partner/invoices/{id}.json"));
            let exact = money(&inv["exact_total"]);
            prop_assert_eq!(exact, case.expected_actual[idx], "org {}", id);
            let line_sum: i128 = inv["lines"].as_array().unwrap().iter().map(|l| money(&l["amount"])).sum();
            prop_assert_eq!(line_sum, money(&inv["total"]));
            actual_sum += exact;

            // Rows read = rated + quarantined, and quarantine holds exactly the bad rows.
            let m = manifest["orgs"].as_array().unwrap().iter().find(|o| o["org_id"] == id.as_str()).unwrap();
            let (read, bad) = case.expected_rows[idx];
            prop_assert_eq!(m["rows_read"].as_u64().unwrap(), read);
            prop_assert_eq!(m["rows_quarantined"].as_u64().unwrap(), bad);
            prop_assert_eq!(m["rows_rated"].as_u64().unwrap() + bad, read);

            if *idx == 0 { continue; }
            // Customer invoice lines sum exactly to the totals.
            let c = json(&case, &format!("customers/{id}/invoice.json"));
            let lines: i128 = c["lines"].as_array().unwrap().iter().map(|l| money(&l["amount"])).sum();
            let items: i128 = c["custom_line_items"].as_array().unwrap().iter().map(|l| money(&l["amount"])).sum();
            prop_assert_eq!(lines, money(&c["subtotal"]));
            prop_assert_eq!(lines + items, money(&c["total"]));
            prop_assert_eq!(money(&c["subtotal"]) + money(&c["fees"]) + money(&c["credits"]), money(&c["total"]));

            // Segregation: nothing of another org in this org's customer files and partner invoice.
            let own_files: Vec<(&PathBuf, &Vec<u8>)> = case.out.iter()
                .filter(|(p, _)| p.starts_with(format!("customers/{id}")) || p == &&PathBuf::from(format!("partner/invoices/{id}.json")))
                .collect();
            prop_assert!(own_files.len() >= 3);
            for (other, other_accounts) in &case.org_accounts {
                if other == idx { continue; }
                for (p, bytes) in &own_files {
                    let text = String::from_utf8_lossy(bytes);
                    for a in other_accounts {
                        prop_assert!(!text.contains(a.as_str()), "{} holds account {} of org {}", p.display(), a, other);
                    }
                }
            }
            // No partner figure in customer-facing files (unless the org opted into passthrough).
            for (p, bytes) in case.out.iter().filter(|(p, _)| p.starts_with(format!("customers/{id}"))) {
                let text = String::from_utf8_lossy(bytes);
                prop_assert!(!text.contains(PAYER) && !text.contains(INVOICE_ID), "{} leaks the payer or invoice id", p.display());
                if !case.passthrough.contains(idx) {
                    prop_assert!(!text.contains("CanaryService") && !text.contains("4242.42"), "{} leaks a non-public discount", p.display());
                    let exact_actual = format_fixed_exact(case.expected_actual[idx]);
                    if exact_actual.len() > 8 {
                        prop_assert!(!text.contains(&exact_actual), "{} holds the actual total {}", p.display(), exact_actual);
                    }
                }
            }
        }
        let total_input: i128 = case.expected_actual.values().sum();
        prop_assert_eq!(actual_sum, total_input);
    }
}
