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

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, StringArray, UInt64Array, UInt8Array,
};
use arrow::compute::filter;
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::money::{format_fixed_exact, DecimalError};
use crate::types::BillingPeriod;

/// Rows per batch handed to the rating kernel.
pub const BATCH_ROWS: usize = 8192;

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
}

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
    pub const ALL: [Field; 15] = [
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
        }
    }

    /// How the field is typed.
    pub fn kind(self) -> Kind {
        match self {
            Field::UsageAmount
            | Field::PublicRate
            | Field::PublicCost
            | Field::UnblendedCost
            | Field::NetUnblendedCost => Kind::Number,
            Field::BillingPeriodStart | Field::UsageStart => Kind::Period,
            _ => Kind::Text,
        }
    }

    /// Fields without which a file cannot be rated.
    pub fn required(self) -> bool {
        matches!(
            self,
            Field::UsageAccount
                | Field::LineType
                | Field::ProductCode
                | Field::UsageAmount
                | Field::UnblendedCost
        )
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
}

/// Maps a file's column names onto [`Field`]s, or explains what is missing.
#[derive(Debug, Clone)]
pub struct ColumnMap {
    /// Column index per field (by `Field::ALL` order).
    pub index: [Option<usize>; 15],
    /// Column name per field as written in the file.
    pub names: [Option<String>; 15],
    /// The dialect.
    pub dialect: Dialect,
}

