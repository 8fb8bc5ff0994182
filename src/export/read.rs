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

pub(super) enum Full {
    Parquet(parquet::arrow::arrow_reader::ParquetRecordBatchReader),
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        width: usize,
        row: u64,
        record: csv::ByteRecord,
    },
}

/// Every column of an input file, as batches of (cells, file row numbers).
pub(super) struct FullReader {
    pub(super) path: PathBuf,
    pub(super) schema: SchemaRef,
    pub(super) inner: Full,
    pub(super) next_row: u64,
}

impl FullReader {
    pub(super) fn open(path: &Path) -> Result<FullReader> {
        let mut magic = [0u8; 4];
        let n = File::open(path)
            .and_then(|mut f| f.read(&mut magic))
            .map_err(|e| Error::io(path, e))?;
        if n == 4 && &magic == b"PAR1" {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let b = ParquetRecordBatchReaderBuilder::try_new_with_options(
                file,
                ArrowReaderOptions::new().with_skip_arrow_metadata(true),
            )
            .map_err(|e| Error::input(path, format!("not a readable Parquet file: {e}")))?;
            let schema = b.schema().clone();
            let reader = b
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| Error::input(path, format!("cannot read Parquet: {e}")))?;
            return Ok(FullReader {
                path: path.to_path_buf(),
                schema,
                inner: Full::Parquet(reader),
                next_row: 1,
            });
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let input: Box<dyn Read + Send> = if n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                1 << 16,
                file,
            )))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, file))
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(input);
        let headers = reader
            .headers()
            .map_err(|e| Error::input(path, format!("cannot read the CSV header: {e}")))?
            .clone();
        let schema = Arc::new(Schema::new(
            headers
                .iter()
                .map(|h| {
                    Field::new(
                        h.trim().trim_start_matches('\u{feff}'),
                        DataType::Utf8,
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        ));
        Ok(FullReader {
            path: path.to_path_buf(),
            schema,
            inner: Full::Csv {
                reader,
                width: headers.len(),
                row: 0,
                record: csv::ByteRecord::new(),
            },
            next_row: 1,
        })
    }

    pub(super) fn next_batch(&mut self) -> Option<Result<(RecordBatch, Vec<u64>)>> {
        match &mut self.inner {
            Full::Parquet(r) => {
                let b = r.next()?;
                Some(
                    b.map_err(|e| Error::input(&self.path, e.to_string()))
                        .map(|b| {
                            let n = b.num_rows() as u64;
                            let rows = (self.next_row..self.next_row + n).collect();
                            self.next_row += n;
                            (b, rows)
                        }),
                )
            }
            Full::Csv {
                reader,
                width,
                row,
                record,
            } => {
                let width = *width;
                let mut builders: Vec<StringBuilder> =
                    (0..width).map(|_| StringBuilder::new()).collect();
                let mut rows = Vec::new();
                while rows.len() < BATCH_ROWS {
                    // Bytes, as the run's reader reads them: a row with invalid UTF-8 in a
                    // column the run ignores was rated and must be found again.
                    match reader.read_byte_record(record) {
                        Ok(false) => break,
                        Ok(true) => {}
                        // Rows a reader cannot parse were quarantined by the run: stop here,
                        // rated rows before them are all delivered.
                        Err(_) => break,
                    }
                    *row += 1;
                    if record.len() == 1 && record[0].is_empty() {
                        *row -= 1;
                        continue;
                    }
                    if record.len() != width {
                        continue;
                    }
                    rows.push(*row);
                    for (b, cell) in builders.iter_mut().zip(record.iter()) {
                        let cell = String::from_utf8_lossy(cell);
                        let t = cell.trim();
                        if t.is_empty() || t.eq_ignore_ascii_case("null") {
                            b.append_null();
                        } else {
                            b.append_value(t);
                        }
                    }
                }
                if rows.is_empty() {
                    return None;
                }
                let columns: Vec<ArrayRef> = builders
                    .into_iter()
                    .map(|mut b| Arc::new(b.finish()) as ArrayRef)
                    .collect();
                Some(
                    RecordBatch::try_new(self.schema.clone(), columns)
                        .map_err(|e| Error::input(&self.path, e.to_string()))
                        .map(|b| (b, rows)),
                )
            }
        }
    }
}

/// Batches read ahead from the full reader, kept until the rated rows pass them.
pub(super) struct Aligner {
    pub(super) reader: FullReader,
    pub(super) queue: Vec<(RecordBatch, Vec<u64>)>,
}

impl Aligner {
    /// (batch index in `queue`, row index) of each wanted row number (ascending).
    pub(super) fn locate(&mut self, wanted: &[u64]) -> Result<Vec<(usize, usize)>> {
        let Some(&last) = wanted.last() else {
            return Ok(Vec::new());
        };
        while self
            .queue
            .last()
            .is_none_or(|(_, rows)| rows.last().is_none_or(|&l| l < last))
        {
            match self.reader.next_batch() {
                Some(x) => self.queue.push(x?),
                None => break,
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        let mut b = 0usize;
        for &r in wanted {
            while b < self.queue.len() && self.queue[b].1.last().is_none_or(|&l| l < r) {
                b += 1;
            }
            let found = self
                .queue
                .get(b)
                .and_then(|(_, rows)| rows.binary_search(&r).ok());
            match found {
                Some(p) => out.push((b, p)),
                None => {
                    return Err(Error::input(
                        &self.reader.path,
                        format!("internal: row {r} was rated but is missing when the file is read again for the exports (was it changed during the run?)"),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Forgets batches whose rows all come before `row`.
    pub(super) fn release(&mut self, row: u64) {
        let keep_from = self
            .queue
            .iter()
            .position(|(_, rows)| rows.last().is_some_and(|&l| l >= row))
            .unwrap_or(self.queue.len());
        self.queue.drain(..keep_from);
    }
}
