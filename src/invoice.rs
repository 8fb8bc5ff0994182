//! Invoices built from a finalized [`Ledger`]: the customer's pro forma invoice,
//! the partner's actual (chargeable) invoice per org, and margin rows.
//!
//! This is the one place money is rounded to cents: each invoice line is rounded
//! once with the configured mode, and every total is the sum of its rounded
//! lines, so lines always add up to the total exactly.

use std::collections::BTreeMap;

use crate::config::{CliCharge, CliKind, CustomLineItem, Org};
use crate::error::{Error, Result};
use crate::money::{Money, Percent, Rounding};
use crate::rate::Ledger;
use crate::types::LineType;
use crate::types::{AccountId, BillingPeriod};

/// Decimal places of the invoice currency (USD).
pub const CURRENCY_DECIMALS: u32 = 2;

/// A pro forma usage line: one account, one service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageLine {
    /// Usage account.
    pub account: AccountId,
    /// Service (product code).
    pub service: String,
    /// Unrounded amount (internal scale).
    pub exact: Money,
    /// Rounded amount (internal scale, a multiple of one cent).
    pub amount: Money,
}

/// A custom line item as charged this period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CliLine {
    /// Item id.
    pub id: String,
    /// Description shown to the customer.
    pub description: String,
    /// Fee or credit.
    pub kind: CliKind,
    /// Allocated account.
    pub account: AccountId,
    /// Service it is shown under.
    pub service: String,
    /// Unrounded signed amount (credits negative).
    pub exact: Money,
    /// Rounded signed amount.
    pub amount: Money,
}

/// The customer's pro forma invoice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CustomerInvoice {
    /// Usage lines per account and service, sorted.
    pub lines: Vec<UsageLine>,
    /// Custom line items in config order.
    pub custom: Vec<CliLine>,
    /// Σ usage lines.
    pub subtotal: Money,
    /// Σ fee items.
    pub fees: Money,
    /// Σ credit items (negative or zero).
    pub credits: Money,
    /// subtotal + fees + credits.
    pub total: Money,
    /// Σ unrounded amounts, to report rounding drift.
    pub exact_total: Money,
}

/// A line of the partner's actual invoice for one org.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActualLine {
    /// Usage account.
    pub account: AccountId,
    /// Service.
    pub service: String,
    /// Line item type.
    pub line_type: LineType,
    /// Rows rated into it.
    pub rows: u64,
    /// Unrounded amount.
    pub exact: Money,
    /// Rounded amount.
    pub amount: Money,
}

/// What AWS bills the partner for one organization, reconstructed at actual rates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActualInvoice {
    /// Lines per account, service and line item type.
    pub lines: Vec<ActualLine>,
    /// Σ rounded lines.
    pub total: Money,
    /// Σ unrounded.
    pub exact_total: Money,
    /// Σ amortized (effective) cost, unrounded: FOCUS EffectiveCost, AWS's amortization rule for CUR.
    pub effective_total: Money,
}

fn add(a: Money, b: Money) -> Result<Money> {
    a.checked_add(b)
        .ok_or_else(|| Error::Overflow("totalling an invoice".into()))
}

/// An invoice line's account from a ledger key: the rows' accounts were checked
/// against the org's, so anything else is a bug.
fn ledger_account(text: &str) -> Result<AccountId> {
    AccountId::parse(text).map_err(|e| Error::Internal(format!("a rated line's account: {e}")))
}

fn add_exact(a: i128, b: i128) -> Result<i128> {
    a.checked_add(b)
        .ok_or_else(|| Error::Overflow("totalling an invoice".into()))
}

