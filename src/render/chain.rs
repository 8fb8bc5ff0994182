//! The files of a chain's middle level: under `sellers/<seller>/`, what the top
//! charges the seller for each of its customers (`invoices/<org>.*`) and for
//! its own usage (`own/`), the seller's margin on each customer and its
//! dashboard. Everything here is priced by the top's plan for the seller or by
//! the seller's plans: the top's actual costs never reach these files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::{cents, invoice_files, invoice_json, party_of, InvoiceHead};
use crate::config::{Config, Level, Org};
use crate::csv_cell::csv_field;
use crate::error::Result;
use crate::invoice::{margin_percent, CustomerInvoice};
use crate::money::Money;
use crate::pipeline::RunResult;
use crate::types::{BillingPeriod, OrgId};

use super::html::{self, InvoiceParties};

/// What the top charges a seller for one of its customers, as JSON, CSV and a page.
pub(super) fn seller_cost_files(
    config: &Config,
    (org, seller): (&Org, &OrgId),
    (usd, converted): (&CustomerInvoice, Option<&crate::invoice::Converted>),
    period: BillingPeriod,
) -> Result<Files> {
    let (cost, fx) = match converted {
        Some(x) => (&x.invoice, Some((&x.fx, usd.total))),
        None => (usd, None),
    };
    let Some(seller_org) = config.orgs.iter().find(|o| &o.id == seller) else {
        return Err(crate::error::Error::Internal(format!(
            "org `{}` names seller `{seller}`, which is not in the config",
            org.id
        )));
    };
    let number = format!("{seller}-{}-{period}", org.id);
    let json = invoice_json(
        InvoiceHead {
            number: number.clone(),
            period,
            currency: seller_org.currency.code(),
            decimals: seller_org.currency.decimals(),
            fx,
            issuer: &config.partner.name,
            customer: party_of(seller_org),
            usage_of: Some(party_of(org)),
        },
        cost,
    );
    let page = html::invoice_page(
        &InvoiceParties {
            number,
            issuer: &config.partner,
            bill_to: (
                &seller_org.name,
                seller_org.id.as_str(),
                seller_org.management_account.as_str(),
            ),
            usage_of: org.id.as_str(),
            currency: seller_org.currency,
            fx: fx.map(|f| f.0),
        },
        cost,
        period,
    );
    Ok(invoice_files(
        &format!("sellers/{seller}/invoices/{}", org.id),
        &json,
        cost,
        page,
    ))
}

/// One seller's month: what the top charges it, what it charges its customers.
#[derive(Debug, Serialize)]
pub(super) struct SellerTotals {
    seller: String,
    /// What the top charges for the seller's own usage.
    own_usage: String,
    /// Σ what the top charges for the seller's customers.
    customers_cost: String,
    /// own_usage + customers_cost: everything the top charges the seller.
    charged_by_top: String,
    /// Σ what the seller charges its customers.
    customers_revenue: String,
    /// customers_revenue - customers_cost.
    margin: String,
    /// The top's actual cost of the seller's group (the AWS bills), for its margin row.
    #[serde(skip)]
    top_actual: Money,
    #[serde(skip)]
    top_revenue: Money,
}

impl SellerTotals {
    /// The seller's row in the top's margin report: the top's revenue from the
    /// seller is `charged_by_top`, its cost the AWS bills of the seller's group.
    pub(super) fn margin_row(&self) -> String {
        let (a, p) = (self.top_actual, self.top_revenue);
        format!(
            "seller,{},,{},{},{},{},,\n",
            self.seller,
            cents(a),
            cents(p),
            cents(Money(p.0 - a.0)),
            margin_percent(a, p).unwrap_or_default()
        )
    }
}

/// A seller's customer, as the seller sees it.
struct CustomerRow<'a> {
    org: &'a Org,
    cost: &'a CustomerInvoice,
    revenue: &'a CustomerInvoice,
}

/// Files as (relative path, bytes).
type Files = Vec<(PathBuf, Vec<u8>)>;

