//! FOCUS 1.4's InvoiceDetail and BillingPeriod datasets, written beside an
//! org's Cost and Usage FOCUS dataset (docs/EXPORTS.md, "FOCUS 1.4"):
//! the customer's from its invoice, the partner's from AWS's invoice lines as
//! billxfer rebuilds them. Cost rows join InvoiceDetail on (InvoiceIssuerName,
//! InvoiceId, InvoiceDetailId), and each line's charges sum to its BilledCost.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;

use super::dataset::{create_output, parquet_props_for, write_csv_header, write_csv_rows};
use super::rows::{decs, texts, times, OrgCtx};
use super::sink::{InvoiceLines, LineSum};
use super::{ExportFile, ExportFormat};
use crate::error::{Error, Result};
use crate::focus::{arrow_type, ColumnType};
use crate::money::format_fixed_exact;

/// The InvoiceDetail columns (FOCUS 1.4), sorted; billxfer fills all 18
/// mandatory ones. The conditional payment-currency columns and
/// PurchaseOrderNumber are not written: billxfer bills and is paid in one
/// currency and takes no purchase order numbers.
pub const INVOICE_DETAIL_COLUMNS: &[(&str, ColumnType)] = &[
    ("BilledCost", ColumnType::Decimal),
    ("BillingAccountId", ColumnType::Text),
    ("BillingCurrency", ColumnType::Text),
    ("BillingPeriodEnd", ColumnType::DateTime),
    ("BillingPeriodStart", ColumnType::DateTime),
    ("ChargeCategory", ColumnType::Text),
    ("InvoiceDetailCreated", ColumnType::DateTime),
    ("InvoiceDetailDescription", ColumnType::Text),
    ("InvoiceDetailGrain", ColumnType::Text),
    ("InvoiceDetailId", ColumnType::Text),
    ("InvoiceDetailLastUpdated", ColumnType::DateTime),
    ("InvoiceId", ColumnType::Text),
    ("InvoiceIssueDate", ColumnType::DateTime),
    ("InvoiceIssueStatus", ColumnType::Text),
    ("InvoiceIssuerName", ColumnType::Text),
    ("PaymentDueDate", ColumnType::DateTime),
    ("PaymentTerms", ColumnType::Text),
    ("ReferenceInvoiceId", ColumnType::Text),
];

/// The BillingPeriod columns (FOCUS 1.4): all six, mandatory.
pub const BILLING_PERIOD_COLUMNS: &[(&str, ColumnType)] = &[
    ("BillingPeriodCreated", ColumnType::DateTime),
    ("BillingPeriodEnd", ColumnType::DateTime),
    ("BillingPeriodLastUpdated", ColumnType::DateTime),
    ("BillingPeriodStart", ColumnType::DateTime),
    ("BillingPeriodStatus", ColumnType::Text),
    ("InvoiceIssuerName", ColumnType::Text),
];

fn schema_of(columns: &[(&str, ColumnType)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, t)| Field::new(*n, arrow_type(*t), true))
            .collect::<Vec<_>>(),
    ))
}

/// One invoice line as an InvoiceDetail row.
struct Line {
    invoice_id: String,
    detail_id: String,
    amount: i128,
    /// The ChargeCategory of the line's charges (`Usage` when they mix categories).
    category: String,
}

/// Writes the org's InvoiceDetail and BillingPeriod datasets: the customer's
/// (from `customer_lines`, detail id → amount) and the partner's (from
/// `partner_lines`, (AWS invoice id, detail id) → amount), as the run wants them.
pub(super) fn write_datasets(
    ctx: &OrgCtx<'_>,
    root: &Path,
    (customer, partner): (bool, bool),
    customer_lines: &BTreeMap<String, LineSum>,
    partner_lines: &InvoiceLines,
) -> Result<Vec<ExportFile>> {
    let mut files = Vec::new();
    if let (true, Some((_, _, number))) = (customer, ctx.customer.as_ref()) {
        let lines: Vec<Line> = customer_lines
            .iter()
            .map(|(d, a)| Line {
                invoice_id: number.clone(),
                detail_id: d.clone(),
                amount: a.cost,
                category: a.category.clone(),
            })
            .collect();
        let currency = ctx
            .fx
            .as_ref()
            .map_or(ctx.currency, |f| f.currency.as_str());
        let dir = ctx.proforma_dir.as_str();
        files.push(write_invoice_detail(
            ctx,
            root,
            dir,
            &lines,
            (currency, ctx.issuer),
            false,
        )?);
        files.push(write_billing_period(ctx, root, dir, ctx.issuer, false)?);
    }
    if partner {
        let lines: Vec<Line> = partner_lines
            .iter()
            .map(|((i, d), a)| Line {
                invoice_id: i.clone(),
                detail_id: d.clone(),
                amount: a.cost,
                category: a.category.clone(),
            })
            .collect();
        let aws = "Amazon Web Services, Inc.";
        files.push(write_invoice_detail(
            ctx,
            root,
            "partner",
            &lines,
            (ctx.currency, aws),
            true,
        )?);
        files.push(write_billing_period(ctx, root, "partner", aws, true)?);
    }
    Ok(files)
}

