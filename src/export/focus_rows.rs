//! FOCUS 1.2 rows: the customer's pro forma view and the partner's actual one.

use super::*;

/// Unit price and cost fields of a FOCUS row (docs/EXPORTS.md): list from the
/// public rate, contracted from the row's own amount, products exact at 10 decimals.
pub(super) struct Priced {
    pub(super) quantity: Option<i128>,
    pub(super) list_unit: Option<i128>,
    pub(super) list_cost: i128,
    pub(super) contracted_unit: Option<i128>,
    pub(super) contracted_cost: i128,
}

pub(super) fn priced(
    category: &str,
    amount: i128,
    qty: i128,
    public_rate: Option<i128>,
) -> Result<Priced> {
    let overflow = || Error::Overflow("pricing a FOCUS row".into());
    if !matches!(category, "Usage" | "Purchase") {
        return Ok(Priced {
            quantity: None,
            list_unit: None,
            list_cost: amount,
            contracted_unit: None,
            contracted_cost: amount,
        });
    }
    let list_unit = public_rate.filter(|r| *r >= 0).unwrap_or(0);
    let list_cost = mul_fixed(list_unit, qty).ok_or_else(overflow)?;
    let contracted_unit = div_fixed(amount, qty)
        .filter(|p| *p >= 0)
        .unwrap_or(list_unit);
    let contracted_cost = mul_fixed(contracted_unit, qty).ok_or_else(overflow)?;
    Ok(Priced {
        quantity: Some(qty),
        list_unit: Some(list_unit),
        list_cost,
        contracted_unit: Some(contracted_unit),
        contracted_cost,
    })
}

/// Tags of each row as a FOCUS KeyValueFormat JSON object: from the CUR 2.0
/// `resource_tags` map (`user_` prefix dropped) or legacy `resource_tags_user_*` /
/// `resource_tags_aws_*` columns; user tags unprefixed, AWS tags `aws:`.
pub(super) fn tags_column(s: &Selected<'_>) -> ArrayRef {
    let n = s.idx.len();
    // Borrowed (key, value) pairs per row: no text is copied until the JSON is written.
    let mut rows: Vec<Vec<(&str, Option<&str>)>> = vec![Vec::new(); n];
    let map_text = s
        .wide
        .get("resource_tags")
        .and_then(|a| a.as_map_opt())
        .map(|m| {
            (
                m,
                cast(m.keys(), &DataType::Utf8).ok(),
                cast(m.values(), &DataType::Utf8).ok(),
            )
        });
    if let Some((m, Some(keys), Some(values))) = &map_text {
        let (keys, values) = (keys.as_string::<i32>(), values.as_string::<i32>());
        let offsets = m.value_offsets();
        for (i, row) in rows.iter_mut().enumerate() {
            if m.is_null(i) {
                continue;
            }
            for j in offsets[i] as usize..offsets[i + 1] as usize {
                if keys.is_null(j) {
                    continue;
                }
                let k = keys.value(j);
                let k = k.strip_prefix("user_").unwrap_or(k);
                row.push((k, values.is_valid(j).then(|| values.value(j))));
            }
        }
    }
    // Flattened tag columns (legacy CUR), each key spelled once per column.
    let flat: Vec<(String, &StringArray)> = s
        .wide
        .iter()
        .filter_map(|(name, a)| {
            let key = if let Some(k) = name.strip_prefix("resource_tags_user_") {
                k.to_string()
            } else if let Some(k) = name.strip_prefix("resource_tags_aws_") {
                format!("aws:{k}")
            } else {
                return None;
            };
            Some((key, a.as_string_opt::<i32>()?))
        })
        .collect();
    for (key, a) in &flat {
        for (i, row) in rows.iter_mut().enumerate() {
            if a.is_valid(i) && !a.value(i).is_empty() {
                row.push((key.as_str(), Some(a.value(i))));
            }
        }
    }
    let mut out = arrow::array::StringBuilder::with_capacity(n, n * 32);
    let mut json = String::new();
    for r in &rows {
        if r.is_empty() {
            out.append_null();
        } else {
            json.clear();
            write_pairs_json(&mut json, r);
            out.append_value(&json);
        }
    }
    Arc::new(out.finish())
}

