//! Streaming roll-ups of the exports (`--granularity daily|monthly`): a hash
//! aggregate over arrow-rs batches, fed by the export pass as it builds rows.
//!
//! Each key column's distinct values are interned (text by value, other types
//! by their arrow row-format bytes) and a group is keyed by its tuple of value
//! ids; a hash map finds a row's group. Metrics are summed exactly, as i128 at
//! 10 decimals, with a count of non-null cells (a group whose metric is null on
//! every row stays null). Memory holds the groups and the distinct values: no
//! staging file, no whole-file read. At the end the groups are sorted by key in
//! arrow's row-format order (each column's values in order, nulls first, column
//! by column), so re-runs are byte-identical.
//!
//! What rolls up (docs/EXPORTS.md, "Granularity"): line-only columns and nested
//! columns (maps, lists, structs) are dropped; the metrics are summed; the start
//! column is truncated to the UTC day (daily) or replaced by the billing period
//! start (monthly); the end column becomes the latest end of the group (daily)
//! or the period end (monthly); every other column is a group key.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch, UInt32Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, SortField};
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// Row granularity of the exports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One row per input row (plus custom line items).
    Line,
    /// Rolled up per day by the grouping keys.
    Daily,
    /// Rolled up per month by the grouping keys.
    Monthly,
}

/// FOCUS metric columns summed by a roll-up.
pub const FOCUS_METRICS: &[&str] = &[
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "PricingQuantity",
    "ConsumedQuantity",
    "CommitmentDiscountQuantity",
    "PricingCurrencyEffectiveCost",
];

/// Columns that identify a single line and are dropped by a roll-up.
pub const LINE_ONLY: &[&str] = &[
    "identity_line_item_id",
    "identity_time_interval",
    "line_item_resource_id",
    "line_item_unblended_rate",
    "line_item_blended_rate",
    "line_item_net_unblended_rate",
    "pricing_public_on_demand_rate",
    "savings_plan_savings_plan_rate",
    "ResourceId",
    "ResourceName",
    "ResourceType",
];

/// The scale of every metric: amounts are fixed point at 10 decimals.
const METRIC_SCALE: i8 = 10;

/// What a rolled-up row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// One UTC day.
    Day,
    /// The billing period.
    Month,
}

impl Per {
    /// The roll-up of a granularity; `None` for line-level exports.
    pub fn of(g: Granularity) -> Option<Per> {
        match g {
            Granularity::Line => None,
            Granularity::Daily => Some(Per::Day),
            Granularity::Monthly => Some(Per::Month),
        }
    }
}

/// Which columns are summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metrics {
    /// These columns (FOCUS), where present.
    Named(&'static [&'static str]),
    /// Every Decimal128 column (CUR, whose doubles are staged as exact decimals).
    Decimals,
}

/// How a dataset rolls up: the metrics and the names of its date columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollUpSpec {
    /// Day or month.
    pub per: Per,
    /// Summed columns.
    pub metrics: Metrics,
    /// Start of a line's charge period (truncated, or replaced by `period_start`).
    pub start: &'static str,
    /// End of a line's charge period (the group's latest, or `period_end`).
    pub end: &'static str,
    /// The billing period's start column.
    pub period_start: &'static str,
    /// The billing period's end column.
    pub period_end: &'static str,
    /// The cost column whose total must equal the invoice's.
    pub cost: &'static str,
}

impl RollUpSpec {
    /// A FOCUS dataset (customer or partner).
    pub fn focus(per: Per) -> RollUpSpec {
        RollUpSpec {
            per,
            metrics: Metrics::Named(FOCUS_METRICS),
            start: "ChargePeriodStart",
            end: "ChargePeriodEnd",
            period_start: "BillingPeriodStart",
            period_end: "BillingPeriodEnd",
            cost: "BilledCost",
        }
    }

    /// A CUR 2.0 dataset.
    pub fn cur(per: Per) -> RollUpSpec {
        RollUpSpec {
            per,
            metrics: Metrics::Decimals,
            start: "line_item_usage_start_date",
            end: "line_item_usage_end_date",
            period_start: "bill_billing_period_start_date",
            period_end: "bill_billing_period_end_date",
            cost: "line_item_unblended_cost",
        }
    }
}

/// Where a group key's values come from.
#[derive(Debug, Clone)]
enum KeySource {
    /// An input column as it is.
    Column(usize),
    /// A timestamp column truncated to its UTC day (`units` per day).
    Day(usize, i64),
    /// Another timestamp column (the period start), in the start column's type.
    Replaced(usize, DataType),
}

/// What an output column is.
#[derive(Debug, Clone, Copy)]
enum Out {
    Key(usize),
    Metric(usize),
    End,
}

fn arrow_err(e: arrow::error::ArrowError) -> Error {
    Error::Internal(format!("rolling up an export: {e}"))
}

fn internal(what: String) -> Error {
    Error::Internal(format!("rolling up an export: {what}"))
}

