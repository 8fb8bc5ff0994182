//! One org's month finished from its files' outcomes: the merged ledgers
//! (the pro forma track and, for a seller's customer, the seller's cost),
//! month-end pricing, the invoices in USD and in the org's currency, and the
//! warnings of the month.

use super::*;

pub(super) fn finish_org(
    config: &Config,
    idx: usize,
    period: BillingPeriod,
    outcomes: Vec<FileOutcome>,
) -> Result<OrgResult> {
    let org = config.party(idx).customer();
    let (actual, proforma) = pricing_for(config, org);
    let mut ledger = Ledger::default();
    let mut cost_ledger = org.and_then(seller_cost_plan).map(|_| Ledger::default());
    let mut quarantined = Vec::new();
    let mut files = Vec::new();
    let mut rated_unblended = 0i128;
    for o in outcomes {
        ledger.merge(o.ledger)?;
        if let (Some(acc), Some(l)) = (cost_ledger.as_mut(), o.seller_cost) {
            acc.merge(l)?;
        }
        quarantined.extend(o.quarantined);
        files.push(o.report);
        rated_unblended = rated_unblended
            .checked_add(o.rated_unblended)
            .ok_or_else(|| Error::Overflow("summing an org".into()))?;
    }
    ledger.finalize(&actual, &proforma)?;
    if let Some(o) = org {
        warn_below_public(&mut ledger, o);
    }
    ledger.warnings = counted(std::mem::take(&mut ledger.warnings));
    let actual_inv = actual_invoice(&ledger, config.rounding)?;
    let customer = match org {
        Some(o) => Some(customer_invoice(
            &ledger,
            o,
            period,
            config.rounding,
            config.show_zero_lines,
        )?),
        None => None,
    };
    let seller_cost = match (org, cost_ledger) {
        (Some(o), Some(mut cost)) => {
            let plan = seller_cost_plan(o).map_or(Pricing::None, plan_pricing);
            cost.finalize(&actual, &plan)?;
            Some(seller_cost_invoice(&cost, o, (config, period))?)
        }
        (Some(o), None) if o.seller().is_some() => {
            Some(seller_cost_invoice(&ledger, o, (config, period))?)
        }
        _ => None,
    };
    let customer_fx = match (org, &customer) {
        (Some(o), Some(c)) => in_currency(config, o, o.currency, c, period)?,
        _ => None,
    };
    let seller = org
        .and_then(|o| o.seller())
        .and_then(|s| config.orgs.iter().find(|x| &x.id == s));
    let seller_cost_fx = match (org, seller, &seller_cost) {
        (Some(o), Some(s), Some(c)) => in_currency(config, o, s.currency, c, period)?,
        _ => None,
    };
    Ok(OrgResult {
        id: org
            .map(|o| o.id.clone())
            .unwrap_or_else(|| config.partner.id.clone()),
        role: match org.map(|o| &o.level) {
            None => Role::Partner,
            Some(Level::Direct) => Role::Customer,
            Some(Level::Seller { .. }) => Role::Seller,
            Some(Level::EndCustomer { .. }) => Role::EndCustomer,
        },
        org_index: idx,
        ledger,
        quarantined,
        files,
        rated_unblended,
        actual: actual_inv,
        customer,
        seller_cost,
        customer_fx,
        seller_cost_fx,
        discounts: None,
        excluded: Default::default(),
    })
}

/// What the top charges a seller for one of its customers: the rows at the
/// top's plan for the seller, without the seller's custom line items.
fn seller_cost_invoice(
    ledger: &Ledger,
    org: &Org,
    (config, period): (&Config, BillingPeriod),
) -> Result<CustomerInvoice> {
    let bare = Org {
        custom_line_items: Vec::new(),
        ..org.clone()
    };
    customer_invoice(
        ledger,
        &bare,
        period,
        config.rounding,
        config.show_zero_lines,
    )
}

/// An invoice of `org` converted to `currency` at the month's rate, or `None` in USD.
fn in_currency(
    config: &Config,
    org: &Org,
    currency: Currency,
    usd: &CustomerInvoice,
    period: BillingPeriod,
) -> Result<Option<Converted>> {
    if currency == Currency::USD {
        return Ok(None);
    }
    let missing = |message: String| Error::MissingRate {
        org: org.id.to_string(),
        currency: currency.to_string(),
        message,
    };
    let table = config
        .fx
        .as_ref()
        .ok_or_else(|| missing("the config has no [fx] rate file".into()))?;
    let fx = table.rate_for(currency, period).map_err(missing)?;
    let invoice = converted_invoice(usd, &fx, config.rounding, config.show_zero_lines)?;
    Ok(Some(Converted { fx, invoice }))
}

/// Most SKUs a below-public warning names.
const BELOW_PUBLIC_SKUS_NAMED: usize = 10;

/// Warns, for an org whose pro forma base is the billed cost, that some lines
/// were billed below the public rate, so the customer's price starts from it.
fn warn_below_public(ledger: &mut Ledger, org: &Org) {
    let plan = shown_plan(org);
    let lines: u64 = ledger.below_public.values().sum();
    if lines == 0 || plan.base != ProformaBase::Billed || !matches!(plan.kind, PlanKind::Rated(_)) {
        return;
    }
    let mut skus: Vec<(&String, &u64)> = ledger.below_public.iter().collect();
    skus.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let named: Vec<String> = skus
        .iter()
        .take(BELOW_PUBLIC_SKUS_NAMED)
        .map(|(k, n)| format!("{k} ({n})"))
        .collect();
    let more = skus.len().saturating_sub(BELOW_PUBLIC_SKUS_NAMED);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    ledger.warnings.push(format!(
        "{lines} Usage line(s) are billed more than 0.1% below usage x public on-demand rate (a private rate, or a line only partly free): plan `{}` prices from the billed cost, so the customer's price starts from that rate; SKUs: {}{more}. Set `base = \"public_on_demand\"` on the plan to price from the public rate",
        plan.id,
        named.join(", ")
    ));
}

/// Each distinct warning once, sorted, with how often it came (tasks finish in any order).
fn counted(warnings: Vec<String>) -> Vec<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for w in warnings {
        *counts.entry(w).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(w, n)| if n > 1 { format!("{w} ({n} times)") } else { w })
        .collect()
}
