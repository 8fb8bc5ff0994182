//! Rendering a run's outputs to bytes: invoices (JSON, CSV, and the HTML pages in
//! `html`), the margin report, quarantine files and the manifest. Files come out
//! in a fixed order with sorted keys and no timestamps, so a re-run of the same
//! inputs gives byte-identical outputs; `crate::publish` puts them in place.

mod chain;
pub mod html;

use std::path::PathBuf;

use serde::Serialize;

use crate::config::{ActualCard, Config};
use crate::csv_cell::csv_field;
use crate::error::Result;
use crate::invoice::{margin_percent, margin_rows, CURRENCY_DECIMALS};
use crate::money::{format_fixed, format_fixed_exact, Money};
use crate::pipeline::{FileReport, NotBilled, Role, RunResult};
use crate::rate::Track;

fn cents(v: Money) -> String {
    format_fixed(v.0, CURRENCY_DECIMALS)
}

/// An amount in a currency's minor unit (0 decimals for JPY, 3 for KWD).
fn in_minor(v: Money, decimals: u32) -> String {
    format_fixed(v.0, decimals)
}

/// The exchange rate of an invoice in another currency, as the invoice shows it.
#[derive(Serialize)]
struct ExchangeRateJson<'a> {
    from: &'static str,
    to: &'a str,
    /// 1 USD = `rate` units of `to`.
    rate: String,
    date: &'a str,
    source: &'a str,
    as_published: &'a str,
    /// The invoice's total in USD, the currency every amount was computed in.
    usd_total: String,
}

#[derive(Serialize)]
struct Party<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct CustomerParty<'a> {
    org_id: &'a str,
    name: &'a str,
    management_account_id: &'a str,
}

#[derive(Serialize)]
struct CustomerLineJson<'a> {
    account_id: &'a str,
    service: &'a str,
    amount: String,
}

#[derive(Serialize)]
struct CustomItemJson<'a> {
    id: &'a str,
    description: &'a str,
    kind: crate::config::CliKind,
    account_id: &'a str,
    service: &'a str,
    amount: String,
}

impl CustomerInvoiceJson<'_> {
    /// Decimals of the invoice currency (2 unless another currency has other minor units).
    fn currency_decimals(&self) -> u32 {
        crate::fx::Currency::parse(self.currency).map_or(2, |c| c.decimals())
    }
}

#[derive(Serialize)]
struct CustomerInvoiceJson<'a> {
    invoice_number: String,
    billing_period: String,
    period_start: String,
    period_end: String,
    currency: &'a str,
    issuer: Party<'a>,
    customer: CustomerParty<'a>,
    /// The org whose usage a seller's invoice from the top bills (absent on a customer's own invoice).
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_of: Option<CustomerParty<'a>>,
    /// For an invoice in another currency than USD: the rate that converted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    exchange_rate: Option<ExchangeRateJson<'a>>,
    lines: Vec<CustomerLineJson<'a>>,
    custom_line_items: Vec<CustomItemJson<'a>>,
    subtotal: String,
    fees: String,
    credits: String,
    total: String,
}

#[derive(Serialize)]
struct ActualLineJson<'a> {
    account_id: &'a str,
    service: &'a str,
    line_item_type: &'a str,
    rows: u64,
    amount: String,
    exact_amount: String,
}

#[derive(Serialize)]
struct ActualInvoiceJson<'a> {
    org_id: &'a str,
    role: Role,
    bill_source_account_id: &'a str,
    billing_period: String,
    currency: &'a str,
    actual_rates: &'a str,
    lines: Vec<ActualLineJson<'a>>,
    total: String,
    exact_total: String,
    rounding_difference: String,
    effective_exact_total: String,
    /// The partner's program discounts on the org (Partner Discount Business Report).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    partner_discounts: Vec<DiscountLineJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partner_discount_total: Option<String>,
    /// `total` minus the discounts: what the partner pays for the org.
    #[serde(skip_serializing_if = "Option::is_none")]
    net_total: Option<String>,
}

