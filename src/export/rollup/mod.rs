//! Streaming roll-ups of the exports (`--granularity daily|monthly`): a hash
//! aggregate over arrow-rs batches, fed by the export pass as it builds rows.
//!
//! Each key column's distinct values are interned (text by value, other types
//! by their arrow row-format bytes); the tuple of value ids of every key column
//! but the day is interned again as a combination, and a group is keyed by
//! (combination, day): a hash map finds a row's group. Metrics are summed
//! exactly, as i128 at 10 decimals, with a flag for non-null cells (a group
//! whose metric is null on every row stays null). Memory holds the groups (8
//! bytes of key each), the combinations and the distinct values: no staging
//! file, no whole-file read. At the end the groups are sorted by key in
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

mod key_dict;
use key_dict::KeyDict;

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

/// A streaming roll-up of one dataset: `push` its batches, then `finish`.
///
/// A group's key is the tuple of its key columns' value ids (4 bytes a column,
/// whatever the text). The columns other than the day take few combinations
/// (an account's SKU, region, tags… repeat every day), so each combination is
/// interned once and a group is keyed by (combination id, day id): memory
/// holds 8 bytes of key a group, the combinations, and each column's distinct
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
    /// The key column truncated to the day (daily roll-ups), kept out of the combinations.
    day: Option<usize>,
    /// Value ids of every key column but the day → combination id.
    combos: FxHashMap<Box<[u32]>, u32>,
    /// (combination id, day value id, 0 when there is no day) → group index.
    groups: FxHashMap<(u32, u32), u32>,
    /// Per group × metric: Σ of the non-null cells, and whether there were any.
    sums: Vec<i128>,
    seen: Vec<bool>,
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
        let mut day = None;
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
            if matches!(source, KeySource::Day(..)) {
                day = Some(keys.len());
            }
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
            day,
            combos: FxHashMap::default(),
            groups: FxHashMap::default(),
            sums: Vec::new(),
            seen: Vec::new(),
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

    /// The id of a combination of the non-day key values, new if need be.
    fn combo(&mut self, rest: &[u32]) -> Result<u32> {
        if let Some(&c) = self.combos.get(rest) {
            return Ok(c);
        }
        let c = u32::try_from(self.combos.len())
            .map_err(|_| internal("more than 2^32 key combinations".into()))?;
        self.combos.insert(Box::from(rest), c);
        Ok(c)
    }

    /// The group of a (combination, day), new if need be.
    fn group(&mut self, combo: u32, day: u32) -> Result<usize> {
        if let Some(&g) = self.groups.get(&(combo, day)) {
            return Ok(g as usize);
        }
        let g = u32::try_from(self.groups.len())
            .map_err(|_| internal("more than 2^32 groups".into()))?;
        let m = self.metric_cols.len();
        self.sums.resize(self.sums.len() + m, 0);
        self.seen.resize(self.seen.len() + m, false);
        self.ends.push(None);
        self.groups.insert((combo, day), g);
        Ok(g as usize)
    }

    /// Each row's group, from the column-major value ids of its `n` rows.
    fn groups_of(&mut self, ids: &[u32], n: usize) -> Result<Vec<usize>> {
        let k = self.keys.len();
        let day = self.day;
        let mut rest: Vec<u32> = Vec::with_capacity(k);
        let mut last: Option<(Vec<u32>, u32)> = None;
        let mut gid: Vec<usize> = Vec::with_capacity(n);
        for i in 0..n {
            rest.clear();
            rest.extend((0..k).filter(|&c| Some(c) != day).map(|c| ids[c * n + i]));
            // Neighbouring rows often share a combination: one comparison instead of a lookup.
            let combo = match &last {
                Some((prev, c)) if *prev == rest => *c,
                _ => {
                    let c = self.combo(&rest)?;
                    last = Some((rest.clone(), c));
                    c
                }
            };
            let d = day.map_or(0, |c| ids[c * n + i]);
            gid.push(self.group(combo, d)?);
        }
        Ok(gid)
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
        let gid = self.groups_of(&ids, n)?;
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
                    self.seen[s] = true;
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
        let missing = || internal("a key value missing".into());
        let day = self.day;
        let rest_trans: Vec<&Vec<u32>> = (0..trans.len())
            .filter(|&c| Some(c) != day)
            .map(|c| &trans[c])
            .collect();
        // Each of `other`'s combinations as one of ours, once.
        let mut combo_trans = vec![0u32; other.combos.len()];
        let mut rest = Vec::with_capacity(rest_trans.len());
        for (okey, oc) in &other.combos {
            rest.clear();
            for (&o, t) in okey.iter().zip(&rest_trans) {
                rest.push(t.get(o as usize).copied().ok_or_else(missing)?);
            }
            let c = self.combo(&rest)?;
            *combo_trans.get_mut(*oc as usize).ok_or_else(missing)? = c;
        }
        let m = self.metric_cols.len();
        let overflow = || Error::Overflow("summing a roll-up".into());
        for ((oc, od), og) in other.groups {
            let c = combo_trans.get(oc as usize).copied().ok_or_else(missing)?;
            let d = match day {
                Some(dc) => trans[dc].get(od as usize).copied().ok_or_else(missing)?,
                None => 0,
            };
            let g = self.group(c, d)?;
            let og = og as usize;
            for j in 0..m {
                let (s, o) = (g * m + j, og * m + j);
                self.sums[s] = self.sums[s]
                    .checked_add(other.sums[o])
                    .ok_or_else(overflow)?;
                self.seen[s] |= other.seen[o];
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
            day,
            combos,
            groups,
            sums,
            seen,
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
        let rank_of = |c: usize, id: u32| {
            ranks
                .get(c)
                .and_then(|r| r.get(id as usize))
                .copied()
                .unwrap_or(u32::MAX)
        };
        // Each combination's ranks, in key-column order, with the day's slot left 0.
        let k = dicts.len();
        let mut combo_ranks: Vec<Box<[u32]>> = vec![Box::from([]); combos.len()];
        for (rest, c) in combos {
            let mut full = vec![0u32; k];
            let columns = (0..k).filter(|&col| Some(col) != day);
            for (col, &id) in columns.zip(rest.iter()) {
                full[col] = rank_of(col, id);
            }
            if let Some(slot) = combo_ranks.get_mut(c as usize) {
                *slot = full.into_boxed_slice();
            }
        }
        // The order is lexicographic over the key columns, the day where it stands: so a
        // group sorts by (its combination's rank over the columns before the day, the
        // day's rank, its combination's rank over the columns after it). Combinations
        // are few next to groups, so they are ranked once and groups sort by 3 integers.
        let split = day.unwrap_or(k);
        let before = dense_ranks(&combo_ranks, 0..split);
        let after = dense_ranks(&combo_ranks, (split + 1).min(k)..k);
        let sort_key = |c: u32, day_rank: u32| -> (u32, u32, u32) {
            let at = |r: &[u32]| r.get(c as usize).copied().unwrap_or(u32::MAX);
            (at(&before), day_rank, at(&after))
        };
        // (sort key, combination, day rank, group).
        type Ranked = ((u32, u32, u32), (u32, u32, u32));
        let mut order: Vec<Ranked> = groups
            .into_iter()
            .map(|((c, d), g)| {
                let day_rank = day.map_or(0, |dc| rank_of(dc, d));
                (sort_key(c, day_rank), (c, day_rank, g))
            })
            .collect();
        drop(ranks);
        // Keys are unique (a combination's two ranks and the day identify its group),
        // so the unstable sort is deterministic.
        order.sort_unstable_by_key(|e| e.0);
        let order: Vec<(u32, u32, u32)> = order.into_iter().map(|e| e.1).collect();
        let key_at = |e: &(u32, u32, u32), col: usize| -> u32 {
            if Some(col) == day {
                e.1
            } else {
                combo_ranks
                    .get(e.0 as usize)
                    .and_then(|r| r.get(col))
                    .copied()
                    .unwrap_or(u32::MAX)
            }
        };
        for chunk in order.chunks(batch_rows.max(1)) {
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(plan.len());
            for (out, f) in plan.iter().zip(output.fields()) {
                let c: ArrayRef = match *out {
                    Out::Key(k) => {
                        let values = sorted
                            .get(k)
                            .ok_or_else(|| internal("a key column missing".into()))?;
                        let at = UInt32Array::from_iter_values(chunk.iter().map(|e| key_at(e, k)));
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
                            .map(|(_, _, g)| {
                                let i = *g as usize * m + j;
                                seen[i].then_some(sums[i])
                            })
                            .collect();
                        Arc::new(a.with_precision_and_scale(p, s).map_err(arrow_err)?)
                    }
                    Out::End => {
                        let (_, src_type) = end_src
                            .as_ref()
                            .ok_or_else(|| internal("no end column".into()))?;
                        let raw: Int64Array =
                            chunk.iter().map(|(_, _, g)| ends[*g as usize]).collect();
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

/// Each combination's dense rank by its key ranks over `columns` (equal there, equal rank).
fn dense_ranks(combo_ranks: &[Box<[u32]>], columns: std::ops::Range<usize>) -> Vec<u32> {
    let part = |c: u32| -> &[u32] {
        combo_ranks
            .get(c as usize)
            .and_then(|r| r.get(columns.clone()))
            .unwrap_or(&[])
    };
    let mut by_part: Vec<u32> = (0..combo_ranks.len() as u32).collect();
    by_part.sort_unstable_by(|&a, &b| part(a).cmp(part(b)));
    let mut rank = vec![0u32; combo_ranks.len()];
    let mut r = 0u32;
    for (i, &c) in by_part.iter().enumerate() {
        if i > 0 && part(c) != part(by_part[i - 1]) {
            r += 1;
        }
        rank[c as usize] = r;
    }
    rank
}

#[cfg(test)]
mod tests;
