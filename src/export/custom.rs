//! Custom line items as export rows (CUR and FOCUS).

use super::*;

/// The service a custom line item is shown under when none is chosen (ABC's default).
pub(super) const CUSTOM_ITEM_SERVICE: &str = "AWSBillingConductor";

/// Whether a custom line item is shown under its own service (ABC's default), not another one.
pub(super) fn shown_on_its_own(c: &crate::invoice::CliLine) -> bool {
    c.service.is_empty() || c.service == CUSTOM_ITEM_SERVICE
}

/// What custom line item rows need: the customer's invoice, names, the period and the items' sum.
pub(super) struct CustomRows<'a> {
    pub(super) inv: &'a crate::invoice::CustomerInvoice,
    pub(super) name: &'a str,
    pub(super) mgmt: &'a str,
    pub(super) number: &'a str,
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) total: i128,
}

/// The custom line items of a customer org (`None` for the partner).
pub(super) fn custom_rows<'a>(
    ctx: &'a OrgCtx<'_>,
    invoice: Option<&'a crate::invoice::CustomerInvoice>,
) -> Result<Option<CustomRows<'a>>> {
    let (Some(inv), Some((name, mgmt, number))) = (invoice, ctx.customer.as_ref()) else {
        return Ok(None);
    };
    let total = inv
        .custom
        .iter()
        .try_fold(0i128, |a, c| a.checked_add(c.exact.0))
        .ok_or_else(|| Error::Overflow("summing custom items".into()))?;
    Ok(Some(CustomRows {
        inv,
        name,
        mgmt,
        number,
        start: ctx.period.start_micros() / 1000,
        end: ctx.period.next().start_micros() / 1000,
        total,
    }))
}

/// Custom line items as CUR rows.
pub(super) fn custom_cur_batch(
    ctx: &OrgCtx<'_>,
    invoice: Option<&crate::invoice::CustomerInvoice>,
    schema: &SchemaRef,
) -> Result<(RecordBatch, i128)> {
    let Some(CustomRows {
        inv,
        name,
        mgmt,
        number: _,
        start,
        end,
        total,
    }) = custom_rows(ctx, invoice)?
    else {
        return Ok((RecordBatch::new_empty(schema.clone()), 0));
    };
    let n = inv.custom.len();
    let line_type = |c: &crate::invoice::CliLine| {
        let base = match c.kind {
            CliKind::Fee => "Fee",
            CliKind::Credit => "Credit",
        };
        if shown_on_its_own(c) {
            base.to_string()
        } else {
            format!("Proforma_{base}")
        }
    };
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> Result<ArrayRef> {
            Ok(match f.name().as_str() {
                "bill_billing_period_start_date" | "line_item_usage_start_date" => {
                    times(vec![Some(start); n])
                }
                "bill_billing_period_end_date" | "line_item_usage_end_date" => {
                    times(vec![Some(end); n])
                }
                "bill_payer_account_id" => constant(mgmt, n),
                "bill_payer_account_name" => constant(name, n),
                "line_item_usage_account_id" => texts(
                    inv.custom
                        .iter()
                        .map(|c| Some(c.account.to_string()))
                        .collect(),
                ),
                "line_item_line_item_type" => {
                    texts(inv.custom.iter().map(|c| Some(line_type(c))).collect())
                }
                "line_item_product_code" => texts(
                    inv.custom
                        .iter()
                        .map(|c| Some(c.service.clone()).filter(|s| !s.is_empty()))
                        .collect(),
                ),
                "line_item_line_item_description" => texts(
                    inv.custom
                        .iter()
                        .map(|c| Some(c.description.clone()))
                        .collect(),
                ),
                "line_item_usage_type" => texts(
                    inv.custom
                        .iter()
                        .map(|c| Some(format!("CustomLineItem:{}", c.id)))
                        .collect(),
                ),
                "line_item_currency_code" => constant(ctx.currency, n),
                "line_item_unblended_cost" | "line_item_blended_cost" => {
                    ctx.amounts(inv.custom.iter().map(|c| Some(c.exact.0)).collect())?
                }
                "line_item_usage_amount" => ctx.amounts(vec![Some(0); n])?,
                _ => arrow::array::new_null_array(f.data_type(), n),
            })
        })
        .collect::<Result<_>>()?;
    Ok((
        RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| Error::Internal(e.to_string()))?,
        total,
    ))
}

