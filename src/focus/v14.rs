//! FOCUS 1.4's rules an exporter must keep: the Cost and Usage dataset without
//! ProviderName and PublisherName and with InvoiceDetailId, the InvoiceDetail and
//! BillingPeriod datasets, and the keys and sums that join them.

use std::collections::{BTreeMap, BTreeSet};

use super::{cell as get, num, violation, Table, Violation};

/// Which FOCUS 1.4 dataset a table is, from its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dataset {
    CostAndUsage,
    InvoiceDetail,
    BillingPeriod,
}

pub(super) fn dataset_of(t: &Table) -> Dataset {
    if t.col("InvoiceDetailGrain").is_some() || t.col("InvoiceIssueStatus").is_some() {
        Dataset::InvoiceDetail
    } else if t.col("BillingPeriodStatus").is_some() && t.col("BilledCost").is_none() {
        Dataset::BillingPeriod
    } else {
        Dataset::CostAndUsage
    }
}

/// Columns present and never null, with allowed values where the spec lists them.
fn required(t: &Table, columns: &[&str], allowed: &[(&str, &[&str])], out: &mut Vec<Violation>) {
    for c in columns {
        if t.col(c).is_none() {
            out.push(violation(0, c, "mandatory FOCUS 1.4 column is missing"));
        }
    }
    for i in 0..t.rows {
        for c in columns {
            if t.col(c).is_some() && get(t, c, i).is_none() {
                out.push(violation(i + 1, c, "must not be null"));
            }
        }
        for (c, values) in allowed {
            if let Some(v) = get(t, c, i).filter(|v| !values.contains(v)) {
                out.push(violation(
                    i + 1,
                    c,
                    format!("`{v}` is not one of {}", values.join(", ")),
                ));
            }
        }
    }
}

/// A record's LastUpdated is not earlier than its Created (ISO 8601 UTC text sorts in time order).
fn not_before(t: &Table, i: usize, (created, updated): (&str, &str), out: &mut Vec<Violation>) {
    if let (Some(c), Some(u)) = (get(t, created, i), get(t, updated, i)) {
        if u < c {
            out.push(violation(
                i + 1,
                updated,
                format!("must not be earlier than {created}"),
            ));
        }
    }
}

/// The Cost and Usage dataset's 1.4 rules beyond 1.3's.
pub(super) fn cost_and_usage(t: &Table) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in super::COLUMNS_REMOVED_IN_1_4 {
        if t.col(c).is_some() {
            out.push(violation(0, c, "removed in FOCUS 1.4: must not be present"));
        }
    }
    if t.col("InvoiceDetailId").is_none() {
        out.push(violation(
            0,
            "InvoiceDetailId",
            "FOCUS 1.4 column is missing (an invoice issuer's dataset must have it)",
        ));
    }
    for i in 0..t.rows {
        if get(t, "InvoiceId", i).is_some() && get(t, "InvoiceDetailId", i).is_none() {
            out.push(violation(
                i + 1,
                "InvoiceDetailId",
                "must not be null on a charge of an invoice",
            ));
        }
    }
    out
}

const INVOICE_DETAIL_NOT_NULL: &[&str] = &[
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "InvoiceDetailCreated",
    "InvoiceDetailId",
    "InvoiceDetailLastUpdated",
    "InvoiceId",
    "InvoiceIssueStatus",
    "InvoiceIssuerName",
    "PaymentTerms",
    "ReferenceInvoiceId",
];

