//! The month-end run: resolve inputs, rate every org in parallel, build invoices
//! and, in the same pass, the exports.
//!
//! Work is split into tasks (a file, or some row groups of a Parquet file) run on
//! rayon, so many orgs and one huge org with many files both use every core. Each
//! task streams its file batch by batch into its own [`Ledger`] and, with exports
//! on, its own export sink; ledgers of one org are merged in file order (integer
//! sums, so the result does not depend on thread timing). `plan` finds the inputs,
//! `deliveries` chooses among export deliveries, `overlap` compares deliveries,
//! `open` opens a task's reader and hashes its file, `threads` sizes the pool.

pub mod deliveries;
mod discounted;
mod finish;
pub use discounted::{DiscountSummary, Unmatched};
use finish::finish_org;
mod open;
mod overlap;
mod plan;
mod threads;

use open::open_task;

use overlap::*;
pub use plan::*;
pub use threads::*;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::config::{ActualCard, Config, Level, Org, Plan, PlanKind, ProformaBase};
use crate::error::{Error, Result};
use crate::export::{
    ExportOptions, ExportSet, OrgExport, OrgTotals, OrgWritten, TaskParts, TaskSink, PARTS_DIR,
};
use crate::fx::Currency;
use crate::ingest;
use crate::invoice::{
    actual_invoice, converted_invoice, customer_invoice, ActualInvoice, Converted, CustomerInvoice,
};
use crate::normalize::{normalize, ExcludedRows, OrgCheck, Quarantined};
use crate::rate::{Ledger, Pricing, Rater};
use crate::types::{BillingPeriod, OrgId};
use deliveries::DeliveryChoice;

/// Whose files these are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The partner's own organization.
    Partner,
    /// A customer organization under billing transfer, billed by the top partner.
    Customer,
    /// A downstream seller's own organization (the top prices its usage).
    Seller,
    /// A seller's customer: billed by the seller, whose cost the top prices.
    EndCustomer,
}

/// One input file as resolved from the config.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    /// Index of the org (0 = partner, then customers in config order).
    pub org_index: usize,
    /// Path on disk.
    pub path: PathBuf,
    /// Path as recorded in outputs (relative to the config's folder when possible).
    pub display: String,
    /// The delivery the file belongs to: its manifest in an export root, else its folder
    /// (docs/INPUTS.md). Rows repeated across files of one delivery are legitimate.
    pub delivery: String,
}

/// What reading one file produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FileReport {
    /// Org id.
    pub org: String,
    /// Path as recorded.
    pub path: String,
    /// Detected format.
    pub format: String,
    /// File size.
    pub bytes: u64,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// Data rows read.
    pub rows_read: u64,
    /// Rows rated.
    pub rows_rated: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// The delivery the file belongs to (docs/INPUTS.md).
    pub delivery: String,
}

/// One organization's finished month.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct OrgResult {
    /// Org id.
    pub id: OrgId,
    /// Partner or customer.
    pub role: Role,
    /// Index in the config (0 = partner).
    pub org_index: usize,
    /// Merged, finalized ledger.
    pub ledger: Ledger,
    /// Quarantined rows in file and row order.
    pub quarantined: Vec<Quarantined>,
    /// Per-file reports.
    pub files: Vec<FileReport>,
    /// Σ unblended of rated rows.
    pub rated_unblended: i128,
    /// The partner's actual invoice for this org.
    pub actual: ActualInvoice,
    /// The customer's pro forma invoice (customers only).
    pub customer: Option<CustomerInvoice>,
    /// For a seller's customer: what the top charges the seller for it (the
    /// top's plan for the seller, no custom line items).
    pub seller_cost: Option<CustomerInvoice>,
    /// The customer's invoice in its currency, when that is not USD (docs/CURRENCY.md).
    pub customer_fx: Option<Converted>,
    /// The seller's invoice for this org in the seller's currency, when that is not USD.
    pub seller_cost_fx: Option<Converted>,
    /// The partner's program discounts on the org (Partner Discount Business Report).
    #[serde(default)]
    pub discounts: Option<crate::invoice::OrgDiscounts>,
    /// Rows not billed because a later delivery repeats them (the exports skip them too).
    pub excluded: Arc<ExcludedRows>,
}

/// An org whose month is not billed to the partner.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotBilled {
    /// Org id.
    pub org: String,
    /// Why.
    pub reason: String,
}

/// The whole run's results, before writing.
#[derive(Debug)]
pub struct RunResult {
    /// The period run.
    pub period: BillingPeriod,
    /// Results per org, partner first.
    pub orgs: Vec<OrgResult>,
    /// Orgs outside their transfer this month.
    pub not_billed: Vec<NotBilled>,
    /// Deliveries chosen in export roots: (org id, choice).
    pub deliveries: Vec<(String, DeliveryChoice)>,
    /// The engine that ran the month (`local`, or a cluster's): the manifest's
    /// one field that differs between a run here and on a cluster.
    pub engine: &'static str,
    /// What the Partner Discount Business Report gave the month, if one is configured.
    pub discount_report: Option<discounted::DiscountSummary>,
}