/// Custom line items as FOCUS rows (customer view).
pub(super) fn custom_focus_batch(
    ctx: &OrgCtx<'_>,
    invoice: Option<&crate::invoice::CustomerInvoice>,
) -> Result<(RecordBatch, i128)> {
    let schema = focus::schema_of(false, ctx.opts.focus_version);
    let Some(CustomRows {
        inv,
        name,
        mgmt,
        number,
        start,
        end,
        total,
    }) = custom_rows(ctx, invoice)?
    else {
        return Ok((RecordBatch::new_empty(schema), 0));
    };
    let n = inv.custom.len();
    let is_fee = |c: &crate::invoice::CliLine| c.kind == CliKind::Fee && c.exact.0 >= 0;
    let category: Vec<&str> = inv
        .custom
        .iter()
        .map(|c| if is_fee(c) { "Purchase" } else { "Credit" })
        .collect();
    let mut cols: BTreeMap<&str, ArrayRef> = BTreeMap::new();
    let amounts: Vec<Option<i128>> = inv.custom.iter().map(|c| Some(c.exact.0)).collect();
    cols.insert("BilledCost", decs(amounts.clone())?);
    cols.insert("EffectiveCost", decs(amounts.clone())?);
    cols.insert("ListCost", decs(amounts.clone())?);
    cols.insert("ContractedCost", decs(amounts.clone())?);
    let fee_only = |v: Option<i128>| -> Vec<Option<i128>> {
        inv.custom
            .iter()
            .map(|c| {
                if is_fee(c) {
                    v.or(Some(c.exact.0))
                } else {
                    None
                }
            })
            .collect()
    };
    cols.insert("ListUnitPrice", decs(fee_only(None))?);
    cols.insert("ContractedUnitPrice", decs(fee_only(None))?);
    cols.insert("PricingQuantity", decs(fee_only(Some(ONE)))?);
    cols.insert(
        "PricingCategory",
        texts(
            category
                .iter()
                .map(|c| {
                    Some(
                        if *c == "Purchase" {
                            "Standard"
                        } else {
                            "Other"
                        }
                        .to_string(),
                    )
                })
                .collect(),
        ),
    );
    cols.insert(
        "PricingUnit",
        texts(
            category
                .iter()
                .map(|c| (*c == "Purchase").then(|| "Item".to_string()))
                .collect(),
        ),
    );
    cols.insert("BillingAccountId", constant(mgmt, n));
    cols.insert("BillingAccountName", constant(name, n));
    cols.insert("BillingAccountType", constant("Management account", n));
    cols.insert("BillingCurrency", constant(ctx.currency, n));
    cols.insert("PricingCurrency", constant(ctx.currency, n));
    cols.insert("BillingPeriodStart", times(vec![Some(start); n]));
    cols.insert("BillingPeriodEnd", times(vec![Some(end); n]));
    cols.insert("ChargePeriodStart", times(vec![Some(start); n]));
    cols.insert("ChargePeriodEnd", times(vec![Some(end); n]));
    cols.insert(
        "ChargeCategory",
        texts(category.iter().map(|c| Some(c.to_string())).collect()),
    );
    cols.insert("ChargeFrequency", constant("Recurring", n));
    cols.insert(
        "ChargeDescription",
        texts(
            inv.custom
                .iter()
                .map(|c| Some(c.description.clone()))
                .collect(),
        ),
    );
    cols.insert("InvoiceId", constant(number, n));
    cols.insert("InvoiceIssuerName", constant(ctx.issuer, n));
    cols.insert("ProviderName", constant(ctx.issuer, n));
    cols.insert("PublisherName", constant(ctx.issuer, n));
    // FOCUS 1.3: the partner's own item is its service, not hosted by AWS.
    cols.insert("ServiceProviderName", constant(ctx.issuer, n));
    cols.insert("HostProviderName", constant(ctx.issuer, n));
    // FOCUS 1.4: each item is its own invoice line.
    cols.insert(
        "InvoiceDetailId",
        texts(
            inv.custom
                .iter()
                .map(|c| Some(item_detail_id(&c.id)))
                .collect(),
        ),
    );
    cols.insert(
        "ServiceCategory",
        texts(
            inv.custom
                .iter()
                .map(|c| Some(focus::service_category(&c.service).to_string()))
                .collect(),
        ),
    );
    cols.insert(
        "ServiceSubcategory",
        texts(
            inv.custom
                .iter()
                .map(|c| Some(format!("Other ({})", focus::service_category(&c.service))))
                .collect(),
        ),
    );
    cols.insert(
        "ServiceName",
        texts(
            inv.custom
                .iter()
                .map(|c| {
                    Some(if c.service.is_empty() {
                        "Custom line item".to_string()
                    } else {
                        c.service.clone()
                    })
                })
                .collect(),
        ),
    );
    cols.insert(
        "SubAccountId",
        texts(
            inv.custom
                .iter()
                .map(|c| Some(c.account.to_string()))
                .collect(),
        ),
    );
    cols.insert(
        "x_LineItemType",
        texts(
            inv.custom
                .iter()
                .map(|c| {
                    Some(
                        match (c.kind, shown_on_its_own(c)) {
                            (CliKind::Fee, true) => "Fee",
                            (CliKind::Credit, true) => "Credit",
                            (CliKind::Fee, false) => "Proforma_Fee",
                            (CliKind::Credit, false) => "Proforma_Credit",
                        }
                        .to_string(),
                    )
                })
                .collect(),
        ),
    );
    if let Some(fx) = &ctx.fx {
        super::fx_columns::to_billing_currency(&mut cols, fx, n)?;
    }
    Ok((super::rows::batch_of(schema, cols, n)?, total))
}

