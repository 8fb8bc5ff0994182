//! The per-row kernel: a normalized batch's rows rated on both tracks into line sums.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Decimal128Array, DictionaryArray, UInt8Array};
use arrow::datatypes::{Decimal128Type, Int32Type};
use arrow::record_batch::RecordBatch;
use rustc_hash::FxHashMap;

use super::{
    is_support, treatment, Ledger, LineKey, LineSums, Pricing, SkuKeyOwned, Track, Treatment,
};
use crate::error::{Error, Result};
use crate::money::{mul_fixed, Percent, ONE};
use crate::normalize::col;
use crate::rules::{public_amount, Action, Resolution, SkuKey};
use crate::types::LineType;

/// A line counts as priced below public when its unblended cost is under
/// (1000 - this) / 1000 of usage × public rate: 0.1%, well above the rounding
/// of CUR's doubles and far below any real private rate.
pub const BELOW_PUBLIC_TOLERANCE_PER_MILLE: i128 = 1;

/// Is `unblended` below `mul_fixed(qty, rate)` less the tolerance (the public amount
/// rounded to the internal scale, as [`public_amount`] prices it)?
///
/// The rounded amount is within half a unit of the exact product, so most rows are
/// decided on the product without the (slow, 128-bit) division; rows within that
/// half unit of the boundary take the exact path, which decides as it always did.
#[inline(always)]
fn billed_below_public(qty: i128, rate: i128, unblended: i128) -> bool {
    if let Some(below) = billed_below_public_small(qty, rate, unblended) {
        return below;
    }
    billed_below_public_wide(qty, rate, unblended)
}

/// [`billed_below_public`] in the common case, all three operands of 64 bits and
/// the product far from the boundary: `None` where it cannot decide so cheaply.
#[inline(always)]
fn billed_below_public_small(qty: i128, rate: i128, unblended: i128) -> Option<bool> {
    let keep = 1000 - BELOW_PUBLIC_TOLERANCE_PER_MILLE;
    let (q, r, u) = (
        i64::try_from(qty).ok()?,
        i64::try_from(rate).ok()?,
        i64::try_from(unblended).ok()?,
    );
    // Two 64-bit factors: |p| < 2^126, one machine multiplication.
    let p = q as i128 * r as i128;
    if p.unsigned_abs() >= 1 << 116 {
        return None;
    }
    // |p ± ONE/2| < 2^116 + 2^33, times keep (< 2^10): below 2^127. |u| × 10^13 < 2^107.
    let half = ONE / 2;
    let lhs = u as i128 * (1000 * ONE);
    if lhs < (p - half) * keep {
        Some(true)
    } else if lhs >= (p + half) * keep {
        Some(false)
    } else {
        None
    }
}

/// [`billed_below_public`] with checked 128-bit figures, for the rows
/// [`billed_below_public_small`] leaves undecided.
#[inline(never)]
fn billed_below_public_wide(qty: i128, rate: i128, unblended: i128) -> bool {
    let keep = 1000 - BELOW_PUBLIC_TOLERANCE_PER_MILLE;
    let half = ONE / 2;
    let bounds = || {
        let p = qty.checked_mul(rate)?;
        let lhs = unblended.checked_mul(1000)?.checked_mul(ONE)?;
        let low = p.checked_sub(half)?.checked_mul(keep)?;
        let high = p.checked_add(half)?.checked_mul(keep)?;
        Some((lhs, low, high))
    };
    match bounds() {
        Some((lhs, low, _)) if lhs < low => true,
        Some((lhs, _, high)) if lhs >= high => false,
        _ => billed_below_public_exact(qty, rate, unblended),
    }
}

/// Appends `n` in decimal digits (without `fmt`, which costs more than the rest of
/// [`write_sku_text`]).
fn push_decimal(buf: &mut String, n: usize) {
    if n >= 10 {
        push_decimal(buf, n / 10);
    }
    buf.push(char::from(b'0' + (n % 10) as u8));
}