impl RunResult {
    /// Data rows read from every input.
    pub fn rows_read(&self) -> u64 {
        self.orgs
            .iter()
            .flat_map(|r| r.files.iter())
            .map(|f| f.rows_read)
            .sum()
    }
}

/// Progress callbacks (rows read so far), for the CLI's progress bar.
pub trait Progress: Sync {
    /// The work is planned: rows known from Parquet footers (CSV rows are not
    /// known ahead), and the number of organizations.
    fn start(&self, _known_rows: u64, _all_rows_known: bool, _orgs: usize) {}
    /// `rows` more rows were read.
    fn rows(&self, _rows: u64) {}
    /// An organization's files are all read.
    fn org_done(&self) {}
}

/// No progress output.
pub struct Silent;
impl Progress for Silent {}

pub(crate) fn pricing_for(config: &Config, org: Option<&Org>) -> (Pricing, Pricing) {
    let actual = match &config.actual {
        ActualCard::Billed => Pricing::Billed,
        ActualCard::Public(rules) => Pricing::Rules(rules.clone()),
    };
    let proforma = org.map_or(Pricing::None, |o| plan_pricing(shown_plan(o)));
    (actual, proforma)
}

/// A plan as a track's pricing (`passthrough`: the actual amounts).
fn plan_pricing(plan: &Plan) -> Pricing {
    match &plan.kind {
        PlanKind::Passthrough => Pricing::SameAsActual,
        PlanKind::Rated(rules) => Pricing::Rules(rules.clone()),
    }
}

/// The plan whose prices an org's pro forma track shows: its own, except that
/// `passthrough` under a seller passes the seller's cost on (the top's plan).
pub(crate) fn shown_plan(org: &Org) -> &Plan {
    match (&org.plan.kind, &org.level) {
        (PlanKind::Passthrough, Level::EndCustomer { cost_plan, .. }) => cost_plan,
        _ => &org.plan,
    }
}

/// For a seller's customer on its own plan: the pricing of the seller's cost
/// (the top's plan for the seller), rated beside the customer's price from the
/// same rows. `None` when the customer's price is that cost (`passthrough`).
pub(crate) fn seller_cost_plan(org: &Org) -> Option<&Plan> {
    match (&org.plan.kind, &org.level) {
        (PlanKind::Rated(_), Level::EndCustomer { cost_plan, .. }) => Some(cost_plan),
        _ => None,
    }
}

/// A rater for a track pair, its pro forma base set from the plan and the file's dialect.
fn rater_for(actual: Pricing, plan: Option<&Plan>, proforma: Pricing, focus: bool) -> Rater {
    let mut rater = Rater::new(actual, proforma);
    rater.list_base = focus;
    rater.public_base = plan.is_some_and(|p| p.base == ProformaBase::PublicOnDemand);
    rater
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct FileOutcome {
    report: FileReport,
    ledger: Ledger,
    quarantined: Vec<Quarantined>,
    rated_unblended: i128,
    /// (identity hash, row) of rated rows, kept only for orgs with several deliveries.
    identity: Vec<(u64, u64)>,
    /// A seller's customer: the same rows at the seller's cost (see [`seller_cost_plan`]).
    seller_cost: Option<Ledger>,
    /// The file's parts of the org's exports, one per task (they stay on the
    /// machine that wrote them: a cluster's rating stage writes none).
    #[serde(skip)]
    exports: Vec<TaskParts>,
}

pub(crate) fn org_check(config: &Config, org_index: usize, period: BillingPeriod) -> OrgCheck {
    let partner = &config.partner.management_account;
    let party = config.party(org_index);
    let (label, accounts, management) =
        (party.label(), party.accounts(), party.management_account());
    let currency = config.partner.currency.clone();
    // A transferred month is paid by the partner's bill-transfer account; files
    // exported from the customer's own organization may name its management account.
    let source_payer = party.customer().is_some_and(|o| o.transfer.source_payer);
    let mut payers: HashSet<String> = HashSet::from([partner.to_string()]);
    let why = if source_payer {
        payers.insert(management.to_string());
        format!("neither the partner's bill-transfer account {partner} nor {label}'s management account {management}")
    } else {
        format!("not the partner's bill-transfer account {partner} (set `transfer.source_payer = true` if the files come from the customer's own organization)")
    };
    OrgCheck {
        label,
        accounts: accounts
            .iter()
            .map(|a| a.to_string())
            .collect::<HashSet<_>>(),
        period,
        currency,
        require_billed_cost: matches!(config.actual, ActualCard::Billed),
        management_account: management.to_string(),
        excluded: Default::default(),
        payers: (payers, why),
    }
}

/// One unit of parallel work: a whole file, or some row groups of a Parquet file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Task {
    /// Index into the planned input files.
    pub file: usize,
    /// Row groups to read, `None` for the whole file.
    pub part: Option<ingest::Part>,
    /// Whether this task also hashes the file for the manifest (one task per file does).
    pub hash: bool,
    /// Whether rows' identities are read (the org has several deliveries to compare).
    pub identity: bool,
    /// The file's footer as the plan read it (Parquet; not sent to a cluster's
    /// executors, which read it themselves).
    #[serde(skip)]
    pub footer: PlannedFooter,
}