/// Every seller's margin report and dashboard, and its totals for the manifest.
pub(super) fn seller_outputs(
    config: &Config,
    result: &RunResult,
) -> Result<(Files, Vec<SellerTotals>)> {
    let mut files = Vec::new();
    let mut totals = Vec::new();
    let by_id: BTreeMap<&str, &crate::pipeline::OrgResult> =
        result.orgs.iter().map(|r| (r.id.as_str(), r)).collect();
    for seller in &config.orgs {
        let Level::Seller { customers } = &seller.level else {
            continue;
        };
        let Some(own) = by_id
            .get(seller.id.as_str())
            .and_then(|r| r.customer.as_ref())
        else {
            continue;
        };
        let rows: Vec<CustomerRow<'_>> = customers
            .iter()
            .filter_map(|c| {
                let r = by_id.get(c.as_str())?;
                let org = config.orgs.iter().find(|o| &o.id == c)?;
                Some(CustomerRow {
                    org,
                    cost: r.seller_cost.as_ref()?,
                    revenue: r.customer.as_ref()?,
                })
            })
            .collect();
        let cost = Money::checked_sum(rows.iter().map(|r| r.cost.total)).unwrap_or(Money::ZERO);
        let revenue =
            Money::checked_sum(rows.iter().map(|r| r.revenue.total)).unwrap_or(Money::ZERO);
        let charged = Money(own.total.0 + cost.0);
        let group_actual: i128 = std::iter::once(seller.id.as_str())
            .chain(customers.iter().map(|c| c.as_str()))
            .filter_map(|id| by_id.get(id))
            .map(|r| r.actual.total.0)
            .sum();
        files.push((
            PathBuf::from(format!("sellers/{}/margin.csv", seller.id)),
            margin_csv(&rows)?.into_bytes(),
        ));
        files.push((
            PathBuf::from(format!("sellers/{}/index.html", seller.id)),
            dashboard(config, seller, own, &rows, result.period).into_bytes(),
        ));
        totals.push(SellerTotals {
            seller: seller.id.to_string(),
            own_usage: cents(own.total),
            customers_cost: cents(cost),
            charged_by_top: cents(charged),
            customers_revenue: cents(revenue),
            margin: cents(Money(revenue.0 - cost.0)),
            top_actual: Money(group_actual),
            top_revenue: charged,
        });
    }
    Ok((files, totals))
}

/// The seller's margin per customer and service: its cost (the top's prices)
/// against its revenue (its own prices).
fn margin_csv(rows: &[CustomerRow<'_>]) -> Result<String> {
    let mut out = String::from("level,org_id,service,cost,revenue,margin,margin_pct\n");
    for r in rows {
        let id = r.org.id.as_str();
        let mut by_service: BTreeMap<&str, (i128, i128)> = BTreeMap::new();
        for l in &r.cost.lines {
            by_service.entry(&l.service).or_default().0 += l.amount.0;
        }
        for l in &r.revenue.lines {
            by_service.entry(&l.service).or_default().1 += l.amount.0;
        }
        for x in &r.revenue.custom {
            by_service.entry(&x.service).or_default().1 += x.amount.0;
        }
        let mut row = |level: &str, svc: &str, cost: Money, revenue: Money| {
            out.push_str(&format!(
                "{level},{id},{},{},{},{},{}\n",
                csv_field(svc),
                cents(cost),
                cents(revenue),
                cents(Money(revenue.0 - cost.0)),
                margin_percent(cost, revenue).unwrap_or_default()
            ));
        };
        row("org", "", r.cost.total, r.revenue.total);
        for (svc, (c, v)) in by_service {
            row("service", svc, Money(c), Money(v));
        }
    }
    Ok(out)
}

/// The seller's page: its bill from the top, and each customer's cost, revenue and margin.
fn dashboard(
    config: &Config,
    seller: &Org,
    own: &CustomerInvoice,
    rows: &[CustomerRow<'_>],
    period: BillingPeriod,
) -> String {
    let currency = html::esc(&config.partner.currency);
    let mut o = String::new();
    let title = format!("{} \u{2013} {period}", seller.name);
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>body{{font:14px system-ui,sans-serif;margin:24px;color:#1d2330}}table{{border-collapse:collapse}}th,td{{padding:4px 10px;border-bottom:1px solid #dde1e8;text-align:right}}th:first-child,td:first-child{{text-align:left}}.loss{{color:#b3261e}}</style>\n</head>\n<body>\n",
        html::esc(&title)
    );
    let _ = writeln!(o, "<h1>{}</h1>", html::esc(&title));
    let cost: i128 = rows.iter().map(|r| r.cost.total.0).sum();
    let revenue: i128 = rows.iter().map(|r| r.revenue.total.0).sum();
    let _ = writeln!(
        o,
        "<p>Billed by {} for {period}: <b>{} {currency}</b> (own usage <a href=\"own/invoice.html\">{}</a>, customers {}).</p>",
        html::esc(&config.partner.name),
        cents(Money(own.total.0 + cost)),
        cents(own.total),
        cents(Money(cost))
    );
    let _ = writeln!(
        o,
        "<p>Charged to customers: <b>{} {currency}</b>; margin <b>{} {currency}</b>.</p>",
        cents(Money(revenue)),
        cents(Money(revenue - cost))
    );
    o.push_str("<table>\n<thead><tr><th>Customer</th><th>Cost</th><th>Revenue</th><th>Margin</th><th>Margin %</th></tr></thead>\n<tbody>\n");
    for r in rows {
        let margin = r.revenue.total.0 - r.cost.total.0;
        let class = if margin < 0 { " class=\"loss\"" } else { "" };
        let id = html::esc(r.org.id.as_str());
        let _ = writeln!(
            o,
            "<tr{class}><td>{} <small>{id}</small></td><td><a href=\"invoices/{id}.html\">{}</a></td><td><a href=\"../../customers/{id}/invoice.html\">{}</a></td><td>{}</td><td>{}</td></tr>",
            html::esc(&r.org.name),
            cents(r.cost.total),
            cents(r.revenue.total),
            cents(Money(margin)),
            margin_percent(r.cost.total, r.revenue.total).unwrap_or_default()
        );
    }
    o.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    o
}
