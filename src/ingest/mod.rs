//! Reading cost-and-usage files into normalized arrow `RecordBatch`es.
//!
//! Each reader (CSV, Parquet) yields [`RawChunk`]s: the columns billxfer needs,
//! found by name, with numbers already converted to fixed point by the exact
//! rules in [`crate::money`]. [`normalize`] then checks every row against its
//! organization (account, period, currency, line item type, amounts) and
//! produces a [`NormalizedBatch`] of good rows plus the quarantined ones, each
//! with its reason. The normalized schema is the contract between ingestion and
//! rating, so a new input format (FOCUS) only needs a new mapping to it.

pub mod csv;
pub mod parquet;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, DictionaryArray, Int32Array,
    StringArray, UInt64Array, UInt8Array,
};
use arrow::compute::filter;
use arrow::datatypes::Int32Type;
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::money::{format_fixed_exact, DecimalError};
use crate::types::{AccountId, BillingPeriod};

/// Rows per batch handed to the rating kernel.
pub const BATCH_ROWS: usize = 32_768;

/// The logical columns billxfer reads from an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Account that incurred the line.
    UsageAccount,
    /// `Usage`, `Tax`, `SavingsPlanNegation`, ...
    LineType,
    /// Service (product code).
    ProductCode,
    /// Usage type.
    UsageType,
    /// Operation.
    Operation,
    /// Region code.
    Region,
    /// `AWS` or `AWS Marketplace`.
    BillingEntity,
    /// Currency code of the line.
    Currency,
    /// Usage quantity in pricing units.
    UsageAmount,
    /// Public on-demand rate.
    PublicRate,
    /// Public on-demand cost.
    PublicCost,
    /// Billed (unblended) cost.
    UnblendedCost,
    /// Billed cost after non-public discounts, when the export has it.
    NetUnblendedCost,
    /// Start of the billing period.
    BillingPeriodStart,
    /// Start of the usage.
    UsageStart,
    /// FOCUS ChargeCategory (Usage, Purchase, Tax, Credit, Adjustment).
    ChargeCategory,
    /// FOCUS ChargeFrequency (One-Time, Recurring, Usage-Based).
    ChargeFrequency,
    /// FOCUS CommitmentDiscountId.
    CommitmentId,
    /// FOCUS CommitmentDiscountCategory (Spend, Usage).
    CommitmentCategory,
    /// FOCUS CommitmentDiscountStatus (Used, Unused).
    CommitmentStatus,
    /// Amortized cost as delivered (FOCUS EffectiveCost).
    EffectiveCost,
    /// CUR `savings_plan_savings_plan_effective_cost`.
    SpEffectiveCost,
    /// CUR `savings_plan_total_commitment_to_date`.
    SpTotalCommitment,
    /// CUR `savings_plan_used_commitment`.
    SpUsedCommitment,
    /// CUR `reservation_effective_cost`.
    RiEffectiveCost,
    /// CUR `reservation_unused_amortized_upfront_fee_for_billing_period`.
    RiUnusedUpfront,
    /// CUR `reservation_unused_recurring_fee`.
    RiUnusedRecurring,
    /// CUR `reservation_reservation_a_r_n`.
    ReservationArn,
    /// FOCUS provider (HostProviderName in 1.3, else ProviderName): rows of other clouds are not billed.
    Provider,
    /// CUR `bill_payer_account_id`: the account that pays the bill (the partner's, for a transferred month).
    Payer,
}

/// Number of [`Field`]s.
pub const FIELDS: usize = 30;

/// How a field's values are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    Text,
    /// A decimal amount.
    Number,
    /// A timestamp giving a billing period.
    Period,
}

impl Field {
    /// Every field, in a fixed order.
    pub const ALL: [Field; FIELDS] = [
        Field::UsageAccount,
        Field::LineType,
        Field::ProductCode,
        Field::UsageType,
        Field::Operation,
        Field::Region,
        Field::BillingEntity,
        Field::Currency,
        Field::UsageAmount,
        Field::PublicRate,
        Field::PublicCost,
        Field::UnblendedCost,
        Field::NetUnblendedCost,
        Field::BillingPeriodStart,
        Field::UsageStart,
        Field::ChargeCategory,
        Field::ChargeFrequency,
        Field::CommitmentId,
        Field::CommitmentCategory,
        Field::CommitmentStatus,
        Field::EffectiveCost,
        Field::SpEffectiveCost,
        Field::SpTotalCommitment,
        Field::SpUsedCommitment,
        Field::RiEffectiveCost,
        Field::RiUnusedUpfront,
        Field::RiUnusedRecurring,
        Field::ReservationArn,
        Field::Provider,
        Field::Payer,
    ];