/// Where a run's exports are written, if it writes them.
#[derive(Clone, Copy)]
pub struct ExportTo<'p> {
    /// What to export and how.
    pub options: ExportOptions,
    /// The output folder being built (published atomically with the invoices).
    pub root: &'p Path,
}

/// The org's export plans, by org index.
type Plans<'a> = BTreeMap<usize, OrgExport<'a>>;

/// The message of a caught panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown failure")
}

/// Runs reader work on one file, turning a panic inside a decoder (a bug in a
/// dependency reached by corrupt input) into an error that names the file.
pub fn guarded<T>(path: &std::path::Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            Err(Error::input(path, format!("the file could not be decoded, it is probably corrupt (the reader failed: {msg})")))
        }
    }
}

fn rate_task(
    config: &Config,
    (index, file): (usize, &InputFile),
    task: &Task,
    check: &OrgCheck,
    export: Option<&OrgExport<'_>>,
    progress: &dyn Progress,
) -> Result<FileOutcome> {
    let party = config.party(file.org_index);
    let org = party.customer();
    let org_id = party.id().to_string();
    let (actual, proforma) = pricing_for(config, org);
    let reading = ingest::Reading {
        identity: task.identity,
        carry: export.is_some(),
        periods_only: false,
    };
    let footer = task.footer.take();
    let (bytes, sha256, mut source) = open_task(&file.path, task, footer.as_ref(), reading)?;
    let format = source.describe();
    let focus = source.column_map().dialect == ingest::Dialect::Focus;
    let mut rater = rater_for(actual.clone(), org.map(shown_plan), proforma, focus);
    let mut cost_rater = org
        .and_then(seller_cost_plan)
        .map(|plan| rater_for(actual, Some(plan), plan_pricing(plan), focus));
    let display = PathBuf::from(&file.display);
    let first_row = task.part.as_ref().map_or(0, |p| p.first_row);
    let mut sink = export
        .map(|e| e.task(index, &display, first_row).map(|s| (e, s)))
        .transpose()?;
    let streamed = stream_source(
        source.as_mut(),
        &display,
        check,
        (&mut rater, cost_rater.as_mut()),
        progress,
        sink.as_mut().map(|(e, s)| (*e, s)),
    )?;
    let exports = match sink {
        Some((_, s)) => vec![s.finish()?],
        None => Vec::new(),
    };
    let mut ledger = rater.finish();
    ledger.warnings.extend(streamed.warnings);
    Ok(FileOutcome {
        report: FileReport {
            org: org_id,
            path: file.display.clone(),
            format,
            bytes,
            sha256,
            rows_read: streamed.rows_read,
            rows_rated: streamed.rows_rated,
            rows_quarantined: streamed.quarantined.len() as u64,
            delivery: file.delivery.clone(),
        },
        ledger,
        quarantined: streamed.quarantined,
        rated_unblended: streamed.rated_unblended,
        identity: streamed.identity,
        seller_cost: cost_rater.map(Rater::finish),
        exports,
    })
}

/// What streaming one source through normalization and rating produced.
#[derive(Debug, Default)]
pub struct Streamed {
    /// Rows read.
    pub rows_read: u64,
    /// Rows rated.
    pub rows_rated: u64,
    /// Σ unblended of rated rows.
    pub rated_unblended: i128,
    /// Quarantined rows.
    pub quarantined: Vec<Quarantined>,
    /// (identity hash, row) of rated rows, when identities were read.
    pub identity: Vec<(u64, u64)>,
    /// Warnings of normalization (one per distinct value and chunk; deduplicated per org).
    pub warnings: Vec<String>,
}

/// Streams every chunk of a source through the org's checks and the rater.
pub fn rate_source(
    source: &mut dyn ingest::ChunkSource,
    display: &std::path::Path,
    check: &OrgCheck,
    rater: &mut Rater,
    progress: &dyn Progress,
) -> Result<Streamed> {
    stream_source(source, display, check, (rater, None), progress, None)
}