/// [`billed_below_public`] by the rounded public amount itself.
fn billed_below_public_exact(qty: i128, rate: i128, unblended: i128) -> bool {
    let Some(public) = mul_fixed(qty, rate).filter(|p| *p > 0) else {
        return false;
    };
    let keep = 1000 - BELOW_PUBLIC_TOLERANCE_PER_MILLE;
    match (unblended.checked_mul(1000), public.checked_mul(keep)) {
        (Some(l), Some(r)) => l < r,
        _ => false,
    }
}

/// Largest per-batch slot table (accounts × products × line types of one batch's
/// dictionaries) that [`Rater::rate`] builds: 1 MiB of `u32`s.
const MAX_BATCH_SLOTS: usize = 1 << 18;

/// Interns strings to small ids without allocating on repeat lookups.
#[derive(Debug, Default)]
struct Interner {
    ids: FxHashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }
}

/// Per-SKU-key cache: the key's text (its prices are in [`Rater::sku_prices`]).
#[derive(Debug)]
struct SkuEntry {
    /// The key as length-prefixed parts (see [`write_sku_text`]).
    text: Arc<str>,
    /// Byte range in `text` of the service, usage type, operation, region and billing entity.
    parts: [(usize, usize); 5],
}

/// A SKU's resolution on one track, reduced to what a row's amount reads: no
/// `Option<&Resolution>` and `Action` to take apart per row, and 16 bytes, so that
/// a file's SKUs stay in the L1 cache (an `Option` per field doubles it).
#[derive(Debug, Clone, Copy)]
struct SkuPrice {
    /// Signed hundredths of a percent applied to the base (a markup, or a discount
    /// negated); [`SkuPrice::UNCHANGED`]: none (no rule, or a custom tier table).
    modifier: i64,
    /// The custom tier rule pricing this SKU at month end; [`SkuPrice::NO_RULE`]: none.
    custom_rule: u32,
    /// Whether the free tier applies (on where no rule set resolves the SKU).
    free_tier: bool,
}

impl SkuPrice {
    /// No modifier (no percentage reaches this: the config allows -100% to +10,000%).
    const UNCHANGED: i64 = i64::MIN;
    const NO_RULE: u32 = u32::MAX;

    fn of(resolution: Option<&Resolution>) -> SkuPrice {
        let Some(r) = resolution else {
            return SkuPrice {
                modifier: Self::UNCHANGED,
                custom_rule: Self::NO_RULE,
                free_tier: true,
            };
        };
        SkuPrice {
            modifier: (r.action.as_ref())
                .and_then(Action::signed_hundredths)
                .unwrap_or(Self::UNCHANGED),
            custom_rule: match (&r.action, r.rule) {
                (Some(Action::Custom(_)), Some(rule)) => rule,
                _ => Self::NO_RULE,
            },
            free_tier: r.free_tier,
        }
    }

    /// The custom tier rule, if month-end pricing decides this SKU's amount.
    #[inline(always)]
    fn custom_rule(self) -> Option<u32> {
        (self.custom_rule != Self::NO_RULE).then_some(self.custom_rule)
    }

    /// The modifier applied to a base amount; `None` on overflow.
    #[inline(always)]
    fn apply(self, base: i128) -> Option<i128> {
        match self.modifier {
            Self::UNCHANGED => Some(base),
            h => Percent::adjust(base, h),
        }
    }
}

impl SkuEntry {
    fn part(&self, k: usize) -> &str {
        let (start, end) = self.parts[k];
        &self.text[start..end]
    }

    /// The key, owned (only for the SKUs a ledger names).
    fn key(&self) -> SkuKeyOwned {
        SkuKeyOwned {
            service: self.part(0).into(),
            usage_type: self.part(1).into(),
            operation: self.part(2).into(),
            region: self.part(3).into(),
            billing_entity: self.part(4).into(),
        }
    }
}

