//! Invoices in the customer's currency (docs/CURRENCY.md): the rate rule, ISO
//! 4217 minor units, lines that still sum exactly to the total, a missing rate,
//! `billxfer diff` on a rate change, FOCUS in the invoice currency, and the
//! config's refusals. Expected figures are worked out by hand in comments.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{ok, readable_text, stderr, Workdir};

const PAYER: &str = "990000000001";
const HEADER: &str = "bill_billing_period_start_date,bill_payer_account_id,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_usage_amount,line_item_currency_code,line_item_unblended_cost,pricing_public_on_demand_rate\n";

/// Two lines for `acct`: 10.00 of EC2 and 3.333 of S3 (USD invoice lines 10.00 and 3.33).
fn rows(acct: &str) -> String {
    format!(
        "{HEADER}2026-10-01T00:00:00Z,{PAYER},{acct},Usage,AmazonEC2,BoxUsage,1,USD,10.00,10.00\n2026-10-01T00:00:00Z,{PAYER},{acct},Usage,AmazonS3,Storage,1,USD,3.333,3.333\n"
    )
}

fn org(id: &str, acct: &str, currency: &str) -> String {
    format!(
        "[[orgs]]\nid = \"{id}\"\nname = \"{id}\"\nmanagement_account = \"{acct}\"\nfiles = [\"{id}.csv\"]\nplan = \"basic\"\ntransfer = {{ start = \"2026-01\" }}\ncurrency = \"{currency}\"\n"
    )
}

const TOP: &str = "[partner]\nid = \"p\"\nname = \"P\"\nmanagement_account = \"990000000001\"\n";

const RATES: &str = "date,from,to,rate\n2026-10-30,USD,JPY,151.37\n2026-10-30,USD,KWD,0.30712\n2026-10-29,USD,EUR,0.8611\n2026-10-30,USD,EUR,0.8617\n2026-11-02,USD,EUR,0.8630\n";

fn month(orgs: &[(&str, &str, &str)], fx: &str) -> Workdir {
    let dir = Workdir::new();
    let mut config = format!("{TOP}{fx}\n");
    for (id, acct, cur) in orgs {
        config.push_str(&org(id, acct, cur));
        dir.write(format!("{id}.csv"), rows(acct));
    }
    dir.write_config(config);
    dir.write("rates.csv", RATES);
    dir
}

const FX: &str = "[fx]\nrates = \"rates.csv\"\nsource = \"Test reference rates\"\n";

fn invoice(dir: &Workdir, org: &str) -> Value {
    dir.json(
        Path::new("out/2026-10/customers")
            .join(org)
            .join("invoice.json"),
    )
}