/// [`rate_source`], also handing each rated chunk to the export sink, if any.
fn stream_source(
    source: &mut dyn ingest::ChunkSource,
    display: &std::path::Path,
    check: &OrgCheck,
    (rater, cost_rater): (&mut Rater, Option<&mut Rater>),
    progress: &dyn Progress,
    mut sink: Option<(&OrgExport<'_>, &mut TaskSink)>,
) -> Result<Streamed> {
    let mut cost_rater = cost_rater;
    let mut out = Streamed::default();
    while let Some(chunk) = source.next_chunk() {
        let mut chunk = chunk?;
        let n = (chunk.rows.len() + chunk.broken.len()) as u64;
        out.rows_read += n;
        let carried = chunk.carried.take().map(|c| (c, chunk.rows.clone()));
        let norm = normalize(display, source.column_map(), chunk, check)?;
        out.rows_rated += norm.batch.num_rows() as u64;
        out.rated_unblended = out
            .rated_unblended
            .checked_add(norm.rated_unblended)
            .ok_or_else(|| Error::Overflow(format!("summing {}", display.display())))?;
        if let Some(r) = cost_rater.as_deref_mut() {
            r.rate_sums(&norm.batch)?;
        }
        if let Some((export, sink)) = sink.as_mut() {
            let rated = rater.rate(&norm.batch)?;
            let (carried, rows) = carried.ok_or_else(|| {
                Error::Internal(format!(
                    "{}: the columns to export were not read",
                    display.display()
                ))
            })?;
            sink.push(export, rater, &norm.batch, &rated, &carried, &rows)?;
        } else {
            rater.rate_sums(&norm.batch)?;
        }
        out.quarantined.extend(norm.quarantined);
        out.identity.extend(norm.identity);
        out.warnings.extend(norm.warnings);
        progress.rows(n);
    }
    Ok(out)
}

/// Adds a task's outcome for the same file into `into`.
fn merge_outcome(into: &mut FileOutcome, o: FileOutcome) -> Result<()> {
    into.ledger.merge(o.ledger)?;
    match (&mut into.seller_cost, o.seller_cost) {
        (Some(acc), Some(l)) => acc.merge(l)?,
        (acc @ None, l) => *acc = l,
        (Some(_), None) => {}
    }
    into.quarantined.extend(o.quarantined);
    into.identity.extend(o.identity);
    let mut incoming = o.exports;
    if let Some(first) = into.exports.first_mut() {
        for t in &mut incoming {
            first.absorb_roll_ups(t)?;
        }
    }
    into.exports.extend(incoming);
    into.rated_unblended = into
        .rated_unblended
        .checked_add(o.rated_unblended)
        .ok_or_else(|| Error::Overflow("summing a file".into()))?;
    let r = &mut into.report;
    r.rows_read += o.report.rows_read;
    r.rows_rated += o.report.rows_rated;
    r.rows_quarantined += o.report.rows_quarantined;
    if !o.report.sha256.is_empty() {
        r.sha256 = o.report.sha256;
        r.bytes = o.report.bytes;
    }
    Ok(())
}

/// Rates every org of the period and builds all invoices (nothing is written).
pub fn rate_all(
    config: &Config,
    period: BillingPeriod,
    progress: &dyn Progress,
) -> Result<RunResult> {
    Ok(run_month(config, period, progress, None)?.0)
}

/// The orgs billed this month: the partner, then the customers whose transfer covers it.
fn billed_orgs(config: &Config, period: BillingPeriod) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            config
                .orgs
                .iter()
                .enumerate()
                .filter(|(_, o)| o.transfer.covers(period))
                .map(|(i, _)| i + 1),
        )
        .collect()
}

/// Plans the exports of every billed org (each input's columns, read from its
/// header or footer), before any row is rated.
fn plan_exports<'a>(
    config: &'a Config,
    period: BillingPeriod,
    files: &[InputFile],
    billed: &[usize],
    to: Option<ExportTo<'_>>,
) -> Result<Plans<'a>> {
    let Some(to) = to.filter(|t| t.options.set != ExportSet::None) else {
        return Ok(Plans::new());
    };
    billed
        .par_iter()
        .map(|&org| {
            let own: Vec<(usize, &Path)> = files
                .iter()
                .enumerate()
                .filter(|(_, f)| f.org_index == org)
                .map(|(i, f)| (i, f.path.as_path()))
                .collect();
            let plan = OrgExport::plan(config, period, org, to.options, to.root, &own)?;
            Ok((org, plan))
        })
        .collect()
}

/// A month's inputs, planned before any row is rated: what a run here and a
/// run on a cluster both start from.
#[derive(Debug, Clone)]
pub struct Month {
    /// The period.
    pub period: BillingPeriod,
    /// Every input file of the period, in plan order.
    pub files: Vec<InputFile>,
    /// Every task, in plan order (identities read where deliveries are compared).
    pub tasks: Vec<Task>,
    /// The billed orgs, partner first, in config order.
    pub billed: Vec<usize>,
    /// Rows known from Parquet footers, and whether every file's are.
    pub known_rows: (u64, bool),
    /// Orgs outside their transfer this month.
    pub not_billed: Vec<NotBilled>,
    /// Deliveries chosen in export roots.
    pub deliveries: Vec<(String, DeliveryChoice)>,
}

impl Month {
    /// The whole month as work to rate.
    pub fn work(&self) -> Work<'_> {
        Work {
            period: self.period,
            files: &self.files,
            tasks: &self.tasks,
        }
    }
}

/// Files and tasks to rate: a whole month, or the part of it one cluster task has.
#[derive(Debug, Clone, Copy)]
pub struct Work<'m> {
    /// The period.
    pub period: BillingPeriod,
    /// Every input file of the period (tasks index into it).
    pub files: &'m [InputFile],
    /// The tasks to run.
    pub tasks: &'m [Task],
}

