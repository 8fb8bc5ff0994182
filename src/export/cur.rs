//! The customer's pro forma CUR 2.0 rows.

use super::*;

/// The CUR pro forma batch for selected rows (customer view).
pub(super) fn cur_batch(
    ctx: &OrgCtx<'_>,
    s: &Selected<'_>,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let n = s.idx.len();
    let (name, mgmt, _) = ctx
        .customer
        .as_ref()
        .ok_or_else(|| Error::Internal("a CUR export for the partner".into()))?;
    let start = ctx.period.start_micros() / 1000;
    let end = ctx.period.next().start_micros() / 1000;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let c: ArrayRef = match f.name().as_str() {
            "bill_billing_period_start_date" => times(vec![Some(start); n]),
            "bill_billing_period_end_date" => times(vec![Some(end); n]),
            "bill_payer_account_id" => constant(mgmt, n),
            "bill_payer_account_name" => constant(name, n),
            "bill_invoice_id" => arrow::array::new_null_array(&DataType::Utf8, n),
            "line_item_usage_account_id" => s.norm_strings(col::ACCOUNT, false)?,
            "line_item_line_item_type" => Arc::new(StringArray::from_iter_values(
                s.lt.iter().map(|t| t.as_str()),
            )),
            "line_item_product_code" => s.norm_strings(col::PRODUCT, false)?,
            "line_item_usage_type" => s.norm_strings(col::USAGE_TYPE, true)?,
            "line_item_operation" => s.norm_strings(col::OPERATION, true)?,
            "product_region_code" => s.norm_strings(col::REGION, true)?,
            "line_item_usage_amount" => ctx.amounts(s.usage.iter().map(|u| Some(*u)).collect())?,
            "line_item_currency_code" => constant(ctx.currency, n),
            "line_item_unblended_cost" | "line_item_blended_cost" => {
                ctx.amounts(s.amount.iter().map(|a| Some(*a)).collect())?
            }
            "line_item_unblended_rate" | "line_item_blended_rate" => {
                let own_rate = s.text_col(f.name());
                let unblended_rate = s.text_col("line_item_unblended_rate");
                Arc::new(
                    (0..n)
                        .map(|i| {
                            if s.rated[i] {
                                div_fixed(s.amount[i], s.usage[i]).map(format_fixed_exact)
                            } else {
                                own_rate
                                    .get(i)
                                    .or_else(|| unblended_rate.get(i))
                                    .map(str::to_string)
                            }
                        })
                        .collect::<StringArray>(),
                )
            }
            // The public rate as the input wrote it, else the value read.
            "pricing_public_on_demand_rate" => match s.wide.get("pricing_public_on_demand_rate") {
                Some(a) if a.data_type() == &DataType::Utf8 => a.clone(),
                _ => Arc::new(
                    s.public_rate
                        .iter()
                        .map(|r| r.map(format_fixed_exact))
                        .collect::<StringArray>(),
                ),
            },
            "pricing_public_on_demand_cost" => ctx.amounts(s.public_cost.clone())?,
            other => match s.wide.get(other) {
                Some(a) if a.data_type() == f.data_type() => a.clone(),
                Some(a) => cast(a, f.data_type()).map_err(|e| Error::Internal(e.to_string()))?,
                None => arrow::array::new_null_array(f.data_type(), n),
            },
        };
        columns.push(c);
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Internal(format!("building the CUR export: {e}")))
}