fn units_per_day(t: &DataType) -> Option<i64> {
    match t {
        DataType::Timestamp(TimeUnit::Second, _) => Some(86_400),
        DataType::Timestamp(TimeUnit::Millisecond, _) => Some(86_400_000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Some(86_400_000_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Some(86_400_000_000_000),
        _ => None,
    }
}

/// A timestamp column's raw values.
fn raw_i64(a: &ArrayRef) -> Result<ArrayRef> {
    cast(a, &DataType::Int64).map_err(arrow_err)
}

/// The distinct values of one key column, each with a dense id (in order of first sight).
enum KeyDict {
    /// Utf8 text, interned by value (no encoding per row); null has an id of its own.
    Text {
        ids: FxHashMap<Box<str>, u32>,
        values: Vec<Option<Box<str>>>,
        null: Option<u32>,
    },
    /// Any other type (timestamps, decimals, …), interned by its arrow row-format bytes.
    Encoded {
        converter: RowConverter,
        ids: FxHashMap<Box<[u8]>, u32>,
        values: Vec<Box<[u8]>>,
    },
}

impl KeyDict {
    fn new(t: &DataType) -> Result<KeyDict> {
        Ok(match t {
            DataType::Utf8 => KeyDict::Text {
                ids: FxHashMap::default(),
                values: Vec::new(),
                null: None,
            },
            _ => KeyDict::Encoded {
                converter: RowConverter::new(vec![SortField::new(t.clone())]).map_err(arrow_err)?,
                ids: FxHashMap::default(),
                values: Vec::new(),
            },
        })
    }

    fn len(&self) -> usize {
        match self {
            KeyDict::Text { values, .. } => values.len(),
            KeyDict::Encoded { values, .. } => values.len(),
        }
    }

    fn next_id(&self) -> Result<u32> {
        u32::try_from(self.len()).map_err(|_| internal("more than 2^32 key values".into()))
    }

    fn text_id(&mut self, v: Option<&str>) -> Result<u32> {
        let next = self.next_id()?;
        let KeyDict::Text { ids, values, null } = self else {
            return Err(internal("a text value in a non-text key".into()));
        };
        Ok(match v {
            None => *null.get_or_insert_with(|| {
                values.push(None);
                next
            }),
            Some(v) => match ids.get(v) {
                Some(&id) => id,
                None => {
                    ids.insert(Box::from(v), next);
                    values.push(Some(Box::from(v)));
                    next
                }
            },
        })
    }

    fn encoded_id(&mut self, v: &[u8]) -> Result<u32> {
        let next = self.next_id()?;
        let KeyDict::Encoded { ids, values, .. } = self else {
            return Err(internal("encoded bytes in a text key".into()));
        };
        Ok(match ids.get(v) {
            Some(&id) => id,
            None => {
                ids.insert(Box::from(v), next);
                values.push(Box::from(v));
                next
            }
        })
    }

    /// The id of each value of `a`, appended to `out`.
    fn ids(&mut self, a: &ArrayRef, out: &mut Vec<u32>) -> Result<()> {
        match self {
            KeyDict::Text { .. } => {
                let s = a
                    .as_string_opt::<i32>()
                    .ok_or_else(|| internal(format!("a {} key column, not text", a.data_type())))?;
                // Neighbouring rows often share a value: one comparison instead of a lookup.
                let mut last: Option<(Option<&str>, u32)> = None;
                for v in s.iter() {
                    let id = match last {
                        Some((l, id)) if l == v => id,
                        _ => self.text_id(v)?,
                    };
                    last = Some((v, id));
                    out.push(id);
                }
            }
            KeyDict::Encoded { converter, .. } => {
                let rows = converter
                    .convert_columns(std::slice::from_ref(a))
                    .map_err(arrow_err)?;
                let mut last: Option<(&[u8], u32)> = None;
                for r in rows.iter() {
                    let b = r.data();
                    let id = match last {
                        Some((l, id)) if l == b => id,
                        _ => self.encoded_id(b)?,
                    };
                    last = Some((b, id));
                    out.push(id);
                }
            }
        }
        Ok(())
    }

    /// The distinct values, in id order.
    fn array(&self) -> Result<ArrayRef> {
        match self {
            KeyDict::Text { values, .. } => Ok(Arc::new(
                values
                    .iter()
                    .map(|v| v.as_deref())
                    .collect::<arrow::array::StringArray>(),
            )),
            KeyDict::Encoded {
                converter, values, ..
            } => {
                let parser = converter.parser();
                let mut cols = converter
                    .convert_rows(values.iter().map(|b| parser.parse(b)))
                    .map_err(arrow_err)?;
                cols.pop()
                    .ok_or_else(|| internal("a key column missing".into()))
            }
        }
    }

    /// Each of `other`'s ids as an id of this column (values `self` lacks are added).
    fn translate(&mut self, other: &KeyDict) -> Result<Vec<u32>> {
        match other {
            KeyDict::Text { values, .. } => {
                values.iter().map(|v| self.text_id(v.as_deref())).collect()
            }
            KeyDict::Encoded { values, .. } => values.iter().map(|v| self.encoded_id(v)).collect(),
        }
    }
}

/// A streaming roll-up of one dataset: `push` its batches, then `finish`.
///
/// A group's key is the tuple of its key columns' value ids (4 bytes a column,
/// whatever the text), so memory holds the groups and each column's distinct
/// values. At `finish`, each column's values are ranked by arrow's row format
/// (order-preserving: the order of the values, nulls first) and the groups sorted
/// by their tuples of ranks, column by column: the order of the groups'
/// concatenated row-format keys.
pub struct RollUp {
    spec: RollUpSpec,
    input: SchemaRef,
    output: SchemaRef,
    plan: Vec<Out>,
    keys: Vec<KeySource>,
    dicts: Vec<KeyDict>,
    /// Input columns of the metrics, and their names.
    metric_cols: Vec<usize>,
    metric_names: Vec<String>,
    /// Input column whose maximum is the group's end (the end, or the period end), and its type.
    end_src: Option<(usize, DataType)>,
    /// Key (one value id per key column) → group index.
    groups: FxHashMap<Box<[u32]>, u32>,
    /// Per group × metric: Σ of the non-null cells, and whether there were any
    /// (a count, saturating).
    sums: Vec<i128>,
    counts: Vec<u32>,
    /// Per group: the latest end.
    ends: Vec<Option<i64>>,
}

impl std::fmt::Debug for RollUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollUp")
            .field("spec", &self.spec)
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl RollUp {
    /// A roll-up of batches of `schema`.
    pub fn new(schema: SchemaRef, spec: RollUpSpec) -> Result<RollUp> {
        let idx = |n: &str| schema.index_of(n).ok();
        let start = idx(spec.start);
        let end = idx(spec.end);
        let has_dates = start.is_some() && end.is_some();
        let timestamp = |i: usize| -> Result<DataType> {
            let t = schema.field(i).data_type();
            match t {
                DataType::Timestamp(_, _) => Ok(t.clone()),
                _ => Err(internal(format!(
                    "{} is {t}, not a timestamp",
                    schema.field(i).name()
                ))),
            }
        };
        if start.is_some() && end.is_none() {
            return Err(internal(format!("{} without {}", spec.start, spec.end)));
        }
        let end_src = match (has_dates, spec.per) {
            (false, _) => None,
            (true, Per::Day) => end.map(|e| timestamp(e).map(|t| (e, t))).transpose()?,
            (true, Per::Month) => {
                let e = idx(spec.period_end)
                    .ok_or_else(|| internal(format!("no {} column", spec.period_end)))?;
                Some((e, timestamp(e)?))
            }
        };
        let mut plan = Vec::new();
        let mut out_fields: Vec<Field> = Vec::new();
        let mut keys = Vec::new();
        let mut dicts = Vec::new();
        let mut metric_cols = Vec::new();
        let mut metric_names = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            let n = f.name().as_str();
            let t = f.data_type();
            if LINE_ONLY.contains(&n) || t.is_nested() {
                continue;
            }
            if n == spec.end {
                if has_dates {
                    plan.push(Out::End);
                    out_fields.push(f.as_ref().clone());
                }
                continue;
            }
            let is_metric = match spec.metrics {
                Metrics::Named(names) => names.contains(&n),
                Metrics::Decimals => matches!(t, DataType::Decimal128(_, _)),
            };
            if is_metric {
                if !matches!(t, DataType::Decimal128(_, METRIC_SCALE)) {
                    return Err(internal(format!(
                        "metric {n} is {t}, not Decimal128(_, 10)"
                    )));
                }
                plan.push(Out::Metric(metric_cols.len()));
                metric_cols.push(i);
                metric_names.push(n.to_string());
                out_fields.push(f.as_ref().clone());
                continue;
            }
            let source = if Some(i) == start {
                let t = timestamp(i)?;
                match spec.per {
                    Per::Day => KeySource::Day(i, units_per_day(&t).unwrap_or(1)),
                    Per::Month => {
                        let p = idx(spec.period_start)
                            .ok_or_else(|| internal(format!("no {} column", spec.period_start)))?;
                        timestamp(p)?;
                        KeySource::Replaced(p, t)
                    }
                }
            } else {
                KeySource::Column(i)
            };
            plan.push(Out::Key(keys.len()));
            keys.push(source);
            dicts.push(KeyDict::new(t)?);
            out_fields.push(f.as_ref().clone());
        }
        Ok(RollUp {
            spec,
            input: schema,
            output: Arc::new(Schema::new(out_fields)),
            plan,
            keys,
            dicts,
            metric_cols,
            metric_names,
            end_src,
            groups: FxHashMap::default(),
            sums: Vec::new(),
            counts: Vec::new(),
            ends: Vec::new(),
        })
    }

    /// How this roll-up groups and sums.
    pub fn spec(&self) -> &RollUpSpec {
        &self.spec
    }

    /// The schema of the rolled-up rows: the input's columns in order, minus the
    /// dropped ones, with the input's types.
    pub fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    /// The summed columns, in output order.
    pub fn metric_names(&self) -> &[String] {
        &self.metric_names
    }

    /// Groups so far.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The group of a key, new if need be.
    fn group(&mut self, key: &[u32]) -> Result<usize> {
        if let Some(&g) = self.groups.get(key) {
            return Ok(g as usize);
        }
        let g = u32::try_from(self.groups.len())
            .map_err(|_| internal("more than 2^32 groups".into()))?;
        let m = self.metric_cols.len();
        self.sums.resize(self.sums.len() + m, 0);
        self.counts.resize(self.counts.len() + m, 0);
        self.ends.push(None);
        self.groups.insert(Box::from(key), g);
        Ok(g as usize)
    }

    fn same_input(&self, schema: &Schema) -> bool {
        schema.fields().len() == self.input.fields().len()
            && schema
                .fields()
                .iter()
                .zip(self.input.fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
    }

    fn key_column(&self, k: &KeySource, batch: &RecordBatch) -> Result<ArrayRef> {
        match k {
            KeySource::Column(i) => Ok(batch.column(*i).clone()),
            KeySource::Day(i, per_day) => {
                let a = batch.column(*i);
                let raw = raw_i64(a)?;
                let d = *per_day;
                let days: Int64Array = raw
                    .as_primitive::<Int64Type>()
                    .unary(|x| x.div_euclid(d).saturating_mul(d));
                cast(&(Arc::new(days) as ArrayRef), a.data_type()).map_err(arrow_err)
            }
            KeySource::Replaced(p, t) => cast(batch.column(*p), t).map_err(arrow_err),
        }
    }

    /// Adds a batch's rows to their groups.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        if !self.same_input(batch.schema().as_ref()) {
            return Err(internal("a batch of another schema".into()));
        }
        // Value ids, column by column, then each row's tuple of ids.
        let k = self.keys.len();
        let mut ids: Vec<u32> = Vec::with_capacity(n * k);
        for c in 0..k {
            let a = self.key_column(&self.keys[c], batch)?;
            if a.len() != n {
                return Err(internal("a key column of another length".into()));
            }
            self.dicts[c].ids(&a, &mut ids)?;
        }
        let mut key = vec![0u32; k];
        let mut gid: Vec<usize> = Vec::with_capacity(n);
        for i in 0..n {
            for (c, v) in key.iter_mut().enumerate() {
                *v = ids[c * n + i];
            }
            gid.push(self.group(&key)?);
        }
        let m = self.metric_cols.len();
        let overflow = || Error::Overflow("summing a roll-up".into());
        for (j, &c) in self.metric_cols.iter().enumerate() {
            let a = batch
                .column(c)
                .as_primitive_opt::<Decimal128Type>()
                .ok_or_else(|| internal(format!("{} is not a decimal", self.metric_names[j])))?;
            let values = a.values();
            for (i, &g) in gid.iter().enumerate() {
                if a.is_valid(i) {
                    let s = g * m + j;
                    self.sums[s] = self.sums[s].checked_add(values[i]).ok_or_else(overflow)?;
                    self.counts[s] = self.counts[s].saturating_add(1);
                }
            }
        }
        if let Some((c, _)) = &self.end_src {
            let raw = raw_i64(batch.column(*c))?;
            let v = raw.as_primitive::<Int64Type>();
            for (i, &g) in gid.iter().enumerate() {
                if v.is_valid(i) {
                    let e = &mut self.ends[g];
                    let x = v.value(i);
                    *e = Some(e.map_or(x, |y| y.max(x)));
                }
            }
        }
        Ok(())
    }

    /// Adds another roll-up of the same schema and spec (e.g. of another part of
    /// the same dataset): the result is as if its rows had been pushed here.
    pub fn merge(&mut self, other: RollUp) -> Result<()> {
        if other.spec != self.spec || !self.same_input(other.input.as_ref()) {
            return Err(internal("merging roll-ups of different datasets".into()));
        }
        let trans: Vec<Vec<u32>> = self
            .dicts
            .iter_mut()
            .zip(&other.dicts)
            .map(|(d, o)| d.translate(o))
            .collect::<Result<_>>()?;
        let m = self.metric_cols.len();
        let overflow = || Error::Overflow("summing a roll-up".into());
        let mut key = vec![0u32; trans.len()];
        for (okey, og) in other.groups {
            for ((v, &o), t) in key.iter_mut().zip(okey.iter()).zip(&trans) {
                *v = t
                    .get(o as usize)
                    .copied()
                    .ok_or_else(|| internal("a key value missing".into()))?;
            }
            let g = self.group(&key)?;
            let og = og as usize;
            for j in 0..m {
                let (s, o) = (g * m + j, og * m + j);
                self.sums[s] = self.sums[s]
                    .checked_add(other.sums[o])
                    .ok_or_else(overflow)?;
                self.counts[s] = self.counts[s].saturating_add(other.counts[o]);
            }
            if let Some(x) = other.ends[og] {
                let e = &mut self.ends[g];
                *e = Some(e.map_or(x, |y| y.max(x)));
            }
        }
        Ok(())
    }

    /// Exact Σ of a metric over every row pushed (null cells count as 0).
    pub fn metric_total(&self, name: &str) -> Result<i128> {
        let j = self
            .metric_names
            .iter()
            .position(|m| m == name)
            .ok_or_else(|| internal(format!("{name} is not a metric")))?;
        let m = self.metric_cols.len();
        (0..self.groups.len()).try_fold(0i128, |a, g| {
            a.checked_add(self.sums[g * m + j])
                .ok_or_else(|| Error::Overflow("summing a roll-up".into()))
        })
    }

    /// The rolled-up rows, sorted by key, as batches of at most `batch_rows` rows
    /// handed to `sink` one at a time (memory holds the groups and one batch).
    pub fn finish_with(
        self,
        batch_rows: usize,
        mut sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let RollUp {
            output,
            plan,
            dicts,
            metric_cols,
            end_src,
            groups,
            sums,
            counts,
            ends,
            ..
        } = self;
        let m = metric_cols.len();
        // Each column's values in row-format order, and the rank of each id in it.
        let mut sorted: Vec<ArrayRef> = Vec::with_capacity(dicts.len());
        let mut ranks: Vec<Vec<u32>> = Vec::with_capacity(dicts.len());
        for d in &dicts {
            let values = d.array()?;
            let rows = RowConverter::new(vec![SortField::new(values.data_type().clone())])
                .and_then(|c| c.convert_columns(std::slice::from_ref(&values)))
                .map_err(arrow_err)?;
            let mut order: Vec<u32> = (0..values.len() as u32).collect();
            // Values are distinct, so are their rows: the unstable sort is deterministic.
            order.sort_unstable_by(|a, b| rows.row(*a as usize).cmp(&rows.row(*b as usize)));
            let mut rank = vec![0u32; order.len()];
            for (r, &id) in order.iter().enumerate() {
                rank[id as usize] = r as u32;
            }
            sorted.push(
                arrow::compute::take(&values, &UInt32Array::from(order), None)
                    .map_err(arrow_err)?,
            );
            ranks.push(rank);
        }
        let mut order: Vec<(Box<[u32]>, u32)> = groups
            .into_iter()
            .map(|(mut key, g)| {
                for (v, rank) in key.iter_mut().zip(&ranks) {
                    *v = rank.get(*v as usize).copied().unwrap_or(u32::MAX);
                }
                (key, g)
            })
            .collect();
        drop(ranks);
        // Keys are unique, so the unstable sort is deterministic.
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for chunk in order.chunks(batch_rows.max(1)) {
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(plan.len());
            for (out, f) in plan.iter().zip(output.fields()) {
                let c: ArrayRef = match *out {
                    Out::Key(k) => {
                        let values = sorted
                            .get(k)
                            .ok_or_else(|| internal("a key column missing".into()))?;
                        let at = UInt32Array::from_iter_values(chunk.iter().map(|(key, _)| key[k]));
                        let a = arrow::compute::take(values, &at, None).map_err(arrow_err)?;
                        if a.data_type() == f.data_type() {
                            a
                        } else {
                            cast(&a, f.data_type()).map_err(arrow_err)?
                        }
                    }
                    Out::Metric(j) => {
                        let (p, s) = match f.data_type() {
                            DataType::Decimal128(p, s) => (*p, *s),
                            _ => (38, METRIC_SCALE),
                        };
                        let a: Decimal128Array = chunk
                            .iter()
                            .map(|(_, g)| {
                                let i = *g as usize * m + j;
                                (counts[i] > 0).then_some(sums[i])
                            })
                            .collect();
                        Arc::new(a.with_precision_and_scale(p, s).map_err(arrow_err)?)
                    }
                    Out::End => {
                        let (_, src_type) = end_src
                            .as_ref()
                            .ok_or_else(|| internal("no end column".into()))?;
                        let raw: Int64Array =
                            chunk.iter().map(|(_, g)| ends[*g as usize]).collect();
                        let a = cast(&(Arc::new(raw) as ArrayRef), src_type).map_err(arrow_err)?;
                        if a.data_type() == f.data_type() {
                            a
                        } else {
                            cast(&a, f.data_type()).map_err(arrow_err)?
                        }
                    }
                };
                columns.push(c);
            }
            let batch = RecordBatch::try_new(output.clone(), columns).map_err(arrow_err)?;
            sink(batch)?;
        }
        Ok(())
    }

    /// The rolled-up rows, sorted by key, in batches of up to 64K rows.
    pub fn finish(self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.finish_with(65_536, |b| {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMillisecondArray};

    const ONE: i128 = 10_000_000_000;
    const H: i64 = 3_600_000;
    const DAY: i64 = 24 * H;

    /// 2026-10-01T00:00:00Z and 2026-11-01T00:00:00Z in milliseconds.
    fn oct() -> i64 {
        crate::types::BillingPeriod::parse("2026-10")
            .unwrap()
            .start_micros()
            / 1000
    }

    fn nov() -> i64 {
        oct() + 31 * DAY
    }

    fn ts() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    }

    fn dec_type() -> DataType {
        DataType::Decimal128(38, 10)
    }

    /// A FOCUS-like schema: two metrics, the four dates, a decimal key, a line-only id, a text key.
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("BilledCost", dec_type(), true),
            Field::new("BillingPeriodEnd", ts(), true),
            Field::new("BillingPeriodStart", ts(), true),
            Field::new("ChargePeriodEnd", ts(), true),
            Field::new("ChargePeriodStart", ts(), true),
            Field::new("ConsumedQuantity", dec_type(), true),
            Field::new("ListUnitPrice", dec_type(), true),
            Field::new("ResourceId", DataType::Utf8, true),
            Field::new("SubAccountId", DataType::Utf8, true),
        ]))
    }

    /// (cost, start offset from Oct 1, quantity, unit price, resource, account); lines last an hour.
    type Line = (
        i128,
        i64,
        Option<i128>,
        Option<i128>,
        &'static str,
        Option<&'static str>,
    );

    fn batch(lines: &[Line]) -> RecordBatch {
        let times = |f: &dyn Fn(&Line) -> i64| -> ArrayRef {
            Arc::new(
                lines
                    .iter()
                    .map(|l| Some(f(l)))
                    .collect::<TimestampMillisecondArray>()
                    .with_timezone("UTC"),
            )
        };
        let decs = |f: &dyn Fn(&Line) -> Option<i128>| -> ArrayRef {
            Arc::new(
                lines
                    .iter()
                    .map(f)
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            )
        };
        RecordBatch::try_new(
            schema(),
            vec![
                decs(&|l| Some(l.0)),
                times(&|_| nov()),
                times(&|_| oct()),
                times(&|l| oct() + l.1 + H),
                times(&|l| oct() + l.1),
                decs(&|l| l.2),
                decs(&|l| l.3),
                Arc::new(lines.iter().map(|l| Some(l.4)).collect::<StringArray>()),
                Arc::new(lines.iter().map(|l| l.5).collect::<StringArray>()),
            ],
        )
        .unwrap()
    }

    const HALF: i128 = ONE / 2;

    fn sample() -> Vec<Line> {
        vec![
            (ONE, H, Some(2 * ONE), Some(HALF), "i-1", Some("b")),
            (2 * ONE, 5 * H, Some(4 * ONE), Some(HALF), "i-2", Some("b")),
            (3 * ONE, DAY + H, Some(ONE), Some(HALF), "i-1", Some("b")),
            (ONE / 4, 2 * H, None, None, "tax", Some("a")),
            (ONE / 4, 9 * H, None, None, "tax", Some("a")),
            (7 * ONE, 3 * H, Some(ONE), Some(HALF), "i-3", None),
            (5, DAY + 7 * H, Some(3), Some(HALF), "i-9", Some("a")),
        ]
    }

    /// Each output row as text: cells joined by spaces, nulls as `-`, times as ISO 8601.
    fn rows_text(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            let cols: Vec<Vec<String>> = b
                .columns()
                .iter()
                .map(|c| {
                    if matches!(c.data_type(), DataType::Timestamp(_, _)) {
                        let raw = cast(c, &DataType::Int64).unwrap();
                        raw.as_primitive::<Int64Type>()
                            .iter()
                            .map(|v| v.map_or("-".into(), crate::timestamp::iso_from_millis))
                            .collect()
                    } else {
                        let s = cast(c, &DataType::Utf8).unwrap();
                        s.as_string::<i32>()
                            .iter()
                            .map(|v| v.unwrap_or("-").to_string())
                            .collect()
                    }
                })
                .collect();
            for i in 0..b.num_rows() {
                let cells: Vec<&str> = cols.iter().map(|c| c[i].as_str()).collect();
                out.push(cells.join(" "));
            }
        }
        out
    }

    fn names(b: &RecordBatch) -> Vec<String> {
        b.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    #[test]
    fn daily_groups_sum_exactly_and_sort_by_key() {
        let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Day)).unwrap();
        r.push(&batch(&sample())).unwrap();
        assert_eq!(r.len(), 5);
        assert_eq!(r.metric_total("BilledCost").unwrap(), 13 * ONE + HALF + 5);
        assert_eq!(r.metric_names(), ["BilledCost", "ConsumedQuantity"]);
        let out = r.finish().unwrap();
        assert_eq!(out.len(), 1);
        // ResourceId is line-only; the other columns keep their order and types.
        assert_eq!(
            names(&out[0]),
            [
                "BilledCost",
                "BillingPeriodEnd",
                "BillingPeriodStart",
                "ChargePeriodEnd",
                "ChargePeriodStart",
                "ConsumedQuantity",
                "ListUnitPrice",
                "SubAccountId"
            ]
        );
        assert_eq!(out[0].schema().field(0).data_type(), &dec_type());
        assert_eq!(out[0].schema().field(3).data_type(), &ts());
        // Sorted by the keys in column order (the period, the day, the unit price, the
        // account; nulls first). The tax group's quantities are all null: null.
        let p = "2026-11-01T00:00:00Z 2026-10-01T00:00:00Z";
        assert_eq!(
            rows_text(&out),
            [
                format!("0.5000000000 {p} 2026-10-01T10:00:00Z 2026-10-01T00:00:00Z - - a"),
                format!("7.0000000000 {p} 2026-10-01T04:00:00Z 2026-10-01T00:00:00Z 1.0000000000 0.5000000000 -"),
                format!("3.0000000000 {p} 2026-10-01T06:00:00Z 2026-10-01T00:00:00Z 6.0000000000 0.5000000000 b"),
                format!("0.0000000005 {p} 2026-10-02T08:00:00Z 2026-10-02T00:00:00Z 0.0000000003 0.5000000000 a"),
                format!("3.0000000000 {p} 2026-10-02T02:00:00Z 2026-10-02T00:00:00Z 1.0000000000 0.5000000000 b"),
            ]
        );
    }

    #[test]
    fn monthly_groups_take_the_billing_period() {
        let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Month)).unwrap();
        r.push(&batch(&sample())).unwrap();
        let out = r.finish().unwrap();
        let p =
            "2026-11-01T00:00:00Z 2026-10-01T00:00:00Z 2026-11-01T00:00:00Z 2026-10-01T00:00:00Z";
        assert_eq!(
            rows_text(&out),
            [
                format!("0.5000000000 {p} - - a"),
                format!("7.0000000000 {p} 1.0000000000 0.5000000000 -"),
                format!("0.0000000005 {p} 0.0000000003 0.5000000000 a"),
                format!("6.0000000000 {p} 7.0000000000 0.5000000000 b"),
            ]
        );
    }

    #[test]
    fn a_metric_is_null_only_when_every_row_is_null() {
        let lines: Vec<Line> = vec![
            (ONE, H, None, None, "x", Some("a")),
            (ONE, 2 * H, Some(-ONE), None, "x", Some("a")),
            (ONE, 3 * H, Some(ONE), None, "x", Some("a")),
            (ONE, 4 * H, None, None, "x", Some("b")),
        ];
        let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Month)).unwrap();
        r.push(&batch(&lines)).unwrap();
        let out = r.finish().unwrap();
        let q = out[0]
            .column_by_name("ConsumedQuantity")
            .unwrap()
            .as_primitive::<Decimal128Type>();
        // a: -1 + 1 = 0, not null; b: null on its only row.
        assert_eq!(q.iter().collect::<Vec<_>>(), [Some(0), None]);
    }

    #[test]
    fn merging_equals_pushing_everything_into_one() {
        // A deterministic pseudo-random month: several batches, every key mixed.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let accounts = [Some("a"), Some("b"), None];
        let batches: Vec<RecordBatch> = (0..6)
            .map(|_| {
                let lines: Vec<Line> = (0..500)
                    .map(|_| {
                        let v = next();
                        (
                            (v % 1_000_000) as i128 * 1_234_567 - 300_000_000_000,
                            ((v >> 20) % 31) as i64 * DAY + ((v >> 30) % 24) as i64 * H,
                            (v % 7 != 0).then_some(((v >> 8) % 10_000) as i128),
                            (v % 5 != 0).then_some(((v >> 12) % 3) as i128 * HALF),
                            "r",
                            accounts[((v >> 40) % 3) as usize],
                        )
                    })
                    .collect();
                batch(&lines)
            })
            .collect();
        for per in [Per::Day, Per::Month] {
            let spec = RollUpSpec::focus(per);
            let mut one = RollUp::new(schema(), spec).unwrap();
            for b in &batches {
                one.push(b).unwrap();
            }
            let total = one.metric_total("BilledCost").unwrap();
            let expected = one.finish().unwrap();
            // Parts in another order: 5, 4, 3 into one, 0, 1, 2 into another, plus an empty one.
            let mut a = RollUp::new(schema(), spec).unwrap();
            let mut b = RollUp::new(schema(), spec).unwrap();
            let empty = RollUp::new(schema(), spec).unwrap();
            for p in batches.iter().rev().take(3) {
                a.push(p).unwrap();
            }
            for p in batches.iter().take(3) {
                b.push(p).unwrap();
            }
            a.merge(b).unwrap();
            a.merge(empty).unwrap();
            assert_eq!(a.metric_total("BilledCost").unwrap(), total);
            let merged = a.finish().unwrap();
            assert_eq!(merged, expected, "{per:?}");
            assert!(expected[0].num_rows() >= 12, "{per:?}");
        }
    }

    #[test]
    fn output_batches_follow_the_key_order() {
        let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Day)).unwrap();
        r.push(&batch(&sample())).unwrap();
        let whole = rows_text(&r.finish().unwrap());
        let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Day)).unwrap();
        r.push(&batch(&sample())).unwrap();
        let mut parts = Vec::new();
        r.finish_with(2, |b| {
            assert!(b.num_rows() <= 2);
            parts.push(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(rows_text(&parts), whole);
    }

    #[test]
    fn cur_sums_every_decimal_column_and_drops_maps() {
        use arrow::array::MapBuilder;
        let schema = Arc::new(Schema::new(vec![
            Field::new("bill_billing_period_start_date", ts(), true),
            Field::new("bill_billing_period_end_date", ts(), true),
            Field::new("line_item_usage_start_date", ts(), true),
            Field::new("line_item_usage_end_date", ts(), true),
            Field::new("line_item_unblended_cost", dec_type(), true),
            Field::new("line_item_usage_amount", dec_type(), true),
            Field::new("line_item_unblended_rate", DataType::Utf8, true),
            Field::new("line_item_usage_type", DataType::Utf8, true),
            Field::new(
                "resource_tags",
                MapBuilder::new(
                    None,
                    arrow::array::StringBuilder::new(),
                    arrow::array::StringBuilder::new(),
                )
                .finish()
                .data_type()
                .clone(),
                true,
            ),
        ]));
        let t = |v: Vec<i64>| -> ArrayRef {
            Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
        };
        let d = |v: Vec<i128>| -> ArrayRef {
            Arc::new(
                Decimal128Array::from(v)
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            )
        };
        let mut tags = MapBuilder::new(
            None,
            arrow::array::StringBuilder::new(),
            arrow::array::StringBuilder::new(),
        );
        for v in ["x", "y"] {
            tags.keys().append_value("env");
            tags.values().append_value(v);
            tags.append(true).unwrap();
        }
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                t(vec![oct(), oct()]),
                t(vec![nov(), nov()]),
                t(vec![oct() + 25 * H, oct() + 47 * H]),
                t(vec![oct() + 26 * H, oct() + 48 * H]),
                d(vec![ONE, 2 * ONE]),
                d(vec![3 * ONE, 4 * ONE]),
                Arc::new(StringArray::from(vec!["0.1", "0.2"])),
                Arc::new(StringArray::from(vec!["BoxUsage", "BoxUsage"])),
                Arc::new(tags.finish()),
            ],
        )
        .unwrap();
        let mut r = RollUp::new(schema, RollUpSpec::cur(Per::Day)).unwrap();
        r.push(&b).unwrap();
        assert_eq!(
            r.metric_names(),
            ["line_item_unblended_cost", "line_item_usage_amount"]
        );
        let out = r.finish().unwrap();
        assert_eq!(
            names(&out[0]),
            [
                "bill_billing_period_start_date",
                "bill_billing_period_end_date",
                "line_item_usage_start_date",
                "line_item_usage_end_date",
                "line_item_unblended_cost",
                "line_item_usage_amount",
                "line_item_usage_type"
            ]
        );
        assert_eq!(
            rows_text(&out),
            ["2026-10-01T00:00:00Z 2026-11-01T00:00:00Z 2026-10-02T00:00:00Z 2026-10-03T00:00:00Z 3.0000000000 7.0000000000 BoxUsage"]
        );
    }

    #[test]
    fn refusals_are_errors_not_panics() {
        // A batch of another schema.
        let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Day)).unwrap();
        let other = Arc::new(Schema::new(vec![Field::new(
            "BilledCost",
            dec_type(),
            true,
        )]));
        let b = RecordBatch::try_new(
            other.clone(),
            vec![Arc::new(
                Decimal128Array::from(vec![1i128])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            )],
        )
        .unwrap();
        assert!(r.push(&b).is_err());
        // Merging roll-ups of different datasets or granularities.
        let month = RollUp::new(schema(), RollUpSpec::focus(Per::Month)).unwrap();
        assert!(r.merge(month).is_err());
        let lone = RollUp::new(other, RollUpSpec::focus(Per::Day)).unwrap();
        assert!(r.merge(lone).is_err());
        // A metric that is not a 10-decimal Decimal128.
        let text = Arc::new(Schema::new(vec![Field::new(
            "BilledCost",
            DataType::Utf8,
            true,
        )]));
        assert!(RollUp::new(text, RollUpSpec::focus(Per::Day)).is_err());
        // A start without an end.
        let half = Arc::new(Schema::new(vec![Field::new(
            "ChargePeriodStart",
            ts(),
            true,
        )]));
        assert!(RollUp::new(half, RollUpSpec::focus(Per::Day)).is_err());
        // Sums beyond i128.
        let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Month)).unwrap();
        let big = i128::MAX / 2 + 1;
        let e = r
            .push(&batch(&[
                (big, 0, None, None, "x", None),
                (big, H, None, None, "x", None),
            ]))
            .unwrap_err();
        assert!(e.to_string().contains("roll-up"), "{e}");
        assert!(r.metric_total("SubAccountId").is_err());
    }
}