    /// Column names (CUR snake_case, lower case) that carry the field, preferred first.
    pub fn column_names(self) -> &'static [&'static str] {
        match self {
            Field::UsageAccount => &["line_item_usage_account_id"],
            Field::LineType => &["line_item_line_item_type"],
            Field::ProductCode => &["line_item_product_code"],
            Field::UsageType => &["line_item_usage_type"],
            Field::Operation => &["line_item_operation"],
            Field::Region => &["product_region_code", "product_region"],
            Field::BillingEntity => &["bill_billing_entity"],
            Field::Currency => &["line_item_currency_code"],
            Field::UsageAmount => &["line_item_usage_amount"],
            Field::PublicRate => &["pricing_public_on_demand_rate"],
            Field::PublicCost => &["pricing_public_on_demand_cost"],
            Field::UnblendedCost => &["line_item_unblended_cost"],
            Field::NetUnblendedCost => &["line_item_net_unblended_cost"],
            Field::BillingPeriodStart => &["bill_billing_period_start_date"],
            Field::UsageStart => &["line_item_usage_start_date"],
            Field::ChargeCategory
            | Field::ChargeFrequency
            | Field::CommitmentId
            | Field::CommitmentCategory
            | Field::CommitmentStatus
            | Field::EffectiveCost => &[],
            Field::SpEffectiveCost => &["savings_plan_savings_plan_effective_cost"],
            Field::SpTotalCommitment => &["savings_plan_total_commitment_to_date"],
            Field::SpUsedCommitment => &["savings_plan_used_commitment"],
            Field::RiEffectiveCost => &["reservation_effective_cost"],
            Field::RiUnusedUpfront => {
                &["reservation_unused_amortized_upfront_fee_for_billing_period"]
            }
            Field::RiUnusedRecurring => &["reservation_unused_recurring_fee"],
            Field::ReservationArn => &["reservation_reservation_a_r_n"],
            Field::Provider => &[],
            Field::Payer => &["bill_payer_account_id"],
        }
    }

    /// FOCUS column names (lower case) that carry the field, preferred first.
    /// FOCUS has no usage type, operation or billing entity: AWS's FOCUS export
    /// adds `x_UsageType`, `x_Operation` and `x_ServiceCode`, used when present.
    pub fn focus_names(self) -> &'static [&'static str] {
        match self {
            Field::UsageAccount => &["subaccountid", "billingaccountid"],
            Field::ProductCode => &["x_servicecode", "servicename"],
            Field::UsageType => &["x_usagetype", "skuid"],
            Field::Operation => &["x_operation"],
            Field::Region => &["regionid"],
            Field::BillingEntity => &["x_billingentity"],
            Field::Currency => &["billingcurrency"],
            Field::UsageAmount => &["pricingquantity", "consumedquantity"],
            Field::PublicRate => &["listunitprice"],
            Field::PublicCost => &["listcost"],
            Field::UnblendedCost => &["billedcost"],
            Field::BillingPeriodStart => &["billingperiodstart"],
            Field::UsageStart => &["chargeperiodstart"],
            Field::ChargeCategory => &["chargecategory"],
            Field::ChargeFrequency => &["chargefrequency"],
            Field::CommitmentId => &["commitmentdiscountid"],
            Field::CommitmentCategory => &["commitmentdiscountcategory"],
            Field::CommitmentStatus => &["commitmentdiscountstatus"],
            Field::EffectiveCost => &["effectivecost"],
            Field::Provider => &["hostprovidername", "providername"],
            Field::LineType
            | Field::NetUnblendedCost
            | Field::SpEffectiveCost
            | Field::SpTotalCommitment
            | Field::SpUsedCommitment
            | Field::RiEffectiveCost
            | Field::RiUnusedUpfront
            | Field::RiUnusedRecurring
            | Field::ReservationArn
            | Field::Payer => &[],
        }
    }

    /// How the field is typed.
    pub fn kind(self) -> Kind {
        match self {
            Field::UsageAmount
            | Field::PublicRate
            | Field::PublicCost
            | Field::UnblendedCost
            | Field::NetUnblendedCost
            | Field::EffectiveCost
            | Field::SpEffectiveCost
            | Field::SpTotalCommitment
            | Field::SpUsedCommitment
            | Field::RiEffectiveCost
            | Field::RiUnusedUpfront
            | Field::RiUnusedRecurring => Kind::Number,
            Field::BillingPeriodStart | Field::UsageStart => Kind::Period,
            _ => Kind::Text,
        }
    }
}

/// Converts a legacy CUR CSV header (`lineItem/UsageAccountId`) to its snake_case
/// name (`line_item_usage_account_id`): split on `/`, put `_` before each capital
/// and lower-case it, turn other non-alphanumerics into `_`. Snake names pass through lower-cased.
pub fn snake_name(header: &str) -> String {
    let header = header.trim().trim_start_matches('\u{feff}');
    let mut out = String::with_capacity(header.len() + 8);
    for (i, segment) in header.split('/').enumerate() {
        if i > 0 {
            out.push('_');
        }
        for (j, c) in segment.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if j > 0 && !header.contains('_') {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            } else if c.is_ascii_alphanumeric() {
                out.push(c);
            } else {
                out.push('_');
            }
        }
    }
    out.to_ascii_lowercase()
}

/// The detected dialect of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Dialect {
    /// CUR 2.0 (Data Exports), snake_case with map columns.
    #[serde(rename = "CUR 2.0")]
    Cur2,
    /// Legacy CUR with `category/Name` headers (CSV).
    #[serde(rename = "legacy CUR")]
    LegacySlash,
    /// Legacy CUR with snake_case names (Athena/Parquet integration).
    #[serde(rename = "legacy CUR (snake_case)")]
    LegacySnake,
    /// FOCUS 1.0 to 1.2 (PascalCase column ids, matched case-insensitively).
    #[serde(rename = "FOCUS")]
    Focus,
}

/// Each field's column: the first of its candidate names (`names_of`) found among
/// the normalized headers, with the header as written in the file. A name that two
/// headers both spell (`lineItem/UnblendedCost` next to `line_item_unblended_cost`)
/// is an error naming both positions: billxfer does not choose between them.
fn find_fields(
    headers: &[String],
    normalized: &[String],
    names_of: fn(Field) -> &'static [&'static str],
) -> std::result::Result<([Option<usize>; FIELDS], [Option<String>; FIELDS]), String> {
    let mut index = [None; FIELDS];
    let mut names: [Option<String>; FIELDS] = Default::default();
    for (k, field) in Field::ALL.iter().enumerate() {
        if let Some(pos) = names_of(*field)
            .iter()
            .find_map(|cand| normalized.iter().position(|h| h == cand))
        {
            unique_column(headers, normalized, pos)?;
            index[k] = Some(pos);
            names[k] = Some(as_written(&headers[pos]));
        }
    }
    Ok((index, names))
}