/// Writes a SKU key into `buf` as `len:part` for each part, so that no two keys
/// share a text whatever their values hold, and returns each part's byte range.
fn write_sku_text(buf: &mut String, k: &SkuKey<'_>) -> [(usize, usize); 5] {
    buf.clear();
    let mut parts = [(0, 0); 5];
    let values = [
        k.service,
        k.usage_type,
        k.operation,
        k.region,
        k.billing_entity,
    ];
    for (range, value) in parts.iter_mut().zip(values) {
        push_decimal(buf, value.len());
        buf.push(':');
        let start = buf.len();
        buf.push_str(value);
        *range = (start, buf.len());
    }
    parts
}

/// Per batch: the SKU id of each (usage type, product, operation, region, billing
/// entity) combination of dictionary keys met. Most usage types come with one
/// combination, kept inline, so that a row finds its SKU with one load.
struct BatchSkus {
    /// By usage type key: its first combination (product, operation, region, entity
    /// keys, packed by [`BatchSkus::pack`]) and id.
    first: Vec<(u128, u32)>,
    /// By usage type key: its further combinations.
    more: Vec<Vec<(u128, u32)>>,
}

impl BatchSkus {
    const NONE: u32 = u32::MAX;

    fn new(usage_types: usize) -> BatchSkus {
        BatchSkus {
            first: vec![(0, Self::NONE); usage_types],
            more: vec![Vec::new(); usage_types],
        }
    }

    /// The four keys in one value held in registers: an array built per row and
    /// read back whole stalled on store forwarding.
    #[inline(always)]
    fn pack(product: i32, operation: i32, region: i32, entity: i32) -> u128 {
        (product as u32 as u128)
            | (operation as u32 as u128) << 32
            | (region as u32 as u128) << 64
            | (entity as u32 as u128) << 96
    }

    #[inline(always)]
    fn get(&self, usage_type: usize, rest: u128) -> Option<u32> {
        match self.first[usage_type] {
            (r, id) if id != Self::NONE && r == rest => Some(id),
            (_, Self::NONE) => None,
            _ => self.more[usage_type]
                .iter()
                .find(|(r, _)| *r == rest)
                .map(|&(_, id)| id),
        }
    }

    fn insert(&mut self, usage_type: usize, rest: u128, id: u32) {
        if self.first[usage_type].1 == Self::NONE {
            self.first[usage_type] = (rest, id);
        } else {
            self.more[usage_type].push((rest, id));
        }
    }
}

/// One row's figures, as the pricing of a track reads them.
struct RowFigures {
    qty: i128,
    unblended: Option<i128>,
    /// Net unblended, else unblended, else 0: what AWS billed.
    billed: i128,
    public_rate: Option<i128>,
    public_cost: Option<i128>,
    /// The row's SKU id, when a track rates it.
    sku: Option<u32>,
    account: u32,
    service: u32,
    line_type: u8,
}

/// Rates batches of one file of one organization into a [`Ledger`].
pub struct Rater {
    actual: Pricing,
    proforma: Pricing,
    accounts: Interner,
    services: Interner,
    /// SKU id by key text.
    sku_ids: FxHashMap<Arc<str>, u32>,
    sku_entries: Vec<SkuEntry>,
    /// Each SKU id's price on [actual, pro forma], apart from its text: read per row.
    sku_prices: Vec<[SkuPrice; 2]>,
    key_buf: String,
    /// Slot in `lines` per line key packed as account id << 40 | service id << 8 | line type.
    line_slots: FxHashMap<u64, u32>,
    /// Sums per line key, with the packed key, in order of first appearance.
    lines: Vec<(u64, LineSums)>,
    /// Per batch: slot in `lines` by (account key, product key, line type) of the
    /// batch's dictionaries, so a row finds its sums without hashing.
    batch_slots: Vec<u32>,
    tier_usage: FxHashMap<(u8, u32, u32, u32, u8), i128>,
    free_usage: FxHashMap<(u8, u32, u32, u32, u8), i128>,
    /// Highest public rate seen per SKU id (0: none seen).
    max_paid_rate: Vec<i128>,
    /// Whether a track can turn the free tier off, the only use of `max_paid_rate`.
    paid_rates_needed: bool,
    /// Rows per SKU id billed below usage × public rate (see [`Ledger::below_public`]).
    below_public: FxHashMap<u32, u64>,
    /// Treatment per (line type code × 2 + is_support) on [actual, pro forma].
    treatments: Vec<[Treatment; 2]>,
    rows_without_public_price: u64,
    /// Pro forma Usage lines start from list cost, not billed cost: FOCUS input,
    /// whose BilledCost already carries the partner's negotiated discounts.
    pub list_base: bool,
    /// Pro forma Usage lines start from usage × public on-demand rate (the plan's
    /// `base = "public_on_demand"`); lines AWS billed 0 (free tier) stay 0.
    pub public_base: bool,
}

