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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

fn text_value(d: &Option<TextColumn>, i: usize) -> &str {
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
            // Straight over the keys and their validity bits (an iterator of `Option`s
            // collected into an array cost about 50 instructions a row).
            let keys = d.keys();
            let keys: Vec<i32> = match keys.nulls() {
                Some(nulls) => keys
                    .values()
                    .iter()
                    .zip(nulls.iter())
                    .map(|(&k, valid)| if valid { k } else { empty })
                    .collect(),
                None => keys.values().to_vec(),
            };
            DictionaryArray::try_new(
                Int32Array::from(keys),
                Arc::new(StringArray::from(new_values)) as ArrayRef,
            )?
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
    let mut warnings = Vec::new();
    prepare_columns(path, map, &mut chunk, check, &mut warnings)?;
    let num = std::mem::take(&mut chunk.num);
    let mut keep = vec![true; n];
    let mut quarantined: Vec<Quarantined> = Vec::new();
    let mut rated_unblended: i128 = 0;
    let mut line_types = vec![0u8; n];
    {
        let rows = RowChecks::new(map, &chunk, &num, check);
        let excluded = check.excluded.get(path);
        let unblended = num[f(Field::UnblendedCost)].as_ref();
        let account_text = &chunk.text[f(Field::UsageAccount)];
        // Without rows repeated by a later delivery, most rows pass on the column-wise checks.
        let passing = match excluded {
            None => rows.passing(n),
            Some(_) => vec![RowChecks::UNDECIDED; n],
        };
        let overflow = || Error::Overflow(format!("summing {}", path.display()));
        // Every row passed the column checks (most chunks): nothing to do row by row.
        let all_pass = passing.iter().all(|&p| p != RowChecks::UNDECIDED);
        if all_pass {
            rated_unblended = unblended
                .map_or(Some(0), NumColumn::sum)
                .ok_or_else(overflow)?;
        }
        let rows_to_check = if all_pass { 0 } else { n };
        for i in 0..rows_to_check {
            // A row that a later delivery repeats; otherwise every check in turn.
            let verdict = match LineType::from_code(passing[i]) {
                Some(lt) => Ok(lt),
                None => match excluded.and_then(|m| m.get(&chunk.rows[i])) {
                    Some(reason) => Err(Reject::new(String::new(), String::new(), reason.clone())),
                    None => rows.verdict(i),
                },
            };
            match verdict {
                Ok(lt) => {
                    line_types[i] = lt as u8;
                    rated_unblended = rated_unblended
                        .checked_add(unblended.and_then(|c| c.get(i)).unwrap_or(0))
                        .ok_or_else(overflow)?;
                }
                Err(r) => {
                    keep[i] = false;
                    quarantined.push(Quarantined {
                        file: path.to_path_buf(),
                        row: chunk.rows[i],
                        line: chunk.lines.get(i).copied(),
                        column: r.column,
                        value: r.value,
                        reason: r.reason,
                        unblended: unblended.and_then(|c| c.get(i)),
                        account: text_value(account_text, i).to_string(),
                    });
                }
            }
        }
        if all_pass {
            line_types = passing;
        }
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
    for (row, line, column, reason) in std::mem::take(&mut chunk.broken) {
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
    let mask = (!quarantined.is_empty()).then(|| BooleanArray::from(keep));
    let rows = std::mem::take(&mut chunk.rows);
    let kept = Kept {
        chunk: &chunk,
        mask: mask.as_ref(),
        path,
        n,
    };
    let batch = kept.batch(rows, num, line_types, effective)?;
    Ok(NormalizedBatch {
        batch,
        rated_unblended,
        quarantined,
        identity,
        warnings,
    })
}

/// A field's index in a raw chunk's column arrays.
fn f(x: Field) -> usize {
    x as usize
}

/// Maps FOCUS columns onto CUR's terms and pads short account ids, before any row is checked.
fn prepare_columns(
    path: &Path,
    map: &ColumnMap,
    chunk: &mut RawChunk,
    check: &OrgCheck,
    warnings: &mut Vec<String>,
) -> Result<()> {
    if map.dialect == Dialect::Focus {
        focus_columns(chunk, map, check, warnings)
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
    Ok(())
}

/// Why a row is quarantined: the column, its value and the reason.
struct Reject {
    column: String,
    value: String,
    reason: String,
}

impl Reject {
    fn new(column: String, value: String, reason: String) -> Reject {
        Reject {
            column,
            value,
            reason,
        }
    }
}

/// Per row, its value's code in `codes` (by dictionary key), [`RowChecks::UNDECIDED`]
/// where the cell is null or the key has no code.
fn by_key(d: &TextColumn, codes: &[u8]) -> Vec<u8> {
    let code = |k: i32| {
        codes
            .get(k as usize)
            .copied()
            .unwrap_or(RowChecks::UNDECIDED)
    };
    let mut out: Vec<u8> = d.keys().values().iter().map(|&k| code(k)).collect();
    if let Some(nulls) = d.nulls().filter(|m| m.null_count() > 0) {
        for (p, valid) in out.iter_mut().zip(nulls.iter()) {
            if !valid {
                *p = RowChecks::UNDECIDED;
            }
        }
    }
    out
}

/// Marks [`RowChecks::UNDECIDED`] each row of `pass` whose value's verdict in `ok`
/// (by dictionary key) is not true; a null cell passes when `null_passes`. One loop
/// over the keys; the validity is read per row only when the column has nulls.
fn refuse_where_not(pass: &mut [u8], d: &TextColumn, ok: &[bool], null_passes: bool) {
    let keys = d.keys().values();
    let allowed = |k: i32| ok.get(k as usize).copied().unwrap_or(false);
    match d.nulls().filter(|m| m.null_count() > 0) {
        None => {
            for (p, &k) in pass.iter_mut().zip(keys.iter()) {
                if !allowed(k) {
                    *p = RowChecks::UNDECIDED;
                }
            }
        }
        Some(nulls) => {
            for ((p, &k), valid) in pass.iter_mut().zip(keys.iter()).zip(nulls.iter()) {
                if (valid && !allowed(k)) || (!valid && !null_passes) {
                    *p = RowChecks::UNDECIDED;
                }
            }
        }
    }
}

/// A chunk's row checks: verdicts on text computed once per distinct value, then looked up per row.
struct RowChecks<'c> {
    map: &'c ColumnMap,
    chunk: &'c RawChunk,
    num: &'c [Option<NumColumn>; FIELDS],
    check: &'c OrgCheck,
    providers: Option<&'c TextColumn>,
    provider_ok: Vec<bool>,
    accounts: Option<&'c TextColumn>,
    account_ok: Vec<bool>,
    payers: Option<&'c TextColumn>,
    payer_ok: Vec<bool>,
    types: Option<&'c TextColumn>,
    type_of: Vec<Option<LineType>>,
    currencies: Option<&'c TextColumn>,
    currency_ok: Vec<bool>,
    /// The billing period column, else usage start, and its text verdicts.
    period_col: Option<(Field, &'c PeriodColumn)>,
    text_periods: Vec<Option<BillingPeriod>>,
    period_micros: (i64, i64),
    any_bad_numbers: bool,
}

impl<'c> RowChecks<'c> {
    /// In [`RowChecks::passing`]: the row's verdict is left to [`RowChecks::verdict`].
    const UNDECIDED: u8 = u8::MAX;

    fn new(
        map: &'c ColumnMap,
        chunk: &'c RawChunk,
        num: &'c [Option<NumColumn>; FIELDS],
        check: &'c OrgCheck,
    ) -> RowChecks<'c> {
        let text = |x: Field| chunk.text[f(x)].as_ref();
        let (providers, accounts, payers) = (
            text(Field::Provider),
            text(Field::UsageAccount),
            text(Field::Payer),
        );
        let (types, currencies) = (text(Field::LineType), text(Field::Currency));
        let period_col = [Field::BillingPeriodStart, Field::UsageStart]
            .iter()
            .find_map(|&pf| chunk.period[f(pf)].as_ref().map(|c| (pf, c)));
        RowChecks {
            map,
            chunk,
            num,
            check,
            provider_ok: providers
                .map(|d| per_value(d, is_aws_provider))
                .unwrap_or_default(),
            account_ok: accounts
                .map(|d| per_value(d, |v| check.accounts.contains(v)))
                .unwrap_or_default(),
            payer_ok: payers
                .map(|d| {
                    per_value(d, |v| {
                        let v = AccountId::padded_text(v).unwrap_or_else(|| v.trim().to_string());
                        check.payers.0.contains(&v)
                    })
                })
                .unwrap_or_default(),
            type_of: types
                .map(|d| per_value(d, LineType::parse))
                .unwrap_or_default(),
            currency_ok: currencies
                .map(|d| per_value(d, |v| v.is_empty() || v == check.currency))
                .unwrap_or_default(),
            text_periods: match period_col {
                Some((_, PeriodColumn::Text(d))) => per_value(d, period_from_text),
                _ => Vec::new(),
            },
            providers,
            accounts,
            payers,
            types,
            currencies,
            period_col,
            period_micros: check.period_micros(),
            any_bad_numbers: num.iter().flatten().any(|c| !c.bad.is_empty()),
        }
    }

    /// Per row, the line item type code of the rows that pass every check, else
    /// [`RowChecks::UNDECIDED`]; column by column, each check one tight loop over a
    /// key column. It never passes a row that [`RowChecks::verdict`] refuses and
    /// leaves those it cannot decide cheaply to it (all, when a cell did not parse).
    fn passing(&self, n: usize) -> Vec<u8> {
        const NO: u8 = RowChecks::UNDECIDED;
        let (Some(types), Some(accounts)) = (self.types, self.accounts) else {
            return vec![NO; n];
        };
        if self.any_bad_numbers {
            return vec![NO; n];
        }
        let codes: Vec<u8> = self
            .type_of
            .iter()
            .map(|t| t.map_or(NO, |lt| lt as u8))
            .collect();
        let mut pass: Vec<u8> = by_key(types, &codes);
        refuse_where_not(&mut pass, accounts, &self.account_ok, false);
        if let Some(d) = self.payers {
            refuse_where_not(&mut pass, d, &self.payer_ok, false);
        }
        match self.period_col {
            None => {}
            Some((_, PeriodColumn::Micros(v))) => {
                let (from, to) = self.period_micros;
                for (p, m) in pass.iter_mut().zip(v) {
                    if !m.is_some_and(|m| m >= from && m < to) {
                        *p = NO;
                    }
                }
            }
            Some((_, PeriodColumn::Text(d))) => {
                let period = Some(self.check.period);
                let in_period: Vec<bool> = self.text_periods.iter().map(|p| *p == period).collect();
                refuse_where_not(&mut pass, d, &in_period, false);
            }
        }
        if let Some(d) = self.currencies {
            // A null currency passes (the verdict's rule); a known one must be the org's.
            refuse_where_not(&mut pass, d, &self.currency_ok, true);
        }
        self.amounts_pass(&mut pass);
        pass
    }

    /// [`RowChecks::UNDECIDED`] where [`RowChecks::amounts`] could refuse the row.
    fn amounts_pass(&self, pass: &mut [u8]) {
        const NO: u8 = RowChecks::UNDECIDED;
        let num = |x: Field| self.num[f(x)].as_ref();
        let undecided = |p: &mut u8| *p = NO;
        match num(Field::UnblendedCost) {
            None if self.check.require_billed_cost => pass.iter_mut().for_each(undecided),
            None => {}
            Some(c) => {
                for (i, p) in pass.iter_mut().enumerate() {
                    let Some(lt) = LineType::from_code(*p) else {
                        continue;
                    };
                    let ok = match c.get(i) {
                        None => !self.check.require_billed_cost,
                        Some(v) => match lt.cost_sign() {
                            CostSign::NotNegative => v >= 0,
                            CostSign::NotPositive => v <= 0,
                            CostSign::Either => true,
                        },
                    };
                    if !ok {
                        *p = NO;
                    }
                }
            }
        }
        if let Some(c) = num(Field::PublicRate) {
            for (i, p) in pass.iter_mut().enumerate() {
                if c.get(i).is_some_and(|r| r < 0) {
                    *p = NO;
                }
            }
        }
        if let Some(c) = num(Field::UsageAmount) {
            let usage = LineType::Usage as u8;
            for (i, p) in pass.iter_mut().enumerate() {
                if *p == usage && c.get(i).is_some_and(|u| u < 0) {
                    *p = NO;
                }
            }
        }
    }

    /// The row's line item type if it may be rated, else why not (the first check it fails).
    #[inline]
    fn verdict(&self, i: usize) -> std::result::Result<LineType, Reject> {
        self.account(i)?;
        self.payer(i)?;
        let lt = self.line_type(i)?;
        self.period(i)?;
        self.currency(i)?;
        self.amounts(i, lt)?;
        Ok(lt)
    }

    fn reject(&self, field: Field, value: String, reason: String) -> Reject {
        Reject::new(self.map.name(field), value, reason)
    }

    fn text(&self, field: Field, i: usize) -> &'c str {
        text_value(&self.chunk.text[f(field)], i)
    }

    /// The usage account is the org's. A row of another cloud (FOCUS files of several
    /// clouds) is not on an account of the org; one that is (a reseller's own charge on
    /// the org's account, e.g. billxfer's custom line items fed back) is billed (docs/INPUTS.md).
    #[inline]
    fn account(&self, i: usize) -> std::result::Result<(), Reject> {
        if self
            .accounts
            .and_then(|d| key_at(d, i))
            .is_some_and(|k| self.account_ok[k])
        {
            return Ok(());
        }
        if let Some(k) = self.providers.and_then(|d| key_at(d, i)) {
            if !self.provider_ok[k] {
                let p = self.text(Field::Provider, i).to_string();
                let reason = format!("provider {p} is not AWS: billxfer bills AWS charges only");
                return Err(self.reject(Field::Provider, p, reason));
            }
        }
        let account = self.text(Field::UsageAccount, i);
        let reason = if account.is_empty() {
            "missing usage account id".to_string()
        } else {
            format!(
                "usage account {account} is not an account of {}",
                self.check.label
            )
        };
        Err(self.reject(Field::UsageAccount, account.to_string(), reason))
    }

    /// A row paid by another account is not part of this transfer.
    #[inline]
    fn payer(&self, i: usize) -> std::result::Result<(), Reject> {
        let Some(d) = self.payers else {
            return Ok(());
        };
        if key_at(d, i).is_some_and(|k| self.payer_ok[k]) {
            return Ok(());
        }
        let payer = self.text(Field::Payer, i).to_string();
        let reason = if payer.is_empty() {
            "missing payer account id".to_string()
        } else {
            format!("payer {payer} is {}", self.check.payers.1)
        };
        Err(self.reject(Field::Payer, payer, reason))
    }

    #[inline]
    fn line_type(&self, i: usize) -> std::result::Result<LineType, Reject> {
        if let Some(lt) = self
            .types
            .and_then(|d| key_at(d, i))
            .and_then(|k| self.type_of[k])
        {
            return Ok(lt);
        }
        let lt_text = self.text(Field::LineType, i);
        Err(self.reject(
            Field::LineType,
            lt_text.to_string(),
            format!("unknown line item type `{lt_text}`: billxfer does not guess how to bill it (known types are listed in docs/DOMAIN.md)"),
        ))
    }

    /// The line is for the period being run: billing period column first, else usage start.
    #[inline]
    fn period(&self, i: usize) -> std::result::Result<(), Reject> {
        let Some((pf, column)) = self.period_col else {
            return Ok(());
        };
        let period = self.check.period;
        let outside = |p: String| {
            let reason =
                format!("the line is for {p}, outside the billing period {period} being run");
            (p, reason)
        };
        let missing = || (String::new(), "missing billing period date".to_string());
        let verdict: std::result::Result<(), (String, String)> = match column {
            PeriodColumn::Micros(v) => match v[i] {
                Some(m) if m >= self.period_micros.0 && m < self.period_micros.1 => Ok(()),
                Some(m) => Err(outside(
                    BillingPeriod::from_unix_micros(m)
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| format!("{m} µs since 1970")),
                )),
                None => Err(missing()),
            },
            PeriodColumn::Text(d) => match key_at(d, i) {
                None => Err(missing()),
                Some(k) => match self.text_periods[k] {
                    Some(p) if p == period => Ok(()),
                    Some(p) => Err(outside(p.to_string())),
                    None => {
                        let t = dict_values(d).value(k).trim().to_string();
                        if t.is_empty() {
                            Err((t, "missing billing period date".into()))
                        } else {
                            Err((
                                t,
                                "not a date: expected ISO 8601 such as 2026-03-01T00:00:00Z".into(),
                            ))
                        }
                    }
                },
            },
        };
        verdict.map_err(|(value, reason)| self.reject(pf, value, reason))
    }

    #[inline]
    fn currency(&self, i: usize) -> std::result::Result<(), Reject> {
        let Some(d) = self.currencies else {
            return Ok(());
        };
        match key_at(d, i) {
            Some(k) if !self.currency_ok[k] => {
                let c = dict_values(d).value(k).to_string();
                let reason = format!(
                    "currency {c} differs from {}'s billing currency {}",
                    self.check.label, self.check.currency
                );
                Err(self.reject(Field::Currency, c, reason))
            }
            _ => Ok(()),
        }
    }

    /// Amounts parse, are present where needed and have the sign the line item type allows.
    #[inline]
    fn amounts(&self, i: usize, lt: LineType) -> std::result::Result<(), Reject> {
        let num = |x: Field| self.num[f(x)].as_ref();
        if self.any_bad_numbers {
            let bad = [
                Field::UsageAmount,
                Field::UnblendedCost,
                Field::PublicRate,
                Field::PublicCost,
                Field::NetUnblendedCost,
            ]
            .iter()
            .find_map(|&fl| num(fl).and_then(|c| c.bad_at(i)).map(|b| (fl, b)));
            if let Some((fl, (_, text, e))) = bad {
                return Err(self.reject(fl, text.clone(), format!("not a usable amount: {e}")));
            }
        }
        let cost = num(Field::UnblendedCost).and_then(|c| c.get(i));
        if cost.is_none() && self.check.require_billed_cost {
            return Err(self.reject(Field::UnblendedCost, String::new(), "missing amount".into()));
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
                return Err(self.reject(Field::UnblendedCost, format_fixed_exact(c), reason));
            }
        }
        if let Some(r) = num(Field::PublicRate)
            .and_then(|c| c.get(i))
            .filter(|r| *r < 0)
        {
            return Err(self.reject(
                Field::PublicRate,
                format_fixed_exact(r),
                "a public rate cannot be negative".into(),
            ));
        }
        let usage = num(Field::UsageAmount).and_then(|c| c.get(i)).unwrap_or(0);
        if lt == LineType::Usage && usage < 0 {
            return Err(self.reject(
                Field::UsageAmount,
                format_fixed_exact(usage),
                "a Usage line cannot have a negative usage amount".into(),
            ));
        }
        Ok(())
    }
}

