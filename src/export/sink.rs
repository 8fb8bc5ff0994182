//! The export sinks of the one pass: every rating task hands each rated chunk
//! here, with the chunk's carried columns, and its rows are built and written at
//! once into the task's own part of each dataset (or its roll-up). Rows whose
//! amount is priced at month end (custom tiers, free tier off) are held, built
//! only once the org's ledger is final, and written after the parts; then the
//! parts are joined into one file per dataset (Parquet column chunks copied,
//! CSV bytes appended) and each file is checked against its invoice.

use super::*;
use crate::invoice::CustomerInvoice;
use crate::rate::RatedBatch;
use held::HeldFile;

/// The three datasets of an org's exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cur,
    Focus,
    PartnerFocus,
}

const KINDS: [Kind; 3] = [Kind::Cur, Kind::Focus, Kind::PartnerFocus];

impl Kind {
    /// The name in `exports.json`.
    fn label(self) -> &'static str {
        match self {
            Kind::Cur => "cur",
            Kind::Focus => "focus",
            Kind::PartnerFocus => "partner_focus",
        }
    }

    /// The track whose amounts the dataset shows.
    fn track(self) -> Track {
        match self {
            Kind::PartnerFocus => Track::Actual,
            Kind::Cur | Kind::Focus => Track::Proforma,
        }
    }
}

/// One org's exports, planned before its files are rated and shared by its tasks.
pub struct OrgExport<'a> {
    ctx: OrgCtx<'a>,
    /// Export name and type of each column, per input file (by planned file index).
    kinds: BTreeMap<usize, Vec<Option<(String, DataType)>>>,
    cur_schema: SchemaRef,
    /// Input columns a customer never sees (for `exports.json`).
    dropped: BTreeSet<String>,
    /// The output folder being built.
    root: PathBuf,
    /// Where the org's parts are written before they are joined.
    parts: PathBuf,
    /// Which datasets are written, by `Kind` order.
    wanted: [bool; 3],
}

/// Each dataset's rows of one task: a part file, or a partial roll-up.
enum PartSink {
    Parquet(Box<ArrowWriter<BufWriter<File>>>),
    Csv(BufWriter<File>),
    RollUp(Box<RollUp>),
}

/// A dataset's rows written by one task.
struct Part {
    /// The part file (none for a roll-up).
    path: Option<PathBuf>,
    sink: Option<PartSink>,
    rows: u64,
    /// Σ of the rows' cost in USD, checked against the invoice.
    cost: i128,
    /// Σ of the cost column as written: `cost`, or for a FOCUS dataset in the
    /// invoice's currency, the converted BilledCost (docs/CURRENCY.md).
    billed: i128,
    /// Whether the cost column is converted from USD.
    converted: bool,
    /// Σ BilledCost per (InvoiceId, InvoiceDetailId), kept for FOCUS 1.3 and 1.4's
    /// rounding rows and 1.4's InvoiceDetail dataset ("" without a detail column).
    by_invoice: Option<InvoiceLines>,
}

/// Rows held until month end: their amount on `track` waits for the org's
/// month-end charges, which are split onto them in file order.
pub(super) struct Held {
    pub(super) track: Track,
    /// The input file the rows come from (for messages).
    pub(super) path: PathBuf,
    /// The normalized rows.
    pub(super) norm: RecordBatch,
    /// Their carried columns.
    pub(super) wide: BTreeMap<String, ArrayRef>,
    /// Amount rated before month end (usually 0).
    pub(super) amount: Vec<i128>,
    /// The track's treatment of each row.
    pub(super) treatment: Vec<Treatment>,
    /// The actual effective amount and the delivered one.
    pub(super) rated_effective: Vec<i128>,
    pub(super) effective_in: Vec<i128>,
    /// The invoice line each row belongs to, and its usage quantity.
    pub(super) line: Vec<LineKey>,
    pub(super) usage: Vec<i128>,
}

/// One task's share of an org's exports.
pub struct TaskSink {
    /// Input file (planned index) and first row of the task: the parts' order.
    order: (usize, u64),
    path: PathBuf,
    parts: [Option<Part>; 3],
    /// Held rows per track (actual, pro forma), on disk.
    held: [Option<HeldFile>; 2],
}

/// What a finished task leaves for the org's finish.
pub struct TaskParts {
    order: (usize, u64),
    parts: [Option<Part>; 3],
    held: Vec<HeldFile>,
}

impl TaskParts {
    /// Input file (planned index) and first row of the task.
    pub fn order(&self) -> (usize, u64) {
        self.order
    }

    /// Whether any of its datasets is a roll-up still holding groups.
    pub fn has_roll_ups(&self) -> bool {
        self.parts
            .iter()
            .flatten()
            .any(|p| matches!(p.sink, Some(PartSink::RollUp(_))))
    }

