//! The HTML pages: escaping, the customer page's figures (exactly those of
//! invoice.json, none of the partner's), and the dashboard's size at 5,000 orgs.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use billxfer::config::{CliKind, Config};
use billxfer::invoice::{ActualInvoice, CliLine, CustomerInvoice, UsageLine};
use billxfer::money::{parse_fixed, Money};
use billxfer::normalize::Quarantined;
use billxfer::pipeline::{NotBilled, OrgResult, Role, RunResult};
use billxfer::rate::Ledger;
use billxfer::render::html::{customer_invoice_page, partner_dashboard_page};
use billxfer::types::{AccountId, BillingPeriod, OrgId};
use serde_json::Value;

mod common;
use common::{json, repo, run_sample, Workdir};

fn d(s: &str) -> i128 {
    parse_fixed(s).unwrap()
}

fn period() -> BillingPeriod {
    BillingPeriod::new(2026, 10).unwrap()
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// Every amount-like token (`-?digits.two digits`) in a text, as written.
fn amount_tokens(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_digit()));
        if !starts || (i > 0 && b[i - 1] == b'.') {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j + 2 < b.len()
            && b[j] == b'.'
            && b[j + 1].is_ascii_digit()
            && b[j + 2].is_ascii_digit()
            && !b.get(j + 3).is_some_and(|c| c.is_ascii_digit())
        {
            let neg = i > 0 && b[i - 1] == b'-';
            out.insert(format!("{}{}", if neg { "-" } else { "" }, &text[i..j + 3]));
        }
        i = j.max(i + 1);
    }
    out
}

const NASTY: &str = "Tom \"Tricky\" O'Neil & Sons <script>alert('x')</script>";

fn nasty_config(logo: Option<&Path>) -> Config {
    let logo = logo
        .map(|p| format!("logo = {}\n", toml_str(&p.display().to_string())))
        .unwrap_or_default();
    let text = format!(
        r#"
[partner]
id = "partner"
name = {name}
management_account = "999999999999"
address = {addr}
payment_terms = {terms}
{logo}
[[orgs]]
id = "acme"
name = {name}
management_account = "111111111111"
accounts = ["111111111112"]
files = ["acme.csv"]
plan = "basic"
transfer = {{ start = "2026-01" }}

  [[orgs.custom_line_items]]
  id = "fee"
  description = {desc}
  kind = "fee"
  flat = "10.00"
  start = "2026-01"
"#,
        name = toml_str(NASTY),
        addr = toml_str("1 <b>Main</b> St\n\"Suite\" 5 & 6"),
        terms = toml_str("Net 30 <img src=x onerror=alert(1)>"),
        desc = toml_str(NASTY),
    );
    Config::from_str(&text, Path::new("test.toml"), repo(), String::new()).unwrap()
}

fn nasty_invoice() -> CustomerInvoice {
    CustomerInvoice {
        lines: vec![
            UsageLine {
                account: AccountId::parse("111111111111").unwrap(),
                service: "AmazonEC2".into(),
                exact: Money(d("12.345")),
                amount: Money(d("12.35")),
            },
            UsageLine {
                account: AccountId::parse("111111111112").unwrap(),
                service: "<script>alert(\"svc\")</script>".into(),
                exact: Money(d("1")),
                amount: Money(d("1")),
            },
        ],
        custom: vec![CliLine {
            id: "fee".into(),
            description: NASTY.into(),
            kind: CliKind::Fee,
            account: AccountId::parse("111111111111").unwrap(),
            service: "AWSBillingConductor".into(),
            exact: Money(d("10")),
            amount: Money(d("10")),
        }],
        subtotal: Money(d("13.35")),
        fees: Money(d("10")),
        credits: Money(0),
        total: Money(d("23.35")),
        exact_total: Money(d("23.345")),
    }
}

