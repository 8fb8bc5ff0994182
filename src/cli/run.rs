//! `billxfer run`: the month-end batch, with progress on stderr.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::config::Config;
use crate::error::Result;
use crate::money::format_fixed;
use crate::pipeline::{self, Progress};
use crate::types::BillingPeriod;
use crate::{publish, render};

use super::parse_period;
use super::summary::{notes, quarantine_summary};

/// Arguments of `billxfer run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "billxfer.toml")]
    pub config: PathBuf,
    /// Billing period to run (YYYY-MM); default: the single period found in the inputs.
    #[arg(long, short, value_parser = parse_period)]
    pub period: Option<BillingPeriod>,
    /// Output folder; the run writes <out>/<period>/.
    #[arg(long, short, default_value = "out")]
    pub out: PathBuf,
    /// Worker threads, 1 to 65536 (default: one per core). More than 4 per CPU is
    /// lowered to 4 per CPU, with a warning; above 65536 is an error.
    #[arg(long, value_name = "N", value_parser = pipeline::parse_threads)]
    pub threads: Option<usize>,
    /// No progress or summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Analyst exports to write: pro forma CUR 2.0 per customer (cur), FOCUS 1.2 per
    /// customer and for the partner (focus), both (all) or none.
    #[arg(long, value_enum, default_value = "all")]
    pub exports: crate::export::ExportSet,
    /// File format of the exports.
    #[arg(long, value_enum, default_value = "parquet")]
    pub format: crate::export::ExportFormat,
    /// Rows of the exports: one per input line, or rolled up per day or month by the grouping keys.
    #[arg(long, value_enum, default_value = "line")]
    pub granularity: crate::export::Granularity,
    /// FOCUS version of the FOCUS exports: 1.2 (as AWS Data Exports) or 1.3 (service and
    /// host providers, allocation columns, charges summing to each invoice's total).
    #[arg(long, value_enum, default_value = "1.2")]
    pub focus_version: crate::focus::FocusVersion,
    /// Run the month on a Ballista cluster (`billxfer cluster ...`) at df://HOST:PORT instead
    /// of here; the outputs are the same bytes (but the manifest's `engine`). The inputs,
    /// the config and --out must be at the same paths on every executor. Needs a build
    /// with `--features distributed`.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
    /// With --cluster: partitions of the rating stage and of the finish stage (orgs are
    /// hashed over the latter).
    #[arg(long, value_name = "RATE,FINISH", value_parser = parse_partitions, requires = "cluster")]
    pub partitions: Option<(usize, usize)>,
    /// With --cluster: give up, publishing nothing, when the job has not finished after
    /// this many seconds (Ballista can stall when an executor dies mid-job; set it in
    /// scheduled runs, above the month's usual run time). Default: wait.
    #[arg(long, value_name = "SECONDS", requires = "cluster")]
    pub cluster_timeout: Option<u64>,
}

fn parse_partitions(text: &str) -> std::result::Result<(usize, usize), String> {
    let number = |t: &str| match t.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`{text}`: expected two positive numbers, RATE,FINISH (for example 16,8)"
        )),
    };
    match text.split_once(',') {
        Some((rate, finish)) => Ok((number(rate)?, number(finish)?)),
        None => Err(format!("`{text}`: expected RATE,FINISH (for example 16,8)")),
    }
}

/// Runs the month here, or on the cluster `--cluster` names.
fn run_month(
    a: &RunArgs,
    config: &Config,
    period: BillingPeriod,
    progress: &dyn Progress,
    to: pipeline::ExportTo<'_>,
) -> Result<pipeline::MonthOutput> {
    let Some(address) = &a.cluster else {
        return pipeline::run_month(config, period, progress, Some(to));
    };
    #[cfg(feature = "distributed")]
    {
        use crate::cluster::roles;
        let scheduler =
            roles::parse_address(address).map_err(|p| crate::error::Error::Invalid {
                problems: vec![format!("--cluster: {p}")],
            })?;
        let mut partitions = roles::Partitions::default();
        if let Some((rate, finish)) = a.partitions {
            partitions = roles::Partitions { rate, finish };
        }
        let cluster = roles::ClusterRun {
            scheduler,
            partitions,
            timeout: a.cluster_timeout.map(std::time::Duration::from_secs),
        };
        let (mut result, files) =
            roles::run_month_on_cluster(&cluster, config, period, progress, Some(to))?;
        result.engine = crate::cluster::ENGINE;
        Ok((result, files))
    }
    #[cfg(not(feature = "distributed"))]
    {
        let _ = address;
        Err(super::cluster::not_built())
    }
}