    /// Merges `other`'s roll-ups into this one's as soon as its task ends (a
    /// roll-up's order does not matter), so a large org's many tasks hold one
    /// roll-up per dataset between them, not one each.
    pub fn absorb_roll_ups(&mut self, other: &mut TaskParts) -> Result<()> {
        for (mine, theirs) in self.parts.iter_mut().zip(other.parts.iter_mut()) {
            let (Some(mine), Some(theirs)) = (mine.as_mut(), theirs.as_mut()) else {
                continue;
            };
            let Some(PartSink::RollUp(agg)) = mine.sink.as_mut() else {
                continue;
            };
            let Some(more) = theirs.take_roll_up() else {
                continue;
            };
            agg.merge(more)?;
            mine.cost = mine
                .cost
                .checked_add(theirs.cost)
                .ok_or_else(|| Error::Overflow("summing an export".into()))?;
            mine.billed = mine
                .billed
                .checked_add(theirs.billed)
                .ok_or_else(|| Error::Overflow("summing an export".into()))?;
            mine.rows += theirs.rows;
            (theirs.cost, theirs.billed, theirs.rows) = (0, 0, 0);
            if let (Some(m), Some(t)) = (mine.by_invoice.as_mut(), theirs.by_invoice.take()) {
                add_invoice_sums(m, t)?;
            }
        }
        Ok(())
    }
}

/// What the org's finish needs from its rated month.
pub struct OrgTotals<'a> {
    /// Month-end charges per (track, line): (charge, quantity).
    pub deferred: &'a BTreeMap<(Track, LineKey), (i128, i128)>,
    /// The actual invoice's exact total.
    pub actual_exact: i128,
    /// The customer's pro forma invoice (customers only).
    pub customer: Option<&'a CustomerInvoice>,
    /// That invoice in its billing currency (FOCUS 1.3 and 1.4's invoice rule).
    pub customer_billed: Option<&'a CustomerInvoice>,
    /// The actual invoice's rounded total (the partner's FOCUS 1.3 rounding).
    pub actual_total: i128,
}

/// What an org's exports wrote.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct OrgWritten {
    /// Files for `exports.json`.
    pub files: Vec<ExportFile>,
    /// Input columns dropped from the customer's CUR.
    pub dropped: BTreeSet<String>,
}

/// An output error at `path` from any writer's error.
/// The month's rate of an org invoiced in another currency than USD.
fn rate_of(
    config: &Config,
    o: &crate::config::Org,
    period: BillingPeriod,
) -> Result<crate::fx::Applied> {
    let missing = |message: String| Error::MissingRate {
        org: o.id.to_string(),
        currency: o.currency.to_string(),
        message,
    };
    config
        .fx
        .as_ref()
        .ok_or_else(|| missing("the config has no [fx] rate file".into()))?
        .rate_for(o.currency, period)
        .map_err(missing)
}

/// An invoice line's charges in a FOCUS dataset: Σ BilledCost, and their
/// ChargeCategory (`Usage` when the line mixes categories, as FOCUS 1.4 allows).
#[derive(Debug, Clone, Default)]
pub(super) struct LineSum {
    pub(super) cost: i128,
    pub(super) category: String,
}

/// (InvoiceId, InvoiceDetailId) → the line's charges.
pub(super) type InvoiceLines = BTreeMap<(String, String), LineSum>;

impl LineSum {
    fn add(&mut self, cost: i128, category: &str) -> Result<()> {
        self.cost = self
            .cost
            .checked_add(cost)
            .ok_or_else(|| Error::Overflow("summing an export".into()))?;
        if self.category.is_empty() {
            self.category = category.to_string();
        } else if self.category != category {
            self.category = "Usage".into();
        }
        Ok(())
    }
}

/// Σ BilledCost per InvoiceId of a FOCUS batch.
fn invoice_sums(batch: &RecordBatch) -> Result<InvoiceLines> {
    use arrow::array::{Array, AsArray};
    let ids = batch
        .column_by_name("InvoiceId")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| Error::Internal("a FOCUS batch without InvoiceId".into()))?;
    let cost = batch
        .column_by_name("BilledCost")
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Decimal128Type>())
        .ok_or_else(|| Error::Internal("a FOCUS batch without BilledCost".into()))?;
    let details = batch
        .column_by_name("InvoiceDetailId")
        .and_then(|c| c.as_string_opt::<i32>());
    let categories = batch
        .column_by_name("ChargeCategory")
        .and_then(|c| c.as_string_opt::<i32>());
    let mut out = InvoiceLines::new();
    for i in (0..batch.num_rows()).filter(|i| cost.is_valid(*i)) {
        let id = if ids.is_valid(i) { ids.value(i) } else { "" };
        let detail = details.filter(|d| d.is_valid(i)).map_or("", |d| d.value(i));
        let category = categories
            .filter(|c| c.is_valid(i))
            .map_or("Usage", |c| c.value(i));
        out.entry((id.to_string(), detail.to_string()))
            .or_default()
            .add(cost.value(i), category)?;
    }
    Ok(out)
}