/// A header as written, without padding or byte-order mark.
fn as_written(header: &str) -> String {
    header.trim().trim_start_matches('\u{feff}').to_string()
}

/// Refuses a column whose normalized name another header also has.
fn unique_column(
    headers: &[String],
    normalized: &[String],
    pos: usize,
) -> std::result::Result<(), String> {
    match normalized
        .iter()
        .enumerate()
        .find(|(j, h)| *j != pos && **h == normalized[pos])
    {
        None => Ok(()),
        Some((j, _)) => Err(format!(
            "column {} `{}` and column {} `{}` are the same column ({}) twice: billxfer does not choose between them; remove one",
            pos + 1,
            as_written(&headers[pos]),
            j + 1,
            as_written(&headers[j]),
            normalized[pos]
        )),
    }
}

/// Columns (snake_case) a CUR file (2.0 or legacy, any spelling) must have to be
/// read as CUR, plus one of [`CUR_PERIOD`] (docs/INPUTS.md, "Which format").
pub const CUR_REQUIRED: [&str; 5] = [
    "line_item_usage_account_id",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_usage_amount",
    "line_item_unblended_cost",
];

/// A CUR file's period columns, one of which must be present.
pub const CUR_PERIOD: [&str; 2] = [
    "bill_billing_period_start_date",
    "line_item_usage_start_date",
];

/// Columns (lower case) a FOCUS file must have, plus one of [`FOCUS_PERIOD`].
pub const FOCUS_REQUIRED: [&str; 2] = ["BilledCost", "ChargeCategory"];

/// A FOCUS file's period columns, one of which must be present.
pub const FOCUS_PERIOD: [&str; 2] = ["BillingPeriodStart", "ChargePeriodStart"];

/// The required columns of a format that a header lacks (the period pair counts as one).
fn lacking(normalized: &[String], required: &[&str], period: &[&str; 2]) -> Vec<String> {
    let has = |n: &str| normalized.iter().any(|h| h.eq_ignore_ascii_case(n));
    let mut out: Vec<String> = required
        .iter()
        .filter(|n| !has(n))
        .map(|n| n.to_string())
        .collect();
    if !has(period[0]) && !has(period[1]) {
        out.push(format!("{} (or {})", period[0], period[1]));
    }
    out
}

/// Maps a file's column names onto [`Field`]s, or explains what is missing.
#[derive(Debug, Clone)]
pub struct ColumnMap {
    /// Column index per field (by `Field::ALL` order).
    pub index: [Option<usize>; FIELDS],
    /// Column name per field as written in the file.
    pub names: [Option<String>; FIELDS],
    /// The dialect.
    pub dialect: Dialect,
    /// Columns whose values together identify a line across deliveries (docs/INPUTS.md):
    /// CUR `identity_line_item_id` + `identity_time_interval`, a documented FOCUS set.
    /// Empty when the file has none, or when the run does not need them.
    pub identity: Vec<usize>,
}

/// CUR columns (snake_case) that identify a line item.
pub const CUR_IDENTITY: [&str; 2] = ["identity_line_item_id", "identity_time_interval"];

/// FOCUS columns (lower case) that identify a charge when a file has no line item id:
/// the charge period, account, resource, SKU price and charge description.
pub const FOCUS_IDENTITY: [&str; 11] = [
    "chargeperiodstart",
    "chargeperiodend",
    "subaccountid",
    "resourceid",
    "skupriceid",
    "chargecategory",
    "chargedescription",
    "x_usagetype",
    "x_operation",
    "commitmentdiscountid",
    "regionid",
];

/// Positions of the identity columns among normalized headers; empty unless the first is present.
fn identity_columns(
    headers: &[String],
    normalized: &[String],
    names: &[&str],
) -> std::result::Result<Vec<usize>, String> {
    let pos = |n: &str| normalized.iter().position(|h| h == n);
    if pos(names[0]).is_none() {
        return Ok(Vec::new());
    }
    let found: Vec<usize> = names.iter().filter_map(|n| pos(n)).collect();
    for &p in &found {
        unique_column(headers, normalized, p)?;
    }
    Ok(found)
}

/// Folds one cell into a row's identity hash (a separator keeps `ab|c` apart from `a|bc`).
#[inline]
pub fn hash_cell(h: &mut std::hash::DefaultHasher, cell: &[u8]) {
    use std::hash::Hasher;
    h.write(cell);
    h.write_u8(0xff);
}