/// Per-row amounts of one rated batch (kept for exports and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatedBatch {
    /// Actual amount per row (0 where deferred or excluded).
    pub actual: Vec<i128>,
    /// Pro forma amount per row (0 where deferred or excluded).
    pub proforma: Vec<i128>,
    /// Amortized actual cost per row (the rated actual where the actual track rates the row).
    pub effective: Vec<i128>,
    /// Per row: bit 0 set when the actual amount is priced at month end (custom
    /// tiers, free tier off), bit 1 the same for the pro forma amount.
    pub deferred: Vec<u8>,
}

impl Rater {
    /// A rater for one organization's tracks.
    pub fn new(actual: Pricing, proforma: Pricing) -> Rater {
        let treatments = LineType::ALL
            .iter()
            .flat_map(|&lt| {
                [false, true].map(|support| {
                    [
                        treatment(Track::Actual, &actual, lt, support),
                        treatment(Track::Proforma, &proforma, lt, support),
                    ]
                })
            })
            .collect();
        let paid_rates_needed = [&actual, &proforma]
            .iter()
            .any(|p| matches!(p, Pricing::Rules(set) if !set.free_tier_always_on()));
        Rater {
            actual,
            proforma,
            accounts: Interner::default(),
            services: Interner::default(),
            sku_ids: FxHashMap::default(),
            sku_entries: Vec::new(),
            sku_prices: Vec::new(),
            key_buf: String::new(),
            line_slots: FxHashMap::default(),
            lines: Vec::new(),
            batch_slots: Vec::new(),
            tier_usage: FxHashMap::default(),
            free_usage: FxHashMap::default(),
            max_paid_rate: Vec::new(),
            paid_rates_needed,
            below_public: FxHashMap::default(),
            treatments,
            rows_without_public_price: 0,
            list_base: false,
            public_base: false,
        }
    }

    /// The id of a SKU key, resolved on both tracks the first time this rater sees it
    /// (from the plan's memo when another task has resolved it already).
    fn sku_id(&mut self, k: SkuKey<'_>) -> u32 {
        let parts = write_sku_text(&mut self.key_buf, &k);
        if let Some(&i) = self.sku_ids.get(self.key_buf.as_str()) {
            return i;
        }
        let text: Arc<str> = Arc::from(self.key_buf.as_str());
        let resolve = |p: &Pricing| match p {
            Pricing::Rules(set) => Some(set.resolve_memoized(&text, &k)),
            _ => None,
        };
        let price =
            [resolve(&self.actual), resolve(&self.proforma)].map(|r| SkuPrice::of(r.as_ref()));
        let id = self.sku_entries.len() as u32;
        self.sku_ids.insert(text.clone(), id);
        self.sku_entries.push(SkuEntry { text, parts });
        self.sku_prices.push(price);
        self.max_paid_rate.push(0);
        id
    }

    /// What each track does with a line of this type (`support`: an AWS Support product).
    pub fn treatments_for(&self, lt: LineType, support: bool) -> [Treatment; 2] {
        self.treatments[lt as usize * 2 + support as usize]
    }

    /// Rates one normalized batch and adds it to the running sums; returns the
    /// per-row amounts (for the exports).
    pub fn rate(&mut self, batch: &RecordBatch) -> Result<RatedBatch> {
        self.rate_batch::<true>(batch)
    }