fn add_invoice_sums(into: &mut InvoiceLines, more: InvoiceLines) -> Result<()> {
    for (k, v) in more {
        into.entry(k).or_default().add(v.cost, &v.category)?;
    }
    Ok(())
}

/// Σ of a FOCUS batch's BilledCost column.
fn billed_cost_sum(batch: &RecordBatch) -> Result<i128> {
    use arrow::array::{Array, AsArray};
    let a = batch
        .column_by_name("BilledCost")
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Decimal128Type>())
        .ok_or_else(|| Error::Internal("a FOCUS batch without BilledCost".into()))?;
    (0..a.len())
        .filter(|i| a.is_valid(*i))
        .try_fold(0i128, |acc, i| acc.checked_add(a.value(i)))
        .ok_or_else(|| Error::Overflow("summing an export".into()))
}

pub(super) fn output_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl<'a> OrgExport<'a> {
    /// Plans an org's exports into `root` (the output folder being built): reads
    /// each input's column names and types (a CSV header, a Parquet footer), so
    /// every part of a dataset has the org's one schema.
    pub fn plan(
        config: &'a Config,
        period: BillingPeriod,
        org_index: usize,
        opts: ExportOptions,
        root: &Path,
        files: &[(usize, &Path)],
    ) -> Result<OrgExport<'a>> {
        let party = config.party(org_index);
        let org = party.customer();
        let ctx = OrgCtx {
            config,
            period,
            org_id: party.id().as_str(),
            customer: org.map(|o| {
                (
                    o.name.as_str(),
                    o.management_account.as_str(),
                    format!("{}-{}", o.id, period),
                )
            }),
            mgmt: party.management_account().as_str(),
            currency: config.partner.currency.as_str(),
            issuer: org
                .map_or(&config.partner, |o| config.issuer(o))
                .name
                .as_str(),
            proforma_dir: org.map_or_else(String::new, |o| o.proforma_dir()),
            fx: match org {
                Some(o) if o.currency != crate::fx::Currency::USD => {
                    Some(rate_of(config, o, period)?)
                }
                _ => None,
            },
            opts,
            rolled: opts.granularity != Granularity::Line,
        };
        let mut kinds = BTreeMap::new();
        let mut dropped = BTreeSet::new();
        let mut in_order = Vec::new();
        for (index, path) in files {
            let schema = input_schema(path)?;
            // Opened as the rating reader opens it, so a bad file fails with that reader's message.
            let dialect = ingest::open(path)?.column_map().dialect;
            let k = wide_columns(dialect, &schema);
            if dialect != Dialect::Focus {
                for (field, kind) in schema.fields().iter().zip(&k) {
                    if kind.is_none() {
                        dropped.insert(field.name().clone());
                    }
                }
            }
            in_order.push(k.clone());
            kinds.insert(*index, k);
        }
        let customer = org.is_some();
        let wanted = [
            customer && opts.set.cur(),
            customer && opts.set.focus(),
            opts.set.focus(),
        ];
        let parts = root.join(PARTS_DIR).join(ctx.org_id);
        Ok(OrgExport {
            cur_schema: cur_schema(&in_order, ctx.rolled),
            ctx,
            kinds,
            dropped,
            root: root.to_path_buf(),
            parts,
            wanted,
        })
    }

    fn schema(&self, kind: Kind) -> SchemaRef {
        match kind {
            Kind::Cur => self.cur_schema.clone(),
            Kind::Focus => focus::schema_of(false, self.ctx.opts.focus_version),
            Kind::PartnerFocus => focus::schema_of(true, self.ctx.opts.focus_version),
        }
    }

    /// The dataset's file, relative to the output folder.
    fn rel(&self, kind: Kind) -> String {
        let (org, period, e) = (self.ctx.org_id, self.ctx.period, ext(self.ctx.opts.format));
        match kind {
            Kind::Cur => format!("{}/cur/{org}-{period}.{e}", self.ctx.proforma_dir),
            Kind::Focus => format!("{}/focus/{org}-{period}.{e}", self.ctx.proforma_dir),
            Kind::PartnerFocus => format!("partner/focus/{org}-{period}.{e}"),
        }
    }

    fn roll_up_spec(&self, kind: Kind) -> Option<RollUpSpec> {
        self.ctx.roll_up(kind != Kind::Cur)
    }

    /// A new part of `kind`'s dataset, named `name` in the org's parts folder.
    fn part(&self, kind: Kind, name: &str) -> Result<Part> {
        let schema = self.schema(kind);
        if let Some(spec) = self.roll_up_spec(kind) {
            return Ok(Part {
                path: None,
                sink: Some(PartSink::RollUp(Box::new(RollUp::new(schema, spec)?))),
                rows: 0,
                cost: 0,
                billed: 0,
                converted: self.converts(kind),
                by_invoice: self.tracks_invoices(kind).then(BTreeMap::new),
            });
        }
        let path = self.parts.join(format!(
            "{}-{name}.{}",
            kind.label(),
            ext(self.ctx.opts.format)
        ));
        let w = create_output(&path)?;
        let sink = match self.ctx.opts.format {
            ExportFormat::Parquet => PartSink::Parquet(Box::new(
                ArrowWriter::try_new(w, schema.clone(), Some(parquet_props_for(&schema)))
                    .map_err(|e| output_err(&path, e))?,
            )),
            ExportFormat::Csv => PartSink::Csv(w),
        };
        Ok(Part {
            path: Some(path),
            sink: Some(sink),
            rows: 0,
            cost: 0,
            billed: 0,
            converted: self.converts(kind),
            by_invoice: self.tracks_invoices(kind).then(BTreeMap::new),
        })
    }

    /// Whether `kind`'s parts sum their rows per invoice line: the partner's
    /// FOCUS 1.3 (per InvoiceId), and every FOCUS 1.4 dataset (per InvoiceDetailId).
    fn tracks_invoices(&self, kind: Kind) -> bool {
        match self.ctx.opts.focus_version {
            focus::FocusVersion::V1_2 => false,
            focus::FocusVersion::V1_3 => kind == Kind::PartnerFocus,
            focus::FocusVersion::V1_4 => kind != Kind::Cur,
        }
    }

    /// Whether `kind`'s cost columns are in another currency than USD.
    fn converts(&self, kind: Kind) -> bool {
        kind == Kind::Focus && self.ctx.fx.is_some()
    }

    fn new_parts(&self, name: &str) -> Result<[Option<Part>; 3]> {
        let mut parts: [Option<Part>; 3] = Default::default();
        for (k, kind) in KINDS.iter().enumerate() {
            if self.wanted[k] {
                parts[k] = Some(self.part(*kind, name)?);
            }
        }
        Ok(parts)
    }

    /// The sink of one rating task: `file` is the input's planned index and
    /// `first_row` the task's first row in it (0 for a whole file).
    pub fn task(&self, file: usize, path: &Path, first_row: u64) -> Result<TaskSink> {
        Ok(TaskSink {
            order: (file, first_row),
            path: path.to_path_buf(),
            parts: self.new_parts(&format!("{file:06}-{first_row:012}"))?,
            held: Default::default(),
        })
    }
}