impl ColumnMap {
    /// Finds the needed columns in `headers` (case-insensitive). The format is the
    /// one whose required columns are all present ([`CUR_REQUIRED`], [`FOCUS_REQUIRED`]);
    /// a header complete for both, or for neither, is an error saying what it has.
    pub fn from_headers(path: &Path, headers: &[String]) -> Result<ColumnMap> {
        let snake: Vec<String> = headers.iter().map(|h| snake_name(h)).collect();
        let lower: Vec<String> = headers
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let cur_lacks = lacking(&snake, &CUR_REQUIRED, &CUR_PERIOD);
        let focus_lacks = lacking(&lower, &FOCUS_REQUIRED, &FOCUS_PERIOD);
        let (cur_n, focus_n) = (CUR_REQUIRED.len() + 1, FOCUS_REQUIRED.len() + 1);
        let tally = format!(
            "it has {} of the {cur_n} columns CUR requires and {} of the {focus_n} FOCUS requires (docs/INPUTS.md, \"Which format\")",
            cur_n - cur_lacks.len(),
            focus_n - focus_lacks.len()
        );
        let as_focus = match (cur_lacks.is_empty(), focus_lacks.is_empty()) {
            (true, true) => {
                return Err(Error::input(
                    path,
                    "the file has every column CUR requires and every column FOCUS requires, so its format is ambiguous: remove the columns of the format it is not",
                ))
            }
            (true, false) => false,
            (false, true) => true,
            // Neither complete: report against the format it resembles more.
            (false, false) => {
                (focus_n - focus_lacks.len()) * cur_n > (cur_n - cur_lacks.len()) * focus_n
            }
        };
        if as_focus {
            if !focus_lacks.is_empty() {
                return Err(Error::input(
                    path,
                    format!(
                        "read as FOCUS because {tally}; this FOCUS file lacks required column(s): {} (FOCUS column ids are matched case-insensitively)",
                        focus_lacks.join(", ")
                    ),
                ));
            }
            return ColumnMap::focus(path, headers, &lower);
        }
        if !cur_lacks.is_empty() {
            return Err(Error::input(
                path,
                format!(
                    "read as CUR because {tally}; missing required column(s): {} (legacy CUR spelling such as lineItem/UsageAccountId is accepted too); the file has {} columns, starting {}",
                    cur_lacks.join(", "),
                    headers.len(),
                    headers.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let dialect = if headers.iter().any(|h| h.contains('/')) {
            Dialect::LegacySlash
        } else if snake.iter().any(|h| {
            h == "bill_payer_account_name" || h == "line_item_usage_account_name" || h == "product"
        }) {
            Dialect::Cur2
        } else {
            Dialect::LegacySnake
        };
        let (index, names) =
            find_fields(headers, &snake, Field::column_names).map_err(|e| Error::input(path, e))?;
        let identity =
            identity_columns(headers, &snake, &CUR_IDENTITY).map_err(|e| Error::input(path, e))?;
        Ok(ColumnMap {
            index,
            names,
            dialect,
            identity,
        })
    }

    /// Maps a FOCUS 1.0-1.2 header (matched case-insensitively: real files spell `SkuPriceid`).
    fn focus(path: &Path, headers: &[String], lower: &[String]) -> Result<ColumnMap> {
        let (index, mut names) =
            find_fields(headers, lower, Field::focus_names).map_err(|e| Error::input(path, e))?;
        names[Field::LineType as usize] = names[Field::ChargeCategory as usize].clone();
        Ok(ColumnMap {
            index,
            names,
            dialect: Dialect::Focus,
            identity: identity_columns(headers, lower, &FOCUS_IDENTITY)
                .map_err(|e| Error::input(path, e))?,
        })
    }

    /// Column index of a field.
    pub fn get(&self, f: Field) -> Option<usize> {
        self.index[f as usize]
    }

    /// Name of a field's column as written in the file (for messages).
    pub fn name(&self, f: Field) -> String {
        let fallback = if self.dialect == Dialect::Focus {
            f.focus_names().first()
        } else {
            f.column_names().first()
        };
        self.names[f as usize]
            .clone()
            .or_else(|| fallback.map(|s| s.to_string()))
            .unwrap_or_else(|| format!("{f:?}"))
    }
}

/// Text column as read: a dictionary of distinct values and a key per row.
pub type TextColumn = DictionaryArray<Int32Type>;

/// State of one numeric cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NumState {
    /// A value.
    Value = 0,
    /// Empty or null.
    Null = 1,
    /// Unreadable; details in `NumColumn::bad`.
    Bad = 2,
}

/// A numeric column converted to fixed point, with per-row state.
#[derive(Debug, Clone, Default)]
pub struct NumColumn {
    /// Values at the internal scale (0 where not `Value`).
    pub values: Vec<i128>,
    /// State per row.
    pub state: Vec<NumState>,
    /// Unreadable cells: row index in the chunk, text, reason.
    pub bad: Vec<(usize, String, DecimalError)>,
}

impl NumColumn {
    /// An empty column with room for `n` rows.
    pub fn with_capacity(n: usize) -> NumColumn {
        NumColumn {
            values: Vec::with_capacity(n),
            state: Vec::with_capacity(n),
            bad: Vec::new(),
        }
    }

    /// Appends a converted cell.
    pub fn push(&mut self, cell: Option<Result<i128, (String, DecimalError)>>) {
        match cell {
            None => {
                self.values.push(0);
                self.state.push(NumState::Null);
            }
            Some(Ok(v)) => {
                self.values.push(v);
                self.state.push(NumState::Value);
            }
            Some(Err((text, e))) => {
                self.bad.push((self.values.len(), text, e));
                self.values.push(0);
                self.state.push(NumState::Bad);
            }
        }
    }

    fn get(&self, i: usize) -> Option<i128> {
        (self.state[i] == NumState::Value).then(|| self.values[i])
    }

    fn bad_at(&self, i: usize) -> Option<&(usize, String, DecimalError)> {
        self.bad.iter().find(|b| b.0 == i)
    }
}

/// A period column: timestamps (Parquet) or ISO 8601 text (CSV).
#[derive(Debug, Clone)]
pub enum PeriodColumn {
    /// Microseconds since 1970, UTC.
    Micros(Vec<Option<i64>>),
    /// Text such as `2026-10-01T00:00:00Z`.
    Text(TextColumn),
}

impl PeriodColumn {
    /// The billing period of each row (None: empty or unreadable), for period detection.
    pub fn periods(&self) -> Vec<Option<BillingPeriod>> {
        match self {
            PeriodColumn::Micros(v) => v
                .iter()
                .map(|m| m.and_then(BillingPeriod::from_unix_micros))
                .collect(),
            PeriodColumn::Text(d) => {
                let values = dict_values(d);
                let per_value: Vec<Option<BillingPeriod>> = (0..values.len())
                    .map(|k| period_from_text(values.value(k)))
                    .collect();
                d.keys()
                    .iter()
                    .map(|k| k.and_then(|k| per_value.get(k as usize).copied().flatten()))
                    .collect()
            }
        }
    }
}

/// Parses the billing period of an ISO 8601 date or timestamp text, read whole
/// (docs/INPUTS.md, "Dates"): `2026-10-45T99:99:99Z` is not a date.
pub fn period_from_text(t: &str) -> Option<BillingPeriod> {
    timestamp_micros(t).and_then(BillingPeriod::from_unix_micros)
}

/// An ISO 8601 date or timestamp as microseconds since 1970 (UTC):
/// `YYYY-MM-DD`, optionally followed by `T` or a space, `HH:MM[:SS[.fraction]]`
/// and `Z`, `±HH:MM`, `±HHMM`, `±HH` or ` UTC`; every part range-checked.
pub fn timestamp_micros(text: &str) -> Option<i64> {
    let t = text.trim().as_bytes();
    let digits = |b: &[u8]| -> Option<i64> {
        (!b.is_empty() && b.iter().all(u8::is_ascii_digit))
            .then(|| b.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if t.len() < 10 || t[4] != b'-' || t[7] != b'-' {
        return None;
    }
    let year = u16::try_from(digits(&t[..4])?).ok()?;
    let month = u8::try_from(digits(&t[5..7])?).ok()?;
    let period = BillingPeriod::new(year, month)?;
    let day = digits(&t[8..10])?;
    if day < 1 || day > i64::from(period.days()) {
        return None;
    }
    let mut micros = period.start_micros() + (day - 1) * 86_400_000_000;
    let rest = &t[10..];
    if rest.is_empty() {
        return Some(micros);
    }
    if !matches!(rest[0], b'T' | b't' | b' ') || rest.len() < 6 || rest[3] != b':' {
        return None;
    }
    let (hour, minute) = (digits(&rest[1..3])?, digits(&rest[4..6])?);
    let mut rest = &rest[6..];
    let mut second = 0;
    let mut fraction_micros = 0;
    if rest.first() == Some(&b':') {
        second = digits(rest.get(1..3)?)?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            let f = &rest[1..1 + n];
            let padded: Vec<u8> = f
                .iter()
                .copied()
                .chain(std::iter::repeat(b'0'))
                .take(6)
                .collect();
            fraction_micros = digits(&padded)?;
            rest = &rest[1 + n..];
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    micros += ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction_micros;
    let offset_minutes = match rest {
        b"" | b"Z" | b"z" | b" UTC" | b"+00:00" => 0,
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (h, m) = match zone {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                [h1, h2, b':', m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    Some(micros - offset_minutes * 60_000_000)
}

/// The string values of a text column's dictionary.
pub fn dict_values(d: &TextColumn) -> &StringArray {
    d.values().as_string::<i32>()
}

/// A chunk of rows from one input file, columns as read (before checks).
#[derive(Debug)]
pub struct RawChunk {
    /// Row number of each row in the file (1-based, header excluded).
    pub rows: Vec<u64>,
    /// Physical line of each row in a CSV file (for humans); empty for Parquet.
    pub lines: Vec<u64>,
    /// Text columns by `Field` index; `None` when the file lacks the column.
    pub text: [Option<TextColumn>; FIELDS],
    /// Number columns by `Field` index.
    pub num: [Option<NumColumn>; FIELDS],
    /// Period columns by `Field` index.
    pub period: [Option<PeriodColumn>; FIELDS],
    /// Rows that could not even be split into columns (ragged CSV, bad UTF-8): row, line, column, reason.
    pub broken: Vec<(u64, u64, String, String)>,
    /// Identity hash of each row (`ColumnMap::identity`), empty when not read.
    pub identity: Vec<u64>,
}

impl RawChunk {
    fn len(&self) -> usize {
        self.rows.len()
    }
}

/// A source of raw chunks: one input file.
pub trait ChunkSource: Send {
    /// The next chunk, `None` at the end of the file.
    fn next_chunk(&mut self) -> Option<Result<RawChunk>>;
    /// The detected dialect and format label.
    fn describe(&self) -> String;
    /// Where each field is found in the file.
    fn column_map(&self) -> &ColumnMap;
}

/// A slice of a Parquet file: some row groups, so one large file can be read by several threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Row group indexes.
    pub groups: Vec<usize>,
    /// Row number (0-based) of the first row of the first group in the file.
    pub first_row: u64,
}

/// Whether a file is Parquet (magic `PAR1`).
pub fn is_parquet(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| Error::io(path, e))?;
    Ok(n == 4 && &magic == b"PAR1")
}

/// How a file will be read: its parts (`None`: whole) and its row count when the
/// footer tells it (Parquet), for progress estimates.
pub type FilePlan = (Option<Vec<Part>>, Option<u64>);

/// Splits a file into parts of whole row groups of at least `min_rows` rows each;
/// `None` (read whole) for CSV or single-group files.
pub fn plan_parts(path: &Path, min_rows: u64) -> Result<FilePlan> {
    if !is_parquet(path)? {
        return Ok((None, None));
    }
    let groups = parquet::row_groups(path)?;
    let total = Some(groups.iter().sum());
    if groups.len() < 2 {
        return Ok((None, total));
    }
    let mut parts = Vec::new();
    let mut current = Part {
        groups: Vec::new(),
        first_row: 0,
    };
    let (mut rows_in_part, mut row) = (0u64, 0u64);
    for (g, n) in groups.iter().enumerate() {
        if current.groups.is_empty() {
            current.first_row = row;
        }
        current.groups.push(g);
        rows_in_part += n;
        row += n;
        if rows_in_part >= min_rows {
            parts.push(std::mem::replace(
                &mut current,
                Part {
                    groups: Vec::new(),
                    first_row: 0,
                },
            ));
            rows_in_part = 0;
        }
    }
    if !current.groups.is_empty() {
        parts.push(current);
    }
    Ok((Some(parts), total))
}

/// Opens a part of a file (or the whole file with `None`).
pub fn open_part(path: &Path, part: Option<&Part>) -> Result<Box<dyn ChunkSource>> {
    open_with(path, part, false)
}

/// Opens a part of a file, also hashing each row's identity columns when `identity`
/// (only runs that must compare deliveries pay for reading them).
pub fn open_with(path: &Path, part: Option<&Part>, identity: bool) -> Result<Box<dyn ChunkSource>> {
    match part {
        Some(p) => Ok(Box::new(parquet::ParquetSource::open_part(
            path,
            Some(p),
            identity,
        )?)),
        None => open_whole(path, identity),
    }
}

/// Opens an input file, detecting Parquet (magic `PAR1`), gzip CSV and plain CSV.
pub fn open(path: &Path) -> Result<Box<dyn ChunkSource>> {
    open_whole(path, false)
}

fn open_whole(path: &Path, identity: bool) -> Result<Box<dyn ChunkSource>> {
    let mut magic = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| Error::io(path, e))?;
    if n == 0 {
        return Err(Error::input(
            path,
            "the file is empty: expected a CUR file with a header row",
        ));
    }
    if n == 4 && &magic == b"PAR1" {
        Ok(Box::new(parquet::ParquetSource::open_part(
            path, None, identity,
        )?))
    } else {
        let mut source =
            csv::CsvSource::open(path, n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)?;
        if !identity {
            source.skip_identity();
        }
        Ok(Box::new(source))
    }
}

/// Reads a file with the same reader and projection a run uses, and nothing
/// else (no conversion, no checks): the decode floor for benchmarks.
pub fn decode_only(path: &Path, part: Option<&Part>) -> Result<u64> {
    let mut magic = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| Error::io(path, e))?;
    if n == 4 && &magic == b"PAR1" {
        parquet::ParquetSource::open_part(path, part, false)?.decode_only()
    } else {
        csv::CsvSource::open(path, n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)?.decode_only()
    }
}

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

/// Line item types billxfer knows; anything else is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[repr(u8)]
pub enum LineType {
    /// On-demand usage.
    Usage = 0,
    /// Usage covered by a Reserved Instance.
    DiscountedUsage,
    /// Usage covered by a Savings Plan.
    SavingsPlanCoveredUsage,
    /// Negation of the on-demand cost of SP-covered usage.
    SavingsPlanNegation,
    /// SP upfront fee.
    SavingsPlanUpfrontFee,
    /// SP recurring fee.
    SavingsPlanRecurringFee,
    /// RI recurring fee.
    RIFee,
    /// Other fee (RI upfront, subscriptions).
    Fee,
    /// Tax.
    Tax,
    /// Credit.
    Credit,
    /// Refund.
    Refund,
    /// Enterprise Discount Program discount (non-public).
    EdpDiscount,
    /// Private rate discount (non-public).
    PrivateRateDiscount,
    /// Solution Provider Program discount (non-public, the partner's).
    SppDiscount,
    /// Bundled discount (public product bundle).
    BundledDiscount,
    /// Generic discount (treated as non-public).
    Discount,
    /// RI volume discount (public volume tier).
    RiVolumeDiscount,
}

impl LineType {
    /// Every type, in code order.
    pub const ALL: [LineType; 17] = [
        LineType::Usage,
        LineType::DiscountedUsage,
        LineType::SavingsPlanCoveredUsage,
        LineType::SavingsPlanNegation,
        LineType::SavingsPlanUpfrontFee,
        LineType::SavingsPlanRecurringFee,
        LineType::RIFee,
        LineType::Fee,
        LineType::Tax,
        LineType::Credit,
        LineType::Refund,
        LineType::EdpDiscount,
        LineType::PrivateRateDiscount,
        LineType::SppDiscount,
        LineType::BundledDiscount,
        LineType::Discount,
        LineType::RiVolumeDiscount,
    ];

    /// The CUR spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LineType::Usage => "Usage",
            LineType::DiscountedUsage => "DiscountedUsage",
            LineType::SavingsPlanCoveredUsage => "SavingsPlanCoveredUsage",
            LineType::SavingsPlanNegation => "SavingsPlanNegation",
            LineType::SavingsPlanUpfrontFee => "SavingsPlanUpfrontFee",
            LineType::SavingsPlanRecurringFee => "SavingsPlanRecurringFee",
            LineType::RIFee => "RIFee",
            LineType::Fee => "Fee",
            LineType::Tax => "Tax",
            LineType::Credit => "Credit",
            LineType::Refund => "Refund",
            LineType::EdpDiscount => "EdpDiscount",
            LineType::PrivateRateDiscount => "PrivateRateDiscount",
            LineType::SppDiscount => "SppDiscount",
            LineType::BundledDiscount => "BundledDiscount",
            LineType::Discount => "Discount",
            LineType::RiVolumeDiscount => "RiVolumeDiscount",
        }
    }

    /// Parses the CUR spelling (exact, as AWS writes it).
    /// `Proforma_Fee` and `Proforma_Credit` (custom line items shown under another
    /// service in a pro forma CUR, billxfer's own export included) read as `Fee` and `Credit`.
    pub fn parse(text: &str) -> Option<LineType> {
        match text {
            "Proforma_Fee" => Some(LineType::Fee),
            "Proforma_Credit" => Some(LineType::Credit),
            _ => LineType::ALL.iter().copied().find(|t| t.as_str() == text),
        }
    }

    /// From the code stored in a normalized batch.
    pub fn from_code(code: u8) -> Option<LineType> {
        LineType::ALL.get(code as usize).copied()
    }

    /// The signs a billed cost of this type may have (docs/DOMAIN.md, decision 26):
    /// charges are never negative, discounts and credits never positive, and
    /// Fee, Tax and Refund lines may be either (reversals, tax on credits, adjustments).
    pub fn cost_sign(self) -> CostSign {
        match self {
            LineType::Usage
            | LineType::DiscountedUsage
            | LineType::SavingsPlanCoveredUsage
            | LineType::SavingsPlanUpfrontFee
            | LineType::SavingsPlanRecurringFee
            | LineType::RIFee => CostSign::NotNegative,
            LineType::SavingsPlanNegation
            | LineType::Credit
            | LineType::EdpDiscount
            | LineType::PrivateRateDiscount
            | LineType::SppDiscount
            | LineType::BundledDiscount
            | LineType::Discount
            | LineType::RiVolumeDiscount => CostSign::NotPositive,
            LineType::Fee | LineType::Tax | LineType::Refund => CostSign::Either,
        }
    }
}

/// The signs a line item type's billed cost may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostSign {
    /// Zero or more: a charge.
    NotNegative,
    /// Zero or less: a discount, credit or negation.
    NotPositive,
    /// Either sign.
    Either,
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

/// AWS service names (FOCUS `ServiceName`, CUR `product_product_name`) and product codes,
/// from `aws_services.csv` beside this file (docs/INPUTS.md), parsed once for both directions.
struct ServiceTable {
    /// Lower-cased name -> code.
    code_of: FxHashMap<String, &'static str>,
    /// Code -> the first name the table gives it.
    name_of: FxHashMap<&'static str, &'static str>,
}

fn service_table() -> &'static ServiceTable {
    static TABLE: std::sync::OnceLock<ServiceTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = ServiceTable {
            code_of: FxHashMap::default(),
            name_of: FxHashMap::default(),
        };
        for line in include_str!("aws_services.csv").lines().skip(1) {
            if let Some((name, code)) = line.rsplit_once(',') {
                let (name, code) = (name.trim().trim_matches('"'), code.trim());
                t.code_of.insert(name.to_ascii_lowercase(), code);
                t.name_of.entry(code).or_insert(name);
            }
        }
        t
    })
}

