//! The rows being exported: a chunk's selected rows with their amounts on one track, the org's context, and column builders.

use super::*;

/// A chunk's selected rows, with their cells and amounts.
pub(super) struct Selected<'a> {
    /// Wide (CUR-shaped, typed) columns by name.
    pub(super) wide: BTreeMap<String, ArrayRef>,
    /// Normalized batch rows (indexes into `norm`) in output order.
    pub(super) idx: Vec<usize>,
    /// Whether `idx` is every row of `norm` in order (its columns are then used as they are).
    every_row: bool,
    pub(super) norm: &'a RecordBatch,
    /// Final amount of each selected row on the track.
    pub(super) amount: Vec<i128>,
    /// Effective (amortized) amount of each selected row on the track.
    pub(super) effective: Vec<i128>,
    /// Whether the track rated the row (vs. took it as delivered).
    pub(super) rated: Vec<bool>,
    /// Line item type, usage amount, public rate and public cost of each selected row.
    pub(super) lt: Vec<LineType>,
    pub(super) usage: Vec<i128>,
    pub(super) public_rate: Vec<Option<i128>>,
    pub(super) public_cost: Vec<Option<i128>>,
}

impl<'a> Selected<'a> {
    pub(super) fn new(
        wide: BTreeMap<String, ArrayRef>,
        idx: Vec<usize>,
        norm: &'a RecordBatch,
        amount: Vec<i128>,
        effective: Vec<i128>,
        rated: Vec<bool>,
    ) -> Result<Selected<'a>> {
        let missing = |c: &str| Error::Internal(format!("normalized column {c} missing"));
        let dec = |c: &str| {
            norm.column_by_name(c)
                .and_then(|a| a.as_primitive_opt::<arrow::datatypes::Decimal128Type>())
                .ok_or_else(|| missing(c))
        };
        let types = norm
            .column_by_name(col::LINE_TYPE)
            .and_then(|a| a.as_primitive_opt::<arrow::datatypes::UInt8Type>())
            .ok_or_else(|| missing(col::LINE_TYPE))?;
        let (usage, rate, cost) = (
            dec(col::USAGE)?,
            dec(col::PUBLIC_RATE)?,
            dec(col::PUBLIC_COST)?,
        );
        let opt = |a: &Decimal128Array, r: usize| a.is_valid(r).then(|| a.value(r));
        Ok(Selected {
            lt: idx
                .iter()
                .map(|&r| LineType::from_code(types.value(r)).unwrap_or(LineType::Usage))
                .collect(),
            usage: idx.iter().map(|&r| usage.value(r)).collect(),
            public_rate: idx.iter().map(|&r| opt(rate, r)).collect(),
            public_cost: idx.iter().map(|&r| opt(cost, r)).collect(),
            wide,
            every_row: is_every_row(&idx, norm.num_rows()),
            idx,
            norm,
            amount,
            effective,
            rated,
        })
    }

    /// A carried text column, for per-row access.
    pub(super) fn text_col(&self, name: &str) -> TextCol<'_> {
        TextCol(self.wide.get(name).and_then(|a| a.as_string_opt::<i32>()))
    }

    /// A carried timestamp column (ms, UTC), for per-row access.
    pub(super) fn millis_col(&self, name: &str) -> Option<&TimestampMillisecondArray> {
        self.wide
            .get(name)
            .and_then(|a| a.as_primitive_opt::<arrow::datatypes::TimestampMillisecondType>())
    }

    /// A carried text column (empty strings as nulls, as FOCUS asks), or nulls when not carried.
    pub(super) fn wide_strings(&self, name: &str) -> ArrayRef {
        let n = self.idx.len();
        match self.wide.get(name).and_then(|a| a.as_string_opt::<i32>()) {
            Some(s) => blank_as_null(s),
            None => arrow::array::new_null_array(&DataType::Utf8, n),
        }
    }

    /// A normalized text column at the selected rows, as plain strings.
    pub(super) fn norm_strings(&self, name: &str, empty_as_null: bool) -> Result<ArrayRef> {
        let err = |e: arrow::error::ArrowError| Error::Internal(format!("selecting {name}: {e}"));
        let a = self
            .norm
            .column_by_name(name)
            .ok_or_else(|| Error::Internal(format!("normalized column {name} missing")))?;
        let picked = if self.every_row {
            a.clone()
        } else {
            let idx = UInt32Array::from_iter_values(self.idx.iter().map(|&i| i as u32));
            arrow::compute::take(a, &idx, None).map_err(err)?
        };
        let s = cast(&picked, &DataType::Utf8).map_err(err)?;
        Ok(if empty_as_null {
            blank_as_null(s.as_string::<i32>())
        } else {
            s
        })
    }
}