/// The folder of the output being built where parts wait to be joined; removed before publishing.
pub const PARTS_DIR: &str = ".parts";

impl Part {
    fn write(&mut self, batch: &RecordBatch, cost: i128) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        let overflow = || Error::Overflow("summing an export".into());
        self.cost = self.cost.checked_add(cost).ok_or_else(overflow)?;
        let billed = if self.converted {
            billed_cost_sum(batch)?
        } else {
            cost
        };
        self.billed = self.billed.checked_add(billed).ok_or_else(overflow)?;
        if let Some(m) = self.by_invoice.as_mut() {
            add_invoice_sums(m, invoice_sums(batch)?)?;
        }
        let path = self.path.clone().unwrap_or_default();
        match self.sink.as_mut() {
            Some(PartSink::Parquet(w)) => w.write(batch).map_err(|e| output_err(&path, e)),
            Some(PartSink::Csv(w)) => write_csv_rows(w, batch).map_err(|e| output_err(&path, e)),
            Some(PartSink::RollUp(agg)) => agg.push(batch),
            None => Err(Error::Internal(
                "an export part written after it was closed".into(),
            )),
        }
    }

    /// Closes the part's file; a roll-up stays open to be merged.
    fn close(&mut self) -> Result<()> {
        let path = self.path.clone().unwrap_or_default();
        match self.sink.take() {
            Some(PartSink::Parquet(w)) => {
                w.close().map_err(|e| output_err(&path, e))?;
            }
            Some(PartSink::Csv(mut w)) => w.flush().map_err(|e| output_err(&path, e))?,
            other => self.sink = other,
        }
        Ok(())
    }

    fn take_roll_up(&mut self) -> Option<RollUp> {
        match self.sink.take() {
            Some(PartSink::RollUp(agg)) => Some(*agg),
            other => {
                self.sink = other;
                None
            }
        }
    }
}

/// The normalized columns the sinks read, typed once per chunk.
pub(super) struct NormColumns<'b> {
    rows: &'b UInt64Array,
    pub(super) types: &'b UInt8Array,
    products: &'b arrow::array::DictionaryArray<Int32Type>,
    accounts: &'b arrow::array::DictionaryArray<Int32Type>,
    pub(super) usage: &'b Decimal128Array,
    effective_in: &'b Decimal128Array,
}

