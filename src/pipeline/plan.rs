//! Planning a run: each org's input files (files, globs, export roots), the periods they hold.

use super::*;

/// Expands an org's inputs (files, glob patterns or export roots, relative to the
/// config folder) into files, sorted, each with the delivery it belongs to.
pub fn resolve_files(
    config: &Config,
    org_index: usize,
    patterns: &[String],
    period: Option<BillingPeriod>,
    problems: &mut Vec<String>,
    choices: &mut Vec<(String, DeliveryChoice)>,
) -> Vec<InputFile> {
    let party = config.party(org_index);
    let org_label = party.label();
    let org_id = party.id().to_string();
    let mut out: BTreeMap<PathBuf, String> = BTreeMap::new();
    let parent_of = |p: &Path| {
        p.parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    };
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            config.base_dir.join(pattern)
        };
        let text = full.to_string_lossy().to_string();
        let has_glob = pattern.contains(['*', '?', '[']);
        // A path that exists is taken literally, even if it holds `*`, `?` or `[`
        // (`report[1].csv`). `metadata` follows symlinks and never opens the file,
        // so a FIFO is not blocked on.
        let literal = match std::fs::metadata(&full) {
            Ok(m) => Some(m),
            Err(_) if has_glob => None,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                problems.push(format!("{org_label}: input file {} does not exist (paths are relative to the config's folder {})", full.display(), display_dir(&config.base_dir)));
                continue;
            }
            Err(e) => {
                problems.push(format!(
                    "{org_label}: input file {} cannot be read: {e}",
                    full.display()
                ));
                continue;
            }
        };
        if let Some(meta) = literal {
            if meta.is_dir() {
                let mut found_choices = Vec::new();
                let found =
                    deliveries::resolve_root(&full, pattern, period, problems, &mut found_choices);
                if found.is_empty() && found_choices.is_empty() {
                    problems.push(format!(
                        "{org_label}: the export folder {} holds no data file{}",
                        full.display(),
                        period.map(|p| format!(" of {p}")).unwrap_or_default()
                    ));
                }
                choices.extend(found_choices.into_iter().map(|c| (org_id.clone(), c)));
                for f in found {
                    out.insert(f.path, f.delivery);
                }
            } else if let Some(what) = not_a_regular_file(&meta.file_type()) {
                problems.push(not_regular_problem(&org_label, &full, what));
            } else {
                let d = parent_of(&full);
                out.insert(full, d);
            }
            continue;
        }
        match glob::glob(&text) {
            Err(e) => problems.push(format!("{org_label}: bad glob pattern `{pattern}`: {e}")),
            Ok(paths) => {
                let mut any = false;
                for p in paths.flatten() {
                    if deliveries::is_sidecar(&p) {
                        continue;
                    }
                    let Ok(meta) = std::fs::metadata(&p) else {
                        continue;
                    };
                    if meta.is_file() {
                        let d = parent_of(&p);
                        out.insert(p, d);
                        any = true;
                    } else if let Some(what) = not_a_regular_file(&meta.file_type()) {
                        problems.push(not_regular_problem(&org_label, &p, what));
                        any = true;
                    }
                }
                if !any {
                    let literal_hint = if pattern.contains('[') {
                        format!(
                            "; `[` starts a character class in a pattern: for a literal `[` write `[[]`, e.g. `{}`",
                            pattern.replace('[', "[[]")
                        )
                    } else {
                        String::new()
                    };
                    problems.push(format!(
                        "{org_label}: the pattern `{pattern}` matches no file (relative to {}){literal_hint}",
                        display_dir(&config.base_dir)
                    ));
                }
            }
        }
    }
    let rel = |p: &Path| {
        p.strip_prefix(&config.base_dir)
            .unwrap_or(p)
            .to_string_lossy()
            .replace('\\', "/")
    };
    out.into_iter()
        .map(|(path, delivery)| {
            let display = rel(&path);
            let delivery = rel(Path::new(&delivery));
            InputFile {
                org_index,
                path,
                display,
                delivery,
            }
        })
        .collect()
}

