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

/// Per-row facts the FOCUS column groups share.
struct FocusRows<'s, 'a> {
    s: &'s Selected<'a>,
    n: usize,
    partner: bool,
    /// The billing period, ms.
    start: i64,
    end: i64,
    category: Vec<&'static str>,
    prices: Vec<Priced>,
    /// Commitment id, category and type of rows that use or buy a commitment.
    commitment: Vec<Option<(String, &'static str, &'static str)>>,
}

type FocusColumns = BTreeMap<&'static str, ArrayRef>;

impl<'s, 'a> FocusRows<'s, 'a> {
    fn new(ctx: &OrgCtx<'_>, s: &'s Selected<'a>, partner: bool) -> Result<FocusRows<'s, 'a>> {
        let n = s.idx.len();
        let mut category = Vec::with_capacity(n);
        let mut prices = Vec::with_capacity(n);
        for i in 0..n {
            let cat = charge_category(s.lt[i]);
            category.push(cat);
            prices.push(priced(cat, s.amount[i], s.usage[i], s.public_rate[i])?);
        }
        let ri = s.text_col("reservation_reservation_a_r_n");
        let sp = s.text_col("savings_plan_savings_plan_a_r_n");
        let x = s.text_col("x_commitment_discount_id");
        let commitment = (0..n)
            .map(|i| {
                use LineType::*;
                let (sp, ri, x) = (sp.get(i), ri.get(i), x.get(i));
                match s.lt[i] {
                    SavingsPlanCoveredUsage
                    | SavingsPlanNegation
                    | SavingsPlanRecurringFee
                    | SavingsPlanUpfrontFee => {
                        sp.or(x).map(|id| (id.to_string(), "Spend", "Savings Plan"))
                    }
                    DiscountedUsage | RIFee | Fee => ri
                        .or(x)
                        .map(|id| (id.to_string(), "Usage", "Reserved Instance")),
                    _ => None,
                }
            })
            .collect();
        Ok(FocusRows {
            s,
            n,
            partner,
            start: ctx.period.start_micros() / 1000,
            end: ctx.period.next().start_micros() / 1000,
            category,
            prices,
            commitment,
        })
    }

    /// Costs, prices and quantities.
    fn cost_columns(&self, cols: &mut FocusColumns) -> Result<()> {
        let (s, prices, category) = (self.s, &self.prices, &self.category);
        cols.insert(
            "BilledCost",
            decs(s.amount.iter().map(|a| Some(*a)).collect())?,
        );
        cols.insert(
            "ConsumedQuantity",
            decs(
                (0..self.n)
                    .map(|i| (category[i] == "Usage").then_some(s.usage[i]))
                    .collect(),
            )?,
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
            "ListCost",
            decs(prices.iter().map(|p| Some(p.list_cost)).collect())?,
        );
        cols.insert(
            "ListUnitPrice",
            decs(prices.iter().map(|p| p.list_unit).collect())?,
        );
        cols.insert(
            "PricingQuantity",
            decs(prices.iter().map(|p| p.quantity).collect())?,
        );
        Ok(())
    }

    /// Who bills whom: billing account, period, currency, invoice, issuer, provider, publisher.
    fn billing_columns(&self, ctx: &OrgCtx<'_>, cols: &mut FocusColumns) {
        let (s, n) = (self.s, self.n);
        let org_name = ctx
            .customer
            .as_ref()
            .map(|c| c.0)
            .unwrap_or(ctx.config.partner.name.as_str());
        cols.insert("BillingAccountId", constant(ctx.mgmt, n));
        cols.insert("BillingAccountName", constant(org_name, n));
        cols.insert("BillingAccountType", constant("Management account", n));
        cols.insert("BillingCurrency", constant(ctx.currency, n));
        cols.insert("BillingPeriodEnd", times(vec![Some(self.end); n]));
        cols.insert("BillingPeriodStart", times(vec![Some(self.start); n]));
        cols.insert(
            "InvoiceId",
            match &ctx.customer {
                Some((_, _, number)) if !self.partner => constant(number, n),
                _ => s.wide_strings("bill_invoice_id"),
            },
        );
        let invoicing_entity = s.text_col("bill_invoicing_entity");
        cols.insert(
            "InvoiceIssuerName",
            if self.partner {
                strings(n, |i| {
                    Some(
                        invoicing_entity
                            .get(i)
                            .unwrap_or("Amazon Web Services, Inc."),
                    )
                })
            } else {
                constant(ctx.issuer, n)
            },
        );
        cols.insert("PricingCurrency", constant(ctx.currency, n));
        cols.insert("ProviderName", constant("AWS", n));
        let legal_entity = s.text_col("line_item_legal_entity");
        cols.insert(
            "PublisherName",
            strings(n, |i| {
                Some(legal_entity.get(i).unwrap_or("Amazon Web Services, Inc."))
            }),
        );
    }