fn org_result(
    id: &str,
    role: Role,
    index: usize,
    actual: i128,
    customer: Option<CustomerInvoice>,
    quarantined: usize,
) -> OrgResult {
    OrgResult {
        excluded: Default::default(),
        id: OrgId::parse(id).unwrap(),
        role,
        org_index: index,
        ledger: Ledger::default(),
        quarantined: (0..quarantined)
            .map(|i| Quarantined {
                account: String::new(),
                file: PathBuf::from(format!("{id}.csv")),
                row: i as u64 + 1,
                line: None,
                column: "c".into(),
                value: "<script>".into(),
                reason: "bad".into(),
                unblended: None,
            })
            .collect(),
        files: Vec::new(),
        rated_unblended: 0,
        actual: ActualInvoice {
            lines: Vec::new(),
            total: Money(actual),
            exact_total: Money(actual),
            effective_total: Money(actual),
        },
        customer,
        seller_cost: None,
        customer_fx: None,
        seller_cost_fx: None,
        discounts: None,
    }
}

fn assert_escaped(page: &str) {
    let lower = page.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "a <script> tag got through");
    assert!(!lower.contains("<img src=x"), "an <img> tag got through");
    assert!(!lower.contains("<b>main"), "a <b> tag got through");
    assert!(!page.contains("\"Tricky\""), "raw quotes got through");
    assert!(!page.contains("O'Neil"), "a raw apostrophe got through");
    assert!(!page.contains("& Sons"), "a raw ampersand got through");
    assert!(page.contains("Tom &quot;Tricky&quot; O&#39;Neil &amp; Sons &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
}

#[test]
fn names_descriptions_and_services_are_escaped_on_both_pages() {
    let config = nasty_config(Some(&repo().join("sample_data/logo.svg")));
    let invoice = nasty_invoice();
    let page = customer_invoice_page(&config, &config.orgs[0], &invoice, None, period());
    assert_escaped(&page);
    assert!(page.contains("&lt;script&gt;alert(&quot;svc&quot;)&lt;/script&gt;"));
    assert!(page.contains("&lt;b&gt;Main&lt;/b&gt; St<br>&quot;Suite&quot; 5 &amp; 6"));
    assert!(page.contains("Net 30 &lt;img src=x onerror=alert(1)&gt;"));
    assert!(page.contains("src=\"data:image/svg+xml;base64,"));

    let result = RunResult {
        deliveries: Vec::new(),
        engine: "local",
        discount_report: None,
        period: period(),
        orgs: vec![
            org_result("partner", Role::Partner, 0, d("5"), None, 0),
            org_result("acme", Role::Customer, 1, d("30"), Some(invoice), 2),
        ],
        not_billed: vec![NotBilled {
            org: "initech".into(),
            reason: "<script>alert(\"nb\")</script>".into(),
        }],
    };
    let dash = partner_dashboard_page(&config, &result);
    assert_escaped(&dash);
    assert!(dash.contains("&lt;script&gt;alert(&quot;nb&quot;)&lt;/script&gt;"));
    assert!(dash.contains("&lt;script&gt;alert(&quot;svc&quot;)&lt;/script&gt;"));
    // Totals: pro forma 23.35, actual 30.00, margin -6.65; the partner's own org apart.
    for s in ["23.35", "30.00", "-6.65", "-28.48%", "5.00"] {
        assert!(dash.contains(s), "dashboard lacks {s}");
    }
    assert!(dash.contains("href=\"../customers/acme/invoice.html\""));
    assert!(dash.contains("href=\"invoices/acme.json\""));
    assert!(dash.contains("href=\"invoices/partner.json\""));
}

#[test]
fn pages_are_self_contained() {
    let config = nasty_config(Some(&repo().join("sample_data/logo.svg")));
    let invoice = nasty_invoice();
    let page = customer_invoice_page(&config, &config.orgs[0], &invoice, None, period());
    let result = RunResult {
        deliveries: Vec::new(),
        engine: "local",
        discount_report: None,
        period: period(),
        orgs: vec![org_result(
            "acme",
            Role::Customer,
            1,
            d("3"),
            Some(invoice),
            0,
        )],
        not_billed: Vec::new(),
    };
    let dash = partner_dashboard_page(&config, &result);
    for p in [&page, &dash] {
        // The SVG namespace URI is an identifier, not a request.
        let lower = p
            .to_ascii_lowercase()
            .replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(lower.starts_with("<!doctype html>"));
        assert!(lower.contains("content-security-policy"));
        for needle in [
            "http:",
            "https:",
            "<link",
            "@import",
            "@font-face",
            "<iframe",
            "url(",
            "<script",
        ] {
            assert!(!lower.contains(needle), "page refers to {needle}");
        }
    }
}

#[test]
fn an_unreadable_logo_is_left_out() {
    let w = Workdir::new();
    let logo = w.write("logo.png", [0x89, b'P', b'N', b'G']);
    let config = nasty_config(Some(&logo));
    fs::remove_file(&logo).unwrap();
    let page = customer_invoice_page(&config, &config.orgs[0], &nasty_invoice(), None, period());
    assert!(!page.contains("<img"));
    assert!(page.contains("23.35"));
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a string"))
        .to_string()
}

/// Every amount of a customer invoice.json.
fn invoice_figures(inv: &Value) -> Vec<String> {
    let mut f = Vec::new();
    for l in inv["lines"].as_array().unwrap() {
        f.push(s(&l["amount"]));
    }
    for c in inv["custom_line_items"].as_array().unwrap() {
        f.push(s(&c["amount"]));
    }
    for k in ["subtotal", "fees", "credits", "total"] {
        f.push(s(&inv[k]));
    }
    f
}

#[test]
fn the_invoice_page_shows_exactly_the_figures_of_invoice_json_and_none_of_the_partner() {
    let w = Workdir::new();
    let dir = run_sample(w.path(), &[]);
    let margin = fs::read_to_string(dir.join("partner/margin.csv")).unwrap();
    for org in ["acme", "globex", "initech"] {
        let inv = json(&dir.join(format!("customers/{org}/invoice.json")));
        let page = fs::read_to_string(dir.join(format!("customers/{org}/invoice.html"))).unwrap();
        let figures: BTreeSet<String> = invoice_figures(&inv).into_iter().collect();
        let shown = amount_tokens(&page);
        // Every figure of invoice.json is on the page, and nothing else that looks like an amount.
        for f in &figures {
            assert!(shown.contains(f), "{org}: page lacks {f}; shows {shown:?}");
        }
        assert_eq!(&shown, &figures, "{org}: page shows other amounts");
        for text in [
            s(&inv["invoice_number"]),
            s(&inv["customer"]["name"]),
            s(&inv["customer"]["management_account_id"]),
            s(&inv["currency"]),
            s(&inv["issuer"]["name"]),
        ] {
            assert!(page.contains(&text), "{org}: page lacks {text}");
        }
        for c in inv["custom_line_items"].as_array().unwrap() {
            assert!(page.contains(&s(&c["description"])), "{org}: {c}");
        }
        assert!(page.contains("1 Harbour Way, Suite 400"));
        assert!(page.contains("Net 30 days"));
        assert!(page.contains("src=\"data:image/svg+xml;base64,"));

        // The partner's figures for this org: actual lines and totals (exact too), margin.
        let actual = json(&dir.join(format!("partner/invoices/{org}.json")));
        let mut secret: BTreeSet<String> = BTreeSet::new();
        for l in actual["lines"].as_array().unwrap() {
            secret.insert(s(&l["amount"]));
            secret.insert(s(&l["exact_amount"]));
        }
        secret.insert(s(&actual["total"]));
        secret.insert(s(&actual["exact_total"]));
        let row = margin
            .lines()
            .find(|l| l.starts_with(&format!("org,{org},")))
            .unwrap();
        let cols: Vec<&str> = row.split(',').collect();
        secret.insert(cols[5].to_string());
        secret.insert(format!("{}%", cols[6]));
        for x in &secret {
            if figures.contains(x) {
                continue; // the same figure on both sides (e.g. Marketplace at list)
            }
            assert!(!shown.contains(x), "{org}: page shows partner figure {x}");
            if x.split_once('.')
                .is_some_and(|(_, f)| f.trim_end_matches('%').len() > 2)
            {
                assert!(
                    !page.contains(x.as_str()),
                    "{org}: page shows partner figure {x}"
                );
            }
            let bare = x.trim_start_matches('-');
            assert!(
                !page.contains(&format!(">{bare}<")) && !page.contains(&format!(">-{bare}<")),
                "{org}: page shows partner figure {x}"
            );
        }
        for id in ["900000000001", "900000000002", "EUINUS26"] {
            assert!(!page.contains(id), "{org}: page shows partner id {id}");
        }
    }
}

#[test]
fn the_dashboard_has_the_manifest_totals_and_links_every_invoice() {
    let w = Workdir::new();
    let dir = run_sample(w.path(), &[]);
    let manifest = json(&dir.join("manifest.json"));
    let dash = fs::read_to_string(dir.join("partner/index.html")).unwrap();
    for k in ["actual", "proforma", "margin"] {
        let v = s(&manifest["totals_customers"][k]);
        assert!(dash.contains(&format!(">{v}<")), "dashboard lacks {k} {v}");
    }
    assert!(dash.contains(&s(&manifest["partner_own_actual"])));
    for org in ["acme", "globex", "initech"] {
        assert!(dash.contains(&format!("href=\"../customers/{org}/invoice.html\"")));
        assert!(dash.contains(&format!("href=\"invoices/{org}.json\"")));
    }
    assert!(dash.contains("href=\"invoices/northwind.json\""));
    // Globex's margin after the partner's discounts (EXPECTED.md): 34.52 - 34.11.
    assert!(dash.contains(">0.41<") && dash.contains("1.19%"), "{dash}");
    // Contoso sells Hooli below its cost: its own dashboard shows the loss.
    let seller = fs::read_to_string(dir.join("sellers/contoso/index.html")).unwrap();
    assert!(
        seller.contains("<tr class=\"loss\"><td>Hooli Apps") && seller.contains("-0.38"),
        "{seller}"
    );
    assert!(dash.contains("<svg"));
    assert!(!dash.to_ascii_lowercase().contains("<script"));
}

/// 5,000 customer orgs with realistic names, a dozen services each, a few negative margins.
fn big_run() -> (Config, RunResult) {
    const N: usize = 5000;
    let mut text = String::from(
        "[partner]\nid = \"partner\"\nname = \"Northwind Cloud Partners\"\nmanagement_account = \"999999999999\"\n",
    );
    for i in 0..N {
        text.push_str(&format!(
            "[[orgs]]\nid = \"org-{i:05}\"\nname = \"Customer {i:05} Holdings International Ltd\"\nmanagement_account = \"{:012}\"\nfiles = [\"x.csv\"]\nplan = \"basic\"\ntransfer = {{ start = \"2026-01\" }}\n",
            100_000_000_000u64 + i as u64
        ));
    }
    let config = Config::from_str(&text, Path::new("big.toml"), repo(), String::new()).unwrap();
    let services = [
        "AmazonEC2",
        "AmazonS3",
        "AmazonRDS",
        "AWSLambda",
        "AmazonCloudWatch",
        "AmazonDynamoDB",
        "AmazonVPC",
        "AWSDataTransfer",
        "AmazonEKS",
        "AmazonCloudFront",
        "AmazonSageMaker",
        "AWSGlue",
        "AmazonRoute53",
        "AWSKMS",
        "AmazonSNS",
        "AmazonSQS",
        "AmazonECR",
        "AmazonElastiCache",
    ];
    let mut orgs = vec![org_result(
        "partner",
        Role::Partner,
        0,
        d("123.45"),
        None,
        3,
    )];
    for i in 0..N {
        let mut lines = Vec::new();
        let mut subtotal = 0i128;
        for (k, svc) in services.iter().enumerate().take(12) {
            let v = (((i * 7919 + k * 104_729) % 100_000) as i128 + 1) * 100_000_000;
            subtotal += v;
            lines.push(UsageLine {
                account: AccountId::parse(&format!("{:012}", 100_000_000_000u64 + i as u64))
                    .unwrap(),
                service: (*svc).into(),
                exact: Money(v),
                amount: Money(v),
            });
        }
        let fee = d("150");
        let total = subtotal + fee;
        // Most orgs earn 5% to 25%; every 97th is billed below cost.
        let actual = if i % 97 == 0 {
            total + total / 20
        } else {
            total - total * ((i % 21) as i128 + 5) / 100
        };
        let customer = CustomerInvoice {
            lines,
            custom: vec![CliLine {
                id: "managed".into(),
                description: "Managed services".into(),
                kind: CliKind::Fee,
                account: AccountId::parse(&format!("{:012}", 100_000_000_000u64 + i as u64))
                    .unwrap(),
                service: "AWSBillingConductor".into(),
                exact: Money(fee),
                amount: Money(fee),
            }],
            subtotal: Money(subtotal),
            fees: Money(fee),
            credits: Money(0),
            total: Money(total),
            exact_total: Money(total),
        };
        orgs.push(org_result(
            &format!("org-{i:05}"),
            Role::Customer,
            i + 1,
            actual,
            Some(customer),
            if i % 13 == 0 { 2 } else { 0 },
        ));
    }
    (
        config,
        RunResult {
            deliveries: Vec::new(),
            engine: "local",
            discount_report: None,
            period: period(),
            orgs,
            not_billed: Vec::new(),
        },
    )
}

#[test]
fn the_dashboard_for_5000_orgs_stays_small_and_links_every_invoice() {
    let (config, result) = big_run();
    let dash = partner_dashboard_page(&config, &result);
    let mb = dash.len() as f64 / (1024.0 * 1024.0);
    eprintln!(
        "dashboard for 5,000 orgs: {} bytes ({mb:.2} MiB)",
        dash.len()
    );
    assert!(dash.len() < 3 * 1024 * 1024, "{} bytes", dash.len());
    for i in 0..5000 {
        let link = format!("href=\"../customers/org-{i:05}/invoice.html\"");
        assert!(dash.contains(&link), "no link to org-{i:05}");
    }
    // The charts show 40 orgs, not 5,000.
    let svg_start = dash.find("<svg").unwrap();
    let svg_end = dash[svg_start..].find("</svg>").unwrap();
    assert_eq!(
        dash[svg_start..svg_start + svg_end]
            .matches("<rect")
            .count(),
        40
    );
    assert!(dash.contains("4,960 orgs in between"));
    // Paged table: 20 pages of 250, the first open.
    assert_eq!(dash.matches("<details").count(), 20);
    assert_eq!(dash.matches("<details open>").count(), 1);
    // The totals add up over all orgs.
    let customers = result.orgs.iter().filter(|o| o.customer.is_some());
    let proforma: i128 = customers
        .clone()
        .map(|o| o.customer.as_ref().unwrap().total.0)
        .sum();
    let actual: i128 = customers.map(|o| o.actual.total.0).sum();
    for v in [proforma, actual, proforma - actual] {
        let f = billxfer::money::format_fixed(v, 2);
        assert!(dash.contains(&format!(">{f}<")), "dashboard lacks {f}");
    }
    // Deterministic.
    assert_eq!(dash, partner_dashboard_page(&config, &result));
}