impl ColumnMap {
    /// Finds the needed columns in `headers` (case-insensitive).
    pub fn from_headers(path: &Path, headers: &[String]) -> Result<ColumnMap> {
        let snake: Vec<String> = headers.iter().map(|h| snake_name(h)).collect();
        let lower: Vec<String> = headers
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        if lower.iter().any(|h| h == "billedcost") && lower.iter().any(|h| h == "chargecategory") {
            return Err(Error::input(
                path,
                "this is a FOCUS file (BilledCost, ChargeCategory columns); FOCUS input is not supported yet: convert it to CUR or wait for FOCUS ingestion",
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
        let mut index = [None; 15];
        let mut names: [Option<String>; 15] = Default::default();
        for (k, field) in Field::ALL.iter().enumerate() {
            for cand in field.column_names() {
                if let Some(pos) = snake.iter().position(|h| h == cand) {
                    index[k] = Some(pos);
                    names[k] = Some(
                        headers[pos]
                            .trim()
                            .trim_start_matches('\u{feff}')
                            .to_string(),
                    );
                    break;
                }
            }
        }
        let mut missing: Vec<&str> = Field::ALL
            .iter()
            .enumerate()
            .filter(|(k, f)| f.required() && index[*k].is_none())
            .map(|(_, f)| f.column_names()[0])
            .collect();
        let period_k = Field::ALL
            .iter()
            .position(|f| *f == Field::BillingPeriodStart)
            .unwrap_or(0);
        let usage_k = Field::ALL
            .iter()
            .position(|f| *f == Field::UsageStart)
            .unwrap_or(0);
        if index[period_k].is_none() && index[usage_k].is_none() {
            missing.push("bill_billing_period_start_date (or line_item_usage_start_date)");
        }
        if !missing.is_empty() {
            return Err(Error::input(
                path,
                format!(
                    "missing required column(s): {} (legacy CUR spelling such as lineItem/UsageAccountId is accepted too); the file has {} columns, starting {}",
                    missing.join(", "),
                    headers.len(),
                    headers.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(ColumnMap {
            index,
            names,
            dialect,
        })
    }

    /// Column index of a field.
    pub fn get(&self, f: Field) -> Option<usize> {
        self.index[f as usize]
    }

    /// Name of a field's column as written in the file (for messages).
    pub fn name(&self, f: Field) -> String {
        self.names[f as usize]
            .clone()
            .unwrap_or_else(|| f.column_names()[0].to_string())
    }
}

/// One numeric cell: absent, a value, or unparseable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumCell {
    /// Empty or null.
    Null,
    /// A fixed-point value.
    Value(i128),
    /// The text and why it could not be read.
    Bad(String, DecimalError),
}

/// One period cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeriodCell {
    /// Empty or null.
    Null,
    /// The billing period the timestamp falls in.
    Value(BillingPeriod),
    /// Unreadable text.
    Bad(String),
}

/// A chunk of rows from one input file, columns as read (before checks).
#[derive(Debug)]
pub struct RawChunk {
    /// Row number of each row in the file (1-based, header excluded).
    pub rows: Vec<u64>,
    /// Physical line of each row in a CSV file (for humans); empty for Parquet.
    pub lines: Vec<u64>,
    /// Text columns by `Field` index; `None` when the file lacks the column.
    pub text: [Option<StringArray>; 15],
    /// Number columns by `Field` index.
    pub num: [Option<Vec<NumCell>>; 15],
    /// Period columns by `Field` index.
    pub period: [Option<Vec<PeriodCell>>; 15],
    /// Rows that could not even be split into columns (ragged CSV, bad UTF-8): row, line, reason.
    pub broken: Vec<(u64, u64, String, String)>,
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

/// Opens an input file, detecting Parquet (magic `PAR1`), gzip CSV and plain CSV.
pub fn open(path: &Path) -> Result<Box<dyn ChunkSource>> {
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
        Ok(Box::new(parquet::ParquetSource::open(path)?))
    } else {
        Ok(Box::new(csv::CsvSource::open(
            path,
            n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b,
        )?))
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
    pub fn parse(text: &str) -> Option<LineType> {
        LineType::ALL.iter().copied().find(|t| t.as_str() == text)
    }

    /// From the code stored in a normalized batch.
    pub fn from_code(code: u8) -> Option<LineType> {
        LineType::ALL.get(code as usize).copied()
    }
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
}

/// The normalized schema every reader maps to.
pub fn normalized_schema() -> SchemaRef {
    let dec = DataType::Decimal128(38, 10);
    Arc::new(Schema::new(vec![
        ArrowField::new(col::ROW, DataType::UInt64, false),
        ArrowField::new(col::ACCOUNT, DataType::Utf8, false),
        ArrowField::new(col::LINE_TYPE, DataType::UInt8, false),
        ArrowField::new(col::PRODUCT, DataType::Utf8, false),
        ArrowField::new(col::USAGE_TYPE, DataType::Utf8, false),
        ArrowField::new(col::OPERATION, DataType::Utf8, false),
        ArrowField::new(col::REGION, DataType::Utf8, false),
        ArrowField::new(col::ENTITY, DataType::Utf8, false),
        ArrowField::new(col::USAGE, dec.clone(), false),
        ArrowField::new(col::PUBLIC_RATE, dec.clone(), true),
        ArrowField::new(col::PUBLIC_COST, dec.clone(), true),
        ArrowField::new(col::UNBLENDED, dec.clone(), true),
        ArrowField::new(col::NET_UNBLENDED, dec, true),
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
}

fn text_at(a: &Option<StringArray>, i: usize) -> &str {
    match a {
        Some(a) if a.is_valid(i) => a.value(i),
        _ => "",
    }
}

/// Checks every row of a chunk against the org and builds the normalized batch.
pub fn normalize(
    path: &Path,
    map: &ColumnMap,
    chunk: RawChunk,
    check: &OrgCheck,
) -> Result<NormalizedBatch> {
    let n = chunk.len();
    let mut keep = vec![true; n];
    let mut quarantined: Vec<Quarantined> = Vec::new();
    let f = |x: Field| x as usize;
    let mut rated_unblended: i128 = 0;

    let unblended = chunk.num[f(Field::UnblendedCost)].as_deref();
    let cost_of = |i: usize| -> Option<i128> {
        match unblended.map(|v| &v[i]) {
            Some(NumCell::Value(v)) => Some(*v),
            _ => None,
        }
    };
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
                unblended: cost_of(i),
            });
        };

    let mut line_types = vec![0u8; n];
    let mut usage = vec![0i128; n];
    let mut unb: Vec<Option<i128>> = vec![None; n];
    let mut rate: Vec<Option<i128>> = vec![None; n];
    let mut pcost: Vec<Option<i128>> = vec![None; n];
    let mut net: Vec<Option<i128>> = vec![None; n];

    for i in 0..n {
        // Account.
        let account = text_at(&chunk.text[f(Field::UsageAccount)], i);
        if account.is_empty() {
            quarantine(
                i,
                map.name(Field::UsageAccount),
                String::new(),
                "missing usage account id".into(),
                &mut keep,
            );
            continue;
        }
        if !check.accounts.contains(account) {
            quarantine(
                i,
                map.name(Field::UsageAccount),
                account.to_string(),
                format!(
                    "usage account {account} is not an account of {}",
                    check.label
                ),
                &mut keep,
            );
            continue;
        }
        // Line item type.
        let lt_text = text_at(&chunk.text[f(Field::LineType)], i);
        let Some(lt) = LineType::parse(lt_text) else {
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
        let period = [Field::BillingPeriodStart, Field::UsageStart]
            .iter()
            .find_map(|&pf| chunk.period[f(pf)].as_ref().map(|v| (pf, &v[i])));
        match period {
            Some((pf, PeriodCell::Value(p))) if *p != check.period => {
                quarantine(
                    i,
                    map.name(pf),
                    p.to_string(),
                    format!(
                        "the line is for {p}, outside the billing period {} being run",
                        check.period
                    ),
                    &mut keep,
                );
                continue;
            }
            Some((pf, PeriodCell::Bad(text))) => {
                quarantine(
                    i,
                    map.name(pf),
                    text.clone(),
                    "not a date: expected ISO 8601 such as 2026-03-01T00:00:00Z".into(),
                    &mut keep,
                );
                continue;
            }
            Some((pf, PeriodCell::Null)) => {
                quarantine(
                    i,
                    map.name(pf),
                    String::new(),
                    "missing billing period date".into(),
                    &mut keep,
                );
                continue;
            }
            _ => {}
        }
        // Currency.
        let currency = text_at(&chunk.text[f(Field::Currency)], i);
        if !currency.is_empty() && currency != check.currency {
            quarantine(
                i,
                map.name(Field::Currency),
                currency.to_string(),
                format!(
                    "currency {currency} differs from {}'s billing currency {}",
                    check.label, check.currency
                ),
                &mut keep,
            );
            continue;
        }
        // Amounts.
        let mut bad = None;
        let mut read = |field: Field, required: bool| -> Option<i128> {
            match chunk.num[f(field)].as_ref().map(|v| &v[i]) {
                Some(NumCell::Value(v)) => Some(*v),
                Some(NumCell::Bad(text, e)) => {
                    bad.get_or_insert((field, text.clone(), format!("not a usable amount: {e}")));
                    None
                }
                _ => {
                    if required {
                        bad.get_or_insert((field, String::new(), "missing amount".into()));
                    }
                    None
                }
            }
        };
        let u = read(Field::UsageAmount, false).unwrap_or(0);
        let c = read(Field::UnblendedCost, check.require_billed_cost);
        let r = read(Field::PublicRate, false);
        let pc = read(Field::PublicCost, false);
        let nu = read(Field::NetUnblendedCost, false);
        if let Some((field, text, reason)) = bad {
            quarantine(i, map.name(field), text, reason, &mut keep);
            continue;
        }
        if r.is_some_and(|r| r < 0) {
            quarantine(
                i,
                map.name(Field::PublicRate),
                format_fixed_exact(r.unwrap_or(0)),
                "a public rate cannot be negative".into(),
                &mut keep,
            );
            continue;
        }
        if lt == LineType::Usage && u < 0 {
            quarantine(
                i,
                map.name(Field::UsageAmount),
                format_fixed_exact(u),
                "a Usage line cannot have a negative usage amount".into(),
                &mut keep,
            );
            continue;
        }
        usage[i] = u;
        unb[i] = c;
        rate[i] = r;
        pcost[i] = pc;
        net[i] = nu;
        rated_unblended = rated_unblended
            .checked_add(c.unwrap_or(0))
            .ok_or_else(|| Error::Overflow(format!("summing {}", path.display())))?;
    }
    for (row, line, column, reason) in chunk.broken {
        quarantined.push(Quarantined {
            file: path.to_path_buf(),
            row,
            line: Some(line),
            column,
            value: String::new(),
            reason,
            unblended: None,
        });
    }

    let mask = BooleanArray::from(keep);
    let text_col = |field: Field| -> Result<ArrayRef> {
        let arr: ArrayRef = match &chunk.text[f(field)] {
            Some(a) => {
                // Normalized text columns are never null: absent values are "".
                if a.null_count() > 0 {
                    Arc::new(
                        a.iter()
                            .map(|v| Some(v.unwrap_or("")))
                            .collect::<StringArray>(),
                    )
                } else {
                    Arc::new(a.clone())
                }
            }
            None => Arc::new(StringArray::from(vec![""; n])),
        };
        filter(&arr, &mask).map_err(|e| Error::input(path, e.to_string()))
    };
    let dec = |v: Vec<i128>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(38, 10)
                .unwrap_or_else(|_| Decimal128Array::from(Vec::<i128>::new())),
        )
    };
    let dec_opt = |v: Vec<Option<i128>>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(38, 10)
                .unwrap_or_else(|_| Decimal128Array::from(Vec::<i128>::new())),
        )
    };
    let fl = |a: ArrayRef| filter(&a, &mask).map_err(|e| Error::input(path, e.to_string()));
    let columns: Vec<ArrayRef> = vec![
        fl(Arc::new(UInt64Array::from(chunk.rows.clone())))?,
        text_col(Field::UsageAccount)?,
        fl(Arc::new(UInt8Array::from(line_types)))?,
        text_col(Field::ProductCode)?,
        text_col(Field::UsageType)?,
        text_col(Field::Operation)?,
        text_col(Field::Region)?,
        text_col(Field::BillingEntity)?,
        fl(dec(usage))?,
        fl(dec_opt(rate))?,
        fl(dec_opt(pcost))?,
        fl(dec_opt(unb))?,
        fl(dec_opt(net))?,
    ];
    let batch = RecordBatch::try_new(normalized_schema(), columns)
        .map_err(|e| Error::input(path, e.to_string()))?;
    Ok(NormalizedBatch {
        batch,
        rated_unblended,
        quarantined,
    })
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