/// Finds the period's inputs and splits them into tasks.
pub fn plan_month(config: &Config, period: BillingPeriod) -> Result<Month> {
    let InputPlan {
        files,
        not_billed,
        deliveries,
    } = plan_inputs(config, Some(period))?;
    let billed = billed_orgs(config, period);
    let (mut tasks, known_rows, all_known) = plan_tasks(&files)?;
    // Identities are read only where an org has several deliveries to compare.
    let compared = orgs_with_several_deliveries(&files);
    for t in &mut tasks {
        t.identity = compared.contains(&files[t.file].org_index);
    }
    Ok(Month {
        period,
        files,
        tasks,
        billed,
        known_rows: (known_rows, all_known),
        not_billed,
        deliveries,
    })
}

/// A run's results and the small files the exports add beside the invoices.
pub type MonthOutput = (RunResult, Vec<(PathBuf, Vec<u8>)>);

/// Rates every org of the period, builds all invoices and, with `exports`,
/// writes every export in the same pass (one read of each input). Returns the
/// run's results and the small files the exports add (`exports.json`).
pub fn run_month(
    config: &Config,
    period: BillingPeriod,
    progress: &dyn Progress,
    exports: Option<ExportTo<'_>>,
) -> Result<MonthOutput> {
    let month = plan_month(config, period)?;
    let (known, all_known) = month.known_rows;
    let orgs_with_tasks: BTreeSet<usize> = month
        .tasks
        .iter()
        .map(|t| month.files[t.file].org_index)
        .collect();
    progress.start(known, all_known, orgs_with_tasks.len());
    let checks = all_checks(config, period);
    let finished = rate_orgs(
        config,
        month.work(),
        &checks,
        &month.billed,
        progress,
        exports,
    )?;
    conclude(config, month, finished, exports)
}

/// Assembles a month's results from every billed org's finished month (in any
/// order): checks for an empty period and lists the exports.
pub fn conclude(
    config: &Config,
    month: Month,
    finished: Vec<Finished>,
    exports: Option<ExportTo<'_>>,
) -> Result<MonthOutput> {
    let mut by_org: BTreeMap<usize, Finished> =
        finished.into_iter().map(|f| (f.0.org_index, f)).collect();
    let results: Result<Vec<Finished>> = month
        .billed
        .iter()
        .map(|idx| {
            by_org
                .remove(idx)
                .ok_or_else(|| Error::Internal(format!("org {idx} was not finished")))
        })
        .collect();
    let (mut orgs, written): (Vec<OrgResult>, Vec<Option<OrgWritten>>) =
        results?.into_iter().unzip();
    let discount_report = discounted::apply(config, month.period, &mut orgs)?;
    if !config.allow_empty_period {
        empty_period(&orgs, month.period)?;
    }
    let mut extra = Vec::new();
    if let Some(to) = exports.filter(|t| t.options.set != ExportSet::None) {
        remove_parts(to.root)?;
        extra.push(crate::export::listing(
            to.options,
            written.into_iter().flatten().collect(),
        ));
    }
    Ok((
        RunResult {
            period: month.period,
            orgs,
            not_billed: month.not_billed,
            deliveries: month.deliveries,
            engine: "local",
            discount_report,
        },
        extra,
    ))
}

/// Rates the `billed` orgs' tasks of `work` and finishes each org (invoices
/// and, with `exports`, its export files), partner first, in config order.
/// `checks` are [`all_checks`], built once by the caller.
pub fn rate_orgs(
    config: &Config,
    work: Work<'_>,
    checks: &[OrgCheck],
    billed: &[usize],
    progress: &dyn Progress,
    exports: Option<ExportTo<'_>>,
) -> Result<Vec<Finished>> {
    let period = work.period;
    let plans = plan_exports(config, period, work.files, billed, exports)?;
    let compared = orgs_with_several_deliveries(work.files);
    // Orgs with one delivery are finished as soon as their tasks end; orgs whose
    // deliveries are compared wait for the comparison.
    let early: BTreeSet<usize> = plans
        .keys()
        .copied()
        .filter(|o| !compared.contains(o))
        .collect();
    let finished: std::sync::Mutex<BTreeMap<usize, Finished>> = Default::default();
    let finish = |idx: usize, outcomes: Vec<FileOutcome>| -> Result<()> {
        let done = finish_one(config, idx, period, outcomes, &plans, None)?;
        finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(idx, done);
        Ok(())
    };
    let per_file = run_tasks(config, work, checks, &plans, progress, (&early, &finish))?;
    let finished = finished.into_inner().unwrap_or_else(|e| e.into_inner());
    let run = TaskRun {
        config,
        work,
        plans: &plans,
    };
    settle(&run, billed, checks, per_file, finished)
}

/// Every org's row checks, by org index (0 = partner): built once per run, or
/// per cluster task, never per org.
pub fn all_checks(config: &Config, period: BillingPeriod) -> Vec<OrgCheck> {
    (0..=config.orgs.len())
        .map(|i| org_check(config, i, period))
        .collect()
}