#[derive(Serialize)]
struct DiscountLineJson<'a> {
    account_id: &'a str,
    service: &'a str,
    component: &'a str,
    amount: String,
    exact_amount: String,
}

#[derive(Serialize)]
struct Check {
    name: &'static str,
    org: String,
    passed: bool,
    detail: String,
}

#[derive(Serialize)]
struct OrgManifest<'a> {
    org_id: String,
    role: Role,
    plan: Option<String>,
    rows_read: u64,
    rows_rated: u64,
    rows_quarantined: u64,
    /// Rows of an older delivery that a later one repeats (`duplicates = "keep-latest"`).
    rows_duplicate: u64,
    input_unblended: String,
    rated_unblended: String,
    quarantined_unblended: String,
    quarantined_rows_without_readable_cost: u64,
    actual_exact: String,
    actual_invoice_total: String,
    proforma_exact: Option<String>,
    proforma_invoice_exact: Option<String>,
    proforma_invoice_total: Option<String>,
    rows_without_public_price: u64,
    warnings: Vec<String>,
    /// Zero-rated SKUs with the free tier off and no paid rate this month (they stay at 0).
    free_tier_off_unpriced_skus: Vec<String>,
    /// What the plan's markups apply to on Usage lines (`billed`, `public_on_demand`).
    #[serde(skip_serializing_if = "Option::is_none")]
    proforma_base: Option<crate::config::ProformaBase>,
    /// Usage lines billed more than 0.1% below usage x public on-demand rate, per SKU.
    usage_lines_below_public_on_demand: u64,
    skus_below_public_on_demand: std::collections::BTreeMap<String, u64>,
    /// A seller's customer: its seller, and what the top charges the seller for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    seller: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seller_cost_invoice_total: Option<String>,
    /// An invoice in another currency than USD: the rate and the total in that currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    exchange_rate: Option<ExchangeRateJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoice_total_in_currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoice_exact_in_currency: Option<String>,
    /// The partner's program discounts per component, and its cost after them.
    #[serde(skip_serializing_if = "Option::is_none")]
    partner_discounts_by_component: Option<std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actual_net_total: Option<String>,
}

#[derive(Serialize)]
struct DeliveryJson<'a> {
    org: &'a str,
    #[serde(flatten)]
    choice: &'a crate::pipeline::deliveries::DeliveryChoice,
}

/// Whether a quarantine reason marks a row repeated by a later delivery.
pub fn is_duplicate_reason(reason: &str) -> bool {
    reason.starts_with("duplicate of ") || reason.starts_with("superseded by the later delivery")
}

#[derive(Serialize)]
struct Totals {
    actual: String,
    proforma: String,
    margin: String,
}

#[derive(Serialize)]
struct ConfigRef {
    path: String,
    sha256: String,
}

#[derive(Serialize)]
struct Manifest<'a> {
    billxfer_version: &'static str,
    /// `local`, or the cluster engine (docs/DISTRIBUTED.md).
    engine: &'static str,
    billing_period: String,
    config: ConfigRef,
    rounding: crate::money::Rounding,
    inputs: Vec<&'a FileReport>,
    /// Deliveries chosen in export roots (docs/INPUTS.md).
    deliveries: Vec<DeliveryJson<'a>>,
    orgs: Vec<OrgManifest<'a>>,
    not_billed_to_partner: &'a [NotBilled],
    totals_customers: Totals,
    /// What the Partner Discount Business Report gave the month (docs/DISCOUNTS.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    discount_report: Option<&'a crate::pipeline::DiscountSummary>,
    /// Per downstream seller: what the top charges it and what it charges its customers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sellers: Vec<chain::SellerTotals>,
    partner_own_actual: String,
    checks: Vec<Check>,
    all_checks_passed: bool,
}

fn json_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).unwrap_or_default();
    s.push(b'\n');
    s
}