/// The kept rows of a chunk, for building the normalized batch.
struct Kept<'k> {
    chunk: &'k RawChunk,
    /// `None` when every row is kept.
    mask: Option<&'k BooleanArray>,
    path: &'k Path,
    n: usize,
}

impl Kept<'_> {
    fn err(&self, e: arrow::error::ArrowError) -> Error {
        Error::input(self.path, e.to_string())
    }

    fn filtered(&self, a: ArrayRef) -> Result<ArrayRef> {
        match self.mask {
            None => Ok(a),
            Some(m) => filter(&a, m).map_err(|e| self.err(e)),
        }
    }

    /// A number column: a value column is non-null (0 where absent), an optional one keeps nulls.
    fn decimals(&self, c: Option<NumColumn>, nullable: bool) -> Result<ArrayRef> {
        let n = self.n;
        let a = match c {
            None if nullable => Decimal128Array::new_null(n),
            None => Decimal128Array::from(vec![0i128; n]),
            Some(c) => {
                // Packed straight into bits, without a `Vec<bool>` in between.
                let nulls =
                    (nullable && c.state.iter().any(|s| *s != NumState::Value)).then(|| {
                        arrow::buffer::NullBuffer::new(arrow::buffer::BooleanBuffer::collect_bool(
                            c.state.len(),
                            |i| c.state[i] == NumState::Value,
                        ))
                    });
                Decimal128Array::new(c.values.into(), nulls)
            }
        };
        self.filtered(Arc::new(
            a.with_precision_and_scale(38, 10)
                .map_err(|e| self.err(e))?,
        ))
    }

    fn text(&self, field: Field) -> Result<ArrayRef> {
        normalized_text(&self.chunk.text[f(field)], self.n, self.mask).map_err(|e| self.err(e))
    }

    /// The normalized batch of the kept rows.
    fn batch(
        &self,
        rows: Vec<u64>,
        mut num: [Option<NumColumn>; FIELDS],
        line_types: Vec<u8>,
        effective: Vec<i128>,
    ) -> Result<RecordBatch> {
        let mut take = |x: Field| num[f(x)].take();
        let (usage, rate, public_cost, unblended, net) = (
            take(Field::UsageAmount),
            take(Field::PublicRate),
            take(Field::PublicCost),
            take(Field::UnblendedCost),
            take(Field::NetUnblendedCost),
        );
        let columns: Vec<ArrayRef> = vec![
            self.filtered(Arc::new(UInt64Array::from(rows)))?,
            self.text(Field::UsageAccount)?,
            self.filtered(Arc::new(UInt8Array::from(line_types)))?,
            self.text(Field::ProductCode)?,
            self.text(Field::UsageType)?,
            self.text(Field::Operation)?,
            self.text(Field::Region)?,
            self.text(Field::BillingEntity)?,
            self.decimals(usage, false)?,
            self.decimals(rate, true)?,
            self.decimals(public_cost, true)?,
            self.decimals(unblended, true)?,
            self.decimals(net, true)?,
            self.filtered(Arc::new(
                Decimal128Array::from(effective)
                    .with_precision_and_scale(38, 10)
                    .map_err(|e| self.err(e))?,
            ))?,
        ];
        RecordBatch::try_new(normalized_schema(), columns).map_err(|e| self.err(e))
    }
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

#[cfg(test)]
mod tests;
