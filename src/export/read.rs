//! Reading every column of an input file, aligned with the normalized rows by file row number.

use super::*;

/// CUR 2.0 columns typed double (reference: cur-and-focus.md section 2).
pub(super) fn is_cur_double(name: &str) -> bool {
    const DOUBLES: &[&str] = &[
        "discount_bundled_discount",
        "discount_total_discount",
        "line_item_blended_cost",
        "line_item_net_unblended_cost",
        "line_item_normalization_factor",
        "line_item_normalized_usage_amount",
        "line_item_unblended_cost",
        "line_item_usage_amount",
        "pricing_public_on_demand_cost",
    ];
    DOUBLES.contains(&name)
        || ((name.starts_with("reservation_")
            || name.starts_with("savings_plan_")
            || name.starts_with("split_line_item_"))
            && !matches!(
                name,
                "reservation_availability_zone"
                    | "reservation_end_time"
                    | "reservation_modification_status"
                    | "reservation_reservation_a_r_n"
                    | "reservation_start_time"
                    | "reservation_subscription_id"
                    | "savings_plan_end_time"
                    | "savings_plan_instance_type_family"
                    | "savings_plan_offering_type"
                    | "savings_plan_payment_option"
                    | "savings_plan_purchase_term"
                    | "savings_plan_region"
                    | "savings_plan_savings_plan_a_r_n"
                    | "savings_plan_savings_plan_rate"
                    | "savings_plan_start_time"
                    | "split_line_item_parent_resource_id"
            ))
}

/// CUR 2.0 columns typed timestamp.
pub(super) fn is_cur_timestamp(name: &str) -> bool {
    matches!(
        name,
        "bill_billing_period_end_date"
            | "bill_billing_period_start_date"
            | "line_item_usage_end_date"
            | "line_item_usage_start_date"
    )
}

/// Timestamps in the exports: milliseconds, UTC.
pub(super) fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Where a FOCUS input column goes in the CUR-shaped row (the rest are recomputed or dropped).
pub(super) fn cur_name_of_focus(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "chargeperiodstart" => "line_item_usage_start_date",
        "chargeperiodend" => "line_item_usage_end_date",
        "chargedescription" => "line_item_line_item_description",
        "resourceid" => "line_item_resource_id",
        "skuid" => "product_sku",
        "regionid" => "product_region_code",
        "pricingunit" => "pricing_unit",
        "availabilityzone" => "line_item_availability_zone",
        "subaccountname" => "line_item_usage_account_name",
        "publishername" => "line_item_legal_entity",
        "invoiceid" => "bill_invoice_id",
        "commitmentdiscountid" => "x_commitment_discount_id",
        "commitmentdiscountcategory" => "x_commitment_discount_category",
        "commitmentdiscountstatus" => "x_commitment_discount_status",
        _ => return None,
    })
}

/// The CUR-shaped name and export type of each column of a file; `None` for
/// columns not carried (FOCUS metrics, which are recomputed).
/// Whether a (snake_case) column name is a CUR column: one of the CUR 2.0 / legacy CUR
/// column families. Columns that loaders add (dlt's `_dlt_id`, Glue/Athena partitions
/// such as `billing_period`, `year`, `month`) are not, and never travel to an export.
pub fn is_cur_column(name: &str) -> bool {
    const FAMILIES: [&str; 16] = [
        "bill_",
        "identity_",
        "line_item_",
        "pricing_",
        "product_",
        "reservation_",
        "savings_plan_",
        "resource_tags_",
        "cost_category_",
        "discount_",
        "split_line_item_",
        "capacity_reservation_",
        "product",
        "resource_tags",
        "cost_category",
        "discount",
    ];
    FAMILIES[..12].iter().any(|f| name.starts_with(f)) || FAMILIES[12..].contains(&name)
}

/// Each input column's export name and type; `None` for columns that do not travel
/// (not a CUR column, or a FOCUS column without a CUR counterpart).
pub(super) fn wide_columns(dialect: Dialect, schema: &Schema) -> Vec<Option<(String, DataType)>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let name = if dialect == Dialect::Focus {
                cur_name_of_focus(f.name())?.to_string()
            } else {
                let n = snake_name(f.name());
                if !is_cur_column(&n) {
                    return None;
                }
                n
            };
            let t = if is_cur_double(&name) {
                DataType::Float64
            } else if is_cur_timestamp(&name) {
                ts_type()
            } else if f.data_type().is_nested() {
                // Maps (tags, product attributes), lists and structs are carried as they are.
                f.data_type().clone()
            } else {
                DataType::Utf8
            };
            Some((name, t))
        })
        .collect()
}

/// The columns of an input file, as the readers carry them: a Parquet file's own
/// types (its embedded arrow schema ignored, as the readers do), or a CSV
/// header's names (trimmed, without a byte-order mark) as text.
pub(super) fn input_schema(path: &Path) -> Result<SchemaRef> {
    if ingest::is_parquet(path)? {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let b = ParquetRecordBatchReaderBuilder::try_new_with_options(
            file,
            ArrowReaderOptions::new().with_skip_arrow_metadata(true),
        )
        .map_err(|e| Error::input(path, format!("not a readable Parquet file: {e}")))?;
        return Ok(b.schema().clone());
    }
    let mut magic = [0u8; 2];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| Error::io(path, e))?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let input: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let headers = reader
        .byte_headers()
        .map_err(|e| Error::input(path, format!("cannot read the CSV header: {e}")))?;
    Ok(Arc::new(Schema::new(
        headers
            .iter()
            .map(|h| {
                let h = String::from_utf8_lossy(h);
                Field::new(
                    h.trim().trim_start_matches('\u{feff}'),
                    DataType::Utf8,
                    true,
                )
            })
            .collect::<Vec<_>>(),
    )))
}