/// The product code of an AWS service name (case-insensitive).
pub fn product_code_of_service_name(name: &str) -> Option<&'static str> {
    service_table()
        .code_of
        .get(&name.trim().to_ascii_lowercase())
        .copied()
}

/// The service name AWS uses for a product code, for FOCUS exports.
pub fn service_name_of_product_code(code: &str) -> Option<&'static str> {
    service_table().name_of.get(code).copied()
}

/// Maps a FOCUS row's classification onto a CUR line item type (docs/DOMAIN.md,
/// decision 18). `None` arguments are FOCUS nulls. An unknown ChargeCategory gives `None`.
pub fn focus_line_type(
    category: &str,
    frequency: Option<&str>,
    commitment_id: Option<&str>,
    commitment_category: Option<&str>,
) -> Option<LineType> {
    let is = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b);
    let spend = commitment_category.is_some_and(|c| is(c, "Spend"));
    let one_time = frequency.is_some_and(|f| is(f, "One-Time"));
    let committed = commitment_id.is_some();
    Some(if is(category, "Usage") {
        match (committed, spend) {
            (false, _) => LineType::Usage,
            (true, true) => LineType::SavingsPlanCoveredUsage,
            (true, false) => LineType::DiscountedUsage,
        }
    } else if is(category, "Purchase") {
        match (committed, spend, one_time) {
            (false, _, _) => LineType::Fee,
            (true, true, true) => LineType::SavingsPlanUpfrontFee,
            (true, true, false) => LineType::SavingsPlanRecurringFee,
            (true, false, true) => LineType::Fee,
            (true, false, false) => LineType::RIFee,
        }
    } else if is(category, "Tax") {
        LineType::Tax
    } else if is(category, "Credit") {
        LineType::Credit
    } else if is(category, "Adjustment") {
        LineType::Refund
    } else {
        return None;
    })
}