/// Builds the partner's actual invoice for an org.
pub fn actual_invoice(ledger: &Ledger, rounding: Rounding) -> Result<ActualInvoice> {
    let mut lines = Vec::new();
    let (mut total, mut exact_total, mut effective_total) = (Money::ZERO, Money::ZERO, Money::ZERO);
    for (k, s) in &ledger.lines {
        effective_total = add(effective_total, Money(s.effective))?;
        let exact = Money(s.actual);
        let amount = exact.round(CURRENCY_DECIMALS, rounding);
        total = add(total, amount)?;
        exact_total = add(exact_total, exact)?;
        lines.push(ActualLine {
            account: ledger_account(&k.account)?,
            service: k.service.clone(),
            line_type: k.line_type,
            rows: s.rows,
            exact,
            amount,
        });
    }
    Ok(ActualInvoice {
        lines,
        total,
        exact_total,
        effective_total,
    })
}

/// The base of a percentage item: the org's pro forma total (optionally one
/// service, optionally without Savings Plans negation) plus named flat items.
pub fn percentage_base(
    ledger: &Ledger,
    include_org_total: bool,
    exclude_sp_negation: bool,
    service: Option<&str>,
    included_flat: i128,
) -> Result<i128> {
    let mut base = included_flat;
    if include_org_total {
        for (k, s) in &ledger.lines {
            if exclude_sp_negation && k.line_type == LineType::SavingsPlanNegation {
                continue;
            }
            if service.is_some_and(|svc| svc != k.service) {
                continue;
            }
            base = add_exact(base, s.proforma)?;
        }
    }
    Ok(base)
}

fn signed(kind: CliKind, v: i128) -> i128 {
    match kind {
        CliKind::Fee => v,
        CliKind::Credit => -v,
    }
}

/// Evaluates the custom line items that apply in `period`: flat items first,
/// then percentage items on their base (pricing rules → org total → flat → percentage).
pub fn custom_lines(
    ledger: &Ledger,
    items: &[CustomLineItem],
    period: BillingPeriod,
) -> Result<Vec<(CustomLineItem, i128)>> {
    let active: Vec<&CustomLineItem> = items.iter().filter(|c| c.applies(period)).collect();
    let mut flat: BTreeMap<&str, i128> = BTreeMap::new();
    for c in &active {
        if let CliCharge::Flat(v) = c.charge {
            flat.insert(c.id.as_str(), signed(c.kind, v));
        }
    }
    let mut out = Vec::new();
    for c in active {
        let exact = match &c.charge {
            CliCharge::Flat(v) => signed(c.kind, *v),
            CliCharge::Percentage {
                percent,
                include_org_total,
                include_items,
                exclude_savings_plan_negation,
                service,
            } => {
                let included = include_items
                    .iter()
                    .filter_map(|id| flat.get(id.as_str()))
                    .try_fold(0i128, |a, v| a.checked_add(*v));
                let included =
                    included.ok_or_else(|| Error::Overflow("adding flat items".into()))?;
                let base = percentage_base(
                    ledger,
                    *include_org_total,
                    *exclude_savings_plan_negation,
                    service.as_deref(),
                    included,
                )?;
                signed(c.kind, percent_of(*percent, base)?)
            }
        };
        out.push((c.clone(), exact));
    }
    Ok(out)
}

fn percent_of(p: Percent, base: i128) -> Result<i128> {
    p.of(base)
        .ok_or_else(|| Error::Overflow("applying a percentage".into()))
}