/// Whether `picked` is every one of `len` rows in order: then a column is
/// used as it is, without a copy (`take`) of the same rows.
fn is_every_row<T: Copy + TryInto<usize>>(picked: &[T], len: usize) -> bool {
    picked.len() == len
        && picked
            .iter()
            .enumerate()
            .all(|(i, &p)| p.try_into().is_ok_and(|p| p == i))
}

/// Text with empty strings as nulls (FOCUS NullHandling: no empty placeholders).
pub(super) fn blank_as_null(s: &StringArray) -> ArrayRef {
    if s.iter().any(|v| v == Some("")) {
        Arc::new(
            s.iter()
                .map(|v| v.filter(|v| !v.is_empty()))
                .collect::<StringArray>(),
        )
    } else {
        Arc::new(s.clone())
    }
}

/// A carried text column, possibly absent.
pub(super) struct TextCol<'a>(pub(super) Option<&'a StringArray>);

impl<'a> TextCol<'a> {
    /// Row `i`'s text, `None` when absent, null or empty.
    pub(super) fn get(&self, i: usize) -> Option<&'a str> {
        let s = self.0?;
        if s.is_null(i) {
            return None;
        }
        Some(s.value(i)).filter(|v| !v.is_empty())
    }
}

/// Text computed per row.
pub(super) fn strings<'x>(n: usize, f: impl Fn(usize) -> Option<&'x str>) -> ArrayRef {
    Arc::new((0..n).map(f).collect::<StringArray>())
}

/// The same text on every row.
pub(super) fn constant(v: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(v, n)))
}

/// Text computed per row from a text column.
pub(super) fn mapped(a: &ArrayRef, f: impl Fn(&str) -> &'static str) -> ArrayRef {
    let s = a.as_string::<i32>();
    Arc::new(s.iter().map(|v| v.map(&f)).collect::<StringArray>())
}

/// Typed wide columns of the selected rows: each carried column of `carried`
/// (every column of the input file at a chunk's rows), at `positions`, cast to its export type.
pub(super) fn wide_selection(
    path: &Path,
    carried: &RecordBatch,
    kinds: &[Option<(String, DataType)>],
    positions: &[u32],
) -> Result<BTreeMap<String, ArrayRef>> {
    let mut out = BTreeMap::new();
    if positions.is_empty() {
        return Ok(out);
    }
    if carried.num_columns() != kinds.len() {
        return Err(Error::Internal(format!(
            "{}: {} carried columns for {} planned ones (was the file changed during the run?)",
            path.display(),
            carried.num_columns(),
            kinds.len()
        )));
    }
    let err = |e: arrow::error::ArrowError| Error::input(path, e.to_string());
    let every_row = is_every_row(positions, carried.num_rows());
    let at = UInt32Array::from(positions.to_vec());
    for (c, kind) in kinds.iter().enumerate() {
        let Some((name, t)) = kind else {
            continue;
        };
        if out.contains_key(name) {
            continue;
        }
        let picked = if every_row {
            carried.column(c).clone()
        } else {
            arrow::compute::take(carried.column(c).as_ref(), &at, None).map_err(err)?
        };
        let typed = if picked.data_type() == t {
            picked
        } else if matches!(t, DataType::Utf8)
            && crate::ingest::parquet::is_integer(picked.data_type())
            && name.ends_with("_account_id")
        {
            // Readers that typed account ids as integers dropped leading zeros: restore 12 digits.
            let v = cast(&picked, &DataType::Int64).map_err(err)?;
            Arc::new(
                v.as_primitive::<arrow::datatypes::Int64Type>()
                    .iter()
                    .map(|x| x.map(|x| format!("{x:012}")))
                    .collect::<StringArray>(),
            )
        } else if matches!(t, DataType::Utf8)
            && matches!(
                picked.data_type(),
                DataType::Dictionary(_, _) | DataType::LargeUtf8 | DataType::Utf8View
            )
        {
            cast(&picked, t).map_err(err)?
        } else if matches!(t, DataType::Float64)
            && matches!(
                picked.data_type(),
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(_, _)
            )
        {
            // Text amounts: parsed exactly, then the nearest double.
            let s = cast(&picked, &DataType::Utf8).map_err(err)?;
            Arc::new(
                s.as_string::<i32>()
                    .iter()
                    .map(|v| {
                        v.and_then(|t| crate::money::parse_fixed(t.trim()).ok())
                            .map(f64_of)
                    })
                    .collect::<arrow::array::Float64Array>(),
            )
        } else if matches!(t, DataType::Timestamp(_, _)) {
            let s = match picked.data_type() {
                DataType::Timestamp(_, _) => picked,
                _ => {
                    let text = cast(&picked, &DataType::Utf8).map_err(err)?;
                    Arc::new(
                        text.as_string::<i32>()
                            .iter()
                            .map(|v| v.and_then(parse_iso_millis))
                            .collect::<TimestampMillisecondArray>(),
                    ) as ArrayRef
                }
            };
            to_utc_millis(&s).map_err(err)?
        } else {
            arrow::compute::kernels::cast::cast_with_options(
                &picked,
                t,
                &arrow::compute::CastOptions {
                    safe: true,
                    ..Default::default()
                },
            )
            .map_err(err)?
        };
        out.insert(name.clone(), typed);
    }
    Ok(out)
}

