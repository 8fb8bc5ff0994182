//! FOCUS input mapped onto CUR's terms: ServiceName to product code
//! (src/ingest/aws_services.csv), ChargeCategory and the commitment columns to
//! line item types (docs/DOMAIN.md, decision 18).

use super::*;

/// AWS service names (FOCUS `ServiceName`, CUR `product_product_name`) and product codes,
/// from `aws_services.csv` beside this file (docs/INPUTS.md), parsed once for both directions.
struct ServiceTable {
    /// Lower-cased name -> code.
    code_of: FxHashMap<String, &'static str>,
    /// Code -> the first name the table gives it.
    name_of: FxHashMap<&'static str, &'static str>,
}

fn service_table() -> &'static ServiceTable {
    static TABLE: std::sync::OnceLock<ServiceTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = ServiceTable {
            code_of: FxHashMap::default(),
            name_of: FxHashMap::default(),
        };
        for line in include_str!("aws_services.csv").lines().skip(1) {
            if let Some((name, code)) = line.rsplit_once(',') {
                let (name, code) = (name.trim().trim_matches('"'), code.trim());
                t.code_of.insert(name.to_ascii_lowercase(), code);
                t.name_of.entry(code).or_insert(name);
            }
        }
        t
    })
}

/// The product code of an AWS service name (case-insensitive).
pub fn product_code_of_service_name(name: &str) -> Option<&'static str> {
    service_table()
        .code_of
        .get(&name.trim().to_ascii_lowercase())
        .copied()
}

/// The service name AWS uses for a product code, for FOCUS exports.
pub fn service_name_of_product_code(code: &str) -> Option<&'static str> {
    service_table().name_of.get(code).copied()
}

/// Maps a FOCUS row's classification onto a CUR line item type (docs/DOMAIN.md,
/// decision 18). `None` arguments are FOCUS nulls. An unknown ChargeCategory gives `None`.
pub fn focus_line_type(
    category: &str,
    frequency: Option<&str>,
    commitment_id: Option<&str>,
    commitment_category: Option<&str>,
) -> Option<LineType> {
    let is = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b);
    let spend = commitment_category.is_some_and(|c| is(c, "Spend"));
    let one_time = frequency.is_some_and(|f| is(f, "One-Time"));
    let committed = commitment_id.is_some();
    Some(if is(category, "Usage") {
        match (committed, spend) {
            (false, _) => LineType::Usage,
            (true, true) => LineType::SavingsPlanCoveredUsage,
            (true, false) => LineType::DiscountedUsage,
        }
    } else if is(category, "Purchase") {
        match (committed, spend, one_time) {
            (false, _, _) => LineType::Fee,
            (true, true, true) => LineType::SavingsPlanUpfrontFee,
            (true, true, false) => LineType::SavingsPlanRecurringFee,
            (true, false, true) => LineType::Fee,
            (true, false, false) => LineType::RIFee,
        }
    } else if is(category, "Tax") {
        LineType::Tax
    } else if is(category, "Credit") {
        LineType::Credit
    } else if is(category, "Adjustment") {
        LineType::Refund
    } else {
        return None;
    })
}

/// A FOCUS text cell: `None` for null, empty or the literal `null` the FOCUS examples use.
pub(super) fn focus_text(d: Option<&TextColumn>, i: usize) -> Option<&str> {
    let d = d?;
    let k = key_at(d, i)?;
    let v = dict_values(d);
    if !v.is_valid(k) {
        return None;
    }
    let t = v.value(k).trim();
    (!t.is_empty() && !t.eq_ignore_ascii_case("null")).then_some(t)
}

/// Gives a FOCUS chunk the CUR-shaped columns normalize expects: a line item type
/// derived from ChargeCategory and the commitment columns, and the management
/// account where the file names no account.
pub(super) fn focus_columns(
    chunk: &mut RawChunk,
    map: &ColumnMap,
    check: &OrgCheck,
    warnings: &mut Vec<String>,
) -> std::result::Result<(), arrow::error::ArrowError> {
    let n = chunk.len();
    // Rules speak AWS product codes: without x_ServiceCode, map ServiceName to its code.
    let product = Field::ProductCode as usize;
    let from_name = map.names[product]
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("servicename"));
    if let (true, Some(d)) = (from_name, chunk.text[product].as_ref()) {
        if let Some(mapped) = rewrite_values(d, |v| {
            let code = product_code_of_service_name(v);
            if code.is_none() && !v.trim().is_empty() {
                warnings.push(format!("FOCUS ServiceName `{}` has no AWS product code in billxfer's table (src/ingest/aws_services.csv): rules by service do not match it; add x_ServiceCode to the export", v.trim()));
            }
            code.map(str::to_string)
        })? {
            chunk.text[product] = Some(mapped);
        }
    }
    let t = |x: Field| chunk.text[x as usize].as_ref();
    let mut types = arrow::array::StringDictionaryBuilder::<Int32Type>::new();
    let mut memo: FxHashMap<[Option<i32>; 4], Option<LineType>> = FxHashMap::default();
    for i in 0..n {
        let keys = [
            Field::ChargeCategory,
            Field::ChargeFrequency,
            Field::CommitmentId,
            Field::CommitmentCategory,
        ]
        .map(|x| t(x).and_then(|d| key_at(d, i)).map(|k| k as i32));
        let lt = *memo.entry(keys).or_insert_with(|| {
            let category = focus_text(t(Field::ChargeCategory), i)?;
            focus_line_type(
                category,
                focus_text(t(Field::ChargeFrequency), i),
                focus_text(t(Field::CommitmentId), i),
                focus_text(t(Field::CommitmentCategory), i),
            )
        });
        // FOCUS has no negation category: a Savings Plan negation arrives as a Usage
        // row with a negative BilledCost (billxfer's own FOCUS export writes it so).
        let negative = chunk.num[Field::UnblendedCost as usize]
            .as_ref()
            .and_then(|c| c.get(i))
            .is_some_and(|c| c < 0);
        let lt = match lt {
            Some(LineType::Usage | LineType::SavingsPlanCoveredUsage) if negative => {
                Some(LineType::SavingsPlanNegation)
            }
            other => other,
        };
        match lt {
            Some(lt) => types.append_value(lt.as_str()),
            None => types.append_value(
                focus_text(t(Field::ChargeCategory), i).unwrap_or("(null ChargeCategory)"),
            ),
        }
    }
    chunk.text[Field::LineType as usize] = Some(types.finish());
    let account = Field::UsageAccount as usize;
    if chunk.text[account].is_none() {
        chunk.text[account] = Some(DictionaryArray::try_new(
            Int32Array::from(vec![0; n]),
            Arc::new(StringArray::from(vec![check.management_account.as_str()])) as ArrayRef,
        )?);
    }
    Ok(())
}