fn amounts(inv: &Value) -> Vec<String> {
    inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn yen_and_dinar_invoices_round_to_their_minor_units_and_still_sum() {
    let dir = month(
        &[("jp", "111000000001", "JPY"), ("kw", "222000000001", "KWD")],
        FX,
    );
    ok(&dir.run_config("run", "2026-10", &[]));
    // JPY (0 decimals): 10.00 x 151.37 = 1513.7 -> 1514; 3.333 x 151.37 = 504.51621 -> 505.
    let jp = invoice(&dir, "jp");
    assert_eq!(jp["currency"], "JPY");
    assert_eq!(amounts(&jp), ["1514", "505"]);
    assert_eq!(jp["total"], "2019");
    assert_eq!(jp["exchange_rate"]["usd_total"], "13.33");
    // KWD (3 decimals): 10.00 x 0.30712 = 3.0712 -> 3.071; 3.333 x 0.30712 = 1.02363096 -> 1.024.
    let kw = invoice(&dir, "kw");
    assert_eq!(amounts(&kw), ["3.071", "1.024"]);
    assert_eq!(kw["total"], "4.095");
    let csv = dir.read("out/2026-10/customers/kw/invoice.csv");
    assert!(csv.contains("total,,,,4.095\ncurrency,,,,KWD\n"), "{csv}");
    let page = dir.read("out/2026-10/customers/jp/invoice.html");
    assert!(
        page.contains("1 USD = 151.37 JPY on 2026-10-30 (Test reference rates)"),
        "{page}"
    );
    // The margin report stays in USD and gives each invoice in its currency.
    let margin = dir.read("out/2026-10/partner/margin.csv");
    assert!(
        margin.contains("org,jp,,13.33,13.33,0.00,0.00,JPY,2019\n"),
        "{margin}"
    );
    let m = dir.json("out/2026-10/manifest.json");
    assert_eq!(m["all_checks_passed"], true);
    let kw_m = common::manifest_org(&m, "kw");
    assert_eq!(kw_m["exchange_rate"]["rate"], "0.30712");
    assert_eq!(kw_m["invoice_total_in_currency"], "4.095");
}

#[test]
fn the_rate_is_the_last_on_or_before_the_periods_last_day_or_a_set_date() {
    // 2026-10-31 is a Saturday: the Friday rate (0.8617) applies.
    let dir = month(&[("eu", "333000000001", "EUR")], FX);
    ok(&dir.run_config("run", "2026-10", &[]));
    let eu = invoice(&dir, "eu");
    assert_eq!(eu["exchange_rate"]["date"], "2026-10-30");
    // 10.00 x 0.8617 = 8.617 -> 8.62; 3.333 x 0.8617 = 2.8720461 -> 2.87.
    assert_eq!(amounts(&eu), ["8.62", "2.87"]);
    assert_eq!(eu["total"], "11.49");
    // An invoice date: the last rate on or before it.
    let dated = month(
        &[("eu", "333000000001", "EUR")],
        &format!("{FX}rate_date = \"2026-11-05\"\n"),
    );
    ok(&dated.run_config("run", "2026-10", &[]));
    let eu = invoice(&dated, "eu");
    assert_eq!(eu["exchange_rate"]["date"], "2026-11-02");
    // 10.00 x 0.8630 = 8.63; 3.333 x 0.8630 = 2.876379 -> 2.88.
    assert_eq!(eu["total"], "11.51");
}

#[test]
fn diff_names_a_change_that_comes_only_from_the_rate() {
    let a = month(&[("eu", "333000000001", "EUR")], FX);
    ok(&a.run_config("run", "2026-10", &[]));
    let b = month(
        &[("eu", "333000000001", "EUR")],
        &format!("{FX}rate_date = \"2026-11-05\"\n"),
    );
    ok(&b.run_config("run", "2026-10", &[]));
    let o = a.run([
        "diff",
        a.join("out/2026-10").to_str().unwrap(),
        b.join("out/2026-10").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("eu: invoice 11.49 -> 11.51: changed only because the exchange rate changed: 1 USD = 0.8617 EUR (2026-10-30) -> 0.863 EUR (2026-11-02)"),
        "{text}"
    );
}

#[test]
fn a_missing_rate_names_the_org_the_currency_and_the_date_and_keeps_the_last_output() {
    let dir = month(&[("eu", "333000000001", "EUR")], FX);
    ok(&dir.run_config("run", "2026-10", &[]));
    dir.write(
        "rates.csv",
        "date,from,to,rate\n2026-11-02,USD,EUR,0.8630\n",
    );
    let o = dir.run_config("run", "2026-10", &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("org `eu`: cannot invoice in EUR: no USD->EUR rate on or before 2026-10-31 in rates.csv"),
        "{e}"
    );
    assert_eq!(invoice(&dir, "eu")["total"], "11.49");
}

#[test]
fn the_focus_export_bills_in_euros_and_keeps_the_usd_prices() {
    let dir = month(&[("eu", "333000000001", "EUR")], FX);
    ok(&dir.run_config("run", "2026-10", &["--exports", "focus"]));
    let listing = dir.json("out/2026-10/exports.json");
    let file = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "focus")
        .unwrap()
        .clone();
    // Row by row: 10.00 x 0.8617 = 8.617 and 3.333 x 0.8617 = 2.8720461.
    assert_eq!(file["currency"], "EUR");
    assert_eq!(file["cost_total"], "11.4890461");
    let path = dir.join("out/2026-10").join(file["path"].as_str().unwrap());
    let text = readable_text(&path.to_string_lossy(), &std::fs::read(&path).unwrap());
    let column = |name: &str| -> Vec<String> {
        let start = text.find(&format!("{name}\n")).unwrap() + name.len() + 1;
        text[start..].lines().take(2).map(String::from).collect()
    };
    assert_eq!(column("BillingCurrency"), ["EUR", "EUR"]);
    assert_eq!(column("PricingCurrency"), ["USD", "USD"]);
    assert_eq!(
        column("PricingCurrencyEffectiveCost"),
        ["10.0000000000", "3.3330000000"]
    );
    let v = dir.run(["validate-focus", path.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn currencies_the_config_cannot_use_are_refused() {
    let bad = |orgs: &[(&str, &str, &str)], fx: &str, rates: &str| {
        let dir = month(orgs, fx);
        dir.write("rates.csv", rates);
        let o = dir.run_config("validate", "2026-10", &[]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        stderr(&o)
    };
    let e = bad(&[("eu", "333000000001", "EURO")], FX, RATES);
    assert!(e.contains("`EURO` is not an ISO 4217 currency"), "{e}");
    let e = bad(&[("eu", "333000000001", "EUR")], "", RATES);
    assert!(
        e.contains("invoicing in EUR needs exchange rates: add an [fx] table"),
        "{e}"
    );
    let e = bad(
        &[("eu", "333000000001", "EUR")],
        FX,
        "date,from,to,rate\n2026-10-30,USD,EUR,-1\n",
    );
    assert!(
        e.contains("rates.csv: row 2, column `rate`: `-1` is not a positive decimal"),
        "{e}"
    );
}

#[test]
fn a_seller_in_pounds_gets_the_tops_invoices_in_pounds_and_bills_in_its_customers_currency() {
    let dir = Workdir::new();
    dir.write(
        "rates.csv",
        "date,from,to,rate\n2026-10-30,USD,GBP,0.79\n2026-10-30,USD,EUR,0.8617\n",
    );
    dir.write_config(format!(
        "{TOP}{FX}\n[[orgs]]\nid = \"bu\"\nname = \"BU\"\nmanagement_account = \"123000000001\"\nfiles = [\"bu.csv\"]\nplan = \"basic\"\ntransfer = {{ start = \"2026-01\" }}\ncurrency = \"EUR\"\n\n[[sellers]]\nid = \"sub\"\nname = \"Sub\"\nmanagement_account = \"456000000001\"\nfiles = [\"sub.csv\"]\nplan = \"basic\"\ntransfer = {{ start = \"2026-01\" }}\ncurrency = \"GBP\"\ncustomers = [\"bu\"]\n"
    ));
    dir.write("bu.csv", rows("123000000001"));
    dir.write("sub.csv", rows("456000000001"));
    ok(&dir.run_config("run", "2026-10", &[]));
    // The top's invoices to the seller, in GBP: 10.00 x 0.79 = 7.90; 3.333 x 0.79 = 2.63307 -> 2.63.
    for rel in [
        "sellers/sub/invoices/bu.json",
        "sellers/sub/own/invoice.json",
    ] {
        let inv = dir.json(Path::new("out/2026-10").join(rel));
        assert_eq!(inv["currency"], "GBP", "{rel}");
        assert_eq!(inv["total"], "10.53", "{rel}");
    }
    // The seller's invoice to its customer, in EUR: 8.62 + 2.87.
    let bu = invoice(&dir, "bu");
    assert_eq!(
        (bu["currency"].as_str(), bu["total"].as_str()),
        (Some("EUR"), Some("11.49"))
    );
    let margin = dir.read("out/2026-10/partner/margin.csv");
    assert!(
        margin.contains("org,bu,,13.33,13.33,0.00,0.00,GBP,10.53\n"),
        "{margin}"
    );
}