/// A FOCUS text cell: `None` for null, empty or the literal `null` the FOCUS examples use.
fn focus_text(d: Option<&TextColumn>, i: usize) -> Option<&str> {
    let d = d?;
    let k = key_at(d, i)?;
    let v = dict_values(d);
    if !v.is_valid(k) {
        return None;
    }
    let t = v.value(k).trim();
    (!t.is_empty() && !t.eq_ignore_ascii_case("null")).then_some(t)
}

/// Gives a FOCUS chunk the CUR-shaped columns normalize expects: a line item type
/// derived from ChargeCategory and the commitment columns, and the management
/// account where the file names no account.
fn focus_columns(
    chunk: &mut RawChunk,
    map: &ColumnMap,
    check: &OrgCheck,
    warnings: &mut Vec<String>,
) -> std::result::Result<(), arrow::error::ArrowError> {
    let n = chunk.len();
    // Rules speak AWS product codes: without x_ServiceCode, map ServiceName to its code.
    let product = Field::ProductCode as usize;
    let from_name = map.names[product]
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("servicename"));
    if let (true, Some(d)) = (from_name, chunk.text[product].as_ref()) {
        if let Some(mapped) = rewrite_values(d, |v| {
            let code = product_code_of_service_name(v);
            if code.is_none() && !v.trim().is_empty() {
                warnings.push(format!("FOCUS ServiceName `{}` has no AWS product code in billxfer's table (src/ingest/aws_services.csv): rules by service do not match it; add x_ServiceCode to the export", v.trim()));
            }
            code.map(str::to_string)
        })? {
            chunk.text[product] = Some(mapped);
        }
    }
    let t = |x: Field| chunk.text[x as usize].as_ref();
    let mut types = arrow::array::StringDictionaryBuilder::<Int32Type>::new();
    let mut memo: FxHashMap<[Option<i32>; 4], Option<LineType>> = FxHashMap::default();
    for i in 0..n {
        let keys = [
            Field::ChargeCategory,
            Field::ChargeFrequency,
            Field::CommitmentId,
            Field::CommitmentCategory,
        ]
        .map(|x| t(x).and_then(|d| key_at(d, i)).map(|k| k as i32));
        let lt = *memo.entry(keys).or_insert_with(|| {
            let category = focus_text(t(Field::ChargeCategory), i)?;
            focus_line_type(
                category,
                focus_text(t(Field::ChargeFrequency), i),
                focus_text(t(Field::CommitmentId), i),
                focus_text(t(Field::CommitmentCategory), i),
            )
        });
        // FOCUS has no negation category: a Savings Plan negation arrives as a Usage
        // row with a negative BilledCost (billxfer's own FOCUS export writes it so).
        let negative = chunk.num[Field::UnblendedCost as usize]
            .as_ref()
            .and_then(|c| c.get(i))
            .is_some_and(|c| c < 0);
        let lt = match lt {
            Some(LineType::Usage | LineType::SavingsPlanCoveredUsage) if negative => {
                Some(LineType::SavingsPlanNegation)
            }
            other => other,
        };
        match lt {
            Some(lt) => types.append_value(lt.as_str()),
            None => types.append_value(
                focus_text(t(Field::ChargeCategory), i).unwrap_or("(null ChargeCategory)"),
            ),
        }
    }
    chunk.text[Field::LineType as usize] = Some(types.finish());
    let account = Field::UsageAccount as usize;
    if chunk.text[account].is_none() {
        chunk.text[account] = Some(DictionaryArray::try_new(
            Int32Array::from(vec![0; n]),
            Arc::new(StringArray::from(vec![check.management_account.as_str()])) as ArrayRef,
        )?);
    }
    Ok(())
}