/// Progress on stderr: rows, rows/s, organizations done and an ETA when the
/// row count is known from Parquet footers. Hidden when stderr is not a terminal or with --quiet.
pub(super) struct Bar {
    bar: indicatif::ProgressBar,
    orgs_done: AtomicU64,
    orgs: AtomicU64,
}

impl Bar {
    fn new(enabled: bool) -> Bar {
        let bar = if enabled {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        Bar {
            bar,
            orgs_done: AtomicU64::new(0),
            orgs: AtomicU64::new(0),
        }
    }
}

impl Progress for Bar {
    fn start(&self, known_rows: u64, all_known: bool, orgs: usize) {
        self.orgs.store(orgs as u64, Ordering::Relaxed);
        let template = if all_known {
            self.bar.set_length(known_rows);
            "{elapsed_precise} [{bar:30}] {human_pos}/{human_len} rows, {rps}, ETA {eta}, {msg}"
        } else {
            "{elapsed_precise} {human_pos} rows, {rps}, {msg}"
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            let style = style.with_key(
                "rps",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} rows/s", s.per_sec());
                },
            );
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_message(format!("orgs 0/{orgs}"));
    }

    fn rows(&self, n: u64) {
        self.bar.inc(n);
    }

    fn org_done(&self) {
        let done = self.orgs_done.fetch_add(1, Ordering::Relaxed) + 1;
        self.bar
            .set_message(format!("orgs {done}/{}", self.orgs.load(Ordering::Relaxed)));
    }
}

pub(super) fn cmd_run(a: RunArgs) -> Result<()> {
    // A usage problem: refused before any input is read.
    if a.cluster.is_some() && !cfg!(feature = "distributed") {
        return Err(super::cluster::not_built());
    }
    pipeline::configure_threads(a.threads);
    let started = Instant::now();
    let config = Config::load(&a.config)?;
    let period = pipeline::choose_period(&config, a.period)?;
    let bar = Bar::new(!a.quiet && std::io::stderr().is_terminal());
    let exports = crate::export::ExportOptions {
        set: a.exports,
        format: a.format,
        granularity: a.granularity,
        focus_version: a.focus_version,
    };
    // Locked and recovered first, inside the resolved folder (see `lock_output`):
    // the one pass writes the exports straight into the month being built.
    let lock = publish::lock_output(&a.out)?;
    publish::recover(lock.dir(), &period.to_string())?;
    let (_, (result, writing)) =
        publish::write_atomically_with(lock.dir(), &period.to_string(), &[], |tmp| {
            let to = pipeline::ExportTo {
                options: exports,
                root: tmp,
            };
            let (result, mut files) = run_month(&a, &config, period, &bar, to)?;
            bar.bar.finish_and_clear();
            let writing = Instant::now();
            files.extend(render::render(&config, &result)?);
            Ok((files, (result, writing)))
        })?;
    if !a.quiet {
        let mut text = String::new();
        notes(&config, &result, &mut text);
        for line in text.lines() {
            eprintln!("billxfer: {line}");
        }
        let mut text = String::new();
        quarantine_summary(&result, None, &mut text);
        for line in text.lines() {
            eprintln!("billxfer: {line}");
        }
    }
    let dir = a.out.join(period.to_string());
    let writing = writing.elapsed().as_secs_f64();
    if !a.quiet {
        let rows = result.rows_read();
        let q: u64 = result.orgs.iter().map(|r| r.quarantined.len() as u64).sum();
        let (mut act, mut pf) = (0i128, 0i128);
        for r in &result.orgs {
            if let Some(c) = &r.customer {
                act += r.actual.total.0;
                pf += c.total.0;
            }
        }
        eprintln!(
            "billxfer: {period}: {} customer org(s), {rows} rows read, {q} quarantined, in {:.2}s",
            result.orgs.len().saturating_sub(1),
            started.elapsed().as_secs_f64()
        );
        eprintln!(
            "billxfer: customers: actual {} USD, pro forma {} USD, margin {} USD",
            format_fixed(act, 2),
            format_fixed(pf, 2),
            format_fixed(pf - act, 2)
        );
        if q > 0 {
            eprintln!(
                "billxfer: {q} row(s) quarantined: see {}/quarantine/",
                dir.display()
            );
        }
        if exports.set != crate::export::ExportSet::None {
            eprintln!(
                "billxfer: exports ({:?}, {:?}) written in the same pass, invoices in {writing:.2}s: see {}/exports.json",
                exports.format,
                exports.granularity,
                dir.display()
            );
        }
        eprintln!("billxfer: wrote {}", dir.display());
    }
    // The month is published and the process is about to exit: the results and the
    // config (a ledger and maps per org) are freed by the exit, not one allocation
    // at a time (a serial tail of about 1% of a 1,000-org run, measured with perf).
    std::mem::forget(result);
    std::mem::forget(config);
    Ok(())
}