/// What a file system entry is when it is neither a regular file nor a folder
/// (FIFO, device, socket), from its type alone: the entry is never opened.
pub(super) fn not_a_regular_file(ft: &std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if ft.is_char_device() {
            return Some("a character device");
        }
        if ft.is_block_device() {
            return Some("a block device");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
    }
    if ft.is_file() || ft.is_dir() {
        None
    } else {
        Some("a special file")
    }
}

pub(super) fn not_regular_problem(org_label: &str, path: &Path, what: &str) -> String {
    format!(
        "{org_label}: input {} is {what}, not a regular file: billxfer reads each input more than once (checksum, then rows), which only a regular file allows; copy it to a file",
        path.display()
    )
}

pub(super) fn display_dir(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".into()
    } else {
        p.display().to_string()
    }
}

/// The planned inputs of a run: files, orgs not billed, and the deliveries chosen in export roots.
#[derive(Debug, Default)]
pub struct InputPlan {
    /// Every input file, partner's first.
    pub files: Vec<InputFile>,
    /// Orgs outside their transfer this month.
    pub not_billed: Vec<NotBilled>,
    /// (org id, choice) per export root and period.
    pub deliveries: Vec<(String, DeliveryChoice)>,
}

/// One customer org's part of an [`InputPlan`].
struct OrgInputs {
    files: Vec<InputFile>,
    problems: Vec<String>,
    choices: Vec<(String, DeliveryChoice)>,
    not_billed: Option<NotBilled>,
}

/// Lists the inputs of customer org `i` for the period, or why it is not billed.
fn list_org_inputs(
    config: &Config,
    i: usize,
    org: &Org,
    period: Option<BillingPeriod>,
) -> OrgInputs {
    let mut listed = OrgInputs {
        files: Vec::new(),
        problems: Vec::new(),
        choices: Vec::new(),
        not_billed: None,
    };
    if let Some(p) = period {
        if !org.transfer.covers(p) {
            let end = org
                .transfer
                .end
                .map(|e| e.to_string())
                .unwrap_or_else(|| "open".into());
            listed.not_billed = Some(NotBilled {
                org: org.id.to_string(),
                reason: format!("{p} is outside the billing transfer ({} to {end}): the customer pays AWS directly for that month, so it is not invoiced through the partner and its files were not read", org.transfer.start),
            });
            return listed;
        }
    }
    listed.files = resolve_files(
        config,
        i + 1,
        &org.files,
        period,
        &mut listed.problems,
        &mut listed.choices,
    );
    listed
}

