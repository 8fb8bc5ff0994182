//! Normalizing raw chunks: every row is checked against its organization (account,
//! payer, period, currency, line item type, signs and amounts) and becomes a row
//! of the normalized batch or a quarantined row with its reason. The normalized
//! schema is the contract between ingestion and rating, so a new input format
//! (FOCUS, `focus`) only needs a mapping to it; `amortize` carries the amortized
//! cost beside the billed one.

mod amortize;
mod focus;

pub use focus::{focus_line_type, product_code_of_service_name, service_name_of_product_code};

use amortize::effective_costs;
use focus::focus_columns;

use crate::ingest::{
    dict_values, period_from_text, ColumnMap, Dialect, Field, NumColumn, NumState, PeriodColumn,
    RawChunk, TextColumn, FIELDS,
};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, DictionaryArray, Int32Array, StringArray,
    UInt64Array, UInt8Array,
};
use arrow::compute::filter;
use arrow::datatypes::Int32Type;
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::money::format_fixed_exact;
use crate::types::{AccountId, BillingPeriod, CostSign, LineType};

/// The checks a row must pass to be rated for an organization.
#[derive(Debug, Clone)]
pub struct OrgCheck {
    /// Label for messages (`org acme`).
    pub label: String,
    /// The org's accounts.
    pub accounts: HashSet<String>,
    /// The billing period being run.
    pub period: BillingPeriod,
    /// The org's billing currency.
    pub currency: String,
    /// Whether every row must carry a billed (unblended) cost; false when actual
    /// rates come from public prices (inputs without billed cost).
    pub require_billed_cost: bool,
    /// The org's management account: FOCUS files without SubAccountId or
    /// BillingAccountId are attributed to it (docs/DOMAIN.md, decision 18).
    pub management_account: String,
    /// Rows not to bill, per input file (as displayed) and row number, with the reason:
    /// rows of an older delivery that a later one repeats (`--duplicates keep-latest`).
    pub excluded: Arc<ExcludedRows>,
    /// Payer accounts a row may name (`bill_payer_account_id`), with a phrase saying
    /// why, for the quarantine reason (docs/DOMAIN.md, decision 25).
    pub payers: (HashSet<String>, String),
}

/// Rows not to bill: input file (as displayed) -> row number -> reason.
pub type ExcludedRows = BTreeMap<PathBuf, FxHashMap<u64, String>>;

impl OrgCheck {
    /// The period as [start, end) in microseconds since 1970.
    pub fn period_micros(&self) -> (i64, i64) {
        (
            self.period.start_micros(),
            self.period.next().start_micros(),
        )
    }
}

/// A row that was not rated, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Input file.
    pub file: PathBuf,
    /// Data row number (1-based, header excluded).
    pub row: u64,
    /// Physical line in a CSV file, if known.
    pub line: Option<u64>,
    /// Column concerned (empty when the whole row is at fault).
    pub column: String,
    /// The offending value.
    pub value: String,
    /// Why the row was quarantined.
    pub reason: String,
    /// The row's unblended cost, when it could be read (for reconciliation).
    pub unblended: Option<i128>,
    /// The row's usage account as read (empty when unknown), for summaries by account.
    pub account: String,
}

/// Column names of the normalized batch.
pub mod col {
    /// Row number in the source file.
    pub const ROW: &str = "row_number";
    /// Usage account id.
    pub const ACCOUNT: &str = "usage_account_id";
    /// `LineType` code.
    pub const LINE_TYPE: &str = "line_type";
    /// Product code.
    pub const PRODUCT: &str = "product_code";
    /// Usage type.
    pub const USAGE_TYPE: &str = "usage_type";
    /// Operation.
    pub const OPERATION: &str = "operation";
    /// Region.
    pub const REGION: &str = "region";
    /// Billing entity.
    pub const ENTITY: &str = "billing_entity";
    /// Usage amount, Decimal128(38,10).
    pub const USAGE: &str = "usage_amount";
    /// Public rate, Decimal128(38,10), nullable.
    pub const PUBLIC_RATE: &str = "public_rate";
    /// Public cost, Decimal128(38,10), nullable.
    pub const PUBLIC_COST: &str = "public_cost";
    /// Unblended cost, Decimal128(38,10), null only when billed cost is not required.
    pub const UNBLENDED: &str = "unblended_cost";
    /// Net unblended cost, Decimal128(38,10), nullable.
    pub const NET_UNBLENDED: &str = "net_unblended_cost";
    /// Amortized (effective) cost as delivered, Decimal128(38,10), never null.
    pub const EFFECTIVE: &str = "effective_cost";
}