/// FOCUS 1.3's invoice rule: the charges of an InvoiceId sum to the invoice's
/// total. billxfer's rows sum to the exact (unrounded) total; this one row,
/// an `Adjustment`, carries the invoice's rounding to the currency's minor
/// unit (docs/EXPORTS.md, "FOCUS versions"). `diff` is in the billing currency.
pub(super) fn rounding_focus_batch(
    ctx: &OrgCtx<'_>,
    partner: bool,
    (invoice_id, detail_id): (&str, Option<&str>),
    line_category: Option<&str>,
    diff: i128,
) -> Result<RecordBatch> {
    let schema = focus::schema_of(partner, ctx.opts.focus_version);
    let billing = match (&ctx.fx, partner) {
        (Some(fx), false) => fx.currency.as_str(),
        _ => ctx.currency,
    };
    let name = ctx
        .customer
        .as_ref()
        .map_or(ctx.config.partner.name.as_str(), |c| c.0);
    let (start, end) = (
        ctx.period.start_micros() / 1000,
        ctx.period.next().start_micros() / 1000,
    );
    let mut cols: BTreeMap<&str, ArrayRef> = BTreeMap::new();
    for c in ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost"] {
        cols.insert(c, decs(vec![Some(diff)])?);
    }
    let text = |v: &str| texts(vec![Some(v.to_string())]);
    cols.insert("BillingAccountId", text(ctx.mgmt));
    cols.insert("BillingAccountName", text(name));
    cols.insert("BillingAccountType", text("Management account"));
    cols.insert("BillingCurrency", text(billing));
    cols.insert("PricingCurrency", text(billing));
    cols.insert("BillingPeriodStart", times(vec![Some(start)]));
    cols.insert("BillingPeriodEnd", times(vec![Some(end)]));
    cols.insert("ChargePeriodStart", times(vec![Some(start)]));
    cols.insert("ChargePeriodEnd", times(vec![Some(end)]));
    // 1.3: one Adjustment per invoice. 1.4: one per invoice line, in the line's
    // ChargeCategory (so the line and its charges agree) as a correction, which
    // FOCUS lets carry no unit price or quantity.
    match line_category {
        Some(c) => {
            cols.insert("ChargeCategory", text(c));
            cols.insert("ChargeClass", text("Correction"));
        }
        None => {
            cols.insert("ChargeCategory", text("Adjustment"));
        }
    }
    cols.insert("ChargeFrequency", text("One-Time"));
    cols.insert(
        "ChargeDescription",
        text(&format!(
            "Rounding of invoice {invoice_id} to the currency's minor unit"
        )),
    );
    cols.insert("InvoiceId", text(invoice_id));
    if let Some(d) = detail_id {
        cols.insert("InvoiceDetailId", text(d));
    }
    let (issuer, provider) = if partner {
        ("Amazon Web Services, Inc.", "AWS")
    } else {
        (ctx.issuer, ctx.issuer)
    };
    cols.insert("InvoiceIssuerName", text(issuer));
    for c in [
        "ProviderName",
        "PublisherName",
        "ServiceProviderName",
        "HostProviderName",
    ] {
        cols.insert(c, text(provider));
    }
    cols.insert("ServiceCategory", text("Other"));
    cols.insert("ServiceSubcategory", text("Other (Other)"));
    cols.insert("ServiceName", text("Invoice rounding"));
    // A line's rounding is charged to the line's account (FOCUS 1.4 detail ids start with it).
    let account = detail_id
        .and_then(|d| d.split(':').next())
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or(ctx.mgmt);
    cols.insert("SubAccountId", text(account));
    cols.insert("x_LineItemType", text("Rounding"));
    if partner {
        cols.insert(focus::CUSTOMER_ORG_COLUMN, text(ctx.org_id));
    }
    super::rows::batch_of(schema, cols, 1)
}

/// The FOCUS 1.4 InvoiceDetailId of a custom line item.
pub(super) fn item_detail_id(id: &str) -> String {
    format!("item:{id}")
}