/// Builds the customer's pro forma invoice for an org.
pub fn customer_invoice(
    ledger: &Ledger,
    org: &Org,
    period: BillingPeriod,
    rounding: Rounding,
    show_zero_lines: bool,
) -> Result<CustomerInvoice> {
    let mut by_key: BTreeMap<(String, String), i128> = BTreeMap::new();
    for (k, s) in &ledger.lines {
        if s.proforma_rows == 0 && s.proforma == 0 {
            continue;
        }
        let e = by_key
            .entry((k.account.clone(), k.service.clone()))
            .or_default();
        *e = add_exact(*e, s.proforma)?;
    }
    let round = |v: Money| v.round(CURRENCY_DECIMALS, rounding);
    let mut lines = Vec::new();
    let (mut subtotal, mut exact_total) = (Money::ZERO, Money::ZERO);
    for ((account, service), exact) in by_key {
        let exact = Money(exact);
        let amount = round(exact);
        subtotal = add(subtotal, amount)?;
        exact_total = add(exact_total, exact)?;
        // A line of 0.00 adds nothing to the total; it is listed only on request
        // (`[run] show_zero_lines`), so lines still sum exactly to the total.
        if amount == Money::ZERO && !show_zero_lines {
            continue;
        }
        lines.push(UsageLine {
            account: ledger_account(&account)?,
            service,
            exact,
            amount,
        });
    }
    let (mut fees, mut credits) = (Money::ZERO, Money::ZERO);
    let mut custom = Vec::new();
    for (c, exact) in custom_lines(ledger, &org.custom_line_items, period)? {
        let exact = Money(exact);
        let amount = round(exact);
        exact_total = add(exact_total, exact)?;
        match c.kind {
            CliKind::Fee => fees = add(fees, amount)?,
            CliKind::Credit => credits = add(credits, amount)?,
        }
        custom.push(CliLine {
            id: c.id.clone(),
            description: c.description.clone(),
            kind: c.kind,
            account: c.account.clone(),
            service: c.presentation_service.clone(),
            exact,
            amount,
        });
    }
    let total = add(add(subtotal, fees)?, credits)?;
    Ok(CustomerInvoice {
        lines,
        custom,
        subtotal,
        fees,
        credits,
        total,
        exact_total,
    })
}

/// An invoice in the org's own currency, with the rate that converted it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Converted {
    /// The rate, its date and source.
    pub fx: crate::fx::Applied,
    /// The invoice in the currency.
    pub invoice: CustomerInvoice,
}

/// The invoice in another currency: each line's exact USD amount converted at
/// `fx` (exact decimal), then rounded to the currency's minor unit, once. The
/// totals are sums of the converted, rounded lines, so lines still sum exactly
/// to the total in the invoice currency (docs/CURRENCY.md).
pub fn converted_invoice(
    usd: &CustomerInvoice,
    fx: &crate::fx::Applied,
    rounding: Rounding,
    show_zero_lines: bool,
) -> Result<CustomerInvoice> {
    let convert = |v: Money| -> Result<(Money, Money)> {
        let exact = fx
            .convert(v.0)
            .map(Money)
            .ok_or_else(|| Error::Overflow("converting an invoice line".into()))?;
        Ok((exact, exact.round(fx.decimals, rounding)))
    };
    let (mut subtotal, mut exact_total) = (Money::ZERO, Money::ZERO);
    let mut lines = Vec::new();
    for l in &usd.lines {
        let (exact, amount) = convert(l.exact)?;
        subtotal = add(subtotal, amount)?;
        exact_total = add(exact_total, exact)?;
        if amount == Money::ZERO && !show_zero_lines {
            continue;
        }
        lines.push(UsageLine {
            exact,
            amount,
            ..l.clone()
        });
    }
    let (mut fees, mut credits) = (Money::ZERO, Money::ZERO);
    let mut custom = Vec::new();
    for c in &usd.custom {
        let (exact, amount) = convert(c.exact)?;
        exact_total = add(exact_total, exact)?;
        match c.kind {
            CliKind::Fee => fees = add(fees, amount)?,
            CliKind::Credit => credits = add(credits, amount)?,
        }
        custom.push(CliLine {
            exact,
            amount,
            ..c.clone()
        });
    }
    Ok(CustomerInvoice {
        lines,
        custom,
        subtotal,
        fees,
        credits,
        total: add(add(subtotal, fees)?, credits)?,
        exact_total,
    })
}