/// `YYYY-MM-DD[THH:mm:ss[.fff]][Z]` as milliseconds since 1970 (UTC).
pub(super) fn parse_iso_millis(t: &str) -> Option<i64> {
    let t = t.trim();
    let p = crate::types::BillingPeriod::from_iso_prefix(t)?;
    let day: i64 = t.get(8..10)?.parse().ok()?;
    let (h, mi, s) = if t.len() >= 19 {
        (
            t.get(11..13)?.parse::<i64>().ok()?,
            t.get(14..16)?.parse::<i64>().ok()?,
            t.get(17..19)?.parse::<i64>().ok()?,
        )
    } else {
        (0, 0, 0)
    };
    Some(p.start_micros() / 1000 + ((day - 1) * 86_400 + h * 3600 + mi * 60 + s) * 1000)
}

/// Columns a customer never sees in the pro forma CUR: non-public discounts and
/// everything net of them (docs/EXPORTS.md).
pub(super) fn is_confidential_column(name: &str) -> bool {
    name.contains("_net_")
        || name.starts_with("line_item_net_")
        || name == "discount"
        || name.starts_with("discount_")
}

/// FOCUS input columns carried for the FOCUS export only (not CUR columns).
pub(super) fn is_focus_only_column(name: &str) -> bool {
    name.starts_with("x_commitment_")
}

/// Core CUR 2.0 columns every pro forma CUR export has, whatever the input carried.
pub(super) const CUR_CORE: &[(&str, bool)] = &[
    ("bill_billing_period_start_date", true),
    ("bill_billing_period_end_date", true),
    ("bill_payer_account_id", false),
    ("bill_payer_account_name", false),
    ("bill_invoice_id", false),
    ("line_item_usage_account_id", false),
    ("line_item_line_item_type", false),
    ("line_item_product_code", false),
    ("line_item_usage_type", false),
    ("line_item_operation", false),
    ("product_region_code", false),
    ("line_item_line_item_description", false),
    ("line_item_usage_start_date", true),
    ("line_item_usage_end_date", true),
    ("line_item_usage_amount", false),
    ("line_item_currency_code", false),
    ("line_item_unblended_rate", false),
    ("line_item_unblended_cost", false),
    ("pricing_public_on_demand_rate", false),
    ("pricing_public_on_demand_cost", false),
];

/// The customer CUR schema: core columns, then every carried column of the
/// org's files in first-seen order, minus confidential ones.
pub(super) fn cur_schema(
    files_kinds: &[Vec<Option<(String, DataType)>>],
    exact: bool,
) -> SchemaRef {
    let double = if exact {
        DataType::Decimal128(38, 10)
    } else {
        DataType::Float64
    };
    let mut fields: Vec<Field> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let type_of = |name: &str, ts: bool| {
        if ts {
            ts_type()
        } else if is_cur_double(name) {
            double.clone()
        } else {
            DataType::Utf8
        }
    };
    for (name, ts) in CUR_CORE {
        seen.insert(name.to_string());
        fields.push(Field::new(*name, type_of(name, *ts), true));
    }
    for kinds in files_kinds {
        for (name, t) in kinds.iter().flatten() {
            if is_confidential_column(name)
                || is_focus_only_column(name)
                || !seen.insert(name.clone())
            {
                continue;
            }
            let t = if t == &DataType::Float64 {
                double.clone()
            } else {
                t.clone()
            };
            fields.push(Field::new(name, t, true));
        }
    }
    Arc::new(Schema::new(fields))
}