/// The detail's grain and description: a customer's line is an account and a
/// service (or a custom item), the partner's also a line item type.
fn grain(detail: &str) -> (Option<String>, String) {
    if let Some(item) = detail.strip_prefix("item:") {
        return (
            Some(format!("{{\"x_CustomLineItemId\":{}}}", json_string(item))),
            format!("Custom line item {item}"),
        );
    }
    let parts: Vec<&str> = detail.split(':').collect();
    match parts.as_slice() {
        [account, service] => (
            Some(format!(
                "{{\"ServiceName\":{},\"SubAccountId\":{}}}",
                json_string(service),
                json_string(account)
            )),
            format!("{service} usage of account {account}"),
        ),
        [account, service, line_type] => (
            Some(format!(
                "{{\"ServiceName\":{},\"SubAccountId\":{},\"x_LineItemType\":{}}}",
                json_string(service),
                json_string(account),
                json_string(line_type)
            )),
            format!("{service} {line_type} of account {account}"),
        ),
        _ => (None, detail.to_string()),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn write_invoice_detail(
    ctx: &OrgCtx<'_>,
    root: &Path,
    dir: &str,
    lines: &[Line],
    (currency, issuer): (&str, &str),
    partner: bool,
) -> Result<ExportFile> {
    let n = lines.len();
    let (start, end) = period_bounds(ctx);
    let issuer_terms = ctx.config.partner.payment_terms.trim().to_string();
    let terms = if partner || issuer_terms.is_empty() {
        "As stated on the invoice".to_string()
    } else {
        issuer_terms
    };
    let many = |v: &str| texts(vec![Some(v.to_string()); n]);
    let mut cols: BTreeMap<&str, ArrayRef> = BTreeMap::new();
    cols.insert(
        "BilledCost",
        decs(lines.iter().map(|l| Some(l.amount)).collect())?,
    );
    cols.insert("BillingAccountId", many(ctx.mgmt));
    cols.insert("BillingCurrency", many(currency));
    cols.insert("BillingPeriodStart", times(vec![Some(start); n]));
    cols.insert("BillingPeriodEnd", times(vec![Some(end); n]));
    cols.insert(
        "ChargeCategory",
        texts(lines.iter().map(|l| Some(l.category.clone())).collect()),
    );
    // The run's records are made from the closed month; billxfer stamps them
    // with the period's end, not the wall clock, so re-runs give the same bytes.
    cols.insert("InvoiceDetailCreated", times(vec![Some(end); n]));
    cols.insert("InvoiceDetailLastUpdated", times(vec![Some(end); n]));
    let grains: Vec<(Option<String>, String)> = lines.iter().map(|l| grain(&l.detail_id)).collect();
    cols.insert(
        "InvoiceDetailDescription",
        texts(grains.iter().map(|g| Some(g.1.clone())).collect()),
    );
    cols.insert(
        "InvoiceDetailGrain",
        texts(grains.into_iter().map(|g| g.0).collect()),
    );
    cols.insert(
        "InvoiceDetailId",
        texts(lines.iter().map(|l| Some(l.detail_id.clone())).collect()),
    );
    cols.insert(
        "InvoiceId",
        texts(lines.iter().map(|l| Some(l.invoice_id.clone())).collect()),
    );
    cols.insert(
        "ReferenceInvoiceId",
        texts(lines.iter().map(|l| Some(l.invoice_id.clone())).collect()),
    );
    cols.insert("InvoiceIssueDate", times(vec![Some(end); n]));
    cols.insert("InvoiceIssueStatus", many("Issued"));
    cols.insert("InvoiceIssuerName", many(issuer));
    cols.insert("PaymentTerms", many(&terms));
    let total = lines
        .iter()
        .try_fold(0i128, |a, l| a.checked_add(l.amount))
        .ok_or_else(|| Error::Overflow("summing an invoice detail".into()))?;
    let rel = dataset_path(ctx, dir, "focus-invoice-detail");
    let schema = schema_of(INVOICE_DETAIL_COLUMNS);
    write_batch(root, &rel, &schema, cols, n, ctx.opts.format)?;
    Ok(ExportFile {
        path: rel,
        org: ctx.org_id.to_string(),
        kind: if partner {
            "partner_invoice_detail"
        } else {
            "invoice_detail"
        }
        .into(),
        rows: n as u64,
        cost_total: format_fixed_exact(total),
        currency: currency.to_string(),
    })
}

fn write_billing_period(
    ctx: &OrgCtx<'_>,
    root: &Path,
    dir: &str,
    issuer: &str,
    partner: bool,
) -> Result<ExportFile> {
    let (start, end) = period_bounds(ctx);
    let mut cols: BTreeMap<&str, ArrayRef> = BTreeMap::new();
    cols.insert("BillingPeriodCreated", times(vec![Some(end)]));
    cols.insert("BillingPeriodLastUpdated", times(vec![Some(end)]));
    cols.insert("BillingPeriodStart", times(vec![Some(start)]));
    cols.insert("BillingPeriodEnd", times(vec![Some(end)]));
    // A month-end run bills a finished month.
    cols.insert("BillingPeriodStatus", texts(vec![Some("Closed".into())]));
    cols.insert("InvoiceIssuerName", texts(vec![Some(issuer.to_string())]));
    let rel = dataset_path(ctx, dir, "focus-billing-period");
    write_batch(
        root,
        &rel,
        &schema_of(BILLING_PERIOD_COLUMNS),
        cols,
        1,
        ctx.opts.format,
    )?;
    Ok(ExportFile {
        path: rel,
        org: ctx.org_id.to_string(),
        kind: if partner {
            "partner_billing_period"
        } else {
            "billing_period"
        }
        .into(),
        rows: 1,
        cost_total: "0".into(),
        currency: String::new(),
    })
}

fn period_bounds(ctx: &OrgCtx<'_>) -> (i64, i64) {
    (
        ctx.period.start_micros() / 1000,
        ctx.period.next().start_micros() / 1000,
    )
}

fn dataset_path(ctx: &OrgCtx<'_>, dir: &str, dataset: &str) -> String {
    let e = match ctx.opts.format {
        ExportFormat::Parquet => "parquet",
        ExportFormat::Csv => "csv",
    };
    format!("{dir}/{dataset}/{}-{}.{e}", ctx.org_id, ctx.period)
}

fn write_batch(
    root: &Path,
    rel: &str,
    schema: &SchemaRef,
    cols: BTreeMap<&str, ArrayRef>,
    n: usize,
    format: ExportFormat,
) -> Result<()> {
    let path = root.join(rel);
    let batch = super::rows::batch_of(schema.clone(), cols, n)?;
    let err = |e: String| Error::Output {
        path: path.clone(),
        source: std::io::Error::other(e),
    };
    let w = create_output(&path)?;
    match format {
        ExportFormat::Parquet => {
            let mut pw = ArrowWriter::try_new(w, schema.clone(), Some(parquet_props_for(schema)))
                .map_err(|e| err(e.to_string()))?;
            pw.write(&batch).map_err(|e| err(e.to_string()))?;
            pw.close().map_err(|e| err(e.to_string()))?;
        }
        ExportFormat::Csv => {
            let mut w = w;
            write_csv_header(&mut w, schema).map_err(|e| err(e.to_string()))?;
            write_csv_rows(&mut w, &batch).map_err(|e| err(e.to_string()))?;
            w.flush().map_err(|e| err(e.to_string()))?;
        }
    }
    Ok(())
}