/// The header of an invoice between two levels.
struct InvoiceHead<'a> {
    number: String,
    period: crate::types::BillingPeriod,
    currency: &'a str,
    /// Decimals of the currency's minor unit.
    decimals: u32,
    /// The rate and the USD total, for an invoice in another currency.
    fx: Option<(&'a crate::fx::Applied, Money)>,
    issuer: &'a str,
    customer: CustomerParty<'a>,
    usage_of: Option<CustomerParty<'a>>,
}

fn party_of(o: &crate::config::Org) -> CustomerParty<'_> {
    CustomerParty {
        org_id: o.id.as_str(),
        name: &o.name,
        management_account_id: o.management_account.as_str(),
    }
}

/// The rate of a converted invoice, with the USD total it converted.
fn exchange_rate_json<'a>(
    x: &'a crate::invoice::Converted,
    usd: Option<&crate::invoice::CustomerInvoice>,
) -> ExchangeRateJson<'a> {
    ExchangeRateJson {
        from: "USD",
        to: &x.fx.currency,
        rate: x.fx.rate_text(),
        date: &x.fx.date,
        source: &x.fx.source,
        as_published: &x.fx.as_published,
        usd_total: usd.map_or_else(String::new, |c| cents(c.total)),
    }
}

/// Whether an invoice's lines sum exactly to its total.
fn invoice_sums(c: &crate::invoice::CustomerInvoice) -> bool {
    let sum = Money::checked_sum(
        c.lines
            .iter()
            .map(|l| l.amount)
            .chain(c.custom.iter().map(|x| x.amount)),
    );
    sum == Some(c.total) && Money::checked_sum([c.subtotal, c.fees, c.credits]) == Some(c.total)
}

fn invoice_json<'a>(
    head: InvoiceHead<'a>,
    c: &'a crate::invoice::CustomerInvoice,
) -> CustomerInvoiceJson<'a> {
    let d = head.decimals;
    let cents = |v: Money| in_minor(v, d);
    CustomerInvoiceJson {
        invoice_number: head.number,
        billing_period: head.period.to_string(),
        period_start: head.period.start_iso(),
        period_end: head.period.end_iso(),
        currency: head.currency,
        issuer: Party { name: head.issuer },
        customer: head.customer,
        usage_of: head.usage_of,
        exchange_rate: head.fx.map(|(fx, usd_total)| ExchangeRateJson {
            from: "USD",
            to: &fx.currency,
            rate: fx.rate_text(),
            date: &fx.date,
            source: &fx.source,
            as_published: &fx.as_published,
            usd_total: in_minor(usd_total, 2),
        }),
        lines: c
            .lines
            .iter()
            .map(|l| CustomerLineJson {
                account_id: l.account.as_str(),
                service: &l.service,
                amount: cents(l.amount),
            })
            .collect(),
        custom_line_items: c
            .custom
            .iter()
            .map(|x| CustomItemJson {
                id: &x.id,
                description: &x.description,
                kind: x.kind,
                account_id: x.account.as_str(),
                service: &x.service,
                amount: cents(x.amount),
            })
            .collect(),
        subtotal: cents(c.subtotal),
        fees: cents(c.fees),
        credits: cents(c.credits),
        total: cents(c.total),
    }
}