/// Rates one task alone, without exports: a cluster's rating stage.
pub fn rate_task_alone(config: &Config, work: Work<'_>, task: &Task) -> Result<FileOutcome> {
    let file = work
        .files
        .get(task.file)
        .ok_or_else(|| Error::Internal(format!("task for unknown file {}", task.file)))?;
    let check = org_check(config, file.org_index, work.period);
    guarded(&file.path, || {
        rate_task(config, (task.file, file), task, &check, None, &Silent)
    })
}

/// Finishes one org from its tasks' outcomes, in any order (a cluster's finish
/// stage, after the shuffle by org): compares its deliveries, prices month-end
/// charges and builds its invoices, as a run here does.
pub fn finish_rated_org(
    config: &Config,
    work: Work<'_>,
    checks: &[OrgCheck],
    org: usize,
    mut outcomes: Vec<(usize, FileOutcome)>,
) -> Result<Finished> {
    outcomes.sort_by_key(|(task, _)| *task);
    let mut per_file: Vec<Option<FileOutcome>> = (0..work.files.len()).map(|_| None).collect();
    for (task, o) in outcomes {
        let t = work
            .tasks
            .get(task)
            .ok_or_else(|| Error::Internal(format!("outcome of unknown task {task}")))?;
        match per_file.get_mut(t.file) {
            Some(slot @ None) => *slot = Some(o),
            Some(Some(acc)) => merge_outcome(acc, o)?,
            None => return Err(Error::Internal(format!("task of unknown file {}", t.file))),
        }
    }
    let plans = Plans::new();
    let run = TaskRun {
        config,
        work,
        plans: &plans,
    };
    let mut done = settle(&run, &[org], checks, per_file, BTreeMap::new())?;
    done.pop()
        .ok_or_else(|| Error::Internal(format!("org {org} was not finished")))
}

/// After every task ran: refuses a file delivered twice, rates older
/// deliveries again without the rows a later one repeats, and finishes the
/// orgs not finished early.
fn settle(
    run: &TaskRun<'_, '_>,
    billed: &[usize],
    checks: &[OrgCheck],
    mut per_file: Vec<Option<FileOutcome>>,
    finished: BTreeMap<usize, Finished>,
) -> Result<Vec<Finished>> {
    let files = run.work.files;
    same_content_twice(files, &per_file)?;
    let compared = orgs_with_several_deliveries(files);
    let excluded = overlapping_deliveries(run.config, files, &per_file, &compared)?;
    if !excluded.is_empty() {
        rate_again_without_repeats(run, checks, &excluded, &mut per_file)?;
    }
    finish_the_rest(run, billed, per_file, finished, &excluded)
}

/// What every `run_tasks` of a run shares.
struct TaskRun<'r, 'a> {
    config: &'r Config,
    work: Work<'r>,
    plans: &'r Plans<'a>,
}

/// Rates the files of older deliveries again, now without the rows a later
/// delivery repeats; their outcomes (and export parts) replace the first ones.
fn rate_again_without_repeats(
    run: &TaskRun<'_, '_>,
    checks: &[OrgCheck],
    excluded: &Exclusions,
    per_file: &mut [Option<FileOutcome>],
) -> Result<()> {
    let mut checks = checks.to_vec();
    for (org, map) in excluded {
        checks[*org].excluded = Arc::new(map.clone());
    }
    let files = run.work.files;
    let again: Vec<Task> = run
        .work
        .tasks
        .iter()
        .filter(|t| {
            let f = &files[t.file];
            excluded
                .get(&f.org_index)
                .is_some_and(|m| m.contains_key(Path::new(&f.display)))
        })
        .cloned()
        .collect();
    let never = |_: usize, _: Vec<FileOutcome>| -> Result<()> { Ok(()) };
    let redone = run_tasks(
        run.config,
        Work {
            tasks: &again,
            ..run.work
        },
        &checks,
        run.plans,
        &Silent,
        (&BTreeSet::new(), &never),
    )?;
    for (i, o) in redone.into_iter().enumerate() {
        if let Some(mut o) = o {
            if let Some(Some(old)) = per_file.get(i) {
                o.report.sha256 = old.report.sha256.clone();
                o.report.bytes = old.report.bytes;
            }
            per_file[i] = Some(o);
        }
    }
    Ok(())
}

/// Finishes the billed orgs not finished early (compared deliveries, orgs
/// without files, runs without exports) and returns every billed org's month,
/// partner first, in config order.
fn finish_the_rest(
    run: &TaskRun<'_, '_>,
    billed: &[usize],
    per_file: Vec<Option<FileOutcome>>,
    mut finished: BTreeMap<usize, Finished>,
    excluded: &Exclusions,
) -> Result<Vec<Finished>> {
    let (config, period, files, plans) = (run.config, run.work.period, run.work.files, run.plans);
    let mut by_org: BTreeMap<usize, std::sync::Mutex<Vec<FileOutcome>>> = BTreeMap::new();
    for (f, o) in files.iter().zip(per_file) {
        if let Some(o) = o {
            by_org
                .entry(f.org_index)
                .or_default()
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .push(o);
        }
    }
    let late: Vec<usize> = billed
        .iter()
        .copied()
        .filter(|i| !finished.contains_key(i))
        .collect();
    let late: Result<Vec<(usize, Finished)>> = late
        .into_par_iter()
        .map(|idx| {
            // Each org's outcomes are moved out (one task per org), never cloned.
            let outcomes = by_org
                .get(&idx)
                .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner())))
                .unwrap_or_default();
            Ok((
                idx,
                finish_one(config, idx, period, outcomes, plans, excluded.get(&idx))?,
            ))
        })
        .collect();
    finished.extend(late?);
    billed
        .iter()
        .map(|idx| {
            finished
                .remove(idx)
                .ok_or_else(|| Error::Internal(format!("org {idx} was not finished")))
        })
        .collect()
}