    /// [`Rater::rate`] when nothing needs the per-row amounts (no export): only the
    /// running sums, with no per-row columns allocated, zeroed or written.
    pub fn rate_sums(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rate_batch::<false>(batch).map(drop)
    }

    /// The kernel; `ROWS`: whether the per-row amounts are kept (else they are empty).
    fn rate_batch<const ROWS: bool>(&mut self, batch: &RecordBatch) -> Result<RatedBatch> {
        let text = |name: &str| -> Result<&DictionaryArray<Int32Type>> {
            batch
                .column_by_name(name)
                .and_then(|a| a.as_dictionary_opt::<Int32Type>())
                .ok_or_else(|| Error::Internal(format!("normalized column {name} missing")))
        };
        let dec = |name: &str| -> Result<&Decimal128Array> {
            batch
                .column_by_name(name)
                .and_then(|a| a.as_primitive_opt::<Decimal128Type>())
                .ok_or_else(|| Error::Internal(format!("normalized column {name} missing")))
        };
        let account = text(col::ACCOUNT)?;
        let product = text(col::PRODUCT)?;
        let usage_type = text(col::USAGE_TYPE)?;
        let operation = text(col::OPERATION)?;
        let region = text(col::REGION)?;
        let entity = text(col::ENTITY)?;
        let usage = dec(col::USAGE)?;
        let rate = dec(col::PUBLIC_RATE)?;
        let pcost = dec(col::PUBLIC_COST)?;
        let unblended = dec(col::UNBLENDED)?;
        let net = dec(col::NET_UNBLENDED)?;
        // Every per-row slice cut to the batch's length: indexing by the row then
        // needs no bounds check (a batch's columns all have its length).
        let n = batch.num_rows();
        let effective_v: &[i128] = &dec(col::EFFECTIVE)?.values()[..n];
        let line_type: &UInt8Array = batch
            .column_by_name(col::LINE_TYPE)
            .and_then(|a| a.as_primitive_opt())
            .ok_or_else(|| Error::Internal("line_type column missing".into()))?;
        // Raw slices and validity, read without per-access bounds or type checks.
        struct Col<'a> {
            values: &'a [i128],
            /// Validity, when some cell is null.
            nulls: Option<&'a arrow::buffer::NullBuffer>,
            /// Every cell null (a column the file does not have): no bit read per row.
            all_null: bool,
        }
        impl Col<'_> {
            #[inline(always)]
            fn get(&self, i: usize) -> Option<i128> {
                if self.all_null {
                    return None;
                }
                match self.nulls {
                    Some(n) if n.is_null(i) => None,
                    _ => Some(self.values[i]),
                }
            }
        }
        fn col(a: &Decimal128Array, n: usize) -> Col<'_> {
            Col {
                values: &a.values()[..n],
                nulls: a.nulls().filter(|n| n.null_count() > 0),
                all_null: !a.is_empty() && a.null_count() == a.len(),
            }
        }
        let col = |a| col(a, n);
        let (usage_v, rate_c, pcost_c, unblended_c, net_c) = (
            &usage.values()[..n],
            col(rate),
            col(pcost),
            col(unblended),
            col(net),
        );
        let line_type_v: &[u8] = &line_type.values()[..n];
        let overflow = || Error::Overflow("rating a line".into());

        // Per distinct dictionary value, once per batch: interned ids and verdicts.
        // Borrowed straight from the dictionaries: no copy of the strings per batch.
        fn values(d: &DictionaryArray<Int32Type>) -> Vec<&str> {
            let v = d.values().as_string::<i32>();
            (0..v.len()).map(|k| v.value(k)).collect()
        }
        let account_values = values(account);
        let product_values = values(product);
        let acct_ids: Vec<u32> = account_values.iter().map(|v| self.accounts.id(v)).collect();
        let svc_ids: Vec<u32> = product_values.iter().map(|v| self.services.id(v)).collect();
        let support_of: Vec<bool> = product_values.iter().map(|v| is_support(v)).collect();
        let (ut_values, op_values, region_values, entity_values) = (
            values(usage_type),
            values(operation),
            values(region),
            values(entity),
        );
        fn keys(d: &DictionaryArray<Int32Type>, n: usize) -> &[i32] {
            &d.keys().values()[..n]
        }
        let keys = |d| keys(d, n);
        let (k_account, k_product, k_ut, k_op, k_region, k_entity) = (
            keys(account),
            keys(product),
            keys(usage_type),
            keys(operation),
            keys(region),
            keys(entity),
        );
        // SKU ids by usage type key: usually one (product, operation, region, entity) per usage type.
        let mut batch_skus = BatchSkus::new(ut_values.len());

        // Dense per-batch slots while the table stays small; beyond, the hash decides per row.
        let mut slots = std::mem::take(&mut self.batch_slots);
        slots.clear();
        let dense = account_values.len() * product_values.len() * LineType::ALL.len();
        if dense <= MAX_BATCH_SLOTS {
            slots.resize(dense, u32::MAX);
        }
        // The pro forma base of a rated row with an unblended cost is that cost (see
        // [`Rater::rated_amount`]).
        let proforma_from_billed = !self.list_base && !self.public_base;
        let kept = if ROWS { n } else { 0 };
        let mut out = RatedBatch {
            actual: vec![0; kept],
            proforma: vec![0; kept],
            effective: vec![0; kept],
            deferred: vec![0; kept],
        };
        for i in 0..n {
            let lt = LineType::from_code(line_type_v[i])
                .ok_or_else(|| Error::Internal("bad line type code".into()))?;
            let pk = k_product[i] as usize;
            let support = support_of[pk];
            let qty = usage_v[i];
            let unb = unblended_c.get(i);
            let billed = net_c.get(i).or(unb).unwrap_or(0);
            let public_rate = rate_c.get(i);
            let a_id = acct_ids[k_account[i] as usize];
            let s_id = svc_ids[pk];
            let lt_code = lt as u8;

            let treatments = self.treatments[lt_code as usize * 2 + support as usize];
            let needs_sku = treatments.contains(&Treatment::Rate);
            let sku = if needs_sku {
                let rest = BatchSkus::pack(k_product[i], k_op[i], k_region[i], k_entity[i]);
                let ut = k_ut[i] as usize;
                let id = match batch_skus.get(ut, rest) {
                    Some(id) => id,
                    None => {
                        let key = SkuKey {
                            service: product_values[pk],
                            usage_type: ut_values[k_ut[i] as usize],
                            operation: op_values[k_op[i] as usize],
                            region: region_values[k_region[i] as usize],
                            billing_entity: entity_values[k_entity[i] as usize],
                        };
                        let id = self.sku_id(key);
                        batch_skus.insert(ut, rest, id);
                        id
                    }
                };
                if let Some(r) = public_rate.filter(|r| *r > 0) {
                    if self.paid_rates_needed {
                        let e = &mut self.max_paid_rate[id as usize];
                        *e = (*e).max(r);
                    }
                    if lt == LineType::Usage && treatments[1] == Treatment::Rate {
                        self.count_below_public(id, qty, r, unb);
                    }
                }
                Some(id)
            } else {
                None
            };
            // The common row (billed actual, a pro forma markup or discount on its
            // unblended cost, no month-end pricing): its amounts without the tracks' dispatch.
            let simple = match (treatments, sku, unb) {
                ([Treatment::Billed, Treatment::Rate], Some(id), Some(u))
                    if proforma_from_billed =>
                {
                    let price = self.sku_prices[id as usize][1];
                    (price.custom_rule().is_none() && price.free_tier).then_some((price, u))
                }
                _ => None,
            };
            let mut deferred = 0u8;
            let (actual, proforma) = if let Some((price, u)) = simple {
                (billed, price.apply(u).ok_or_else(overflow)?)
            } else {
                let row = RowFigures {
                    qty,
                    unblended: unb,
                    billed,
                    public_rate,
                    public_cost: pcost_c.get(i),
                    sku,
                    account: a_id,
                    service: s_id,
                    line_type: lt_code,
                };
                // Each track by its own call with a constant track: each is compiled for it.
                let actual =
                    self.track_amount(Track::Actual, treatments[0], &row, 0, &mut deferred)?;
                let proforma =
                    self.track_amount(Track::Proforma, treatments[1], &row, actual, &mut deferred)?;
                (actual, proforma)
            };
            let amounts = [actual, proforma];
            if ROWS {
                out.deferred[i] = deferred;
            }
            if ROWS {
                out.actual[i] = amounts[0];
                out.proforma[i] = amounts[1];
            }
            let effective = match treatments[0] {
                Treatment::Rate => amounts[0],
                Treatment::Excluded => 0,
                _ => effective_v[i],
            };
            if ROWS {
                out.effective[i] = effective;
            }
            let local = (k_account[i] as usize * product_values.len() + pk) * LineType::ALL.len()
                + lt_code as usize;
            let slot = match slots.get(local) {
                Some(&s) if s != u32::MAX => s,
                _ => {
                    let s = self.line_slot(a_id, s_id, lt_code);
                    if let Some(x) = slots.get_mut(local) {
                        *x = s;
                    }
                    s
                }
            };
            let sums = &mut self.lines[slot as usize].1;
            sums.rows += 1;
            sums.usage = sums.usage.checked_add(qty).ok_or_else(overflow)?;
            sums.unblended = sums
                .unblended
                .checked_add(unb.unwrap_or(0))
                .ok_or_else(overflow)?;
            sums.actual = sums.actual.checked_add(amounts[0]).ok_or_else(overflow)?;
            sums.proforma = sums.proforma.checked_add(amounts[1]).ok_or_else(overflow)?;
            sums.effective = sums.effective.checked_add(effective).ok_or_else(overflow)?;
            if treatments[1] != Treatment::Excluded {
                sums.proforma_rows += 1;
            }
        }
        self.batch_slots = slots;
        Ok(out)
    }

    /// A row's amount on track `t` under `treatment` (`actual`: its amount on the
    /// actual track, which `SameAsActual` repeats); sets bit `t` of `deferred` when
    /// month-end pricing decides it.
    #[inline(always)]
    fn track_amount(
        &mut self,
        t: Track,
        treatment: Treatment,
        row: &RowFigures,
        actual: i128,
        deferred: &mut u8,
    ) -> Result<i128> {
        Ok(match treatment {
            Treatment::Billed => row.billed,
            Treatment::AsDelivered => row.unblended.unwrap_or(0),
            Treatment::Excluded => 0,
            Treatment::SameAsActual => actual,
            Treatment::Rate => self.rated_amount(t, row, deferred)?,
        })
    }

    /// A row's amount on a track that rates it: its SKU's modifier on its public
    /// base, or 0 and a month-end quantity (custom tiers, free tier off without a rate).
    #[inline(always)]
    fn rated_amount(&mut self, t: Track, row: &RowFigures, deferred: &mut u8) -> Result<i128> {
        let overflow = || Error::Overflow("rating a line".into());
        let ti = t as usize;
        let (qty, unb, public_rate) = (row.qty, row.unblended, row.public_rate);
        let sku_id = row.sku.unwrap_or(0);
        let price = self.sku_prices[sku_id as usize][ti];
        if let Some(rule) = price.custom_rule() {
            let e = self
                .tier_usage
                .entry((ti as u8, rule, row.account, row.service, row.line_type))
                .or_default();
            *e = e.checked_add(qty).ok_or_else(overflow)?;
            *deferred |= 1 << ti;
            return Ok(0);
        }
        let list = || public_amount(qty, public_rate, row.public_cost).ok_or_else(overflow);
        // The pro forma base is the line's public price as AWS computed it for this org
        // (unblended: free tier and volume tiers applied, no non-public discount);
        // public-rate actual cards use list prices.
        let billed_base = |u: i128| !self.public_base || u == 0;
        let base = match (t, unb) {
            (Track::Proforma, Some(u)) if !self.list_base && billed_base(u) => Some(u),
            (_, u) => list()?.or(u),
        };
        // Free tier off: every unit at its paid rate, so a line on which the allowance
        // ran out part-way loses its free part (T-D8).
        let base = if !price.free_tier && qty > 0 {
            match public_rate.filter(|r| *r > 0) {
                Some(r) => {
                    let paid = mul_fixed(qty, r).ok_or_else(overflow)?;
                    Some(base.map_or(paid, |b| b.max(paid)))
                }
                None if base.is_some_and(|b| b != 0) => base,
                None => {
                    let key = (ti as u8, sku_id, row.account, row.service, row.line_type);
                    let e = self.free_usage.entry(key).or_default();
                    *e = e.checked_add(qty).ok_or_else(overflow)?;
                    *deferred |= 1 << ti;
                    None
                }
            }
        } else {
            if base.is_none() {
                self.rows_without_public_price += 1;
            }
            Some(base.unwrap_or(0))
        };
        Ok(match base {
            Some(b) => price.apply(b).ok_or_else(overflow)?,
            None => 0,
        })
    }

    /// The slot of a line key in `lines`, added empty on first sight.
    fn line_slot(&mut self, account: u32, service: u32, line_type: u8) -> u32 {
        let packed = ((account as u64) << 40) | ((service as u64) << 8) | line_type as u64;
        let next = self.lines.len() as u32;
        let slot = *self.line_slots.entry(packed).or_insert(next);
        if slot == next {
            self.lines.push((packed, LineSums::default()));
        }
        slot
    }

    /// Counts a `Usage` row whose unblended cost is below usage × public rate
    /// beyond the tolerance; rows AWS billed 0 (free tier) are explained and not counted.
    #[inline(always)]
    fn count_below_public(&mut self, sku: u32, qty: i128, rate: i128, unblended: Option<i128>) {
        let Some(u) = unblended.filter(|u| *u > 0) else {
            return;
        };
        if billed_below_public(qty, rate, u) {
            *self.below_public.entry(sku).or_default() += 1;
        }
    }

    /// The rated lines as an org-mergeable ledger.
    pub fn finish(self) -> Ledger {
        let acct = |i: u32| self.accounts.names[i as usize].clone();
        let svc = |i: u32| self.services.names[i as usize].clone();
        let key = |a: u32, s: u32, lt: u8| LineKey {
            account: acct(a),
            service: svc(s),
            line_type: LineType::from_code(lt).unwrap_or(LineType::Usage),
        };
        let track = |t: u8| {
            if t == 0 {
                Track::Actual
            } else {
                Track::Proforma
            }
        };
        let mut ledger = Ledger {
            rows_without_public_price: self.rows_without_public_price,
            ..Ledger::default()
        };
        for (packed, sums) in &self.lines {
            let (a, s, lt) = (
                (packed >> 40) as u32,
                ((packed >> 8) & 0xffff_ffff) as u32,
                (packed & 0xff) as u8,
            );
            ledger.lines.insert(key(a, s, lt), sums.clone());
        }
        for ((t, rule, a, s, lt), q) in &self.tier_usage {
            ledger
                .tier_usage
                .insert((track(*t), *rule, key(*a, *s, *lt)), *q);
        }
        for ((t, sku, a, s, lt), q) in &self.free_usage {
            ledger.free_usage.insert(
                (
                    track(*t),
                    self.sku_entries[*sku as usize].key(),
                    key(*a, *s, *lt),
                ),
                *q,
            );
        }
        for (sku, r) in self
            .max_paid_rate
            .iter()
            .enumerate()
            .filter(|(_, r)| **r > 0)
        {
            ledger.max_paid_rate.insert(self.sku_entries[sku].key(), *r);
        }
        for (sku, n) in &self.below_public {
            let e = &self.sku_entries[*sku as usize];
            *ledger
                .below_public
                .entry(format!("{} {}", e.part(0), e.part(1)))
                .or_default() += n;
        }
        ledger
    }
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