/// The FOCUS batch for selected rows: pro forma for a customer, actual for the partner.
pub(super) fn focus_batch(
    ctx: &OrgCtx<'_>,
    s: &Selected<'_>,
    partner: bool,
) -> Result<RecordBatch> {
    let n = s.idx.len();
    let schema = focus::schema(partner);
    let start = ctx.period.start_micros() / 1000;
    let end = ctx.period.next().start_micros() / 1000;
    let org_name = ctx
        .customer
        .as_ref()
        .map(|c| c.0)
        .unwrap_or(ctx.config.partner.name.as_str());
    let mut cols: BTreeMap<&str, ArrayRef> = BTreeMap::new();
    let mut category = Vec::with_capacity(n);
    let mut prices = Vec::with_capacity(n);
    for i in 0..n {
        let cat = charge_category(s.lt[i]);
        category.push(cat);
        prices.push(priced(cat, s.amount[i], s.usage[i], s.public_rate[i])?);
    }
    let product = s.norm_strings(col::PRODUCT, false)?;
    let bill_invoicing_entity = s.text_col("bill_invoicing_entity");
    let li_legal_entity = s.text_col("line_item_legal_entity");
    let pricing_rate_code = s.text_col("pricing_rate_code");
    let pricing_rate_id = s.text_col("pricing_rate_id");
    let pricing_unit = s.text_col("pricing_unit");
    let reservation_reservation_a_r_n = s.text_col("reservation_reservation_a_r_n");
    let savings_plan_savings_plan_a_r_n = s.text_col("savings_plan_savings_plan_a_r_n");
    let x_commitment_discount_id = s.text_col("x_commitment_discount_id");
    let x_commitment_discount_status = s.text_col("x_commitment_discount_status");
    let usage_end = s.millis_col("line_item_usage_end_date");
    let usage_start = s.millis_col("line_item_usage_start_date");
    let account = s.norm_strings(col::ACCOUNT, false)?;
    let commitment: Vec<Option<(String, &str, &str)>> = (0..n)
        .map(|i| {
            use LineType::*;
            let sp = savings_plan_savings_plan_a_r_n.get(i).map(str::to_string);
            let ri = reservation_reservation_a_r_n.get(i).map(str::to_string);
            let x = x_commitment_discount_id.get(i).map(str::to_string);
            match s.lt[i] {
                SavingsPlanCoveredUsage
                | SavingsPlanNegation
                | SavingsPlanRecurringFee
                | SavingsPlanUpfrontFee => sp.or(x).map(|id| (id, "Spend", "Savings Plan")),
                DiscountedUsage | RIFee | Fee => {
                    ri.or(x).map(|id| (id, "Usage", "Reserved Instance"))
                }
                _ => None,
            }
        })
        .collect();
    let region = s.norm_strings(col::REGION, true)?;
    let services = mapped(&product, focus::service_category);
    cols.insert(
        "AvailabilityZone",
        s.wide_strings("line_item_availability_zone"),
    );
    cols.insert(
        "BilledCost",
        decs(s.amount.iter().map(|a| Some(*a)).collect())?,
    );
    cols.insert("BillingAccountId", constant(ctx.mgmt, n));
    cols.insert("BillingAccountName", constant(org_name, n));
    cols.insert("BillingAccountType", constant("Management account", n));
    cols.insert("BillingCurrency", constant(ctx.currency, n));
    cols.insert("BillingPeriodEnd", times(vec![Some(end); n]));
    cols.insert("BillingPeriodStart", times(vec![Some(start); n]));
    cols.insert("ChargeCategory", strings(n, |i| Some(category[i])));
    cols.insert(
        "ChargeDescription",
        s.wide_strings("line_item_line_item_description"),
    );
    cols.insert(
        "ChargeFrequency",
        strings(n, |i| Some(charge_frequency(s.lt[i]))),
    );
    let or_period = |a: Option<&TimestampMillisecondArray>, default: i64| {
        times(
            (0..n)
                .map(|i| Some(a.filter(|a| a.is_valid(i)).map_or(default, |a| a.value(i))))
                .collect(),
        )
    };
    cols.insert("ChargePeriodEnd", or_period(usage_end, end));
    cols.insert("ChargePeriodStart", or_period(usage_start, start));
    cols.insert(
        "CommitmentDiscountCategory",
        strings(n, |i| commitment[i].as_ref().map(|c| c.1)),
    );
    cols.insert(
        "CommitmentDiscountId",
        strings(n, |i| commitment[i].as_ref().map(|c| c.0.as_str())),
    );
    cols.insert(
        "CommitmentDiscountStatus",
        strings(n, |i| {
            commitment[i]
                .as_ref()
                .filter(|_| category[i] == "Usage")
                .map(|_| x_commitment_discount_status.get(i).unwrap_or("Used"))
        }),
    );
    cols.insert(
        "CommitmentDiscountType",
        strings(n, |i| commitment[i].as_ref().map(|c| c.2)),
    );
    cols.insert(
        "ConsumedQuantity",
        decs(
            (0..n)
                .map(|i| (category[i] == "Usage").then_some(s.usage[i]))
                .collect(),
        )?,
    );
    cols.insert(
        "ConsumedUnit",
        strings(n, |i| {
            pricing_unit.get(i).filter(|_| category[i] == "Usage")
        }),
    );
    cols.insert(
        "ContractedCost",
        decs(prices.iter().map(|p| Some(p.contracted_cost)).collect())?,
    );
    cols.insert(
        "ContractedUnitPrice",
        decs(prices.iter().map(|p| p.contracted_unit).collect())?,
    );
    cols.insert(
        "EffectiveCost",
        decs(s.effective.iter().map(|a| Some(*a)).collect())?,
    );
    cols.insert(
        "InvoiceId",
        match &ctx.customer {
            Some((_, _, number)) if !partner => constant(number, n),
            _ => s.wide_strings("bill_invoice_id"),
        },
    );
    cols.insert(
        "InvoiceIssuerName",
        if partner {
            strings(n, |i| {
                Some(
                    bill_invoicing_entity
                        .get(i)
                        .unwrap_or("Amazon Web Services, Inc."),
                )
            })
        } else {
            constant(&ctx.config.partner.name, n)
        },
    );
    cols.insert(
        "ListCost",
        decs(prices.iter().map(|p| Some(p.list_cost)).collect())?,
    );
    cols.insert(
        "ListUnitPrice",
        decs(prices.iter().map(|p| p.list_unit).collect())?,
    );
    cols.insert(
        "PricingCategory",
        strings(n, |i| match category[i] {
            "Usage" if commitment[i].is_some() => Some("Committed"),
            "Usage" | "Purchase" => Some("Standard"),
            "Tax" => None,
            _ => Some("Other"),
        }),
    );
    cols.insert("PricingCurrency", constant(ctx.currency, n));
    cols.insert(
        "PricingQuantity",
        decs(prices.iter().map(|p| p.quantity).collect())?,
    );
    cols.insert(
        "PricingUnit",
        strings(n, |i| {
            pricing_unit
                .get(i)
                .filter(|_| matches!(category[i], "Usage" | "Purchase"))
        }),
    );
    cols.insert("ProviderName", constant("AWS", n));
    cols.insert(
        "PublisherName",
        strings(n, |i| {
            Some(
                li_legal_entity
                    .get(i)
                    .unwrap_or("Amazon Web Services, Inc."),
            )
        }),
    );
    cols.insert("RegionId", region);
    cols.insert("ResourceId", s.wide_strings("line_item_resource_id"));
    cols.insert(
        "ServiceSubcategory",
        mapped(&services, focus::other_subcategory),
    );
    cols.insert("ServiceCategory", services);
    // ServiceName is the service's display name (AWS's own FOCUS export writes it so);
    // x_ServiceCode keeps the product code that rules and invoices use.
    cols.insert(
        "ServiceName",
        Arc::new(
            product
                .as_string::<i32>()
                .iter()
                .map(|v| {
                    v.map(|code| normalize::service_name_of_product_code(code).unwrap_or(code))
                })
                .collect::<StringArray>(),
        ) as ArrayRef,
    );
    cols.insert("SkuId", s.wide_strings("product_sku"));
    cols.insert(
        "SkuPriceId",
        strings(n, |i| {
            pricing_rate_code.get(i).or_else(|| pricing_rate_id.get(i))
        }),
    );
    cols.insert("SubAccountId", account.clone());
    cols.insert(
        "SubAccountName",
        s.wide_strings("line_item_usage_account_name"),
    );
    cols.insert(
        "SubAccountType",
        mapped(&account, |a| {
            if a == ctx.mgmt {
                "Management account"
            } else {
                "Member account"
            }
        }),
    );
    cols.insert("Tags", tags_column(s));
    cols.insert("x_ServiceCode", product);
    cols.insert("x_UsageType", s.norm_strings(col::USAGE_TYPE, true)?);
    cols.insert("x_Operation", s.norm_strings(col::OPERATION, true)?);
    cols.insert("x_LineItemType", strings(n, |i| Some(s.lt[i].as_str())));
    if partner {
        cols.insert(focus::CUSTOMER_ORG_COLUMN, constant(ctx.org_id, n));
    }
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            cols.remove(f.name().as_str())
                .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), n))
        })
        .collect();
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::Internal(format!("building the FOCUS export: {e}")))
}
