//! The amortized (effective) cost of each row as delivered (docs/DOMAIN.md, decision 19).

use super::*;

/// The amortized cost of each row as delivered. FOCUS: EffectiveCost. CUR: AWS's
/// amortization rule by line item type (reference: cur-and-focus.md section 4),
/// falling back to the billed cost when a needed column is absent.
pub(super) fn effective_costs(
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