impl<'b> NormColumns<'b> {
    pub(super) fn of(batch: &'b RecordBatch) -> Result<NormColumns<'b>> {
        let missing = |c: &str| Error::Internal(format!("normalized column {c} missing"));
        let dict = |c: &str| {
            batch
                .column_by_name(c)
                .and_then(|a| a.as_dictionary_opt::<Int32Type>())
                .ok_or_else(|| missing(c))
        };
        let dec = |c: &str| {
            batch
                .column_by_name(c)
                .and_then(|a| a.as_primitive_opt::<arrow::datatypes::Decimal128Type>())
                .ok_or_else(|| missing(c))
        };
        Ok(NormColumns {
            rows: batch
                .column_by_name(col::ROW)
                .and_then(|a| a.as_primitive_opt())
                .ok_or_else(|| missing(col::ROW))?,
            types: batch
                .column_by_name(col::LINE_TYPE)
                .and_then(|a| a.as_primitive_opt())
                .ok_or_else(|| missing(col::LINE_TYPE))?,
            products: dict(col::PRODUCT)?,
            accounts: dict(col::ACCOUNT)?,
            usage: dec(col::USAGE)?,
            effective_in: dec(col::EFFECTIVE)?,
        })
    }

    pub(super) fn line_key(&self, i: usize, lt: LineType) -> LineKey {
        let text = |d: &arrow::array::DictionaryArray<Int32Type>| {
            d.values()
                .as_string::<i32>()
                .value(d.keys().value(i) as usize)
                .to_string()
        };
        LineKey {
            account: text(self.accounts),
            service: text(self.products),
            line_type: lt,
        }
    }
}

/// One track's rows of a chunk that are written now.
#[derive(Default)]
struct Ready {
    idx: Vec<usize>,
    amount: Vec<i128>,
    effective: Vec<i128>,
    rated: Vec<bool>,
}

/// One track's rows of a chunk held until month end.
#[derive(Default)]
struct Waiting {
    idx: Vec<usize>,
    amount: Vec<i128>,
    treatment: Vec<Treatment>,
    rated_effective: Vec<i128>,
    effective_in: Vec<i128>,
    line: Vec<LineKey>,
    usage: Vec<i128>,
}

/// A row's effective (amortized) amount on a track, given its final amount.
fn effective_of(
    track: Track,
    treatment: Treatment,
    amount: i128,
    rated_effective: i128,
    effective_in: i128,
) -> i128 {
    match (track, treatment) {
        (_, Treatment::Rate) => amount,
        (Track::Actual, _) => rated_effective,
        (Track::Proforma, Treatment::SameAsActual) => rated_effective,
        (Track::Proforma, _) => effective_in,
    }
}

impl TaskSink {
    fn wants(&self, track: Track) -> bool {
        KINDS
            .iter()
            .enumerate()
            .any(|(k, kind)| kind.track() == track && self.parts[k].is_some())
    }

    /// Builds and writes a rated chunk's rows: `carried` holds every column of
    /// the file at the chunk's rows, whose file row numbers are `chunk_rows`.
    pub fn push(
        &mut self,
        exp: &OrgExport<'_>,
        rater: &Rater,
        batch: &RecordBatch,
        rated: &RatedBatch,
        carried: &RecordBatch,
        chunk_rows: &[u64],
    ) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let cols = NormColumns::of(batch)?;
        let pvals = cols.products.values().as_string::<i32>();
        // Once per distinct product, not per row.
        let support_of: Vec<bool> = (0..pvals.len())
            .map(|k| is_support(pvals.value(k)))
            .collect();
        let mut ready: [Ready; 2] = Default::default();
        let mut waiting: [Waiting; 2] = Default::default();
        let wanted = [self.wants(Track::Actual), self.wants(Track::Proforma)];
        for i in 0..n {
            let lt = LineType::from_code(cols.types.value(i)).unwrap_or(LineType::Usage);
            let product_key = cols.products.keys().value(i) as usize;
            let treat = rater.treatments_for(lt, support_of[product_key]);
            for t in [Track::Actual, Track::Proforma] {
                let ti = t as usize;
                if !wanted[ti] || treat[ti] == Treatment::Excluded {
                    continue;
                }
                let amount = if ti == 0 {
                    rated.actual[i]
                } else {
                    rated.proforma[i]
                };
                if rated.deferred[i] & (1 << ti) != 0 {
                    let w = &mut waiting[ti];
                    w.idx.push(i);
                    w.amount.push(amount);
                    w.treatment.push(treat[ti]);
                    w.rated_effective.push(rated.effective[i]);
                    w.effective_in.push(cols.effective_in.value(i));
                    w.line.push(cols.line_key(i, lt));
                    w.usage.push(cols.usage.value(i));
                } else {
                    let r = &mut ready[ti];
                    r.idx.push(i);
                    r.amount.push(amount);
                    r.effective.push(effective_of(
                        t,
                        treat[ti],
                        amount,
                        rated.effective[i],
                        cols.effective_in.value(i),
                    ));
                    r.rated.push(treat[ti] == Treatment::Rate);
                }
            }
        }
        let kinds = exp.kinds.get(&self.order.0).ok_or_else(|| {
            Error::Internal(format!(
                "{}: no export plan for the file",
                self.path.display()
            ))
        })?;
        let positions = |idx: &[usize]| -> Result<Vec<u32>> {
            idx.iter()
                .map(|&i| {
                    let row = cols.rows.value(i);
                    chunk_rows
                        .binary_search(&row)
                        .map(|p| p as u32)
                        .map_err(|_| {
                            Error::Internal(format!(
                                "{}: row {row} was rated but its carried columns are missing",
                                self.path.display()
                            ))
                        })
                })
                .collect()
        };
        for t in [Track::Actual, Track::Proforma] {
            let ti = t as usize;
            let r = std::mem::take(&mut ready[ti]);
            if !r.idx.is_empty() {
                let wide = wide_selection(&self.path, carried, kinds, &positions(&r.idx)?)?;
                let cost = sum(&r.amount)?;
                let sel = Selected::new(wide, r.idx, batch, r.amount, r.effective, r.rated)?;
                write_selected(exp, &mut self.parts, t, &sel, cost)?;
            }
            let w = std::mem::take(&mut waiting[ti]);
            if !w.idx.is_empty() {
                let wide = wide_selection(&self.path, carried, kinds, &positions(&w.idx)?)?;
                let at = UInt32Array::from_iter_values(w.idx.iter().map(|&i| i as u32));
                let norm = arrow::compute::take_record_batch(batch, &at)
                    .map_err(|e| Error::Internal(format!("holding rows: {e}")))?;
                let held = Held {
                    track: t,
                    path: self.path.clone(),
                    norm,
                    wide,
                    amount: w.amount,
                    treatment: w.treatment,
                    rated_effective: w.rated_effective,
                    effective_in: w.effective_in,
                    line: w.line,
                    usage: w.usage,
                };
                let (file, first_row) = self.order;
                let source = self.path.clone();
                self.held[ti]
                    .get_or_insert_with(|| {
                        let name = format!("held-{ti}-{file:06}-{first_row:012}.arrows");
                        HeldFile::new(exp.parts.join(name), t, source)
                    })
                    .write(&held)?;
            }
        }
        Ok(())
    }

