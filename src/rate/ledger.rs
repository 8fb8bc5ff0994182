//! An organization's rated month: mergeable line sums, and the month-end pricing
//! (custom tiers, free tier off) that needs the whole month.

use std::collections::BTreeMap;

use super::{LineKey, LineSums, Pricing, SkuKeyOwned, Track};
use crate::error::{Error, Result};
use crate::money::mul_fixed;
use crate::rules::{allocate_proportionally, apply_modifier, Action, RuleSet};

/// An organization's rated month (or part of it), mergeable across files.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    /// Sums per line key.
    pub lines: BTreeMap<LineKey, LineSums>,
    /// Deferred quantities priced by a custom tier table: (track, rule index, key) → quantity.
    pub tier_usage: BTreeMap<(Track, u32, LineKey), i128>,
    /// Deferred zero-rated quantities with the free tier off: (track, sku, key) → quantity.
    pub free_usage: BTreeMap<(Track, SkuKeyOwned, LineKey), i128>,
    /// Highest positive public rate seen per SKU key (the first paid tier).
    pub max_paid_rate: BTreeMap<SkuKeyOwned, i128>,
    /// Rows priced from unblended cost because they carried no public price.
    pub rows_without_public_price: u64,
    /// Things a person should know about the month.
    pub warnings: Vec<String>,
    /// SKUs with zero-rated usage, the free tier off, and no paid rate seen this month:
    /// they stay at 0 (docs/DOMAIN.md); listed once each in the manifest, not as warnings.
    pub unpriced_free_skus: std::collections::BTreeSet<String>,
    /// Charges priced at month end (custom tiers, free tier off) per track and
    /// line: (amount, quantity), so exports can split them back onto rows.
    pub deferred: BTreeMap<(Track, LineKey), (i128, i128)>,
    /// `Usage` lines on a rules plan whose unblended cost is more than
    /// [`BELOW_PUBLIC_TOLERANCE_PER_MILLE`] below usage × public on-demand rate,
    /// per `service usage_type` (docs/DOMAIN.md, "The pro forma base").
    #[serde(default)]
    pub below_public: BTreeMap<String, u64>,
}

impl Ledger {
    /// Adds another part of the same org's month.
    pub fn merge(&mut self, other: Ledger) -> Result<()> {
        if self.is_empty() {
            // The first part of an org (most orgs have one): taken whole, nothing to add.
            *self = other;
            return Ok(());
        }
        let overflow = || Error::Overflow("merging an organization's rated lines".into());
        for (k, v) in other.lines {
            self.lines
                .entry(k)
                .or_default()
                .merge(&v)
                .ok_or_else(overflow)?;
        }
        for (k, v) in other.tier_usage {
            let e = self.tier_usage.entry(k).or_default();
            *e = e.checked_add(v).ok_or_else(overflow)?;
        }
        for (k, v) in other.free_usage {
            let e = self.free_usage.entry(k).or_default();
            *e = e.checked_add(v).ok_or_else(overflow)?;
        }
        for (k, v) in other.max_paid_rate {
            let e = self.max_paid_rate.entry(k).or_default();
            *e = (*e).max(v);
        }
        self.rows_without_public_price += other.rows_without_public_price;
        for (k, n) in other.below_public {
            *self.below_public.entry(k).or_default() += n;
        }
        self.warnings.extend(other.warnings);
        self.unpriced_free_skus.extend(other.unpriced_free_skus);
        Ok(())
    }

    /// Nothing rated, deferred or noted yet (a fresh ledger).
    fn is_empty(&self) -> bool {
        // Destructured so that a new field must be considered here.
        let Ledger {
            lines,
            tier_usage,
            free_usage,
            max_paid_rate,
            rows_without_public_price,
            warnings,
            unpriced_free_skus,
            deferred,
            below_public,
        } = self;
        lines.is_empty()
            && tier_usage.is_empty()
            && free_usage.is_empty()
            && max_paid_rate.is_empty()
            && *rows_without_public_price == 0
            && warnings.is_empty()
            && unpriced_free_skus.is_empty()
            && deferred.is_empty()
            && below_public.is_empty()
    }