/// An org's finished month: its results and what its exports wrote.
pub type Finished = (OrgResult, Option<OrgWritten>);

/// Finishes an org from its files' outcomes (in file order): the merged ledger,
/// the invoices and, when it has an export plan, its exports.
fn finish_one(
    config: &Config,
    idx: usize,
    period: BillingPeriod,
    mut outcomes: Vec<FileOutcome>,
    plans: &Plans<'_>,
    excluded: Option<&ExcludedRows>,
) -> Result<Finished> {
    for o in &mut outcomes {
        o.quarantined.sort_by_key(|q| q.row);
        o.identity = Vec::new();
    }
    let parts: Vec<TaskParts> = outcomes
        .iter_mut()
        .flat_map(|o| std::mem::take(&mut o.exports))
        .collect();
    let mut r = finish_org(config, idx, period, outcomes)?;
    if let Some(m) = excluded {
        r.excluded = Arc::new(m.clone());
    }
    let written = match plans.get(&idx) {
        Some(plan) => Some(finish_exports(plan, parts, &r)?),
        None => None,
    };
    Ok((r, written))
}

/// Finishes an org's exports from its rated month.
fn finish_exports(
    plan: &OrgExport<'_>,
    parts: Vec<TaskParts>,
    r: &OrgResult,
) -> Result<OrgWritten> {
    guarded(Path::new(r.id.as_str()), || {
        plan.finish(
            parts,
            OrgTotals {
                deferred: &r.ledger.deferred,
                actual_exact: r.actual.exact_total.0,
                customer: r.customer.as_ref(),
                customer_billed: r
                    .customer_fx
                    .as_ref()
                    .map(|x| &x.invoice)
                    .or(r.customer.as_ref()),
                actual_total: r.actual.total.0,
            },
        )
    })
}

/// Removes the exports' parts folder once every dataset is joined.
fn remove_parts(root: &Path) -> Result<()> {
    let dir = root.join(PARTS_DIR);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Output {
            path: dir,
            source: e,
        }),
    }
}

/// Runs tasks on rayon; each task's outcome is merged into its file's slot as soon as it
/// is done, so memory holds one ledger per file. Every failure is reported, not just the first.
/// Finishes an org from its files' outcomes (in file order) as soon as its last task ends.
/// The roll-ups of one org's tasks, merged into one task's parts as each task
/// ends, whichever file it read: memory holds one roll-up per dataset and org.
type OrgRollUps = std::sync::Mutex<Option<TaskParts>>;

/// Moves a finished task's roll-ups into its org's (the first task to finish
/// lends its parts; the others keep their held rows and give up their groups).
fn gather_roll_ups(slot: &OrgRollUps, o: &mut FileOutcome) -> Result<()> {
    let mut held = slot.lock().unwrap_or_else(|e| e.into_inner());
    let mut kept = Vec::with_capacity(o.exports.len());
    for mut t in std::mem::take(&mut o.exports) {
        if !t.has_roll_ups() {
            kept.push(t);
            continue;
        }
        match held.as_mut() {
            None => *held = Some(t),
            Some(acc) => {
                acc.absorb_roll_ups(&mut t)?;
                kept.push(t);
            }
        }
    }
    o.exports = kept;
    Ok(())
}

/// Hands an org's merged roll-ups back to its outcomes, for its finish.
fn return_roll_ups(slot: &OrgRollUps, outcomes: &mut [FileOutcome]) {
    let parts = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let (Some(parts), Some(first)) = (parts, outcomes.first_mut()) {
        first.exports.push(parts);
    }
}

type FinishEarly<'x> = dyn Fn(usize, Vec<FileOutcome>) -> Result<()> + Sync + 'x;