    /// Closes the task's part files.
    pub fn finish(mut self) -> Result<TaskParts> {
        for p in self.parts.iter_mut().flatten() {
            p.close()?;
        }
        let mut held = Vec::new();
        for mut h in self.held.into_iter().flatten() {
            h.close()?;
            held.push(h);
        }
        Ok(TaskParts {
            order: self.order,
            parts: self.parts,
            held,
        })
    }
}

/// Writes selected rows of `track` to every dataset of that track.
fn write_selected(
    exp: &OrgExport<'_>,
    parts: &mut [Option<Part>; 3],
    track: Track,
    sel: &Selected<'_>,
    cost: i128,
) -> Result<()> {
    for (k, kind) in KINDS.iter().enumerate() {
        if kind.track() != track {
            continue;
        }
        let Some(part) = parts[k].as_mut() else {
            continue;
        };
        let batch = match kind {
            Kind::Cur => cur_batch(&exp.ctx, sel, &exp.cur_schema)?,
            Kind::Focus => focus_batch(&exp.ctx, sel, false)?,
            Kind::PartnerFocus => focus_batch(&exp.ctx, sel, true)?,
        };
        part.write(&batch, cost)?;
    }
    Ok(())
}

impl OrgExport<'_> {
    /// Finishes the org's exports once its month is rated: the held rows get
    /// their month-end share, custom line items are added, the parts are
    /// joined into one file per dataset, and each file must sum to its invoice.
    pub fn finish(&self, mut tasks: Vec<TaskParts>, totals: OrgTotals<'_>) -> Result<OrgWritten> {
        tasks.sort_by_key(|t| t.order);
        let mut tail = self.new_parts("tail")?;
        // Held rows in file and row order, as the split needs.
        let mut split = Splitter::new(totals.deferred);
        for task in &mut tasks {
            for file in std::mem::take(&mut task.held) {
                file.read_each(|held| self.write_held(&mut tail, &mut split, held))?;
            }
        }
        if let Some(p) = tail[0].as_mut() {
            let (b, total) = custom_cur_batch(&self.ctx, totals.customer, &self.cur_schema)?;
            p.write(&b, total)?;
        }
        if let Some(p) = tail[1].as_mut() {
            let (b, total) = custom_focus_batch(&self.ctx, totals.customer)?;
            p.write(&b, total)?;
        }
        let rounds = self.ctx.opts.focus_version.from_1_3();
        let customer_lines = match (rounds, totals.customer_billed) {
            (true, Some(invoice)) => self.write_rounding(&tasks, &mut tail, invoice)?,
            _ => BTreeMap::new(),
        };
        let (partner_rounding, partner_lines) = if rounds {
            self.write_partner_rounding(&tasks, &mut tail, totals.actual_total)?
        } else {
            (0, BTreeMap::new())
        };
        let mut files = Vec::new();
        for (k, kind) in KINDS.iter().enumerate() {
            let Some(mut last) = tail[k].take() else {
                continue;
            };
            last.close()?;
            let mut parts: Vec<Part> = tasks.iter_mut().filter_map(|t| t.parts[k].take()).collect();
            parts.push(last);
            let expected = match kind {
                Kind::PartnerFocus => totals.actual_exact + partner_rounding,
                // FOCUS 1.3 rows include the invoice's rounding (in USD, checked here).
                Kind::Focus if rounds && !self.converts(*kind) => {
                    totals.customer.map(|c| c.total.0).unwrap_or(0)
                }
                _ => totals.customer.map(|c| c.exact_total.0).unwrap_or(0),
            };
            files.push(self.assemble(*kind, parts, expected)?);
        }
        if self.ctx.opts.focus_version == focus::FocusVersion::V1_4 {
            files.extend(super::focus14::write_datasets(
                &self.ctx,
                &self.root,
                (self.wanted[1], self.wanted[2]),
                &customer_lines,
                &partner_lines,
            )?);
        }
        Ok(OrgWritten {
            files,
            dropped: self.dropped.clone(),
        })
    }

    /// Adds the customer's FOCUS rounding rows: in 1.3 one per invoice (its
    /// total in its billing currency minus what the rows sum to), in 1.4 one
    /// per invoice line (`InvoiceDetailId`), so each line's charges sum to the
    /// line. Returns the invoice lines (detail id → amount) for InvoiceDetail.
    fn write_rounding(
        &self,
        tasks: &[TaskParts],
        tail: &mut [Option<Part>; 3],
        invoice: &CustomerInvoice,
    ) -> Result<BTreeMap<String, LineSum>> {
        let overflow = || Error::Overflow("rounding an export to its invoice".into());
        let Some(number) = self.ctx.customer.as_ref().map(|c| c.2.clone()) else {
            return Ok(BTreeMap::new());
        };
        let v14 = self.ctx.opts.focus_version == focus::FocusVersion::V1_4;
        let mut written: BTreeMap<String, LineSum> = BTreeMap::new();
        for p in tasks
            .iter()
            .filter_map(|t| t.parts[1].as_ref())
            .chain(tail[1].as_ref())
        {
            for ((_, detail), v) in p.by_invoice.iter().flatten() {
                written
                    .entry(detail.clone())
                    .or_default()
                    .add(v.cost, &v.category)?;
            }
            if !v14 {
                written
                    .entry(String::new())
                    .or_default()
                    .add(p.billed, "Adjustment")?;
            }
        }
        let mut lines: BTreeMap<String, LineSum> = BTreeMap::new();
        let line = |amount: i128, category: &str| LineSum {
            cost: amount,
            category: category.to_string(),
        };
        if v14 {
            for l in &invoice.lines {
                let d = format!("{}:{}", l.account, l.service);
                let category = written.get(&d).map_or("Usage", |w| w.category.as_str());
                lines.insert(d.clone(), line(l.amount.0, category));
            }
            for c in &invoice.custom {
                let d = super::custom::item_detail_id(&c.id);
                let category = written.get(&d).map_or("Purchase", |w| w.category.as_str());
                lines.insert(d, line(c.amount.0, category));
            }
            for (d, w) in &written {
                lines
                    .entry(d.clone())
                    .or_insert_with(|| line(0, &w.category));
            }
        } else {
            lines.insert(String::new(), line(invoice.total.0, "Adjustment"));
        }
        let Some(p) = tail[1].as_mut() else {
            return Ok(lines);
        };
        for (detail, target) in &lines {
            let diff = target
                .cost
                .checked_sub(written.get(detail).map_or(0, |w| w.cost))
                .ok_or_else(overflow)?;
            if diff == 0 {
                continue;
            }
            let key = (number.as_str(), v14.then_some(detail.as_str()));
            let category = v14.then_some(target.category.as_str());
            let b = super::custom::rounding_focus_batch(&self.ctx, false, key, category, diff)?;
            // In USD the row's cost joins the check against the rounded total; in
            // another currency the USD check stays on the exact rows.
            let usd_cost = if p.converted { 0 } else { diff };
            p.write(&b, usd_cost)?;
        }
        Ok(lines)
    }

    /// The partner's FOCUS rounding rows. In 1.3: with one AWS invoice id, its
    /// charges are brought to the org's actual invoice total; with several, each
    /// id's charges to their sum rounded to cents. In 1.4: each invoice line's
    /// charges to their sum rounded to cents (the actual invoice rounds each
    /// line once). Returns the rounding added and the lines for InvoiceDetail.
    fn write_partner_rounding(
        &self,
        tasks: &[TaskParts],
        tail: &mut [Option<Part>; 3],
        actual_total: i128,
    ) -> Result<(i128, InvoiceLines)> {
        let rounding = self.ctx.config.rounding;
        let overflow = || Error::Overflow("rounding an export to its invoice".into());
        let mut sums = InvoiceLines::new();
        for p in tasks
            .iter()
            .filter_map(|t| t.parts[2].as_ref())
            .chain(tail[2].as_ref())
        {
            if let Some(m) = &p.by_invoice {
                add_invoice_sums(&mut sums, m.clone())?;
            }
        }
        let v13 = self.ctx.opts.focus_version == focus::FocusVersion::V1_3;
        let mut lines = BTreeMap::new();
        let mut diffs = Vec::new();
        for (key, s) in &sums {
            // 1.4: charges without an AWS invoice id are on no invoice line.
            if !v13 && key.0.is_empty() {
                continue;
            }
            let target = if v13 && sums.len() == 1 {
                actual_total
            } else {
                crate::money::round_to_minor(s.cost, 2, rounding)
            };
            let diff = target.checked_sub(s.cost).ok_or_else(overflow)?;
            diffs.push((key.clone(), diff, s.category.clone()));
            lines.insert(
                key.clone(),
                LineSum {
                    cost: target,
                    category: s.category.clone(),
                },
            );
        }
        let Some(p) = tail[2].as_mut() else {
            return Ok((0, lines));
        };
        let mut added = 0i128;
        for ((id, detail), diff, category) in diffs.into_iter().filter(|(_, d, _)| *d != 0) {
            let key = (id.as_str(), (!v13).then_some(detail.as_str()));
            let category = (!v13).then_some(category.as_str());
            let b = super::custom::rounding_focus_batch(&self.ctx, true, key, category, diff)?;
            p.write(&b, diff)?;
            added = added.checked_add(diff).ok_or_else(overflow)?;
        }
        Ok((added, lines))
    }

    /// Gives held rows their share of the month-end charges and writes them.
    fn write_held(
        &self,
        tail: &mut [Option<Part>; 3],
        split: &mut Splitter,
        h: Held,
    ) -> Result<()> {
        let mut amount = Vec::with_capacity(h.amount.len());
        let mut effective = Vec::with_capacity(h.amount.len());
        let mut rated = Vec::with_capacity(h.amount.len());
        for (j, line) in h.line.into_iter().enumerate() {
            let share = split.next(h.track, line, h.usage[j])?;
            let a = h.amount[j]
                .checked_add(share)
                .ok_or_else(|| Error::Overflow("splitting a month-end charge".into()))?;
            amount.push(a);
            effective.push(effective_of(
                h.track,
                h.treatment[j],
                a,
                h.rated_effective[j],
                h.effective_in[j],
            ));
            rated.push(h.treatment[j] == Treatment::Rate);
        }
        let cost = sum(&amount)?;
        let idx: Vec<usize> = (0..h.norm.num_rows()).collect();
        let sel = Selected::new(h.wide, idx, &h.norm, amount, effective, rated)
            .map_err(|e| Error::Internal(format!("{}: {e}", h.path.display())))?;
        write_selected(self, tail, h.track, &sel, cost)
    }

    /// Joins a dataset's parts (in order) into its file, checks its total, and lists it.
    fn assemble(&self, kind: Kind, mut parts: Vec<Part>, expected: i128) -> Result<ExportFile> {
        let rel = self.rel(kind);
        let path = self.root.join(&rel);
        let (mut total, mut billed) = (0i128, 0i128);
        let overflow = || Error::Overflow("summing an export".into());
        for p in &parts {
            total = total.checked_add(p.cost).ok_or_else(overflow)?;
            billed = billed.checked_add(p.billed).ok_or_else(overflow)?;
        }
        let rows = if let Some(spec) = self.roll_up_spec(kind) {
            // The first part's roll-up takes the others in: no merge into an empty one.
            let mut agg: Option<RollUp> = None;
            for p in &mut parts {
                if let Some(a) = p.take_roll_up() {
                    match agg.as_mut() {
                        Some(first) => first.merge(a)?,
                        None => agg = Some(a),
                    }
                }
            }
            let agg = match agg {
                Some(a) => a,
                None => RollUp::new(self.schema(kind), spec)?,
            };
            write_roll_up(&path, &rel, kind.label(), agg, billed, self.ctx.opts.format)?
        } else {
            let files: Vec<(&Path, u64)> = parts
                .iter()
                .filter_map(|p| p.path.as_deref().map(|f| (f, p.rows)))
                .collect();
            join_parts(&path, &files, &self.schema(kind), self.ctx.opts.format)?;
            parts.iter().map(|p| p.rows).sum()
        };
        // The rows must add up to the invoice exactly.
        if total != expected {
            return Err(Error::Internal(format!(
                "the {} export of org `{}` sums to {} but its invoice's exact total is {}; nothing was written",
                kind.label(),
                self.ctx.org_id,
                format_fixed_exact(total),
                format_fixed_exact(expected)
            )));
        }
        Ok(ExportFile {
            path: rel,
            org: self.ctx.org_id.to_string(),
            kind: kind.label().to_string(),
            rows,
            cost_total: format_fixed_exact(billed),
            currency: match (&self.ctx.fx, self.converts(kind)) {
                (Some(fx), true) => fx.currency.clone(),
                _ => "USD".into(),
            },
        })
    }
}