/// An invoice as `<stem>.json`, `<stem>.csv` and `<stem>.html`.
fn invoice_files(
    stem: &str,
    json: &CustomerInvoiceJson<'_>,
    c: &crate::invoice::CustomerInvoice,
    page: String,
) -> Vec<(PathBuf, Vec<u8>)> {
    let d = json.currency_decimals();
    let cents = |v: Money| in_minor(v, d);
    let mut csv = String::from("line_type,account_id,service,description,amount\n");
    for l in &c.lines {
        csv.push_str(&format!(
            "usage,{},{},,{}\n",
            l.account,
            csv_field(&l.service),
            cents(l.amount)
        ));
    }
    for x in &c.custom {
        let kind = match x.kind {
            crate::config::CliKind::Fee => "fee",
            crate::config::CliKind::Credit => "credit",
        };
        csv.push_str(&format!(
            "{kind},{},{},{},{}\n",
            x.account,
            csv_field(&x.service),
            csv_field(&x.description),
            cents(x.amount)
        ));
    }
    for (label, v) in [
        ("subtotal", c.subtotal),
        ("fees", c.fees),
        ("credits", c.credits),
        ("total", c.total),
    ] {
        csv.push_str(&format!("{label},,,,{}\n", cents(v)));
    }
    csv.push_str(&format!("currency,,,,{}\n", json.currency));
    if let Some(x) = &json.exchange_rate {
        csv.push_str(&format!(
            "exchange_rate,,,{},{}\n",
            csv_field(&format!(
                "1 USD on {} ({}; {})",
                x.date, x.source, x.as_published
            )),
            x.rate
        ));
    }
    vec![
        (PathBuf::from(format!("{stem}.json")), json_bytes(json)),
        (PathBuf::from(format!("{stem}.csv")), csv.into_bytes()),
        (PathBuf::from(format!("{stem}.html")), page.into_bytes()),
    ]
}

/// Everything the run will write, as (relative path, bytes), in a fixed order.
/// Everything the run will write, as (relative path, bytes), in a fixed order.
///
/// Each org's files are rendered in parallel (they depend on nothing of another
/// org), then gathered in org order, so the bytes do not depend on the threads.
pub fn render(config: &Config, result: &RunResult) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    use rayon::prelude::*;
    let period = result.period;
    let rendered: Vec<OrgRendered<'_>> = result
        .orgs
        .par_iter()
        .with_max_len(1)
        .map(|r| render_org(config, period, r))
        .collect::<Result<_>>()?;
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut margin =
        String::from(
        "level,org_id,service,actual_cost,proforma_revenue,margin,margin_pct,invoice_currency,invoice_total\n",
    );
    let mut checks = Vec::new();
    let mut org_manifests = Vec::new();
    let (mut cust_actual, mut cust_proforma) = (0i128, 0i128);
    let mut partner_actual = 0i128;
    for o in rendered {
        files.extend(o.files);
        margin.push_str(&o.margin);
        checks.extend(o.checks);
        org_manifests.push(o.manifest);
        cust_actual += o.cust_actual;
        cust_proforma += o.cust_proforma;
        partner_actual += o.partner_actual;
    }
    let (seller_files, seller_totals) = chain::seller_outputs(config, result)?;
    files.extend(seller_files);
    for t in &seller_totals {
        margin.push_str(&t.margin_row());
    }
    files.push((PathBuf::from("partner/margin.csv"), margin.into_bytes()));
    files.push((
        PathBuf::from("partner/index.html"),
        html::partner_dashboard_page(config, result).into_bytes(),
    ));

    let all_passed = checks.iter().all(|c| c.passed);
    let manifest = Manifest {
        billxfer_version: env!("CARGO_PKG_VERSION"),
        engine: result.engine,
        billing_period: period.to_string(),
        config: ConfigRef {
            path: config
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            sha256: config.digest.clone(),
        },
        rounding: config.rounding,
        inputs: result.orgs.iter().flat_map(|r| r.files.iter()).collect(),
        deliveries: result
            .deliveries
            .iter()
            .map(|(org, choice)| DeliveryJson { org, choice })
            .collect(),
        orgs: org_manifests,
        not_billed_to_partner: &result.not_billed,
        sellers: seller_totals,
        discount_report: result.discount_report.as_ref(),
        totals_customers: Totals {
            actual: cents(Money(cust_actual)),
            proforma: cents(Money(cust_proforma)),
            margin: cents(Money(cust_proforma - cust_actual)),
        },
        partner_own_actual: cents(Money(partner_actual)),
        checks,
        all_checks_passed: all_passed,
    };
    files.push((PathBuf::from("manifest.json"), json_bytes(&manifest)));
    Ok(files)
}