fn run_tasks(
    config: &Config,
    Work { files, tasks, .. }: Work<'_>,
    checks: &[OrgCheck],
    plans: &Plans<'_>,
    progress: &dyn Progress,
    (early, finish): (&BTreeSet<usize>, &FinishEarly<'_>),
) -> Result<Vec<Option<FileOutcome>>> {
    // Tasks left per org, to tell the progress display when an org is done.
    let mut left: BTreeMap<usize, std::sync::atomic::AtomicUsize> = BTreeMap::new();
    for t in tasks {
        left.entry(files[t.file].org_index)
            .or_insert_with(|| std::sync::atomic::AtomicUsize::new(0))
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    use std::sync::Mutex;
    let per_file: Vec<Mutex<Option<FileOutcome>>> =
        (0..files.len()).map(|_| Mutex::new(None)).collect();
    let roll_ups: BTreeMap<usize, OrgRollUps> =
        left.keys().map(|&org| (org, Mutex::new(None))).collect();
    let failures: Mutex<Vec<(usize, Error)>> = Mutex::new(Vec::new());
    // One task per rayon leaf: rayon's adaptive splitting otherwise leaves runs of
    // tasks that no idle thread can steal (measured: a one-core tail of about
    // 1 s at the end of a 20M run, 0.5 s with one task per leaf).
    let order = task_order(config, files, tasks, !plans.is_empty());
    order
        .par_iter()
        .map(|&i| (i, &tasks[i]))
        .with_max_len(1)
        .for_each(|(i, t)| {
            let file = &files[t.file];
            let check = &checks[file.org_index];
            let plan = plans.get(&file.org_index);
            let merged = guarded(&file.path, || {
                rate_task(config, (t.file, file), t, check, plan, progress)
            })
            .and_then(|mut o| {
                gather_roll_ups(&roll_ups[&file.org_index], &mut o)?;
                let mut slot = per_file[t.file].lock().unwrap_or_else(|e| e.into_inner());
                match slot.as_mut() {
                    None => {
                        *slot = Some(o);
                        Ok(())
                    }
                    Some(acc) => merge_outcome(acc, o),
                }
            });
            if let Err(e) = merged {
                failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, e));
            }
            if left[&file.org_index].fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                progress.org_done();
                // Finished now, not after every org: its held rows and roll-ups are freed.
                if early.contains(&file.org_index) {
                    let outcomes: Option<Vec<FileOutcome>> = files
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| f.org_index == file.org_index)
                        .map(|(k, _)| per_file[k].lock().unwrap_or_else(|e| e.into_inner()).take())
                        .collect();
                    // A missing outcome is a failed task, already reported.
                    if let Some(mut outcomes) = outcomes {
                        return_roll_ups(&roll_ups[&file.org_index], &mut outcomes);
                        if let Err(e) = finish(file.org_index, outcomes) {
                            failures
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((i, e));
                        }
                    }
                }
            }
        });
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort_by_key(|(i, _)| *i);
    let mut errors: Vec<Error> = Vec::new();
    for (_, e) in failures {
        if !errors.iter().any(|x| x.to_string() == e.to_string()) {
            errors.push(e);
        }
    }
    let mut per_file: Vec<Option<FileOutcome>> = per_file
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    for (org, slot) in roll_ups {
        let parts = slot.into_inner().unwrap_or_else(|e| e.into_inner());
        let first = per_file
            .iter_mut()
            .zip(files)
            .find_map(|(o, f)| o.as_mut().filter(|_| f.org_index == org));
        if let (Some(parts), Some(first)) = (parts, first) {
            first.exports.push(parts);
        }
    }
    match errors.len() {
        0 => Ok(per_file),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Invalid {
            problems: errors.iter().map(|e| e.to_string()).collect(),
        }),
    }
}

/// An org with input files that rates no row of the period is almost always a wrong
/// `--period` or the wrong files: refuse, listing the periods the rows are for.
fn empty_period(orgs: &[OrgResult], period: BillingPeriod) -> Result<()> {
    let mut problems = Vec::new();
    for r in orgs {
        let read: u64 = r.files.iter().map(|f| f.rows_read).sum();
        let rated: u64 = r.files.iter().map(|f| f.rows_rated).sum();
        let found: BTreeSet<&str> = r
            .quarantined
            .iter()
            .filter(|q| q.reason.starts_with("the line is for "))
            .map(|q| q.value.as_str())
            .collect();
        // Rows exist, and some are for other months, but none for this one. (Rows all
        // quarantined for other reasons are reported with those reasons instead.)
        if read == 0 || rated > 0 || found.is_empty() {
            continue;
        }
        let found = found.into_iter().collect::<Vec<_>>().join(", ");
        problems.push(format!(
            "org `{}`: its {} file(s) hold {read} row(s) but none for {period} (periods found: {found}); check --period, or set `allow_empty_period = true` under [run] to invoice 0.00",
            r.id,
            r.files.len()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Period(problems.join("\n")))
    }
}

/// Reads exactly the columns a run needs from every input of the period, with
/// the same readers and the same parallel plan, and does nothing else: the
/// floor that `billxfer run` is benchmarked against.
pub fn decode_floor(config: &Config, period: Option<BillingPeriod>) -> Result<u64> {
    let files = plan_inputs(config, period)?.files;
    let (tasks, _, _) = plan_tasks(&files)?;
    let counts: Result<Vec<u64>> = tasks
        .par_iter()
        .map(|t| {
            guarded(&files[t.file].path, || {
                ingest::decode_only(
                    &files[t.file].path,
                    t.part.as_ref(),
                    t.footer.take().as_ref(),
                )
            })
        })
        .collect();
    Ok(counts?.iter().sum())
}