/// The normalized schema every reader maps to.
pub fn normalized_schema() -> SchemaRef {
    let dec = DataType::Decimal128(38, 10);
    let text = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    Arc::new(Schema::new(vec![
        ArrowField::new(col::ROW, DataType::UInt64, false),
        ArrowField::new(col::ACCOUNT, text.clone(), false),
        ArrowField::new(col::LINE_TYPE, DataType::UInt8, false),
        ArrowField::new(col::PRODUCT, text.clone(), false),
        ArrowField::new(col::USAGE_TYPE, text.clone(), false),
        ArrowField::new(col::OPERATION, text.clone(), false),
        ArrowField::new(col::REGION, text.clone(), false),
        ArrowField::new(col::ENTITY, text.clone(), false),
        ArrowField::new(col::USAGE, dec.clone(), false),
        ArrowField::new(col::PUBLIC_RATE, dec.clone(), true),
        ArrowField::new(col::PUBLIC_COST, dec.clone(), true),
        ArrowField::new(col::UNBLENDED, dec.clone(), true),
        ArrowField::new(col::NET_UNBLENDED, dec.clone(), true),
        ArrowField::new(col::EFFECTIVE, dec, false),
    ]))
}

/// Good rows of a chunk, normalized, plus the quarantined ones.
#[derive(Debug)]
pub struct NormalizedBatch {
    /// Rows that passed every check.
    pub batch: RecordBatch,
    /// Unblended cost of the good rows (for reconciliation).
    pub rated_unblended: i128,
    /// Rows that failed a check.
    pub quarantined: Vec<Quarantined>,
    /// (identity hash, row number) of each rated row, when identities were read.
    pub identity: Vec<(u64, u64)>,
    /// Things a person should know (e.g. account ids padded to 12 digits), once per distinct value.
    pub warnings: Vec<String>,
}

/// Per distinct value of a dictionary: a verdict computed once, looked up per row.
fn per_value<T>(d: &TextColumn, f: impl Fn(&str) -> T) -> Vec<T> {
    let values = dict_values(d);
    (0..values.len())
        .map(|k| {
            f(if values.is_valid(k) {
                values.value(k)
            } else {
                ""
            })
        })
        .collect()
}

/// Key of row `i`, or `None` when the cell is null.
#[inline]
fn key_at(d: &TextColumn, i: usize) -> Option<usize> {
    if d.is_valid(i) {
        Some(d.keys().value(i) as usize)
    } else {
        None
    }
}

fn text_value<'a>(d: &'a Option<TextColumn>, i: usize) -> &'a str {
    match d {
        Some(d) => key_at(d, i).map(|k| dict_values(d).value(k)).unwrap_or(""),
        None => "",
    }
}

/// A text column for the normalized batch: never null (absent values are ""),
/// filtered to the kept rows.
fn normalized_text(
    d: &Option<TextColumn>,
    n: usize,
    mask: Option<&BooleanArray>,
) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    let arr: TextColumn = match d {
        None => DictionaryArray::try_new(
            Int32Array::from(vec![0; n]),
            Arc::new(StringArray::from(vec![""])) as ArrayRef,
        )?,
        Some(d) if d.null_count() > 0 || dict_values(d).null_count() > 0 => {
            // Point null keys (and null values) at an appended "".
            let values = dict_values(d);
            let empty = values.len() as i32;
            let mut new_values: Vec<&str> = (0..values.len())
                .map(|k| {
                    if values.is_valid(k) {
                        values.value(k)
                    } else {
                        ""
                    }
                })
                .collect();
            new_values.push("");
            let keys: Int32Array = d.keys().iter().map(|k| Some(k.unwrap_or(empty))).collect();
            DictionaryArray::try_new(keys, Arc::new(StringArray::from(new_values)) as ArrayRef)?
        }
        Some(d) => d.clone(),
    };
    match mask {
        None => Ok(Arc::new(arr)),
        Some(m) => filter(&arr, m),
    }
}