    /// Prices the deferred quantities of the whole month and adds them to the lines.
    pub fn finalize(&mut self, actual: &Pricing, proforma: &Pricing) -> Result<()> {
        let overflow = |what: &str| Error::Overflow(what.to_string());
        // Custom tier tables: price the org's cumulative quantity per rule, then
        // split the charge across keys in proportion to their quantities.
        let mut by_rule: BTreeMap<(Track, u32), Vec<(LineKey, i128)>> = BTreeMap::new();
        for ((track, rule, key), qty) in std::mem::take(&mut self.tier_usage) {
            by_rule.entry((track, rule)).or_default().push((key, qty));
        }
        for ((track, rule), parts) in by_rule {
            let Some(set) = rules_of(track, actual, proforma) else {
                continue;
            };
            let Some(Action::Custom(table)) = set
                .rules()
                .get(rule as usize)
                .and_then(|r| r.action.clone())
            else {
                continue;
            };
            let total_qty = parts
                .iter()
                .try_fold(0i128, |a, (_, q)| a.checked_add(*q))
                .ok_or_else(|| overflow("summing tiered usage"))?;
            let charge = table
                .charge(total_qty)
                .ok_or_else(|| overflow("pricing tiered usage"))?;
            let weights: Vec<i128> = parts.iter().map(|(_, q)| *q).collect();
            let shares = allocate_proportionally(charge, &weights);
            for ((key, qty), share) in parts.into_iter().zip(shares) {
                self.add_month_end(track, key, share, qty)
                    .ok_or_else(|| overflow("adding tiered charges"))?;
            }
        }
        // Free tier off: zero-rated usage is priced at the SKU's first paid rate,
        // then the winning modifier applies.
        for ((track, sku, key), qty) in std::mem::take(&mut self.free_usage) {
            let Some(set) = rules_of(track, actual, proforma) else {
                continue;
            };
            let Some(&rate) = self.max_paid_rate.get(&sku) else {
                // The quantity still counts for splitting the line's charge (of 0) onto rows.
                self.add_month_end(track, key, 0, qty)
                    .ok_or_else(|| overflow("adding free-tier usage"))?;
                // Not a warning: zero-rated usage without any paid rate this month is
                // mostly always-free (inbound data transfer); the manifest lists the SKUs.
                self.unpriced_free_skus
                    .insert(format!("{} {}", sku.service, sku.usage_type));
                continue;
            };
            let res = set.resolve(&sku.borrow());
            let amount = mul_fixed(qty, rate)
                .and_then(|a| apply_modifier(a, res.action.as_ref()))
                .ok_or_else(|| overflow("pricing usage beyond the free tier"))?;
            self.add_month_end(track, key, amount, qty)
                .ok_or_else(|| overflow("adding free-tier charges"))?;
        }
        Ok(())
    }

    /// Adds a charge priced at month end to its line (and, on the actual track, to
    /// the amortized cost), and records it with its quantity for the exports' split.
    fn add_month_end(&mut self, track: Track, key: LineKey, amount: i128, qty: i128) -> Option<()> {
        let d = self.deferred.entry((track, key.clone())).or_default();
        d.0 = d.0.checked_add(amount)?;
        d.1 = d.1.checked_add(qty)?;
        let sums = self.lines.entry(key).or_default();
        if track == Track::Actual {
            sums.actual = sums.actual.checked_add(amount)?;
            sums.effective = sums.effective.checked_add(amount)?;
        } else {
            sums.proforma = sums.proforma.checked_add(amount)?;
        }
        Some(())
    }

    /// Σ of a track over all lines.
    pub fn total(&self, track: Track) -> Result<i128> {
        self.lines
            .values()
            .try_fold(0i128, |a, s| {
                a.checked_add(if track == Track::Actual {
                    s.actual
                } else {
                    s.proforma
                })
            })
            .ok_or_else(|| Error::Overflow("totalling a track".into()))
    }
}

/// The rule set that prices `track`, when rules price it.
fn rules_of<'p>(track: Track, actual: &'p Pricing, proforma: &'p Pricing) -> Option<&'p RuleSet> {
    match if track == Track::Actual {
        actual
    } else {
        proforma
    } {
        Pricing::Rules(set) => Some(set.as_ref()),
        _ => None,
    }
}