/// One org's share of the run's output: its files, checks, manifest entry,
/// margin rows and the totals it adds to.
struct OrgRendered<'a> {
    files: Vec<(PathBuf, Vec<u8>)>,
    checks: Vec<Check>,
    manifest: OrgManifest<'a>,
    margin: String,
    cust_actual: i128,
    cust_proforma: i128,
    partner_actual: i128,
}

/// Renders one org's invoices, quarantine and manifest entry.
fn render_org<'a>(
    config: &'a Config,
    period: crate::types::BillingPeriod,
    r: &'a crate::pipeline::OrgResult,
) -> Result<OrgRendered<'a>> {
    let currency = config.partner.currency.as_str();
    let actual_basis = match config.actual {
        ActualCard::Billed => "billed",
        ActualCard::Public(_) => "public_with_partner_rules",
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut margin = String::new();
    let mut checks = Vec::new();
    let mut org_manifests = Vec::new();
    let (mut cust_actual, mut cust_proforma) = (0i128, 0i128);
    let mut partner_actual = 0i128;

    let org_id = r.id.as_str();
    let party = config.party(r.org_index);
    let org_cfg = party.customer();
    let mgmt = party.management_account().as_str();

    // Partner's actual invoice for the org.
    let a = &r.actual;
    let aj = ActualInvoiceJson {
        org_id,
        role: r.role,
        bill_source_account_id: mgmt,
        billing_period: period.to_string(),
        currency,
        actual_rates: actual_basis,
        lines: a
            .lines
            .iter()
            .map(|l| ActualLineJson {
                account_id: l.account.as_str(),
                service: &l.service,
                line_item_type: l.line_type.as_str(),
                rows: l.rows,
                amount: cents(l.amount),
                exact_amount: l.exact.to_string(),
            })
            .collect(),
        total: cents(a.total),
        exact_total: a.exact_total.to_string(),
        rounding_difference: format_fixed_exact(a.total.0 - a.exact_total.0),
        effective_exact_total: a.effective_total.to_string(),
        partner_discounts: r
            .discounts
            .iter()
            .flat_map(|d| d.lines.iter())
            .map(|l| DiscountLineJson {
                account_id: &l.account,
                service: &l.service,
                component: &l.component,
                amount: cents(l.amount),
                exact_amount: l.exact.to_string(),
            })
            .collect(),
        partner_discount_total: r.discounts.as_ref().map(|d| cents(d.total)),
        net_total: r.discounts.as_ref().map(|d| cents(d.net_total)),
    };
    files.push((
        PathBuf::from(format!("partner/invoices/{org_id}.json")),
        json_bytes(&aj),
    ));
    let line_sum = Money::checked_sum(a.lines.iter().map(|l| l.amount));
    checks.push(Check {
        name: "partner invoice lines sum to its total",
        org: org_id.into(),
        passed: line_sum == Some(a.total),
        detail: format!(
            "lines {} = total {}",
            line_sum.map_or("(overflow)".into(), cents),
            cents(a.total)
        ),
    });

    // Customer's pro forma invoice.
    if let (Some(c), Some(o)) = (&r.customer, org_cfg) {
        let issuer = config.issuer(o);
        let (shown, fx) = match &r.customer_fx {
            Some(x) => (&x.invoice, Some((&x.fx, c.total))),
            None => (c, None),
        };
        let json = invoice_json(
            InvoiceHead {
                number: format!("{org_id}-{period}"),
                period,
                currency: o.currency.code(),
                decimals: o.currency.decimals(),
                fx,
                issuer: &issuer.name,
                customer: party_of(o),
                usage_of: None,
            },
            shown,
        );
        let page = html::customer_invoice_page(config, o, shown, fx.map(|f| f.0), period);
        if let Some(x) = &r.customer_fx {
            checks.push(Check {
                name: "customer invoice lines sum to its total in its currency",
                org: org_id.into(),
                passed: invoice_sums(&x.invoice),
                detail: format!(
                    "total {} {}",
                    in_minor(x.invoice.total, x.fx.decimals),
                    x.fx.currency
                ),
            });
        }
        files.extend(invoice_files(
            &format!("{}/invoice", o.proforma_dir()),
            &json,
            shown,
            page,
        ));
        if let (Some(cost), Some(seller)) = (&r.seller_cost, o.seller()) {
            files.extend(chain::seller_cost_files(
                config,
                (o, seller),
                (cost, r.seller_cost_fx.as_ref()),
                period,
            )?);
            checks.push(Check {
                name: "seller's invoice from the top sums to its total",
                org: org_id.into(),
                passed: invoice_sums(cost),
                detail: format!("total {}", cents(cost.total)),
            });
        }
        let sum = Money::checked_sum(
            c.lines
                .iter()
                .map(|l| l.amount)
                .chain(c.custom.iter().map(|x| x.amount)),
        );
        checks.push(Check {
            name: "customer invoice lines sum to its total",
            org: org_id.into(),
            passed: invoice_sums(c),
            detail: format!(
                "lines {} = total {}",
                sum.map_or("(overflow)".into(), cents),
                cents(c.total)
            ),
        });
        // The top's revenue for a seller's customer is what it charges the seller.
        let top_revenue = r.seller_cost.as_ref().unwrap_or(c);
        // What the top's invoice for the org comes to in the currency it is issued in.
        let issued = match (&r.seller_cost, &r.seller_cost_fx, &r.customer_fx) {
            (Some(_), Some(x), _) | (None, _, Some(x)) => {
                format!(
                    "{},{}",
                    x.fx.currency,
                    in_minor(x.invoice.total, x.fx.decimals)
                )
            }
            _ => format!("USD,{}", cents(top_revenue.total)),
        };
        let net;
        let a = match &r.discounts {
            Some(d) => {
                net = crate::invoice::actual_net_of(a, d)?;
                &net
            }
            None => a,
        };
        for m in margin_rows(org_id, a, top_revenue)? {
            let (level, svc, issued) = match &m.service {
                None => ("org", String::new(), issued.as_str()),
                Some(s) => ("service", csv_field(s), ","),
            };
            margin.push_str(&format!(
                "{level},{org_id},{svc},{},{},{},{},{issued}\n",
                cents(m.actual),
                cents(m.proforma),
                cents(Money(m.proforma.0 - m.actual.0)),
                margin_percent(m.actual, m.proforma).unwrap_or_default()
            ));
        }
        cust_actual += a.total.0;
        cust_proforma += top_revenue.total.0;
    } else {
        partner_actual += r.discounts.as_ref().map_or(a.total, |d| d.net_total).0;
    }

    // Quarantine.
    let mut q = String::from("file,row,line,column,value,reason,unblended_cost\n");
    let mut q_money = 0i128;
    let mut q_unknown = 0u64;
    for x in &r.quarantined {
        match x.unblended {
            Some(v) => q_money += v,
            None => q_unknown += 1,
        }
        q.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            csv_field(&x.file.to_string_lossy()),
            x.row,
            x.line.map(|l| l.to_string()).unwrap_or_default(),
            csv_field(&x.column),
            csv_field(&x.value),
            csv_field(&x.reason),
            x.unblended.map(format_fixed_exact).unwrap_or_default()
        ));
    }
    files.push((
        PathBuf::from(format!("quarantine/{org_id}.csv")),
        q.into_bytes(),
    ));

    // Reconciliation.
    let rows_read: u64 = r.files.iter().map(|f| f.rows_read).sum();
    let rows_rated: u64 = r.files.iter().map(|f| f.rows_rated).sum();
    let rows_q = r.quarantined.len() as u64;
    let rows_dup = r
        .quarantined
        .iter()
        .filter(|q| is_duplicate_reason(&q.reason))
        .count() as u64;
    checks.push(Check {
        name: "rows read = rows rated + rows quarantined + duplicate rows",
        org: org_id.into(),
        passed: rows_read == rows_rated + rows_q,
        detail: format!(
            "{rows_read} = {rows_rated} + {} + {rows_dup}",
            rows_q - rows_dup
        ),
    });
    let ledger_rows: u64 = r.ledger.lines.values().map(|s| s.rows).sum();
    checks.push(Check {
        name: "every rated row is in exactly one invoice line",
        org: org_id.into(),
        passed: ledger_rows == rows_rated,
        detail: format!("{ledger_rows} rows in invoice lines, {rows_rated} rated"),
    });
    let ledger_unblended: i128 = r.ledger.lines.values().map(|s| s.unblended).sum();
    checks.push(Check {
        name: "unblended cost of rated rows = sum over invoice lines",
        org: org_id.into(),
        passed: ledger_unblended == r.rated_unblended,
        detail: format!(
            "{} = {}",
            format_fixed_exact(ledger_unblended),
            format_fixed_exact(r.rated_unblended)
        ),
    });
    let actual_exact = r.ledger.total(Track::Actual)?;
    let proforma_exact = r
        .customer
        .as_ref()
        .map(|_| r.ledger.total(Track::Proforma))
        .transpose()?;
    org_manifests.push(OrgManifest {
        org_id: org_id.into(),
        role: r.role,
        plan: org_cfg.map(|o| o.plan.id.clone()),
        rows_read,
        rows_rated,
        rows_quarantined: rows_q - rows_dup,
        rows_duplicate: rows_dup,
        input_unblended: format_fixed_exact(r.rated_unblended + q_money),
        rated_unblended: format_fixed_exact(r.rated_unblended),
        quarantined_unblended: format_fixed_exact(q_money),
        quarantined_rows_without_readable_cost: q_unknown,
        actual_exact: format_fixed_exact(actual_exact),
        actual_invoice_total: cents(a.total),
        proforma_exact: proforma_exact.map(format_fixed_exact),
        proforma_invoice_exact: r.customer.as_ref().map(|c| c.exact_total.to_string()),
        proforma_invoice_total: r.customer.as_ref().map(|c| cents(c.total)),
        rows_without_public_price: r.ledger.rows_without_public_price,
        warnings: r.ledger.warnings.clone(),
        free_tier_off_unpriced_skus: r.ledger.unpriced_free_skus.iter().cloned().collect(),
        proforma_base: org_cfg.map(|o| crate::pipeline::shown_plan(o).base),
        usage_lines_below_public_on_demand: r.ledger.below_public.values().sum(),
        skus_below_public_on_demand: r.ledger.below_public.clone(),
        seller: org_cfg.and_then(|o| o.seller()).map(|s| s.to_string()),
        seller_cost_invoice_total: r.seller_cost.as_ref().map(|c| cents(c.total)),
        exchange_rate: r
            .customer_fx
            .as_ref()
            .map(|x| exchange_rate_json(x, r.customer.as_ref())),
        invoice_total_in_currency: r
            .customer_fx
            .as_ref()
            .map(|x| in_minor(x.invoice.total, x.fx.decimals)),
        invoice_exact_in_currency: r
            .customer_fx
            .as_ref()
            .map(|x| x.invoice.exact_total.to_string()),
        partner_discounts_by_component: r.discounts.as_ref().map(|d| {
            d.by_component
                .iter()
                .map(|(k, v)| (k.clone(), cents(*v)))
                .collect()
        }),
        actual_net_total: r.discounts.as_ref().map(|d| cents(d.net_total)),
    });
    let manifest = org_manifests.pop().ok_or_else(|| {
        crate::error::Error::Internal(format!("org {} has no manifest entry", r.id))
    })?;
    Ok(OrgRendered {
        files,
        checks,
        manifest,
        margin,
        cust_actual,
        cust_proforma,
        partner_actual,
    })
}