/// The amortized cost of each row as delivered. FOCUS: EffectiveCost. CUR: AWS's
/// amortization rule by line item type (reference: cur-and-focus.md section 4),
/// falling back to the billed cost when a needed column is absent.
fn effective_costs(
    num: &[Option<NumColumn>; FIELDS],
    line_types: &[u8],
    focus: bool,
    has_reservation: impl Fn(usize) -> bool,
    n: usize,
) -> Vec<i128> {
    let get = |x: Field, i: usize| num[x as usize].as_ref().and_then(|c| c.get(i));
    (0..n)
        .map(|i| {
            let billed = get(Field::NetUnblendedCost, i)
                .or_else(|| get(Field::UnblendedCost, i))
                .unwrap_or(0);
            if focus {
                return get(Field::EffectiveCost, i).unwrap_or(billed);
            }
            let lt = LineType::from_code(line_types[i]).unwrap_or(LineType::Usage);
            match lt {
                LineType::SavingsPlanCoveredUsage => {
                    get(Field::SpEffectiveCost, i).unwrap_or(billed)
                }
                LineType::SavingsPlanRecurringFee => {
                    match (
                        get(Field::SpTotalCommitment, i),
                        get(Field::SpUsedCommitment, i),
                    ) {
                        (Some(t), Some(u)) => t.saturating_sub(u),
                        _ => billed,
                    }
                }
                LineType::SavingsPlanNegation | LineType::SavingsPlanUpfrontFee => 0,
                LineType::DiscountedUsage => get(Field::RiEffectiveCost, i).unwrap_or(billed),
                LineType::RIFee => {
                    match (
                        get(Field::RiUnusedUpfront, i),
                        get(Field::RiUnusedRecurring, i),
                    ) {
                        (None, None) => billed,
                        (a, b) => a.unwrap_or(0).saturating_add(b.unwrap_or(0)),
                    }
                }
                LineType::Fee if has_reservation(i) => 0,
                _ => billed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_headers_become_snake_case() {
        assert_eq!(
            snake_name("lineItem/UsageAccountId"),
            "line_item_usage_account_id"
        );
        assert_eq!(
            snake_name("pricing/publicOnDemandRate"),
            "pricing_public_on_demand_rate"
        );
        assert_eq!(snake_name("product/regionCode"), "product_region_code");
        assert_eq!(
            snake_name("bill/BillingPeriodStartDate"),
            "bill_billing_period_start_date"
        );
        assert_eq!(
            snake_name("line_item_usage_account_id"),
            "line_item_usage_account_id"
        );
        assert_eq!(
            snake_name("\u{feff}Line_Item_Usage_Account_Id"),
            "line_item_usage_account_id"
        );
    }

    #[test]
    fn every_line_type_round_trips() {
        for t in LineType::ALL {
            assert_eq!(LineType::parse(t.as_str()), Some(t));
            assert_eq!(LineType::from_code(t as u8), Some(t));
        }
        assert_eq!(LineType::parse("usage"), None);
        assert_eq!(LineType::parse("FlatRateSubscription"), None);
    }

    #[test]
    fn missing_required_columns_are_named() {
        let headers: Vec<String> = ["line_item_usage_account_id", "line_item_line_item_type"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let err = ColumnMap::from_headers(Path::new("x.csv"), &headers)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line_item_product_code"), "{err}");
        assert!(err.contains("line_item_unblended_cost"), "{err}");
        assert!(err.starts_with("x.csv"), "{err}");
    }

    #[test]
    fn focus_files_are_recognised() {
        let headers: Vec<String> = ["BilledCost", "ChargeCategory"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let err = ColumnMap::from_headers(Path::new("f.csv"), &headers)
            .unwrap_err()
            .to_string();
        assert!(err.contains("FOCUS"), "{err}");
    }
}