/// A partner-program discount on the partner's actual invoice for an org
/// (Partner Discount Business Report; docs/DISCOUNTS.md).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiscountLine {
    /// Linked (usage) account.
    pub account: String,
    /// Service (product code).
    pub service: String,
    /// Program component (`support`, `psp`, …).
    pub component: String,
    /// Unrounded discount (positive lowers the cost).
    pub exact: Money,
    /// Rounded discount.
    pub amount: Money,
}

/// An org's discounts from the report, and its actual cost after them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrgDiscounts {
    /// One line per account, service and component, sorted.
    pub lines: Vec<DiscountLine>,
    /// Σ rounded discount lines.
    pub total: Money,
    /// The actual invoice's total minus `total`: what the partner really pays for the org.
    pub net_total: Money,
    /// Σ rounded lines per component.
    pub by_component: BTreeMap<String, Money>,
}

/// Rounds an org's discounts (exact sums per account, service and component)
/// to cents, once per line, and nets them off the actual invoice's total.
pub fn org_discounts(
    parts: BTreeMap<(String, String, String), i128>,
    actual: &ActualInvoice,
    rounding: Rounding,
) -> Result<OrgDiscounts> {
    let mut lines = Vec::new();
    let mut total = Money::ZERO;
    let mut by_component: BTreeMap<String, Money> = BTreeMap::new();
    for ((account, service, component), exact) in parts {
        let exact = Money(exact);
        let amount = exact.round(CURRENCY_DECIMALS, rounding);
        total = add(total, amount)?;
        let c = by_component.entry(component.clone()).or_insert(Money::ZERO);
        *c = add(*c, amount)?;
        lines.push(DiscountLine {
            account,
            service,
            component,
            exact,
            amount,
        });
    }
    let net_total = actual
        .total
        .checked_sub(total)
        .ok_or_else(|| Error::Overflow("netting discounts".into()))?;
    Ok(OrgDiscounts {
        lines,
        total,
        net_total,
        by_component,
    })
}

/// The actual invoice with its discounts as lines of their service (type
/// `Discount`), for the margin report's per-service rows.
pub fn actual_net_of(actual: &ActualInvoice, d: &OrgDiscounts) -> Result<ActualInvoice> {
    let mut net = actual.clone();
    for l in &d.lines {
        net.lines.push(ActualLine {
            account: ledger_account(&l.account)?,
            service: l.service.clone(),
            line_type: LineType::Discount,
            rows: 0,
            exact: Money(-l.exact.0),
            amount: Money(-l.amount.0),
        });
    }
    net.total = d.net_total;
    Ok(net)
}

/// One row of the margin report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarginRow {
    /// Customer org.
    pub org: String,
    /// Service, or `None` for the org's total row.
    pub service: Option<String>,
    /// Actual cost (rounded invoice figures).
    pub actual: Money,
    /// Pro forma revenue (rounded invoice figures).
    pub proforma: Money,
}

/// Margin rows for an org: its total, then one row per service, all from the
/// rounded invoice lines so they reconcile to both invoices.
pub fn margin_rows(
    org: &str,
    actual: &ActualInvoice,
    customer: &CustomerInvoice,
) -> Result<Vec<MarginRow>> {
    let mut by_service: BTreeMap<String, (Money, Money)> = BTreeMap::new();
    for l in &actual.lines {
        let e = by_service.entry(l.service.clone()).or_default();
        e.0 = add(e.0, l.amount)?;
    }
    for l in &customer.lines {
        let e = by_service.entry(l.service.clone()).or_default();
        e.1 = add(e.1, l.amount)?;
    }
    for c in &customer.custom {
        let e = by_service.entry(c.service.clone()).or_default();
        e.1 = add(e.1, c.amount)?;
    }
    let mut rows = vec![MarginRow {
        org: org.into(),
        service: None,
        actual: actual.total,
        proforma: customer.total,
    }];
    for (service, (a, p)) in by_service {
        rows.push(MarginRow {
            org: org.into(),
            service: Some(service),
            actual: a,
            proforma: p,
        });
    }
    Ok(rows)
}