/// Per-org context of the export pass.
pub(super) struct OrgCtx<'a> {
    pub(super) config: &'a Config,
    pub(super) period: BillingPeriod,
    /// The org's id.
    pub(super) org_id: &'a str,
    /// Customer org name, management account and pro forma invoice number (customers only).
    pub(super) customer: Option<(&'a str, &'a str, String)>,
    pub(super) mgmt: &'a str,
    pub(super) currency: &'a str,
    /// The rate of the org's pro forma FOCUS rows when its invoice currency is not USD.
    pub(super) fx: Option<crate::fx::Applied>,
    /// Who issues the org's pro forma invoice: the top partner, or the org's seller.
    pub(super) issuer: &'a str,
    /// The folder of the org's pro forma datasets (`customers/<org>`, `sellers/<org>/own`).
    pub(super) proforma_dir: String,
    pub(super) opts: ExportOptions,
    /// Rolled up (`--granularity daily|monthly`): rows are built with CUR doubles
    /// as exact decimals, summed, and only the sums become doubles.
    pub(super) rolled: bool,
}

impl OrgCtx<'_> {
    /// A CUR money/amount column: doubles in line-level files, exact decimals for a roll-up.
    pub(super) fn amounts(&self, v: Vec<Option<i128>>) -> Result<ArrayRef> {
        if self.rolled {
            decs(v)
        } else {
            Ok(doubles(v))
        }
    }

    /// How a dataset of `focus` or CUR rows rolls up, if it does.
    pub(super) fn roll_up(&self, focus: bool) -> Option<RollUpSpec> {
        let per = Per::of(self.opts.granularity)?;
        Some(if focus {
            RollUpSpec::focus(per)
        } else {
            RollUpSpec::cur(per)
        })
    }
}

/// Text column builder from per-row options.
pub(super) fn texts(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(v.into_iter().collect::<StringArray>())
}

pub(super) fn decs(v: Vec<Option<i128>>) -> Result<ArrayRef> {
    let mut b = Decimal128Builder::with_capacity(v.len());
    for x in v {
        b.append_option(x);
    }
    Ok(Arc::new(
        b.finish()
            .with_precision_and_scale(38, 10)
            .map_err(|e| Error::Internal(e.to_string()))?,
    ))
}

pub(super) fn times(v: Vec<Option<i64>>) -> ArrayRef {
    let mut b = TimestampMillisecondBuilder::with_capacity(v.len());
    for x in v {
        b.append_option(x);
    }
    Arc::new(b.finish().with_timezone("UTC"))
}

pub(super) fn doubles(v: Vec<Option<i128>>) -> ArrayRef {
    Arc::new(
        v.into_iter()
            .map(|x| x.map(f64_of))
            .collect::<arrow::array::Float64Array>(),
    )
}

/// FOCUS ChargeCategory of a CUR line item type.
pub fn charge_category(lt: LineType) -> &'static str {
    use LineType::*;
    match lt {
        Fee | RIFee | SavingsPlanUpfrontFee | SavingsPlanRecurringFee => "Purchase",
        Tax => "Tax",
        Credit => "Credit",
        Refund => "Adjustment",
        _ => "Usage",
    }
}

/// FOCUS ChargeFrequency of a CUR line item type.
pub(super) fn charge_frequency(lt: LineType) -> &'static str {
    use LineType::*;
    match charge_category(lt) {
        "Usage" => "Usage-Based",
        _ => match lt {
            RIFee | SavingsPlanRecurringFee | Tax => "Recurring",
            _ => "One-Time",
        },
    }
}

/// A batch of `schema` from named columns; a column not given is all null
/// (FOCUS writes every column of its version, null where billxfer has no value).
pub(super) fn batch_of(
    schema: SchemaRef,
    mut cols: std::collections::BTreeMap<&str, ArrayRef>,
    n: usize,
) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            cols.remove(f.name().as_str())
                .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), n))
        })
        .collect();
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::Internal(format!("building an export batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::is_every_row;

    #[test]
    fn only_every_row_in_order_is_taken_as_it_is() {
        assert!(is_every_row(&[0usize, 1, 2], 3));
        assert!(is_every_row::<u32>(&[], 0));
        // A row left out, rows reordered or repeated, or a longer column: a copy is needed.
        assert!(!is_every_row(&[0usize, 2], 3));
        assert!(!is_every_row(&[1u32, 0, 2], 3));
        assert!(!is_every_row(&[0u32, 0, 1], 3));
        assert!(!is_every_row(&[0u32, 1, 2], 4));
    }
}