/// Checks every row of a chunk against the org and builds the normalized batch.
///
/// Verdicts on text (is the account the org's, which line item type, which
/// currency) are computed once per distinct dictionary value, not per row.
pub fn normalize(
    path: &Path,
    map: &ColumnMap,
    mut chunk: RawChunk,
    check: &OrgCheck,
) -> Result<NormalizedBatch> {
    let n = chunk.len();
    let f = |x: Field| x as usize;
    let mut warnings = Vec::new();
    if map.dialect == Dialect::Focus {
        focus_columns(&mut chunk, map, check, &mut warnings)
            .map_err(|e| Error::input(path, e.to_string()))?;
    }
    if let Some(d) = chunk.text[f(Field::UsageAccount)].as_ref() {
        let column = map.name(Field::UsageAccount);
        let padded = rewrite_values(d, |v| {
            let p = AccountId::padded_text(v)?;
            warnings.push(format!("account id `{}` in column `{column}` has fewer than 12 digits; read as {p} (AWS account ids are 12 digits)", v.trim()));
            Some(p)
        })
        .map_err(|e| Error::input(path, e.to_string()))?;
        if let Some(d) = padded {
            chunk.text[f(Field::UsageAccount)] = Some(d);
        }
    }
    let mut keep = vec![true; n];
    let mut quarantined: Vec<Quarantined> = Vec::new();
    let mut rated_unblended: i128 = 0;
    let excluded = check.excluded.get(path);
    let providers = chunk.text[f(Field::Provider)].as_ref();
    let provider_ok: Vec<bool> = providers
        .map(|d| per_value(d, is_aws_provider))
        .unwrap_or_default();

    let accounts = chunk.text[f(Field::UsageAccount)].as_ref();
    let account_ok: Vec<bool> = accounts
        .map(|d| per_value(d, |v| check.accounts.contains(v)))
        .unwrap_or_default();
    let payer_col = chunk.text[f(Field::Payer)].as_ref();
    let payer_ok: Vec<bool> = payer_col
        .map(|d| {
            per_value(d, |v| {
                let v = AccountId::padded_text(v).unwrap_or_else(|| v.trim().to_string());
                check.payers.0.contains(&v)
            })
        })
        .unwrap_or_default();
    let types = chunk.text[f(Field::LineType)].as_ref();
    let type_of: Vec<Option<LineType>> = types
        .map(|d| per_value(d, LineType::parse))
        .unwrap_or_default();
    let currencies = chunk.text[f(Field::Currency)].as_ref();
    let currency_ok: Vec<bool> = currencies
        .map(|d| per_value(d, |v| v.is_empty() || v == check.currency))
        .unwrap_or_default();
    let (start_micros, end_micros) = check.period_micros();
    let period_col = [Field::BillingPeriodStart, Field::UsageStart]
        .iter()
        .find_map(|&pf| chunk.period[f(pf)].as_ref().map(|c| (pf, c)));
    let text_periods: Vec<Option<BillingPeriod>> = match period_col {
        Some((_, PeriodColumn::Text(d))) => per_value(d, period_from_text),
        _ => Vec::new(),
    };
    let mut num = std::mem::take(&mut chunk.num);
    let unblended = num[f(Field::UnblendedCost)].as_ref();
    let usage_col = num[f(Field::UsageAmount)].as_ref();
    let rate_col = num[f(Field::PublicRate)].as_ref();
    let any_bad_numbers = num.iter().flatten().any(|c| !c.bad.is_empty());

    let mut line_types = vec![0u8; n];
    let account_text = &chunk.text[f(Field::UsageAccount)];
    let mut quarantine =
        |i: usize, column: String, value: String, reason: String, keep: &mut Vec<bool>| {
            keep[i] = false;
            quarantined.push(Quarantined {
                file: path.to_path_buf(),
                row: chunk.rows[i],
                line: chunk.lines.get(i).copied(),
                column,
                value,
                reason,
                unblended: unblended.and_then(|c| c.get(i)),
                account: text_value(account_text, i).to_string(),
            });
        };

    for i in 0..n {
        // A row that a later delivery repeats.
        if let Some(reason) = excluded.and_then(|m| m.get(&chunk.rows[i])) {
            quarantine(i, String::new(), String::new(), reason.clone(), &mut keep);
            continue;
        }
        // Account.
        let account_key = accounts.and_then(|d| key_at(d, i));
        let account_valid = account_key.is_some_and(|k| account_ok[k]);
        // Provider (FOCUS files of several clouds): a row of another cloud is not on an
        // account of the org. One that is (a reseller's own charge on the org's account,
        // e.g. billxfer's custom line items fed back) is billed (docs/INPUTS.md).
        if !account_valid {
            if let Some(k) = providers.and_then(|d| key_at(d, i)) {
                if !provider_ok[k] {
                    let p = text_value(&chunk.text[f(Field::Provider)], i).to_string();
                    let reason =
                        format!("provider {p} is not AWS: billxfer bills AWS charges only");
                    quarantine(i, map.name(Field::Provider), p, reason, &mut keep);
                    continue;
                }
            }
        }
        if !account_valid {
            let account = text_value(&chunk.text[f(Field::UsageAccount)], i);
            let reason = if account.is_empty() {
                "missing usage account id".to_string()
            } else {
                format!(
                    "usage account {account} is not an account of {}",
                    check.label
                )
            };
            quarantine(
                i,
                map.name(Field::UsageAccount),
                account.to_string(),
                reason,
                &mut keep,
            );
            continue;
        }
        // Payer: a row paid by another account is not part of this transfer.
        if let Some(d) = payer_col {
            if !key_at(d, i).is_some_and(|k| payer_ok[k]) {
                let payer = text_value(&chunk.text[f(Field::Payer)], i).to_string();
                let reason = if payer.is_empty() {
                    "missing payer account id".to_string()
                } else {
                    format!("payer {payer} is {}", check.payers.1)
                };
                quarantine(i, map.name(Field::Payer), payer, reason, &mut keep);
                continue;
            }
        }
        // Line item type.
        let Some(lt) = types.and_then(|d| key_at(d, i)).and_then(|k| type_of[k]) else {
            let lt_text = text_value(&chunk.text[f(Field::LineType)], i);
            quarantine(
                i,
                map.name(Field::LineType),
                lt_text.to_string(),
                format!("unknown line item type `{lt_text}`: billxfer does not guess how to bill it (known types are listed in docs/DOMAIN.md)"),
                &mut keep,
            );
            continue;
        };
        line_types[i] = lt as u8;
        // Period: billing period column first, else usage start.
        if let Some((pf, column)) = period_col {
            let verdict: std::result::Result<(), (String, String)> = match column {
                PeriodColumn::Micros(v) => match v[i] {
                    Some(m) if m >= start_micros && m < end_micros => Ok(()),
                    Some(m) => {
                        let p = BillingPeriod::from_unix_micros(m)
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| format!("{m} µs since 1970"));
                        Err((
                            p.clone(),
                            format!(
                                "the line is for {p}, outside the billing period {} being run",
                                check.period
                            ),
                        ))
                    }
                    None => Err((String::new(), "missing billing period date".into())),
                },
                PeriodColumn::Text(d) => {
                    match key_at(d, i) {
                        None => Err((String::new(), "missing billing period date".into())),
                        Some(k) => match text_periods[k] {
                            Some(p) if p == check.period => Ok(()),
                            Some(p) => Err((
                                p.to_string(),
                                format!(
                                    "the line is for {p}, outside the billing period {} being run",
                                    check.period
                                ),
                            )),
                            None => {
                                let t = dict_values(d).value(k).trim().to_string();
                                if t.is_empty() {
                                    Err((t, "missing billing period date".into()))
                                } else {
                                    Err((t, "not a date: expected ISO 8601 such as 2026-03-01T00:00:00Z".into()))
                                }
                            }
                        },
                    }
                }
            };
            if let Err((value, reason)) = verdict {
                quarantine(i, map.name(pf), value, reason, &mut keep);
                continue;
            }
        }
        // Currency.
        if let Some(k) = currencies.and_then(|d| key_at(d, i)) {
            if !currency_ok[k] {
                let c = dict_values(currencies.unwrap_or_else(|| unreachable!()))
                    .value(k)
                    .to_string();
                let reason = format!(
                    "currency {c} differs from {}'s billing currency {}",
                    check.label, check.currency
                );
                quarantine(i, map.name(Field::Currency), c, reason, &mut keep);
                continue;
            }
        }
        // Amounts.
        if any_bad_numbers {
            let bad = [
                Field::UsageAmount,
                Field::UnblendedCost,
                Field::PublicRate,
                Field::PublicCost,
                Field::NetUnblendedCost,
            ]
            .iter()
            .find_map(|&fl| {
                num[f(fl)]
                    .as_ref()
                    .and_then(|c| c.bad_at(i))
                    .map(|b| (fl, b))
            });
            if let Some((fl, (_, text, e))) = bad {
                let (text, reason) = (text.clone(), format!("not a usable amount: {e}"));
                quarantine(i, map.name(fl), text, reason, &mut keep);
                continue;
            }
        }
        let cost = unblended.and_then(|c| c.get(i));
        if cost.is_none() && check.require_billed_cost {
            quarantine(
                i,
                map.name(Field::UnblendedCost),
                String::new(),
                "missing amount".into(),
                &mut keep,
            );
            continue;
        }
        if let Some(c) = cost {
            let wrong = match lt.cost_sign() {
                CostSign::NotNegative => (c < 0).then_some("negative"),
                CostSign::NotPositive => (c > 0).then_some("positive"),
                CostSign::Either => None,
            };
            if let Some(sign) = wrong {
                let reason = format!(
                    "a {} line cannot have a {sign} cost (docs/DOMAIN.md, decision 26): corrections come as Credit, Refund or Fee lines",
                    lt.as_str()
                );
                quarantine(
                    i,
                    map.name(Field::UnblendedCost),
                    format_fixed_exact(c),
                    reason,
                    &mut keep,
                );
                continue;
            }
        }
        if let Some(r) = rate_col.and_then(|c| c.get(i)).filter(|r| *r < 0) {
            quarantine(
                i,
                map.name(Field::PublicRate),
                format_fixed_exact(r),
                "a public rate cannot be negative".into(),
                &mut keep,
            );
            continue;
        }
        let usage = usage_col.and_then(|c| c.get(i)).unwrap_or(0);
        if lt == LineType::Usage && usage < 0 {
            quarantine(
                i,
                map.name(Field::UsageAmount),
                format_fixed_exact(usage),
                "a Usage line cannot have a negative usage amount".into(),
                &mut keep,
            );
            continue;
        }
        rated_unblended = rated_unblended
            .checked_add(cost.unwrap_or(0))
            .ok_or_else(|| Error::Overflow(format!("summing {}", path.display())))?;
    }
    let reservation = chunk.text[f(Field::ReservationArn)].as_ref();
    let effective = effective_costs(
        &num,
        &line_types,
        map.dialect == Dialect::Focus,
        |i| {
            reservation.is_some_and(|d| {
                key_at(d, i).is_some_and(|k| !dict_values(d).value(k).trim().is_empty())
            })
        },
        n,
    );
    for (row, line, column, reason) in chunk.broken {
        quarantined.push(Quarantined {
            file: path.to_path_buf(),
            row,
            line: Some(line),
            column,
            value: String::new(),
            reason,
            unblended: None,
            account: String::new(),
        });
    }

    let identity: Vec<(u64, u64)> = if chunk.identity.len() == n {
        (0..n)
            .filter(|&i| keep[i])
            .map(|i| (chunk.identity[i], chunk.rows[i]))
            .collect()
    } else {
        Vec::new()
    };
    let all_kept = quarantined.is_empty();
    let mask = (!all_kept).then(|| BooleanArray::from(keep));
    let m = mask.as_ref();
    let err = |e: arrow::error::ArrowError| Error::input(path, e.to_string());
    let fl = |a: ArrayRef| -> Result<ArrayRef> {
        match m {
            None => Ok(a),
            Some(m) => filter(&a, m).map_err(err),
        }
    };
    // Numbers: a value column is non-null (0 where absent), an optional one keeps nulls.
    let dec = |c: Option<NumColumn>, nullable: bool| -> Result<ArrayRef> {
        let a = match c {
            None => {
                if nullable {
                    Decimal128Array::new_null(n)
                } else {
                    Decimal128Array::from(vec![0i128; n])
                }
            }
            Some(c) => {
                let nulls =
                    (nullable && c.state.iter().any(|s| *s != NumState::Value)).then(|| {
                        arrow::buffer::NullBuffer::from(
                            c.state
                                .iter()
                                .map(|s| *s == NumState::Value)
                                .collect::<Vec<bool>>(),
                        )
                    });
                Decimal128Array::new(c.values.into(), nulls)
            }
        };
        fl(Arc::new(a.with_precision_and_scale(38, 10).map_err(err)?))
    };
    let columns: Vec<ArrayRef> = vec![
        fl(Arc::new(UInt64Array::from(chunk.rows.clone())))?,
        normalized_text(&chunk.text[f(Field::UsageAccount)], n, m).map_err(err)?,
        fl(Arc::new(UInt8Array::from(line_types)))?,
        normalized_text(&chunk.text[f(Field::ProductCode)], n, m).map_err(err)?,
        normalized_text(&chunk.text[f(Field::UsageType)], n, m).map_err(err)?,
        normalized_text(&chunk.text[f(Field::Operation)], n, m).map_err(err)?,
        normalized_text(&chunk.text[f(Field::Region)], n, m).map_err(err)?,
        normalized_text(&chunk.text[f(Field::BillingEntity)], n, m).map_err(err)?,
        dec(num[f(Field::UsageAmount)].take(), false)?,
        dec(num[f(Field::PublicRate)].take(), true)?,
        dec(num[f(Field::PublicCost)].take(), true)?,
        dec(num[f(Field::UnblendedCost)].take(), true)?,
        dec(num[f(Field::NetUnblendedCost)].take(), true)?,
        fl(Arc::new(
            Decimal128Array::from(effective)
                .with_precision_and_scale(38, 10)
                .map_err(err)?,
        ))?,
    ];
    let batch = RecordBatch::try_new(normalized_schema(), columns).map_err(err)?;
    Ok(NormalizedBatch {
        batch,
        rated_unblended,
        quarantined,
        identity,
        warnings,
    })
}

/// Whether a FOCUS provider cell names AWS (empty: a file of AWS's own export).
fn is_aws_provider(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    v.is_empty() || v == "null" || v == "aws" || v.starts_with("amazon web services")
}

/// A copy of a dictionary column with some values replaced (`f` returns the new value),
/// keys unchanged; `None` when no value changes.
fn rewrite_values(
    d: &TextColumn,
    mut f: impl FnMut(&str) -> Option<String>,
) -> std::result::Result<Option<TextColumn>, arrow::error::ArrowError> {
    let values = dict_values(d);
    let mut changed = false;
    let new: Vec<Option<String>> = (0..values.len())
        .map(|k| {
            if !values.is_valid(k) {
                return None;
            }
            let v = values.value(k);
            match f(v) {
                Some(nv) => {
                    changed = true;
                    Some(nv)
                }
                None => Some(v.to_string()),
            }
        })
        .collect();
    if !changed {
        return Ok(None);
    }
    let array = StringArray::from(new);
    DictionaryArray::try_new(d.keys().clone(), Arc::new(array) as ArrayRef).map(Some)
}
