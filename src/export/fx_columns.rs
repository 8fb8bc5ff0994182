//! The customer's FOCUS rows in its invoice currency (docs/CURRENCY.md): the
//! cost and unit-price columns converted from USD at the invoice's rate, the
//! USD prices kept in the FOCUS 1.2 pricing-currency columns.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::Decimal128Type;

use super::rows::{constant, decs};
use crate::error::{Error, Result};
use crate::fx::Applied;
use crate::money::mul_fixed;

/// A decimal column's values, if the column is there.
fn values(cols: &BTreeMap<&'static str, ArrayRef>, name: &str) -> Option<Vec<Option<i128>>> {
    let a = cols.get(name)?.as_primitive_opt::<Decimal128Type>()?;
    Some(
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect(),
    )
}

/// Converts the billing-currency columns of `n` FOCUS rows from USD with `fx`.
///
/// BilledCost and EffectiveCost are converted row by row; ListUnitPrice and
/// ContractedUnitPrice too, and ListCost and ContractedCost become the
/// converted unit price × PricingQuantity where both are there (so FOCUS's
/// cost = unit price × quantity rule still holds), else the converted cost.
/// PricingCurrency stays USD, with PricingCurrencyListUnitPrice,
/// PricingCurrencyContractedUnitPrice and PricingCurrencyEffectiveCost the USD figures.
pub(super) fn to_billing_currency(
    cols: &mut BTreeMap<&'static str, ArrayRef>,
    fx: &Applied,
    n: usize,
) -> Result<()> {
    let overflow = || Error::Overflow("converting an export to the invoice currency".into());
    let convert = |v: &[Option<i128>]| -> Result<Vec<Option<i128>>> {
        v.iter()
            .map(|x| x.map(|x| fx.convert(x).ok_or_else(overflow)).transpose())
            .collect()
    };
    if let Some(e) = values(cols, "EffectiveCost") {
        cols.insert("PricingCurrencyEffectiveCost", decs(e.clone())?);
        cols.insert("EffectiveCost", decs(convert(&e)?)?);
    }
    if let Some(b) = values(cols, "BilledCost") {
        cols.insert("BilledCost", decs(convert(&b)?)?);
    }
    let quantity = values(cols, "PricingQuantity").unwrap_or_else(|| vec![None; n]);
    for (unit, cost, pricing_unit) in [
        ("ListUnitPrice", "ListCost", "PricingCurrencyListUnitPrice"),
        (
            "ContractedUnitPrice",
            "ContractedCost",
            "PricingCurrencyContractedUnitPrice",
        ),
    ] {
        let usd_unit = values(cols, unit).unwrap_or_else(|| vec![None; n]);
        let unit_converted = convert(&usd_unit)?;
        if let Some(c) = values(cols, cost) {
            let converted: Vec<Option<i128>> = c
                .iter()
                .enumerate()
                .map(|(i, usd)| {
                    match (
                        unit_converted.get(i).copied().flatten(),
                        quantity.get(i).copied().flatten(),
                    ) {
                        (Some(p), Some(q)) => mul_fixed(p, q).map(Some).ok_or_else(overflow),
                        _ => usd.map(|x| fx.convert(x).ok_or_else(overflow)).transpose(),
                    }
                })
                .collect::<Result<_>>()?;
            cols.insert(cost, decs(converted)?);
        }
        cols.insert(pricing_unit, decs(usd_unit)?);
        cols.insert(unit, decs(unit_converted)?);
    }
    cols.insert("BillingCurrency", constant(&fx.currency, n));
    Ok(())
}