/// Margin as a percentage of pro forma revenue, 2 decimals, `None` when revenue is 0.
pub fn margin_percent(actual: Money, proforma: Money) -> Option<String> {
    let (actual, proforma) = (actual.0, proforma.0);
    if proforma == 0 {
        return None;
    }
    // (proforma - actual) / proforma × 100, in hundredths of a percent.
    let num = (proforma - actual).checked_mul(10_000)?;
    let h = crate::money::div_round(
        num.checked_mul(proforma.signum())?,
        proforma.abs(),
        Rounding::HalfAwayFromZero,
    );
    Some(Percent(i64::try_from(h).ok()?).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::parse_fixed;
    use crate::rate::{LineKey, LineSums};
    use crate::types::AccountId;

    fn d(s: &str) -> i128 {
        parse_fixed(s).unwrap()
    }

    fn m(s: &str) -> Money {
        Money(d(s))
    }

    fn ledger(lines: &[(&str, &str, LineType, &str)]) -> Ledger {
        let mut l = Ledger::default();
        for (acct, svc, lt, amount) in lines {
            l.lines.insert(
                LineKey {
                    account: acct.to_string(),
                    service: svc.to_string(),
                    line_type: *lt,
                },
                LineSums {
                    rows: 1,
                    proforma: d(amount),
                    proforma_rows: 1,
                    ..LineSums::default()
                },
            );
        }
        l
    }

    fn item(id: &str, kind: CliKind, charge: CliCharge) -> CustomLineItem {
        CustomLineItem {
            id: id.into(),
            description: id.into(),
            kind,
            charge,
            account: AccountId::parse("111111111111").unwrap(),
            start: BillingPeriod::new(2026, 1).unwrap(),
            end: None,
            presentation_service: "AWSBillingConductor".into(),
        }
    }

    fn pct(p: i64, org_total: bool, items: &[&str], excl_sp: bool) -> CliCharge {
        CliCharge::Percentage {
            percent: Percent(p),
            include_org_total: org_total,
            include_items: items.iter().map(|s| s.to_string()).collect(),
            exclude_savings_plan_negation: excl_sp,
            service: None,
        }
    }

    fn period() -> BillingPeriod {
        BillingPeriod::new(2026, 3).unwrap()
    }

    #[test]
    fn t_d5_percentage_item_bases() {
        let l = ledger(&[("111111111111", "AmazonEC2", LineType::Usage, "1000")]);
        let support = item("support", CliKind::Fee, CliCharge::Flat(d("200")));
        let cases = [
            (pct(1000, true, &[], false), "100"),
            (pct(1000, true, &["support"], false), "120"),
            (pct(1000, false, &[], false), "0"),
        ];
        for (charge, expected) in cases {
            let out = custom_lines(
                &l,
                &[support.clone(), item("p", CliKind::Fee, charge)],
                period(),
            )
            .unwrap();
            assert_eq!(out[1].1, d(expected));
        }
    }

    #[test]
    fn t_d6_excluding_savings_plans_negation() {
        let l = ledger(&[
            ("111111111111", "AmazonEC2", LineType::Usage, "1150"),
            (
                "111111111111",
                "AmazonEC2",
                LineType::SavingsPlanNegation,
                "-150",
            ),
        ]);
        let with = custom_lines(
            &l,
            &[item("p", CliKind::Fee, pct(1000, true, &[], true))],
            period(),
        )
        .unwrap();
        assert_eq!(with[0].1, d("115"));
        let without = custom_lines(
            &l,
            &[item("p", CliKind::Fee, pct(1000, true, &[], false))],
            period(),
        )
        .unwrap();
        assert_eq!(without[0].1, d("100"));
    }

    #[test]
    fn t_d7_flat_credit_is_negative_on_its_account() {
        let l = ledger(&[]);
        let out = custom_lines(
            &l,
            &[item("c", CliKind::Credit, CliCharge::Flat(d("50")))],
            period(),
        )
        .unwrap();
        assert_eq!(out[0].1, d("-50"));
        assert_eq!(out[0].0.account.as_str(), "111111111111");
    }

    #[test]
    fn items_outside_their_period_do_not_apply() {
        let mut c = item("c", CliKind::Fee, CliCharge::Flat(d("5")));
        c.start = BillingPeriod::new(2026, 4).unwrap();
        assert!(custom_lines(&ledger(&[]), &[c], period())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn lines_always_sum_to_the_total() {
        // Three lines of 0.005 each: each rounds to 0.01, total is 0.03 (drift reported, not hidden).
        let l = ledger(&[
            ("111111111111", "A", LineType::Usage, "0.005"),
            ("111111111111", "B", LineType::Usage, "0.005"),
            ("111111111111", "C", LineType::Usage, "0.005"),
        ]);
        let actual = actual_invoice(&l, Rounding::HalfAwayFromZero).unwrap();
        assert_eq!(actual.total, Money::ZERO);
        let org_items = vec![item("c", CliKind::Credit, CliCharge::Flat(d("0.004")))];
        let org = test_org(org_items);
        let inv = customer_invoice(&l, &org, period(), Rounding::HalfAwayFromZero, true).unwrap();
        assert_eq!(inv.subtotal, m("0.03"));
        assert_eq!(inv.credits, Money::ZERO);
        assert_eq!(
            inv.total,
            Money(
                inv.lines.iter().map(|l| l.amount.0).sum::<i128>()
                    + inv.custom.iter().map(|c| c.amount.0).sum::<i128>()
            )
        );
        assert_eq!(inv.exact_total, m("0.011"));
    }

    fn test_org(items: Vec<CustomLineItem>) -> Org {
        use crate::config::{Plan, PlanKind, Transfer};
        use crate::types::OrgId;
        Org {
            id: OrgId::parse("acme").unwrap(),
            name: "Acme".into(),
            management_account: AccountId::parse("111111111111").unwrap(),
            accounts: Default::default(),
            files: vec![],
            plan: std::sync::Arc::new(Plan {
                id: "basic".into(),
                description: String::new(),
                kind: PlanKind::Passthrough,
                base: Default::default(),
            }),
            transfer: Transfer {
                start: period(),
                end: None,
                source_payer: false,
            },
            custom_line_items: items,
            level: crate::config::Level::Direct,
            currency: crate::fx::Currency::USD,
        }
    }

    #[test]
    fn margin_percent_uses_pro_forma_revenue() {
        assert_eq!(
            margin_percent(m("900"), m("1000")).as_deref(),
            Some("10.00")
        );
        assert_eq!(
            margin_percent(m("1100"), m("1000")).as_deref(),
            Some("-10.00")
        );
        assert_eq!(margin_percent(m("1"), Money::ZERO), None);
    }

    #[test]
    fn margin_rows_reconcile_to_the_invoices() {
        let mut l = ledger(&[
            ("111111111111", "AmazonEC2", LineType::Usage, "10"),
            ("111111111111", "AmazonS3", LineType::Usage, "5"),
        ]);
        for s in l.lines.values_mut() {
            s.actual = s.proforma - d("1");
        }
        let a = actual_invoice(&l, Rounding::HalfAwayFromZero).unwrap();
        let c = customer_invoice(
            &l,
            &test_org(vec![item("f", CliKind::Fee, CliCharge::Flat(d("2")))]),
            period(),
            Rounding::HalfAwayFromZero,
            true,
        )
        .unwrap();
        let rows = margin_rows("acme", &a, &c).unwrap();
        let (sa, sp) = rows[1..]
            .iter()
            .fold((0, 0), |(x, y), r| (x + r.actual.0, y + r.proforma.0));
        assert_eq!((sa, sp), (rows[0].actual.0, rows[0].proforma.0));
        assert_eq!(rows[0].proforma, m("17"));
    }
}
