//! The month-end run: resolve inputs, rate every org in parallel, build invoices.
//!
//! Work is split into (org, file) tasks run on rayon, so many orgs and one
//! huge org with many files both use every core. Each task streams its file
//! batch by batch into its own [`Ledger`]; ledgers of one org are merged in
//! file order (integer sums, so the result does not depend on thread timing).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::{hex, ActualCard, Config, Org, PlanKind};
use crate::error::{Error, Result};
use crate::ingest::{self, normalize, OrgCheck, Quarantined};
use crate::invoice::{actual_invoice, customer_invoice, ActualInvoice, CustomerInvoice};
use crate::rate::{Ledger, Pricing, Rater};
use crate::types::{BillingPeriod, OrgId};

/// Whose files these are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The partner's own organization.
    Partner,
    /// A customer organization under billing transfer.
    Customer,
}

/// One input file as resolved from the config.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Index of the org (0 = partner, then customers in config order).
    pub org_index: usize,
    /// Path on disk.
    pub path: PathBuf,
    /// Path as recorded in outputs (relative to the config's folder when possible).
    pub display: String,
}

/// What reading one file produced.
#[derive(Debug, Clone, serde::Serialize)]
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
}

/// One organization's finished month.
#[derive(Debug)]
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

/// Expands an org's file patterns (relative to the config folder) into files, sorted.
pub fn resolve_files(
    config: &Config,
    org_index: usize,
    patterns: &[String],
    problems: &mut Vec<String>,
) -> Vec<InputFile> {
    let org_label = if org_index == 0 {
        format!("partner `{}`", config.partner.id)
    } else {
        format!("org `{}`", config.orgs[org_index - 1].id)
    };
    let mut out = BTreeSet::new();
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            config.base_dir.join(pattern)
        };
        let text = full.to_string_lossy().to_string();
        let has_glob = pattern.contains(['*', '?', '[']);
        if !has_glob {
            if full.is_file() {
                out.insert(full);
            } else {
                problems.push(format!("{org_label}: input file {} does not exist (paths are relative to the config's folder {})", full.display(), display_dir(&config.base_dir)));
            }
            continue;
        }
        match glob::glob(&text) {
            Err(e) => problems.push(format!("{org_label}: bad glob pattern `{pattern}`: {e}")),
            Ok(paths) => {
                let mut any = false;
                for p in paths.flatten() {
                    if p.is_file() && !is_sidecar(&p) {
                        out.insert(p);
                        any = true;
                    }
                }
                if !any {
                    problems.push(format!(
                        "{org_label}: the pattern `{pattern}` matches no file (relative to {})",
                        display_dir(&config.base_dir)
                    ));
                }
            }
        }
    }
    out.into_iter()
        .map(|path| {
            let display = path
                .strip_prefix(&config.base_dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            InputFile {
                org_index,
                path,
                display,
            }
        })
        .collect()
}

fn display_dir(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".into()
    } else {
        p.display().to_string()
    }
}

/// Manifests and status objects that sit beside CUR data files and are not data.
fn is_sidecar(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".json") || name.ends_with(".metadata") || name.starts_with('.')
}

