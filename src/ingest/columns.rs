//! Columns: the logical fields billxfer reads, each format's names for them,
//! which format a header is (docs/INPUTS.md, "Which format"), and the refusal of
//! a needed column that appears twice.

use std::path::Path;

use crate::error::{Error, Result};

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

/// Per field: the header's position and the name it was found under.
type FoundFields = ([Option<usize>; FIELDS], [Option<String>; FIELDS]);

/// Each field's column: the first of its candidate names (`names_of`) found among
/// the normalized headers, with the header as written in the file. A name that two
/// headers both spell (`lineItem/UnblendedCost` next to `line_item_unblended_cost`)
/// is an error naming both positions: billxfer does not choose between them.
fn find_fields(
    headers: &[String],
    normalized: &[String],
    names_of: fn(Field) -> &'static [&'static str],
) -> std::result::Result<FoundFields, String> {
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
