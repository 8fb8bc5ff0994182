//! Two-level chains (top partner -> seller -> end customer), end to end: the
//! reference's worked examples T2, T3, T6 and T7 (billing-transfer-and-conductor.md
//! §5.1), what each level's files may hold, the chain's config refusals, the
//! pro forma base setting, and the free tier off on partly free lines (T-D8).
//!
//! The reference gives the figures each level sees, not the plans behind them;
//! the plans here are ones that produce those figures, worked out in comments.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{files_under, readable_text, stderr, Workdir};

const TOP_PAYER: &str = "789000000001";
const HEADER: &str = "bill_billing_period_start_date,bill_payer_account_id,bill_invoice_id,bill_billing_entity,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_operation,line_item_usage_amount,line_item_currency_code,line_item_unblended_cost,line_item_net_unblended_cost,pricing_public_on_demand_rate,product_region_code\n";

/// One CUR row: account, type, product, usage type, usage, unblended, net, public rate.
struct Row<'a>(
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
);

fn cur(rows: &[Row<'_>]) -> String {
    let mut s = String::from(HEADER);
    for Row(acct, lt, product, ut, usage, unblended, net, rate) in rows {
        s.push_str(&format!(
            "2026-10-01T00:00:00Z,{TOP_PAYER},TOPINV777,AWS,{acct},{lt},{product},{ut},Op,{usage},USD,{unblended},{net},{rate},us-east-1\n"
        ));
    }
    s
}

const TOP: &str = r#"
[partner]
id = "top"
name = "Top Distribution"
management_account = "789000000001"
files = ["top.csv"]
"#;

/// A seller `sub` (account 456000000001) with customer `bu` (123000000001).
fn chain_config(top_plans: &str, seller_plan: &str, seller_plans: &str, bu_plan: &str) -> String {
    format!(
        r#"{TOP}
{top_plans}

[[orgs]]
id = "bu"
name = "Business Unit 1.1"
management_account = "123000000001"
files = ["bu.csv"]
plan = "{bu_plan}"
allow_passthrough = true
transfer = {{ start = "2026-01" }}

[[sellers]]
id = "sub"
name = "Subsidiary One"
management_account = "456000000001"
files = ["sub.csv"]
plan = "{seller_plan}"
allow_passthrough = true
transfer = {{ start = "2026-01" }}
customers = ["bu"]
{seller_plans}
"#
    )
}

struct Chain {
    dir: Workdir,
}

impl Chain {
    fn run(
        config: &str,
        top: &[Row<'_>],
        sub: &[Row<'_>],
        bu: &[Row<'_>],
        extra: &[&str],
    ) -> Chain {
        let dir = Workdir::new();
        dir.write_config(config);
        dir.write("top.csv", cur(top));
        dir.write("sub.csv", cur(sub));
        dir.write("bu.csv", cur(bu));
        let out = dir.run_config("run", "2026-10", extra);
        assert!(out.status.success(), "{}", stderr(&out));
        Chain { dir }
    }

    fn total(&self, rel: &str) -> String {
        let v: Value = self.dir.json(Path::new("out/2026-10").join(rel));
        v["total"].as_str().unwrap_or_default().to_string()
    }

    fn manifest(&self) -> Value {
        self.dir.json("out/2026-10/manifest.json")
    }

    fn read(&self, rel: &str) -> String {
        self.dir.read(Path::new("out/2026-10").join(rel))
    }
}

/// A line billed `net` by AWS and `public` at list price.
fn line<'a>(acct: &'a str, product: &'a str, public: &'a str, net: &'a str) -> Row<'a> {
    Row(acct, "Usage", product, "Use", "1", public, net, public)
}

#[test]
fn t2_passthrough_at_the_top_basic_at_the_seller() {
    // Invoice $98 (AWS at the top's discount), public $100.
    let c = Chain::run(
        &chain_config("", "passthrough", "", "basic"),
        &[],
        &[],
        &[line("123000000001", "AmazonEC2", "100", "98")],
        &[],
    );
    assert_eq!(c.total("partner/invoices/bu.json"), "98.00");
    // The seller's view of the customer: $98, the top's bill passed through.
    assert_eq!(c.total("sellers/sub/invoices/bu.json"), "98.00");
    // The customer sees $100: only the seller's (basic) plan matters.
    assert_eq!(c.total("customers/bu/invoice.json"), "100.00");
    let margin = c.read("sellers/sub/margin.csv");
    assert!(
        margin.contains("org,bu,,98.00,100.00,2.00,2.00\n"),
        "{margin}"
    );
}

#[test]
fn t3_basic_at_the_top_passthrough_at_the_seller() {
    let c = Chain::run(
        &chain_config("", "basic", "", "passthrough"),
        &[],
        &[],
        &[line("123000000001", "AmazonEC2", "100", "98")],
        &[],
    );
    assert_eq!(c.total("partner/invoices/bu.json"), "98.00");
    assert_eq!(c.total("sellers/sub/invoices/bu.json"), "100.00");
    assert_eq!(c.total("customers/bu/invoice.json"), "100.00");
    // The top earns 2.00 on the seller's group; the seller nothing.
    let top = c.read("partner/margin.csv");
    assert!(
        top.contains("seller,sub,,98.00,100.00,2.00,2.00,,\n"),
        "{top}"
    );
    assert!(c
        .read("sellers/sub/margin.csv")
        .contains("org,bu,,100.00,100.00,0.00,0.00\n"));
}

#[test]
fn t6_two_level_conglomerate() {
    // Usage at AWS prices: BU_1.1 (123) $15 of S3, Subsidiary_1 (456) $30 of EC2,
    // Conglomerate_A (789) $10. The top's plan for the subsidiary: S3 6.67% off
    // (15 x 0.9333 = 13.9995 -> 14.00), EC2 3.33% off (30 x 0.9667 = 29.001 ->
    // 29.00). The subsidiary's plan for BU_1.1: 10% off (15 x 0.9 = 13.50).
    let top_plans = r#"
[[plans]]
id = "for-sub"
rules = [
  { id = "s3", scope = "service", service = "AmazonS3", type = "discount", percent = "6.67" },
  { id = "ec2", scope = "service", service = "AmazonEC2", type = "discount", percent = "3.33" },
]"#;
    let seller_plans = r#"
  [[sellers.plans]]
  id = "ten-off"
  rules = [{ id = "all", scope = "global", type = "discount", percent = "10" }]"#;
    let c = Chain::run(
        &chain_config(top_plans, "for-sub", seller_plans, "ten-off"),
        &[line(TOP_PAYER, "AmazonEC2", "10", "10")],
        &[line("456000000001", "AmazonEC2", "30", "30")],
        &[line("123000000001", "AmazonS3", "15", "15")],
        &[],
    );
    // 789 receives three invoices and pays AWS $55.
    let paid: Vec<String> = ["top", "sub", "bu"]
        .iter()
        .map(|o| c.total(&format!("partner/invoices/{o}.json")))
        .collect();
    assert_eq!(paid, ["10.00", "30.00", "15.00"]);
    // 789 charges 456 $14 for 123's usage and $29 for its own: $43.
    assert_eq!(c.total("sellers/sub/invoices/bu.json"), "14.00");
    assert_eq!(c.total("sellers/sub/own/invoice.json"), "29.00");
    let m = c.manifest();
    let s = &m["sellers"][0];
    assert_eq!(s["seller"], "sub");
    assert_eq!(s["charged_by_top"], "43.00");
    // 456 charges 123 $13.50, and 123 sees only that.
    assert_eq!(c.total("customers/bu/invoice.json"), "13.50");
    assert_eq!(s["customers_revenue"], "13.50");
    assert_eq!(s["margin"], "-0.50");
}

#[test]
fn t7_two_level_distribution() {
    // End customer 123: $20 billed by AWS on S3 where the public price is $22 (a
    // private rate); seller 456: $2 of EC2; distributor 789: $1. The top's plan
    // for the seller: +5% on the billed cost (20 -> 21), EC2 +50% (2 -> 3). The
    // seller charges "public pricing": no rule, on the public on-demand base (22).
    let top_plans = r#"
[[plans]]
id = "for-sub"
rules = [
  { id = "all", scope = "global", type = "markup", percent = "5" },
  { id = "ec2", scope = "service", service = "AmazonEC2", type = "markup", percent = "50" },
]"#;
    let seller_plans = r#"
  [[sellers.plans]]
  id = "public"
  base = "public_on_demand"
  rules = []"#;
    let c = Chain::run(
        &chain_config(top_plans, "for-sub", seller_plans, "public"),
        &[line(TOP_PAYER, "AmazonEC2", "1", "1")],
        &[line("456000000001", "AmazonEC2", "2", "2")],
        &[Row(
            "123000000001",
            "Usage",
            "AmazonS3",
            "Use",
            "10",
            "20",
            "20",
            "2.2",
        )],
        &[],
    );
    let paid: i64 = ["top", "sub", "bu"]
        .iter()
        .map(|o| {
            let t = c.total(&format!("partner/invoices/{o}.json"));
            t.replace('.', "").parse::<i64>().unwrap()
        })
        .sum();
    assert_eq!(paid, 2300, "789 pays $23");
    assert_eq!(c.total("sellers/sub/invoices/bu.json"), "21.00");
    assert_eq!(c.total("sellers/sub/own/invoice.json"), "3.00");
    assert_eq!(c.total("customers/bu/invoice.json"), "22.00");
    let m = c.manifest();
    assert_eq!(m["sellers"][0]["charged_by_top"], "24.00");
    // The top's margin on the seller's group: 24 - 22 = 2.00.
    assert!(c
        .read("partner/margin.csv")
        .contains("seller,sub,,22.00,24.00,2.00,8.33,,\n"));
    // The customer's line is billed 9% below public: counted in the manifest.
    let bu = common::manifest_org(&m, "bu");
    assert_eq!(bu["usage_lines_below_public_on_demand"], 1);
    assert_eq!(bu["proforma_base"], "public_on_demand");
}

/// Every file under `dir` as text (Parquet decoded), with its path.
fn texts(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for ext in ["json", "csv", "html", "parquet"] {
        for f in files_under(dir, ext) {
            let p = f.to_string_lossy().to_string();
            let bytes = std::fs::read(&f).unwrap();
            out.push((p.clone(), readable_text(&p, &bytes)));
        }
    }
    assert!(!out.is_empty(), "no files under {}", dir.display());
    out
}

fn assert_absent(dir: &Path, canaries: &[&str], what: &str) {
    for (path, text) in texts(dir) {
        for c in canaries {
            assert!(!text.contains(c), "{what} `{c}` found in {path}");
        }
    }
}

#[test]
fn nothing_of_a_level_reaches_the_levels_below() {
    // Unique figures per level. The top: AWS's net costs 97.13 (bu) and 48.21
    // (sub), its AWS invoice id, its margins 104.37 - 97.13 = 7.24 and
    // 52.19 - 48.21 = 3.98, and its own usage (61.17). The seller's: its costs
    // 104.37 (bu: 100 x 1.0437) and 52.19 (own: 50 x 1.0437 = 52.185), and its
    // margin on bu, 111.59 - 104.37 = 7.22.
    let top_plans = r#"
[[plans]]
id = "for-sub"
rules = [{ id = "all", scope = "global", type = "markup", percent = "4.37" }]"#;
    let seller_plans = r#"
  [[sellers.plans]]
  id = "resale"
  rules = [{ id = "all", scope = "global", type = "markup", percent = "11.59" }]"#;
    let c = Chain::run(
        &chain_config(top_plans, "for-sub", seller_plans, "resale"),
        &[line(TOP_PAYER, "AmazonEC2", "61.17", "61.17")],
        &[line("456000000001", "AmazonEC2", "50", "48.21")],
        &[line("123000000001", "AmazonEC2", "100", "97.13")],
        &["--exports", "all"],
    );
    assert_eq!(c.total("customers/bu/invoice.json"), "111.59");
    assert_eq!(c.total("sellers/sub/invoices/bu.json"), "104.37");
    assert_eq!(c.total("sellers/sub/own/invoice.json"), "52.19");
    let out = c.dir.join("out/2026-10");
    let top = [
        "97.13",
        "48.21",
        "TOPINV777",
        "7.24",
        "3.98",
        "61.17",
        "789000000001",
    ];
    assert_absent(&out.join("sellers/sub"), &top, "the top's");
    assert_absent(&out.join("customers/bu"), &top, "the top's");
    let seller = ["104.37", "52.19", "7.22", "456000000001", "Subsidiary"];
    // The seller's name is the issuer of bu's invoice; its costs never appear there.
    assert_absent(&out.join("customers/bu"), &seller[..4], "the seller's");
    // The top sees the whole chain.
    let margin = c.read("partner/margin.csv");
    assert!(margin.contains("org,bu,,97.13,104.37,7.24,"), "{margin}");
    assert!(c
        .read("customers/bu/invoice.json")
        .contains("\"name\": \"Subsidiary One\""));
}

fn refusal(config: &str) -> String {
    let dir = Workdir::new();
    dir.write_config(config);
    for f in ["top.csv", "sub.csv", "bu.csv", "b.csv"] {
        dir.write(f, HEADER);
    }
    let out = dir.run_config("validate", "2026-10", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    stderr(&out)
}

#[test]
fn chains_aws_cannot_have_are_refused() {
    let seller = |id: &str, acct: &str, customers: &str| {
        format!(
            "[[sellers]]\nid = \"{id}\"\nname = \"{id}\"\nmanagement_account = \"{acct}\"\nfiles = [\"sub.csv\"]\nplan = \"basic\"\ntransfer = {{ start = \"2026-01\" }}\ncustomers = [{customers}]\n"
        )
    };
    let org = |id: &str, acct: &str, plan: &str| {
        format!(
            "[[orgs]]\nid = \"{id}\"\nname = \"{id}\"\nmanagement_account = \"{acct}\"\nfiles = [\"bu.csv\"]\nplan = \"{plan}\"\ntransfer = {{ start = \"2026-01\" }}\n"
        )
    };
    // Three levels: a seller listing a seller.
    let e = refusal(&format!(
        "{TOP}{}{}{}",
        seller("a", "456000000001", "\"b\""),
        seller("b", "456000000002", "\"bu\""),
        org("bu", "123000000001", "basic")
    ));
    assert!(e.contains("at most two levels"), "{e}");
    // A cycle.
    let e = refusal(&format!(
        "{TOP}{}{}",
        seller("a", "456000000001", "\"b\""),
        seller("b", "456000000002", "\"a\"")
    ));
    assert!(
        e.contains("list each other as customers: a chain cannot be a cycle"),
        "{e}"
    );
    let e = refusal(&format!("{TOP}{}", seller("a", "456000000001", "\"a\"")));
    assert!(e.contains("lists itself"), "{e}");
    // One org under two sellers.
    let e = refusal(&format!(
        "{TOP}{}{}{}",
        seller("a", "456000000001", "\"bu\""),
        seller("b", "456000000002", "\"bu\""),
        org("bu", "123000000001", "basic")
    ));
    assert!(
        e.contains("org `bu` is listed under two sellers, `a` and `b`"),
        "{e}"
    );
    // A plan of the wrong level: the top's plan named by a seller's customer.
    let e = refusal(&format!(
        "{TOP}[[plans]]\nid = \"top-only\"\nrules = []\n{}{}",
        seller("a", "456000000001", "\"bu\""),
        org("bu", "123000000001", "top-only")
    ));
    assert!(
        e.contains("plan `top-only` does not exist in the plans of its seller"),
        "{e}"
    );
    // A customer that is not an org.
    let e = refusal(&format!(
        "{TOP}{}",
        seller("a", "456000000001", "\"ghost\"")
    ));
    assert!(e.contains("`ghost` is not an org"), "{e}");
}

/// One direct customer `c` (111000000001) on `plan`, with `rows`.
fn one_org(plans: &str, plan: &str, rows: &[Row<'_>]) -> (Workdir, Value) {
    let dir = Workdir::new();
    dir.write_config(format!(
        "{TOP}{plans}\n[[orgs]]\nid = \"c\"\nname = \"C\"\nmanagement_account = \"111000000001\"\nfiles = [\"c.csv\"]\nplan = \"{plan}\"\ntransfer = {{ start = \"2026-01\" }}\n"
    ));
    dir.write("top.csv", HEADER);
    dir.write("c.csv", cur(rows));
    let out = dir.run_config("run", "2026-10", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let inv = dir.json("out/2026-10/customers/c/invoice.json");
    (dir, inv)
}

fn lines_of(inv: &Value) -> Vec<(String, String)> {
    inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["service"].as_str().unwrap().to_string(),
                l["amount"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_pro_forma_base_on_a_line_priced_seven_percent_below_public() {
    // 100 units at a public 0.10 = 10.00; AWS billed 9.30 (7% below).
    let rows = [Row(
        "111000000001",
        "Usage",
        "AmazonEC2",
        "BoxUsage",
        "100",
        "9.30",
        "9.30",
        "0.10",
    )];
    let plans = |base: &str| {
        format!("[[plans]]\nid = \"p\"\nbase = \"{base}\"\nrules = [{{ id = \"all\", scope = \"global\", type = \"markup\", percent = \"10\" }}]\n")
    };
    // billed: 9.30 x 1.10 = 10.23, and the manifest warns, naming the SKU.
    let (dir, inv) = one_org(&plans("billed"), "p", &rows);
    assert_eq!(inv["total"], "10.23");
    let m = dir.json("out/2026-10/manifest.json");
    let c = common::manifest_org(&m, "c");
    assert_eq!(c["usage_lines_below_public_on_demand"], 1);
    assert_eq!(c["skus_below_public_on_demand"]["AmazonEC2 BoxUsage"], 1);
    let warnings = c["warnings"].to_string();
    assert!(
        warnings.contains("AmazonEC2 BoxUsage (1)") && warnings.contains("public_on_demand"),
        "{warnings}"
    );
    // public_on_demand: 100 x 0.10 x 1.10 = 11.00, counted but no warning.
    let (dir, inv) = one_org(&plans("public_on_demand"), "p", &rows);
    assert_eq!(inv["total"], "11.00");
    let m = dir.json("out/2026-10/manifest.json");
    let c = common::manifest_org(&m, "c");
    assert_eq!(c["usage_lines_below_public_on_demand"], 1);
    assert!(!c["warnings"].to_string().contains("below"));
    // Within the tolerance (0.05% below): not counted.
    let near = [Row(
        "111000000001",
        "Usage",
        "AmazonEC2",
        "BoxUsage",
        "100",
        "9.995",
        "9.995",
        "0.10",
    )];
    let (dir, _) = one_org(&plans("billed"), "p", &near);
    let m = dir.json("out/2026-10/manifest.json");
    assert_eq!(
        common::manifest_org(&m, "c")["usage_lines_below_public_on_demand"],
        0
    );
}

#[test]
fn t_d8_free_tier_off_prices_partly_and_fully_free_lines_at_the_paid_rate() {
    // 1 GB free then 0.09/GB. A line of 10 GB on which the allowance ran out
    // part-way (billed 9 x 0.09 = 0.81), a fully free 1 GB line (billed 0), and
    // a fully paid 5 GB line (0.45), each on its own service to see each line.
    let rows = [
        Row(
            "111000000001",
            "Usage",
            "AmazonS3",
            "DataTransfer-Out-Bytes",
            "10",
            "0.81",
            "0.81",
            "0.09",
        ),
        Row(
            "111000000001",
            "Usage",
            "AmazonCloudFront",
            "DataTransfer-Out-Bytes",
            "1",
            "0",
            "0",
            "0.09",
        ),
        Row(
            "111000000001",
            "Usage",
            "AmazonEC2",
            "DataTransfer-Out-Bytes",
            "5",
            "0.45",
            "0.45",
            "0.09",
        ),
    ];
    let off = "[[plans]]\nid = \"off\"\nrules = [{ id = \"nft\", scope = \"global\", type = \"tiering\", free_tier = false }]\n";
    let (_, inv) = one_org(off, "off", &rows);
    let want = |v: [&str; 3]| {
        vec![
            ("AmazonCloudFront".to_string(), v[0].to_string()),
            ("AmazonEC2".to_string(), v[1].to_string()),
            ("AmazonS3".to_string(), v[2].to_string()),
        ]
    };
    // Off: 10 x 0.09 = 0.90, 1 x 0.09 = 0.09, 5 x 0.09 = 0.45.
    assert_eq!(lines_of(&inv), want(["0.09", "0.45", "0.90"]));
    assert_eq!(inv["total"], "1.44");
    // On (basic): as billed; the free line is 0.00 and left off the invoice.
    let (_, inv) = one_org("", "basic", &rows);
    assert_eq!(
        lines_of(&inv),
        vec![
            ("AmazonEC2".to_string(), "0.45".to_string()),
            ("AmazonS3".to_string(), "0.81".to_string())
        ]
    );
}

mod random_chains {
    //! Random two-level chains: every invoice checked against prices computed
    //! here from the generated rows (one row per invoice line, so each line is
    //! rounded once), and every level's totals against the level above.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy)]
    enum GenPlan {
        Passthrough,
        Basic,
        Markup(i64),
        Discount(i64),
    }

    impl GenPlan {
        fn id(self) -> String {
            match self {
                GenPlan::Passthrough => "passthrough".into(),
                GenPlan::Basic => "basic".into(),
                GenPlan::Markup(p) => format!("up{p}"),
                GenPlan::Discount(p) => format!("down{p}"),
            }
        }

        fn toml(self, table: &str) -> String {
            let (kind, p) = match self {
                GenPlan::Markup(p) => ("markup", p),
                GenPlan::Discount(p) => ("discount", p),
                _ => return String::new(),
            };
            format!("[[{table}]]\nid = \"{}\"\nrules = [{{ id = \"g\", scope = \"global\", type = \"{kind}\", percent = \"{p}\" }}]\n", self.id())
        }

        /// The price in cents of a line of `public` cents whose level above charged `above`.
        fn price(self, public: i64, above: i64) -> i64 {
            let hundredths = match self {
                GenPlan::Passthrough => return above,
                GenPlan::Basic => return public,
                GenPlan::Markup(p) => public * (100 + p),
                GenPlan::Discount(p) => public * (100 - p),
            };
            (hundredths + 50) / 100
        }
    }

    fn plan() -> impl Strategy<Value = GenPlan> {
        prop_oneof![
            Just(GenPlan::Passthrough),
            Just(GenPlan::Basic),
            (1i64..40).prop_map(GenPlan::Markup),
            (1i64..40).prop_map(GenPlan::Discount),
        ]
    }

    /// (public cents, AWS's discount in cents) per service line.
    fn lines() -> impl Strategy<Value = Vec<(i64, i64)>> {
        prop::collection::vec((1i64..200_000, 0i64..20), 1..4)
            .prop_map(|v| v.into_iter().map(|(u, d)| (u, u * d / 100)).collect())
    }

    #[derive(Debug, Clone)]
    struct GenSeller {
        top_plan: GenPlan,
        own: Vec<(i64, i64)>,
        customers: Vec<(GenPlan, Vec<(i64, i64)>)>,
    }

    fn seller() -> impl Strategy<Value = GenSeller> {
        (
            plan(),
            lines(),
            prop::collection::vec((plan(), lines()), 1..4),
        )
            .prop_map(|(top_plan, own, customers)| GenSeller {
                top_plan,
                own,
                customers,
            })
    }

    const SERVICES: [&str; 3] = ["AmazonEC2", "AmazonS3", "AmazonRDS"];

    fn money(cents: i64) -> String {
        let sign = if cents < 0 { "-" } else { "" };
        format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
    }

    fn csv(acct: &str, lines: &[(i64, i64)]) -> String {
        let mut s = String::from(HEADER);
        for (k, (public, discount)) in lines.iter().enumerate() {
            let (u, n) = (money(*public), money(public - discount));
            s.push_str(&format!(
                "2026-10-01T00:00:00Z,{TOP_PAYER},INV,AWS,{acct},Usage,{},Use,Op,1,USD,{u},{n},{u},us-east-1\n",
                SERVICES[k]
            ));
        }
        s
    }

    fn org_toml(table: &str, id: &str, acct: &str, plan: GenPlan, extra: &str) -> String {
        format!("[[{table}]]\nid = \"{id}\"\nname = \"{id}\"\nmanagement_account = \"{acct}\"\nfiles = [\"{id}.csv\"]\nplan = \"{}\"\nallow_passthrough = true\ntransfer = {{ start = \"2026-01\" }}\n{extra}", plan.id())
    }

    fn total(dir: &Workdir, rel: &str) -> String {
        let v = dir.json(Path::new("out/2026-10").join(rel));
        v["total"].as_str().unwrap_or_default().to_string()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

        #[test]
        fn every_level_is_billed_what_the_level_above_charges_it(
            sellers in prop::collection::vec(seller(), 1..3),
            direct in prop::collection::vec((plan(), lines()), 0..2),
        ) {
            let dir = Workdir::new();
            dir.write("top.csv", HEADER);
            let mut config = String::from(TOP);
            let mut top_plans = std::collections::BTreeMap::new();
            let mut orgs = String::new();
            let mut seller_tables = String::new();
            let mut n = 0;
            let mut acct = || { n += 1; format!("{:012}", 100_000_000_000u64 + n) };
            for (i, (p, l)) in direct.iter().enumerate() {
                top_plans.insert(p.id(), p.toml("plans"));
                let a = acct();
                dir.write(format!("d{i}.csv"), csv(&a, l));
                orgs.push_str(&org_toml("orgs", &format!("d{i}"), &a, *p, ""));
            }
            for (i, s) in sellers.iter().enumerate() {
                top_plans.insert(s.top_plan.id(), s.top_plan.toml("plans"));
                let mut own_plans = std::collections::BTreeMap::new();
                let mut names = Vec::new();
                for (j, (p, l)) in s.customers.iter().enumerate() {
                    own_plans.insert(p.id(), p.toml("sellers.plans"));
                    let id = format!("s{i}c{j}");
                    let a = acct();
                    dir.write(format!("{id}.csv"), csv(&a, l));
                    orgs.push_str(&org_toml("orgs", &id, &a, *p, ""));
                    names.push(format!("\"{id}\""));
                }
                let a = acct();
                dir.write(format!("s{i}.csv"), csv(&a, &s.own));
                let extra = format!("customers = [{}]\n{}", names.join(", "), own_plans.values().cloned().collect::<String>());
                seller_tables.push_str(&org_toml("sellers", &format!("s{i}"), &a, s.top_plan, &extra));
            }
            config.push_str(&top_plans.values().cloned().collect::<String>());
            config.push_str(&orgs);
            config.push_str(&seller_tables);
            dir.write_config(&config);
            let out = dir.run_config("run", "2026-10", &[]);
            prop_assert!(out.status.success(), "{}\n{config}", stderr(&out));
            let m = dir.json("out/2026-10/manifest.json");
            prop_assert_eq!(&m["all_checks_passed"], true);

            let net = |l: &[(i64, i64)]| l.iter().map(|(u, d)| u - d).sum::<i64>();
            for (i, (p, l)) in direct.iter().enumerate() {
                let want: i64 = l.iter().map(|(u, d)| p.price(*u, u - d)).sum();
                prop_assert_eq!(total(&dir, &format!("customers/d{i}/invoice.json")), money(want));
                prop_assert_eq!(total(&dir, &format!("partner/invoices/d{i}.json")), money(net(l)));
            }
            let margin = dir.read("out/2026-10/partner/margin.csv");
            for (i, s) in sellers.iter().enumerate() {
                let own: i64 = s.own.iter().map(|(u, d)| s.top_plan.price(*u, u - d)).sum();
                prop_assert_eq!(total(&dir, &format!("sellers/s{i}/own/invoice.json")), money(own));
                let (mut cost, mut revenue, mut actual) = (0, 0, net(&s.own));
                for (j, (p, l)) in s.customers.iter().enumerate() {
                    let c: i64 = l.iter().map(|(u, d)| s.top_plan.price(*u, u - d)).sum();
                    let r: i64 = l
                        .iter()
                        .map(|(u, d)| p.price(*u, s.top_plan.price(*u, u - d)))
                        .sum();
                    prop_assert_eq!(total(&dir, &format!("sellers/s{i}/invoices/s{i}c{j}.json")), money(c));
                    prop_assert_eq!(total(&dir, &format!("customers/s{i}c{j}/invoice.json")), money(r));
                    prop_assert_eq!(total(&dir, &format!("partner/invoices/s{i}c{j}.json")), money(net(l)));
                    let row = format!("org,s{i}c{j},,{},{},{},", money(c), money(r), money(r - c));
                    let seller_margin = dir.read(format!("out/2026-10/sellers/s{i}/margin.csv"));
                    prop_assert!(seller_margin.contains(&row), "{row} not in\n{seller_margin}");
                    cost += c;
                    revenue += r;
                    actual += net(l);
                }
                let t = m["sellers"].as_array().unwrap().iter().find(|t| t["seller"] == format!("s{i}")).unwrap();
                prop_assert_eq!(&t["charged_by_top"], &Value::from(money(own + cost)));
                prop_assert_eq!(&t["customers_revenue"], &Value::from(money(revenue)));
                let row = format!("seller,s{i},,{},{},{},", money(actual), money(own + cost), money(own + cost - actual));
                prop_assert!(margin.contains(&row), "{row} not in\n{margin}");
            }
        }
    }
}