/// Every input file of every org that the period concerns, or all problems at once.
pub fn plan_inputs(config: &Config, period: Option<BillingPeriod>) -> Result<InputPlan> {
    let mut problems = Vec::new();
    let mut choices = Vec::new();
    let mut files = resolve_files(
        config,
        0,
        &config.partner.files,
        period,
        &mut problems,
        &mut choices,
    );
    // Each org's inputs are listed on its own (globs walk folders), in parallel, and
    // gathered in org order.
    let listed: Vec<OrgInputs> = config
        .orgs
        .par_iter()
        .enumerate()
        .map(|(i, org)| list_org_inputs(config, i, org, period))
        .collect();
    let mut not_billed = Vec::new();
    for org in listed {
        files.extend(org.files);
        problems.extend(org.problems);
        choices.extend(org.choices);
        not_billed.extend(org.not_billed);
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
    Ok(InputPlan {
        files,
        not_billed,
        deliveries: choices,
    })
}

/// Finds the billing periods present in the inputs (from Parquet statistics where they
/// tell, else by reading only the period columns).
pub fn detect_periods(config: &Config) -> Result<BTreeSet<BillingPeriod>> {
    let files = plan_inputs(config, None)?.files;
    let periods: Result<Vec<BTreeSet<BillingPeriod>>> = files
        .par_iter()
        .map(|f| guarded(&f.path, || ingest::file_periods(&f.path)))
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

/// Rows per task when large Parquet files are split by row group, so one huge
/// org's file is read by every core rather than serializing the run.
pub const ROWS_PER_TASK: u64 = 262_144;

/// A footer read when the run was planned, kept for the task's reader, which takes
/// it (so it is freed with the reader, not at the end of the run). Empty when the
/// plan kept none (CSV; a run whose footers went beyond [`FOOTER_BUDGET`]) or a
/// reader took it already: the reader then reads the footer itself.
#[derive(Debug, Default)]
pub struct PlannedFooter(std::sync::Mutex<Option<ingest::Footer>>);

impl PlannedFooter {
    /// Keeps `footer` for the task's reader.
    pub fn new(footer: Option<ingest::Footer>) -> PlannedFooter {
        PlannedFooter(std::sync::Mutex::new(footer))
    }

    /// The footer, once.
    pub fn take(&self) -> Option<ingest::Footer> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Clone for PlannedFooter {
    fn clone(&self) -> PlannedFooter {
        PlannedFooter::new(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Most bytes of footers a plan keeps for its tasks (`ParquetMetaData::memory_size`);
/// beyond, tasks read their file's footer again, so memory stays bounded whatever
/// the number of files (a CUR footer is about 9 KB on the generated base, far more
/// with many columns and row groups).
pub const FOOTER_BUDGET: usize = 64 << 20;

/// Splits every input into tasks (Parquet files by whole row groups); also
/// returns the rows known from Parquet footers and whether every file's are.
pub fn plan_tasks(files: &[InputFile]) -> Result<(Vec<Task>, u64, bool)> {
    // Footers are kept for the tasks while they fit the budget, dropped as soon as
    // read beyond it (which files keep theirs may vary; what is read does not).
    let footer_bytes = std::sync::atomic::AtomicUsize::new(0);
    let within_budget = |f: &ingest::Footer| {
        let size = f.metadata().memory_size();
        let before = footer_bytes.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        before.saturating_add(size) <= FOOTER_BUDGET
    };
    let plans: Result<Vec<ingest::FilePlan>> = files
        .par_iter()
        .map(|f| {
            let mut plan = guarded(&f.path, || ingest::plan_parts(&f.path, ROWS_PER_TASK))?;
            plan.footer = plan.footer.filter(within_budget);
            Ok(plan)
        })
        .collect();
    let plans = plans?;
    let known: u64 = plans.iter().filter_map(|p| p.rows).sum();
    let all_known = plans.iter().all(|p| p.rows.is_some());
    let mut tasks = Vec::new();
    for (i, plan) in plans.into_iter().enumerate() {
        let footer = plan.footer;
        match plan.parts {
            None => tasks.push(Task {
                file: i,
                part: None,
                hash: true,
                identity: false,
                footer: PlannedFooter::new(footer),
            }),
            Some(parts) => {
                for (k, part) in parts.into_iter().enumerate() {
                    tasks.push(Task {
                        file: i,
                        part: Some(part),
                        hash: k == 0,
                        identity: false,
                        footer: PlannedFooter::new(footer.clone()),
                    });
                }
            }
        }
    }
    // Largest work first would be better balanced; file order keeps it simple and
    // deterministic, and tasks are small enough (ROWS_PER_TASK) for rayon to balance
    // when `run_tasks` gives each task its own leaf.
    Ok((tasks, known, all_known))
}

/// The order tasks run in. Without exports: the orgs of one pricing plan one after
/// another (each org's tasks in file order), so that the plan's memo of SKU
/// resolutions ([`crate::rules::RuleSet::resolve_memoized`]) is still in cache for
/// the next file. With exports, file order: an org's export writers and roll-ups are
/// held until its last task ends, and grouping raised the peak RSS of
/// `--exports all --granularity daily` on a 2M-line base from 295 to 400 MB.
/// Outcomes do not depend on the order: each task's goes to its file's slot.
pub(super) fn task_order(
    config: &Config,
    files: &[InputFile],
    tasks: &[Task],
    exports: bool,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    if exports {
        return order;
    }
    let plan_of = |t: &Task| {
        let org = files[t.file].org_index;
        let plan = config
            .party(org)
            .customer()
            .map(|o| shown_plan(o).id.as_str());
        (plan, org)
    };
    order.sort_by_key(|&i| (plan_of(&tasks[i]), i));
    order
}