    /// What the charge is: category, frequency, period, commitment, units, SKU.
    fn charge_columns(&self, cols: &mut FocusColumns) {
        let (s, n, category, commitment) = (self.s, self.n, &self.category, &self.commitment);
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
        cols.insert(
            "ChargePeriodEnd",
            or_period(s.millis_col("line_item_usage_end_date"), self.end),
        );
        cols.insert(
            "ChargePeriodStart",
            or_period(s.millis_col("line_item_usage_start_date"), self.start),
        );
        cols.insert(
            "CommitmentDiscountCategory",
            strings(n, |i| commitment[i].as_ref().map(|c| c.1)),
        );
        cols.insert(
            "CommitmentDiscountId",
            strings(n, |i| commitment[i].as_ref().map(|c| c.0.as_str())),
        );
        let status = s.text_col("x_commitment_discount_status");
        cols.insert(
            "CommitmentDiscountStatus",
            strings(n, |i| {
                commitment[i]
                    .as_ref()
                    .filter(|_| category[i] == "Usage")
                    .map(|_| status.get(i).unwrap_or("Used"))
            }),
        );
        cols.insert(
            "CommitmentDiscountType",
            strings(n, |i| commitment[i].as_ref().map(|c| c.2)),
        );
        let unit = s.text_col("pricing_unit");
        cols.insert(
            "ConsumedUnit",
            strings(n, |i| unit.get(i).filter(|_| category[i] == "Usage")),
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
        cols.insert(
            "PricingUnit",
            strings(n, |i| {
                unit.get(i)
                    .filter(|_| matches!(category[i], "Usage" | "Purchase"))
            }),
        );
        cols.insert("SkuId", s.wide_strings("product_sku"));
        let (rate_code, rate_id) = (
            s.text_col("pricing_rate_code"),
            s.text_col("pricing_rate_id"),
        );
        cols.insert(
            "SkuPriceId",
            strings(n, |i| rate_code.get(i).or_else(|| rate_id.get(i))),
        );
        cols.insert("x_LineItemType", strings(n, |i| Some(s.lt[i].as_str())));
    }

    /// Where and what: region, resource, service, sub account, tags, billxfer's extensions.
    fn resource_columns(&self, ctx: &OrgCtx<'_>, cols: &mut FocusColumns) -> Result<()> {
        let s = self.s;
        let product = s.norm_strings(col::PRODUCT, false)?;
        let account = s.norm_strings(col::ACCOUNT, false)?;
        let services = mapped(&product, focus::service_category);
        cols.insert(
            "AvailabilityZone",
            s.wide_strings("line_item_availability_zone"),
        );
        cols.insert("RegionId", s.norm_strings(col::REGION, true)?);
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
        if self.partner {
            cols.insert(focus::CUSTOMER_ORG_COLUMN, constant(ctx.org_id, self.n));
        }
        Ok(())
    }
}

/// FOCUS 1.4's InvoiceDetailId of each row: the invoice line it is billed on.
/// A customer's invoice has a line per account and service (`<account>:<service>`);
/// the partner's actual invoice, per account, service and line item type
/// (`<account>:<service>:<type>`) (docs/EXPORTS.md, "FOCUS 1.4").
fn detail_ids(cols: &FocusColumns, partner: bool, n: usize) -> Result<ArrayRef> {
    use arrow::array::{Array, AsArray};
    let text = |name: &str| {
        cols.get(name)
            .and_then(|a| a.as_string_opt::<i32>().cloned())
            .ok_or_else(|| Error::Internal(format!("the FOCUS batch lacks {name}")))
    };
    let (account, service, line_type, invoice) = (
        text("SubAccountId")?,
        text("x_ServiceCode")?,
        text("x_LineItemType")?,
        text("InvoiceId")?,
    );
    // A charge with no invoice id (inputs without bill_invoice_id) has no invoice line either.
    let ids: StringArray = (0..n)
        .map(|i| {
            let (a, s) = (account.value(i), service.value(i));
            if !invoice.is_valid(i) || invoice.value(i).is_empty() {
                None
            } else if partner {
                Some(format!("{a}:{s}:{}", line_type.value(i)))
            } else {
                Some(format!("{a}:{s}"))
            }
        })
        .collect();
    Ok(Arc::new(ids))
}

/// The FOCUS batch for selected rows: pro forma for a customer, actual for the partner.
pub(super) fn focus_batch(
    ctx: &OrgCtx<'_>,
    s: &Selected<'_>,
    partner: bool,
) -> Result<RecordBatch> {
    let rows = FocusRows::new(ctx, s, partner)?;
    let mut cols = FocusColumns::new();
    rows.cost_columns(&mut cols)?;
    rows.billing_columns(ctx, &mut cols);
    rows.charge_columns(&mut cols);
    rows.resource_columns(ctx, &mut cols)?;
    if let (false, Some(fx)) = (partner, &ctx.fx) {
        super::fx_columns::to_billing_currency(&mut cols, fx, rows.n)?;
    }
    if ctx.opts.focus_version.from_1_3() {
        // The migration guide's MSP row: the partner provides the service, AWS hosts it.
        let service_provider = if partner { "AWS" } else { ctx.issuer };
        cols.insert("ServiceProviderName", constant(service_provider, rows.n));
        cols.insert("HostProviderName", constant("AWS", rows.n));
    }
    if ctx.opts.focus_version == focus::FocusVersion::V1_4 {
        let ids = detail_ids(&cols, partner, rows.n)?;
        cols.insert("InvoiceDetailId", ids);
    }
    batch_of(
        focus::schema_of(partner, ctx.opts.focus_version),
        cols,
        rows.n,
    )
}