/// Every input file of every org that the period concerns, or all problems at once.
pub fn plan_inputs(
    config: &Config,
    period: Option<BillingPeriod>,
) -> Result<(Vec<InputFile>, Vec<NotBilled>)> {
    let mut problems = Vec::new();
    let mut files = resolve_files(config, 0, &config.partner.files, &mut problems);
    let mut not_billed = Vec::new();
    for (i, org) in config.orgs.iter().enumerate() {
        if let Some(p) = period {
            if !org.transfer.covers(p) {
                let end = org
                    .transfer
                    .end
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "open".into());
                not_billed.push(NotBilled {
                    org: org.id.to_string(),
                    reason: format!("{p} is outside the billing transfer ({} to {end}): the customer pays AWS directly for that month, so it is not invoiced through the partner and its files were not read", org.transfer.start),
                });
                continue;
            }
        }
        files.extend(resolve_files(config, i + 1, &org.files, &mut problems));
    }
    // One file must not feed two orgs: that would bill the same usage twice.
    let mut seen: BTreeMap<&Path, usize> = BTreeMap::new();
    for f in &files {
        if let Some(other) = seen.insert(&f.path, f.org_index) {
            if other != f.org_index {
                problems.push(format!(
                    "{} is listed for two organizations; each file belongs to exactly one",
                    f.display
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid { problems });
    }
    Ok((files, not_billed))
}

/// Finds the billing periods present in the inputs (reads only the period columns).
pub fn detect_periods(config: &Config) -> Result<BTreeSet<BillingPeriod>> {
    let (files, _) = plan_inputs(config, None)?;
    let periods: Result<Vec<BTreeSet<BillingPeriod>>> = files
        .par_iter()
        .map(|f| {
            guarded(&f.path, || {
                let mut source = ingest::open(&f.path)?;
                let mut found = BTreeSet::new();
                while let Some(chunk) = source.next_chunk() {
                    let chunk = chunk?;
                    for field in [ingest::Field::BillingPeriodStart, ingest::Field::UsageStart] {
                        if let Some(column) = &chunk.period[field as usize] {
                            found.extend(column.periods().into_iter().flatten());
                            break;
                        }
                    }
                }
                Ok(found)
            })
        })
        .collect();
    Ok(periods?.into_iter().flatten().collect())
}

/// Chooses the period: the one given, or the single one found in the inputs.
pub fn choose_period(config: &Config, given: Option<BillingPeriod>) -> Result<BillingPeriod> {
    if let Some(p) = given {
        return Ok(p);
    }
    let found = detect_periods(config)?;
    match found.len() {
        1 => found.into_iter().next().ok_or_else(|| Error::Period("no billing period found".into())),
        0 => Err(Error::Period("no billing period found in the inputs (no readable billing period or usage start dates); give one with --period YYYY-MM".into())),
        _ => Err(Error::Period(format!(
            "the inputs hold several billing periods ({}); choose one with --period YYYY-MM (rows of other periods are then quarantined)",
            found.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

pub(crate) fn pricing_for(config: &Config, org: Option<&Org>) -> (Pricing, Pricing) {
    let actual = match &config.actual {
        ActualCard::Billed => Pricing::Billed,
        ActualCard::Public(rules) => Pricing::Rules(rules.clone()),
    };
    let proforma = match org.map(|o| &o.plan.kind) {
        None => Pricing::None,
        Some(PlanKind::Passthrough) => Pricing::SameAsActual,
        Some(PlanKind::Rated(rules)) => Pricing::Rules(rules.clone()),
    };
    (actual, proforma)
}

fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((n, hex(&h.finalize())))
}

struct FileOutcome {
    report: FileReport,
    ledger: Ledger,
    quarantined: Vec<Quarantined>,
    rated_unblended: i128,
}

pub(crate) fn org_check(config: &Config, org_index: usize, period: BillingPeriod) -> OrgCheck {
    let (label, accounts, currency, management) = if org_index == 0 {
        (
            format!("partner `{}`", config.partner.id),
            &config.partner.accounts,
            config.partner.currency.clone(),
            &config.partner.management_account,
        )
    } else {
        let o = &config.orgs[org_index - 1];
        (
            format!("org `{}`", o.id),
            &o.accounts,
            config.partner.currency.clone(),
            &o.management_account,
        )
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
    }
}

/// One unit of parallel work: a whole file, or some row groups of a Parquet file.
#[derive(Debug, Clone)]
pub struct Task {
    /// Index into the planned input files.
    pub file: usize,
    /// Row groups to read, `None` for the whole file.
    pub part: Option<ingest::Part>,
    /// Whether this task also hashes the file for the manifest (one task per file does).
    pub hash: bool,
}

/// Rows per task when large Parquet files are split by row group, so one huge
/// org's file is read by every core rather than serializing the run.
pub const ROWS_PER_TASK: u64 = 262_144;

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

/// Splits every input into tasks (Parquet files by whole row groups); also
/// returns the rows known from Parquet footers and whether every file's are.
pub fn plan_tasks(files: &[InputFile]) -> Result<(Vec<Task>, u64, bool)> {
    let plans: Result<Vec<ingest::FilePlan>> = files
        .par_iter()
        .map(|f| guarded(&f.path, || ingest::plan_parts(&f.path, ROWS_PER_TASK)))
        .collect();
    let plans = plans?;
    let known: u64 = plans.iter().filter_map(|p| p.1).sum();
    let all_known = plans.iter().all(|p| p.1.is_some());
    let mut tasks = Vec::new();
    for (i, (p, _)) in plans.into_iter().enumerate() {
        match p {
            None => tasks.push(Task {
                file: i,
                part: None,
                hash: true,
            }),
            Some(parts) => {
                for (k, part) in parts.into_iter().enumerate() {
                    tasks.push(Task {
                        file: i,
                        part: Some(part),
                        hash: k == 0,
                    });
                }
            }
        }
    }
    // Largest work first would be better balanced; file order keeps it simple and
    // deterministic, and tasks are small enough (ROWS_PER_TASK) for rayon to balance.
    Ok((tasks, known, all_known))
}

fn rate_task(
    config: &Config,
    file: &InputFile,
    task: &Task,
    period: BillingPeriod,
    progress: &dyn Progress,
) -> Result<FileOutcome> {
    let org = if file.org_index == 0 {
        None
    } else {
        Some(&config.orgs[file.org_index - 1])
    };
    let org_id = org
        .map(|o| o.id.to_string())
        .unwrap_or_else(|| config.partner.id.to_string());
    let (actual, proforma) = pricing_for(config, org);
    let check = org_check(config, file.org_index, period);
    let (bytes, sha256) = if task.hash {
        sha256_file(&file.path)?
    } else {
        (0, String::new())
    };
    let mut source = ingest::open_part(&file.path, task.part.as_ref())?;
    let format = source.describe();
    let mut rater = Rater::new(actual, proforma);
    rater.list_base = source.column_map().dialect == ingest::Dialect::Focus;
    let display = PathBuf::from(&file.display);
    let streamed = rate_source(source.as_mut(), &display, &check, &mut rater, progress)?;
    let (rows_read, rows_rated, rated_unblended, quarantined) = (
        streamed.rows_read,
        streamed.rows_rated,
        streamed.rated_unblended,
        streamed.quarantined,
    );
    Ok(FileOutcome {
        report: FileReport {
            org: org_id,
            path: file.display.clone(),
            format,
            bytes,
            sha256,
            rows_read,
            rows_rated,
            rows_quarantined: quarantined.len() as u64,
        },
        ledger: rater.finish(),
        quarantined,
        rated_unblended,
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
}

/// Streams every chunk of a source through the org's checks and the rater.
pub fn rate_source(
    source: &mut dyn ingest::ChunkSource,
    display: &std::path::Path,
    check: &OrgCheck,
    rater: &mut Rater,
    progress: &dyn Progress,
) -> Result<Streamed> {
    let mut out = Streamed::default();
    while let Some(chunk) = source.next_chunk() {
        let chunk = chunk?;
        let n = (chunk.rows.len() + chunk.broken.len()) as u64;
        out.rows_read += n;
        let norm = normalize(display, source.column_map(), chunk, check)?;
        out.rows_rated += norm.batch.num_rows() as u64;
        out.rated_unblended = out
            .rated_unblended
            .checked_add(norm.rated_unblended)
            .ok_or_else(|| Error::Overflow(format!("summing {}", display.display())))?;
        rater.rate(&norm.batch)?;
        out.quarantined.extend(norm.quarantined);
        progress.rows(n);
    }
    Ok(out)
}

/// Adds a task's outcome for the same file into `into`.
fn merge_outcome(into: &mut FileOutcome, o: FileOutcome) -> Result<()> {
    into.ledger.merge(o.ledger)?;
    into.quarantined.extend(o.quarantined);
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
    let (files, not_billed) = plan_inputs(config, Some(period))?;
    let (tasks, known_rows, all_known) = plan_tasks(&files)?;
    // Tasks left per org, to tell the progress display when an org is done.
    let mut left: BTreeMap<usize, std::sync::atomic::AtomicUsize> = BTreeMap::new();
    for t in &tasks {
        left.entry(files[t.file].org_index)
            .or_insert_with(|| std::sync::atomic::AtomicUsize::new(0))
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    progress.start(known_rows, all_known, left.len());
    // Each task's ledger is merged into its file's slot as soon as it is done, so
    // memory holds one ledger per file, not one per task.
    use std::sync::Mutex;
    let per_file: Vec<Mutex<Option<FileOutcome>>> =
        (0..files.len()).map(|_| Mutex::new(None)).collect();
    // Every file that cannot be read is reported, not just the first: (task index, error).
    let failures: Mutex<Vec<(usize, Error)>> = Mutex::new(Vec::new());
    tasks.par_iter().enumerate().for_each(|(i, t)| {
        let file = &files[t.file];
        let merged =
            guarded(&file.path, || rate_task(config, file, t, period, progress)).and_then(|o| {
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
        }
    });
    let per_file: Vec<Option<FileOutcome>> = per_file
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort_by_key(|(i, _)| *i);
    let mut errors: Vec<Error> = Vec::new();
    for (_, e) in failures {
        if !errors.iter().any(|x| x.to_string() == e.to_string()) {
            errors.push(e);
        }
    }
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        _ => {
            return Err(Error::Invalid {
                problems: errors.iter().map(|e| e.to_string()).collect(),
            })
        }
    }
    let mut by_org: BTreeMap<usize, std::sync::Mutex<Vec<FileOutcome>>> = BTreeMap::new();
    for (f, o) in files.iter().zip(per_file) {
        if let Some(mut o) = o {
            o.quarantined.sort_by_key(|q| q.row);
            by_org
                .entry(f.org_index)
                .or_default()
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .push(o);
        }
    }
    let billed_orgs: Vec<usize> = std::iter::once(0)
        .chain(
            config
                .orgs
                .iter()
                .enumerate()
                .filter(|(_, o)| o.transfer.covers(period))
                .map(|(i, _)| i + 1),
        )
        .collect();
    let results: Result<Vec<OrgResult>> = billed_orgs
        .into_par_iter()
        .map(|idx| {
            // Each org's outcomes are moved out (one task per org), never cloned.
            let outcomes = by_org
                .get(&idx)
                .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner())))
                .unwrap_or_default();
            finish_org(config, idx, period, outcomes)
        })
        .collect();
    Ok(RunResult {
        period,
        orgs: results?,
        not_billed,
    })
}

fn finish_org(
    config: &Config,
    idx: usize,
    period: BillingPeriod,
    outcomes: Vec<FileOutcome>,
) -> Result<OrgResult> {
    let org = if idx == 0 {
        None
    } else {
        Some(&config.orgs[idx - 1])
    };
    let (actual, proforma) = pricing_for(config, org);
    let mut ledger = Ledger::default();
    let mut quarantined = Vec::new();
    let mut files = Vec::new();
    let mut rated_unblended = 0i128;
    for o in outcomes {
        ledger.merge(o.ledger)?;
        quarantined.extend(o.quarantined);
        files.push(o.report);
        rated_unblended = rated_unblended
            .checked_add(o.rated_unblended)
            .ok_or_else(|| Error::Overflow("summing an org".into()))?;
    }
    ledger.finalize(&actual, &proforma)?;
    let actual_inv = actual_invoice(&ledger, config.rounding)?;
    let customer = match org {
        Some(o) => Some(customer_invoice(&ledger, o, period, config.rounding)?),
        None => None,
    };
    Ok(OrgResult {
        id: org
            .map(|o| o.id.clone())
            .unwrap_or_else(|| config.partner.id.clone()),
        role: if org.is_some() {
            Role::Customer
        } else {
            Role::Partner
        },
        org_index: idx,
        ledger,
        quarantined,
        files,
        rated_unblended,
        actual: actual_inv,
        customer,
    })
}

/// Sets the size of rayon's global pool (`--threads`); call before any work.
pub fn configure_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
}

/// Reads exactly the columns a run needs from every input of the period, with
/// the same readers and the same parallel plan, and does nothing else: the
/// floor that `billxfer run` is benchmarked against.
pub fn decode_floor(config: &Config, period: Option<BillingPeriod>) -> Result<u64> {
    let (files, _) = plan_inputs(config, period)?;
    let (tasks, _, _) = plan_tasks(&files)?;
    let counts: Result<Vec<u64>> = tasks
        .par_iter()
        .map(|t| {
            guarded(&files[t.file].path, || {
                ingest::decode_only(&files[t.file].path, t.part.as_ref())
            })
        })
        .collect();
    Ok(counts?.iter().sum())
}