/// The InvoiceDetail dataset: its 18 mandatory columns (the 14 that are never
/// null checked for nulls), allowed values, LastUpdated ≥ Created, and
/// InvoiceDetailId unique within its InvoiceId.
pub(super) fn invoice_detail(t: &Table) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in [
        "InvoiceDetailDescription",
        "InvoiceDetailGrain",
        "InvoiceIssueDate",
        "PaymentDueDate",
    ] {
        if t.col(c).is_none() {
            out.push(violation(0, c, "mandatory FOCUS 1.4 column is missing"));
        }
    }
    required(
        t,
        INVOICE_DETAIL_NOT_NULL,
        &[
            (
                "ChargeCategory",
                &["Usage", "Purchase", "Tax", "Credit", "Adjustment"],
            ),
            ("InvoiceIssueStatus", &["Open", "Issued", "Voided"]),
        ],
        &mut out,
    );
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for i in 0..t.rows {
        not_before(
            t,
            i,
            ("InvoiceDetailCreated", "InvoiceDetailLastUpdated"),
            &mut out,
        );
        if let (Some(inv), Some(d)) = (get(t, "InvoiceId", i), get(t, "InvoiceDetailId", i)) {
            if !seen.insert((inv.to_string(), d.to_string())) {
                out.push(violation(
                    i + 1,
                    "InvoiceDetailId",
                    format!("`{d}` appears twice in invoice `{inv}`: it must identify one record"),
                ));
            }
        }
    }
    out
}

/// The BillingPeriod dataset: its six columns, never null; status Open or Closed.
pub(super) fn billing_period(t: &Table) -> Vec<Violation> {
    let mut out = Vec::new();
    required(
        t,
        &[
            "BillingPeriodCreated",
            "BillingPeriodEnd",
            "BillingPeriodLastUpdated",
            "BillingPeriodStart",
            "BillingPeriodStatus",
            "InvoiceIssuerName",
        ],
        &[("BillingPeriodStatus", &["Open", "Closed"])],
        &mut out,
    );
    for i in 0..t.rows {
        not_before(
            t,
            i,
            ("BillingPeriodCreated", "BillingPeriodLastUpdated"),
            &mut out,
        );
    }
    out
}

/// (InvoiceIssuerName, InvoiceId, InvoiceDetailId) → (Σ BilledCost, rows, first row).
type Lines = BTreeMap<(String, String, String), (i128, u64, usize)>;

fn lines(t: &Table) -> Lines {
    let mut out = Lines::new();
    for i in 0..t.rows {
        let key = (
            get(t, "InvoiceIssuerName", i).unwrap_or("").to_string(),
            get(t, "InvoiceId", i).unwrap_or("").to_string(),
            get(t, "InvoiceDetailId", i).unwrap_or("").to_string(),
        );
        let e = out.entry(key).or_insert((0, 0, i + 1));
        e.0 =
            e.0.saturating_add(get(t, "BilledCost", i).and_then(num).unwrap_or(0));
        e.1 += 1;
    }
    out
}

/// The cross-dataset rules, for Cost and Usage tables given with InvoiceDetail
/// tables of the same invoices: every charge's (InvoiceIssuerName, InvoiceId,
/// InvoiceDetailId) is a record of InvoiceDetail, and its charges' BilledCost sum
/// to that record's within the spec's tolerance, MAX(100, √rows × 0.5) minor
/// units (billxfer's own exports match exactly; its tests check that).
pub(super) fn cross(cost: &Table, details: &[&Table]) -> Vec<Violation> {
    let mut known = Lines::new();
    for d in details {
        known.extend(lines(d));
    }
    let invoices: BTreeSet<(String, String)> = known
        .keys()
        .map(|(a, b, _)| (a.clone(), b.clone()))
        .collect();
    let mut out = Vec::new();
    for ((issuer, invoice, detail), (sum, rows, first)) in lines(cost) {
        if !invoices.contains(&(issuer.clone(), invoice.clone())) {
            continue;
        }
        let Some((want, _, _)) = known.get(&(issuer.clone(), invoice.clone(), detail.clone()))
        else {
            out.push(violation(first, "InvoiceDetailId", format!("`{detail}` of invoice `{invoice}` is not a record of the InvoiceDetail dataset")));
            continue;
        };
        // Half minor units (cents of USD; 10^-10 internal units per half cent is 5·10^7).
        let half_cent: i128 = 50_000_000;
        let tolerance = half_cent * 200.max(rows.isqrt() as i128);
        if (sum - want).abs() > tolerance {
            out.push(violation(first, "BilledCost", format!(
                "the charges of `{detail}` in invoice `{invoice}` sum to {} but its InvoiceDetail record says {}",
                crate::money::format_fixed_exact(sum),
                crate::money::format_fixed_exact(*want)
            )));
        }
    }
    out
}
