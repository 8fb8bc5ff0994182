//! The rating kernel: a normalized `RecordBatch` in, two tracks of exact amounts out.
//!
//! Every line is rated twice: on the **actual** track (what AWS charges the
//! partner) and on the **pro forma** track (what the customer is shown). Which
//! rule prices a line is resolved once per distinct key (service, usage type,
//! operation, region, billing entity) and cached; the per-row work is a cache
//! lookup and fixed-point arithmetic. Amounts that depend on the whole month
//! (custom tiered rates, free tier turned off) are deferred: the kernel records
//! the quantity and [`Ledger::finalize`] prices it once the org's month is known.

use std::sync::Arc;

use serde::Serialize;

use crate::rules::{RuleSet, SkuKey};
use crate::types::LineType;

mod kernel;
mod ledger;

pub use kernel::{RatedBatch, Rater, BELOW_PUBLIC_TOLERANCE_PER_MILLE};
pub use ledger::Ledger;

/// The two tracks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    /// What AWS charges the partner.
    Actual = 0,
    /// What the customer is shown.
    Proforma = 1,
}

/// How one track prices lines for one organization.
#[derive(Debug, Clone)]
pub enum Pricing {
    /// The line's billed cost: net unblended when present, else unblended.
    Billed,
    /// Public price adjusted by rules (custom plans, `basic`, or public-mode actual rates).
    Rules(Arc<RuleSet>),
    /// The same amount as the actual track (the `passthrough` plan).
    SameAsActual,
    /// Not rated on this track (the partner's own org has no pro forma bill).
    None,
}

/// What a track does with a line of a given type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Billed cost (net unblended when present, else unblended).
    Billed,
    /// Unblended cost as delivered (public constructs: RI/SP fees, covered usage, bundled discounts).
    AsDelivered,
    /// Public on-demand price with the winning rule.
    Rate,
    /// The actual track's amount.
    SameAsActual,
    /// Left out of this track (non-public discounts, credits, tax, support on the pro forma track).
    Excluded,
}

/// Whether a product code is an AWS Support plan (excluded from pro forma, as by AWS `BasicPricingPlan`).
pub fn is_support(product_code: &str) -> bool {
    product_code.starts_with("AWSSupport") || product_code == "AWSDeveloperSupport"
}

/// The documented treatment of each line item type on each track (docs/DOMAIN.md).
pub fn treatment(track: Track, pricing: &Pricing, lt: LineType, support: bool) -> Treatment {
    use LineType::*;
    match pricing {
        Pricing::Billed => Treatment::Billed,
        Pricing::SameAsActual => Treatment::SameAsActual,
        Pricing::None => Treatment::Excluded,
        Pricing::Rules(_) => match track {
            Track::Proforma => {
                if support {
                    return Treatment::Excluded;
                }
                match lt {
                    Usage => Treatment::Rate,
                    DiscountedUsage
                    | SavingsPlanCoveredUsage
                    | SavingsPlanNegation
                    | SavingsPlanUpfrontFee
                    | SavingsPlanRecurringFee
                    | RIFee
                    | Fee
                    | BundledDiscount
                    | RiVolumeDiscount => Treatment::AsDelivered,
                    Tax | Credit | Refund | EdpDiscount | PrivateRateDiscount | SppDiscount
                    | Discount => Treatment::Excluded,
                }
            }
            Track::Actual => match lt {
                Usage => Treatment::Rate,
                EdpDiscount | PrivateRateDiscount | SppDiscount | Discount => Treatment::Excluded,
                _ => Treatment::AsDelivered,
            },
        },
    }
}

/// An invoice line key: account, service, line item type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct LineKey {
    /// Usage account id.
    pub account: String,
    /// Product code.
    pub service: String,
    /// Line item type.
    pub line_type: LineType,
}

/// Sums for one line key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineSums {
    /// Rows rated into this key.
    pub rows: u64,
    /// Σ usage amount.
    pub usage: i128,
    /// Σ unblended cost as delivered.
    pub unblended: i128,
    /// Σ actual track.
    pub actual: i128,
    /// Σ pro forma track.
    pub proforma: i128,
    /// Σ amortized (effective) cost on the actual track.
    pub effective: i128,
    /// Rows that the pro forma track includes (0: the key is absent from the customer's invoice).
    pub proforma_rows: u64,
}

impl LineSums {
    fn merge(&mut self, o: &LineSums) -> Option<()> {
        self.rows += o.rows;
        self.usage = self.usage.checked_add(o.usage)?;
        self.unblended = self.unblended.checked_add(o.unblended)?;
        self.actual = self.actual.checked_add(o.actual)?;
        self.proforma = self.proforma.checked_add(o.proforma)?;
        self.effective = self.effective.checked_add(o.effective)?;
        self.proforma_rows += o.proforma_rows;
        Some(())
    }
}

/// A distinct rule-matching key, owned.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct SkuKeyOwned {
    /// Product code.
    pub service: String,
    /// Usage type.
    pub usage_type: String,
    /// Operation.
    pub operation: String,
    /// Region.
    pub region: String,
    /// Billing entity.
    pub billing_entity: String,
}

impl SkuKeyOwned {
    fn borrow(&self) -> SkuKey<'_> {
        SkuKey {
            service: &self.service,
            usage_type: &self.usage_type,
            operation: &self.operation,
            region: &self.region,
            billing_entity: &self.billing_entity,
        }
    }
}
