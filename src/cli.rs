//! Command line: parse, dispatch, print errors for humans, map them to exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::money::format_fixed;
use crate::output;
use crate::run::{self, Progress};
use crate::types::BillingPeriod;

const CONCEPTS: &str = "\
Concepts:
  bill-transfer account  The partner's management account. Since AWS Billing Transfer
                         (Nov 2025) it receives and pays one AWS bill per customer
                         organization, plus its own.
  bill-source account    A customer organization's management account. The org keeps
                         its AWS Organization; only its bill moves to the partner, for
                         whole months from the transfer's start month.
  actual                 What AWS charges the partner for a line: the billed cost in the
                         CUR (or public price less the partner's discounts). Partner-only.
  pro forma              What the customer is shown: public on-demand price with the
                         org's pricing plan (markup, discount, custom tiers, free tier),
                         plus custom line items (AWS Billing Conductor semantics).
                         Non-public discounts, credits, tax and support never reach it.";

/// billxfer: month-end billing for AWS Billing Transfer partners.
#[derive(Debug, Parser)]
#[command(
    name = "billxfer",
    version,
    about = "Month-end billing for AWS Billing Transfer partners: rate every CUR line at actual and pro forma rates, write one segregated invoice per customer organization.",
    after_long_help = CONCEPTS
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the month-end batch: rate every org's usage and write invoices.
    #[command(
        long_about = "Run the month-end batch.\n\nReads each organization's cost-and-usage files (CUR 2.0 or legacy CUR; Parquet, CSV or gzip CSV), rates every line at the partner's actual rates and at the org's pro forma plan, and writes under <out>/<period>/:\n  partner/invoices/<org>.json   what AWS bills the partner per org (actual)\n  partner/margin.csv            actual cost, pro forma revenue and margin per org and service\n  customers/<org>/invoice.json  the customer's pro forma invoice (also invoice.csv)\n  quarantine/<org>.csv          every rejected row with file, row and reason\n  manifest.json                 inputs with sha256, row counts, totals, reconciliation checks\nThe folder is built aside and renamed into place only when complete; re-running the same inputs gives byte-identical files.\n\nExample:\n  billxfer run --config sample_data/billxfer.toml --out out",
        after_long_help = CONCEPTS
    )]
    Run(RunArgs),
    /// Check the config and every input file, report all problems; write nothing.
    #[command(
        long_about = "Check the configuration (keys, ids, accounts, plans, rules, custom line items) and every input file (format, required columns, and each row's account, period, type and amounts), then report every problem at once. Writes nothing. Exits 0 when the run would rate every row, 1 when rows would be quarantined, 2 when the config or an input cannot be used.",
        after_long_help = CONCEPTS
    )]
    Validate(ValidateArgs),
    /// Write a synthetic, realistic customer base (CUR 2.0 files and a matching config).
    #[command(
        long_about = "Write a synthetic month for tests and benchmarks: per-org CUR 2.0 Parquet (or CSV) files split the way AWS splits exports, the partner's own org, and a billxfer.toml with pricing plans of hundreds of rules across all scopes, tiered SKUs and custom line items. Org sizes are Zipf-distributed (a few huge, many small); the service mix is Zipf-like over real product codes, usage types and operations; lines are hourly, with Savings Plans, RI, tax, credits, EDP/SPP discounts, free-tier lines, Marketplace charges and tags. The same seed gives the same bytes, whatever --threads is.\n\nExample:\n  billxfer generate --orgs 1000 --accounts-per-org 5 --lines 50000000 --period 2026-10 --seed 1 --out /tmp/base\n  billxfer run --config /tmp/base/billxfer.toml --period 2026-10 --out /tmp/base-out"
    )]
    Generate(GenerateArgs),
    /// Compare two finished runs of a month: totals per org and changed inputs.
    #[command(
        long_about = "Compare two finished runs (for example before and after a restated input: late credits, a changed file). OLD and NEW are period folders such as out-before/2026-10 and out/2026-10, or their manifest.json files. Prints, per organization, the actual and pro forma totals that changed, and the inputs whose content changed. Exit 0 when nothing differs, 1 when something does."
    )]
    Diff(DiffArgs),
    /// Check FOCUS files against the FOCUS 1.2 rules an exporter must keep.
    #[command(
        long_about = "Check FOCUS files (Parquet or CSV) against the FOCUS 1.2 rules an exporter must keep: mandatory columns present; BilledCost, EffectiveCost, ListCost and ContractedCost never null; ListCost = ListUnitPrice x PricingQuantity and ContractedCost = ContractedUnitPrice x PricingQuantity (to 1e-6) unless ChargeClass is Correction; unit prices, PricingQuantity and PricingCategory null on Tax rows and present on Usage/Purchase rows; unit prices not negative; allowed values of ChargeCategory, ChargeClass, ChargeFrequency, PricingCategory, ServiceCategory and the commitment columns; dates YYYY-MM-DDTHH:mm:ssZ and ISO 4217 currencies in CSV. Prints every violation with its row and column. Exit 0 when every file passes, 1 otherwise.\n\nExample:\n  billxfer validate-focus out/2026-10/customers/acme/focus/*.parquet"
    )]
    ValidateFocus(ValidateFocusArgs),
    /// Group a finished run's figures by org, account, service, region, day or tag.
    #[command(
        long_about = "Print a grouped table of a finished run's figures, read from its FOCUS exports with polars (so the run must have written them: --exports focus or all).\n\nThe partner's view (default) shows, per group, the pro forma amount charged to customers, the actual amount AWS charges the partner for the same customers, and the margin. --track actual shows the partner's actual figures only, for every org including the partner's own. --customer-view shows one customer's pro forma figures and nothing else: safe to send to that customer.\n\nAmounts are summed exactly; the table shows them rounded to cents, --json and --csv give them exact.\n\nExamples:\n  billxfer report --out out --period 2026-10 --by org\n  billxfer report --out out --period 2026-10 --by service,region --top 10\n  billxfer report --out out --period 2026-10 --org acme --by account,tag:team --customer-view --csv"
    )]
    Report(ReportArgs),
    /// Read exactly the columns a run needs from every input, and nothing else (benchmark floor).
    #[command(hide = true)]
    DecodeFloor(ValidateArgs),
}

/// Arguments of `billxfer diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The earlier run's period folder (or its manifest.json).
    pub old: PathBuf,
    /// The later run's period folder (or its manifest.json).
    pub new: PathBuf,
}

/// Arguments of `billxfer generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Customer organizations.
    #[arg(long, default_value_t = 10)]
    pub orgs: usize,
    /// Accounts per organization.
    #[arg(long, default_value_t = 3)]
    pub accounts_per_org: usize,
    /// Total usage lines across customer orgs (the partner's own org adds 1%).
    #[arg(long, default_value_t = 100_000)]
    pub lines: u64,
    /// Billing period (YYYY-MM).
    #[arg(long, value_parser = parse_period)]
    pub period: BillingPeriod,
    /// Random seed; the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value = "parquet")]
    pub format: crate::generate::Format,
    /// Lines per file before AWS-style splitting starts a new file.
    #[arg(long, default_value_t = 2_000_000)]
    pub lines_per_file: u64,
    /// Worker threads, 1 to 65536 (default: one per core). More than 4 per CPU is
    /// lowered to 4 per CPU, with a warning; above 65536 is an error.
    #[arg(long, value_name = "N", value_parser = run::parse_threads)]
    pub threads: Option<usize>,
}

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
    #[arg(long, value_name = "N", value_parser = run::parse_threads)]
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
}

/// Arguments of `billxfer validate-focus`.
#[derive(Debug, clap::Args)]
pub struct ValidateFocusArgs {
    /// FOCUS files (Parquet or CSV).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Arguments of `billxfer report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Output folder of the run (the one given to `run --out`).
    #[arg(long, short, default_value = "out")]
    pub out: PathBuf,
    /// Billing period of the run (YYYY-MM).
    #[arg(long, short, value_parser = parse_period)]
    pub period: BillingPeriod,
    /// Only this organization.
    #[arg(long)]
    pub org: Option<String>,
    /// Group by these dimensions, comma-separated: org, account, service, region,
    /// usage_type, line_type, category, day, tag:KEY.
    #[arg(long, value_delimiter = ',', default_value = "org")]
    pub by: Vec<String>,
    /// Pro forma (customers' charges; the partner also sees actual and margin) or actual (partner's files only).
    #[arg(long, value_enum, default_value = "proforma")]
    pub track: crate::analyst::ReportTrack,
    /// Only the N largest groups.
    #[arg(long)]
    pub top: Option<usize>,
    /// Only what the customer may see (pro forma, one org, no actual or margin): safe to send.
    #[arg(long)]
    pub customer_view: bool,
    /// Print JSON (exact amounts).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (exact amounts).
    #[arg(long)]
    pub csv: bool,
}

/// Arguments of `billxfer validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "billxfer.toml")]
    pub config: PathBuf,
    /// Billing period to check rows against (YYYY-MM); default: the single period found.
    #[arg(long, short, value_parser = parse_period)]
    pub period: Option<BillingPeriod>,
    /// List every row that would be quarantined (default: a summary by reason and
    /// account, then the first 3 rows of each reason).
    #[arg(long)]
    pub all: bool,
}

fn parse_period(s: &str) -> std::result::Result<BillingPeriod, String> {
    BillingPeriod::parse(s)
}

/// Entry point: returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    // Panics inside readers are turned into errors naming the file (run::guarded);
    // the default hook would print them as if they were crashes.
    std::panic::set_hook(Box::new(|_| {}));
    match std::panic::catch_unwind(|| dispatch(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("billxfer: error: {e}");
            e.exit_code()
        }
        Err(payload) => {
            let msg = run::panic_message(payload.as_ref());
            eprintln!("billxfer: internal error: {msg}. Nothing was written. This is a bug: please report it with the command and inputs.");
            70
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(a) => cmd_run(a).map(|_| 0),
        Command::Validate(a) => cmd_validate(a),
        Command::Generate(a) => cmd_generate(a).map(|_| 0),
        Command::Diff(a) => cmd_diff(a),
        Command::DecodeFloor(a) => cmd_decode_floor(a).map(|_| 0),
        Command::ValidateFocus(a) => cmd_validate_focus(a),
        Command::Report(a) => cmd_report(a).map(|_| 0),
    }
}

/// Progress on stderr: rows, rows/s, organizations done and an ETA when the
/// row count is known from Parquet footers. Hidden when stderr is not a terminal or with --quiet.
struct Bar {
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

fn cmd_run(a: RunArgs) -> Result<()> {
    run::configure_threads(a.threads);
    let started = Instant::now();
    let config = Config::load(&a.config)?;
    let period = run::choose_period(&config, a.period)?;
    let bar = Bar::new(!a.quiet && std::io::stderr().is_terminal());
    let result = run::rate_all(&config, period, &bar)?;
    bar.bar.finish_and_clear();
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
    let files_out = output::render(&config, &result)?;
    // Locked, recovered and written inside the resolved folder (see `lock_output`).
    let lock = output::lock_output(&a.out)?;
    output::recover(lock.dir(), &period.to_string())?;
    let exports = crate::export::ExportOptions {
        set: a.exports,
        format: a.format,
        granularity: a.granularity,
    };
    let writing = Instant::now();
    output::write_atomically_with(lock.dir(), &period.to_string(), &files_out, &|tmp| {
        crate::export::write_exports(&config, &result, exports, tmp)
    })?;
    let dir = a.out.join(period.to_string());
    let writing = writing.elapsed().as_secs_f64();
    if !a.quiet {
        let rows = result.rows_read();
        let q: u64 = result.orgs.iter().map(|r| r.quarantined.len() as u64).sum();
        let (mut act, mut pf) = (0i128, 0i128);
        for r in &result.orgs {
            if let Some(c) = &r.customer {
                act += r.actual.total;
                pf += c.total;
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
                "billxfer: exports ({:?}, {:?}) and invoices written in {writing:.2}s: see {}/exports.json",
                exports.format,
                exports.granularity,
                dir.display()
            );
        }
        eprintln!("billxfer: wrote {}", dir.display());
    }
    Ok(())
}

fn cmd_generate(a: GenerateArgs) -> Result<()> {
    run::configure_threads(a.threads);
    let started = Instant::now();
    let spec = crate::generate::Spec {
        orgs: a.orgs,
        accounts_per_org: a.accounts_per_org,
        lines: a.lines,
        period: a.period,
        seed: a.seed,
        out: a.out.clone(),
        format: a.format,
        lines_per_file: a.lines_per_file,
    };
    let s = crate::generate::generate(&spec)?;
    eprintln!(
        "billxfer: wrote {} rows in {} files for {} orgs under {} in {:.1}s",
        s.rows,
        s.files,
        a.orgs,
        a.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn read_manifest(p: &std::path::Path) -> Result<serde_json::Value> {
    let path = if p.is_dir() {
        p.join("manifest.json")
    } else {
        p.to_path_buf()
    };
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::input(&path, format!("not a billxfer manifest: {e}")))
}

fn cmd_diff(a: DiffArgs) -> Result<i32> {
    let (old, new) = (read_manifest(&a.old)?, read_manifest(&a.new)?);
    let orgs = |m: &serde_json::Value| -> std::collections::BTreeMap<String, serde_json::Value> {
        m["orgs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| Some((o["org_id"].as_str()?.to_string(), o.clone())))
            .collect()
    };
    let (o, n) = (orgs(&old), orgs(&new));
    let money = |v: &serde_json::Value, k: &str| {
        v[k].as_str()
            .map(String::from)
            .unwrap_or_else(|| "-".into())
    };
    let mut changed = 0;
    println!(
        "{:<20} {:>16} {:>16} {:>16} {:>16}",
        "org", "actual old", "actual new", "pro forma old", "pro forma new"
    );
    let ids: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    for id in ids {
        let (a0, a1) = (o.get(id), n.get(id));
        let get = |x: Option<&serde_json::Value>, k: &str| {
            x.map(|v| money(v, k)).unwrap_or_else(|| "(absent)".into())
        };
        let row = (
            get(a0, "actual_invoice_total"),
            get(a1, "actual_invoice_total"),
            get(a0, "proforma_invoice_total"),
            get(a1, "proforma_invoice_total"),
        );
        if row.0 != row.1 || row.2 != row.3 {
            changed += 1;
            println!(
                "{:<20} {:>16} {:>16} {:>16} {:>16}",
                id, row.0, row.1, row.2, row.3
            );
        }
    }
    let inputs = |m: &serde_json::Value| -> std::collections::BTreeMap<String, String> {
        m["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                Some((
                    i["path"].as_str()?.to_string(),
                    i["sha256"].as_str()?.to_string(),
                ))
            })
            .collect()
    };
    let (i0, i1) = (inputs(&old), inputs(&new));
    for (path, sha) in &i1 {
        match i0.get(path) {
            None => println!("input added: {path}"),
            Some(s) if s != sha => println!("input changed: {path}"),
            _ => {}
        }
    }
    for path in i0.keys().filter(|p| !i1.contains_key(*p)) {
        println!("input removed: {path}");
    }
    let inputs_changed = i0 != i1;
    println!(
        "{changed} org(s) with changed totals{}",
        if inputs_changed {
            "; inputs differ"
        } else {
            ""
        }
    );
    Ok(if changed > 0 || inputs_changed { 1 } else { 0 })
}

fn cmd_validate_focus(a: ValidateFocusArgs) -> Result<i32> {
    let mut bad = 0usize;
    for f in &a.files {
        let violations = crate::focus::validate_file(f)?;
        if violations.is_empty() {
            println!("{}: ok", f.display());
        } else {
            bad += 1;
            for v in &violations {
                println!("{}: {v}", f.display());
            }
            println!("{}: {} violation(s)", f.display(), violations.len());
        }
    }
    Ok(if bad > 0 { 1 } else { 0 })
}

fn cmd_report(a: ReportArgs) -> Result<()> {
    let spec = crate::analyst::ReportSpec {
        dir: a.out.join(a.period.to_string()),
        org: a.org,
        by: a.by,
        track: a.track,
        top: a.top,
        customer_view: a.customer_view,
    };
    if !spec.dir.is_dir() {
        return Err(Error::input(
            &spec.dir,
            "no finished run for this period here: run `billxfer run --out` first",
        ));
    }
    let report = crate::analyst::report(&spec)?;
    let text = if a.json {
        report.json()
    } else if a.csv {
        report.csv()
    } else {
        report.table()
    };
    print!("{text}");
    Ok(())
}

fn cmd_decode_floor(a: ValidateArgs) -> Result<()> {
    let started = Instant::now();
    let config = Config::load(&a.config)?;
    let rows = run::decode_floor(&config, a.period)?;
    eprintln!(
        "billxfer: decode floor: {rows} rows in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn cmd_validate(a: ValidateArgs) -> Result<i32> {
    let config = Config::load(&a.config)?;
    let period = run::choose_period(&config, a.period)?;
    let result = run::rate_all(&config, period, &run::Silent)?;
    let mut out = String::new();
    notes(&config, &result, &mut out);
    let quarantined =
        quarantine_summary(&result, Some(if a.all { usize::MAX } else { 3 }), &mut out);
    print!("{out}");
    let rows = result.rows_read();
    println!(
        "{}: config ok; {} file(s), {rows} row(s) for {period}; {quarantined} row(s) would be quarantined{}",
        a.config.display(),
        result.orgs.iter().map(|r| r.files.len()).sum::<usize>(),
        if quarantined > 0 && !a.all { " (--all lists every row)" } else { "" }
    );
    Ok(if quarantined > 0 { 1 } else { 0 })
}

/// Config warnings, deliveries chosen in export roots, orgs not billed and each org's warnings.
fn notes(config: &Config, result: &run::RunResult, out: &mut String) {
    use std::fmt::Write;
    for w in &config.warnings {
        let _ = writeln!(out, "warning: {}: {w}", config.path.display());
    }
    for (org, d) in &result.deliveries {
        let _ = writeln!(
            out,
            "note: org `{org}`: {} {}: billing {} ({} file(s); {}){}",
            d.root,
            d.period,
            d.manifest,
            d.files,
            d.rule,
            if d.ignored.is_empty() {
                String::new()
            } else {
                format!("; {} other deliver(ies) ignored", d.ignored.len())
            }
        );
    }
    for nb in &result.not_billed {
        let _ = writeln!(out, "note: org `{}`: {}", nb.org, nb.reason);
    }
    for r in &result.orgs {
        for w in &r.ledger.warnings {
            let _ = writeln!(out, "warning: org `{}`: {w}", r.id);
        }
    }
}

/// The shape of a reason: numbers and quoted values folded, so one kind of problem is one group.
fn reason_kind(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut quoted = false;
    let mut last_digit = false;
    for c in reason.chars() {
        if c == '`' {
            quoted = !quoted;
            if quoted {
                out.push_str("`…`");
            }
            continue;
        }
        if quoted {
            continue;
        }
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
            continue;
        }
        last_digit = false;
        out.push(c);
    }
    out
}

/// Quarantined rows by reason and by account (counts, top 10), then the first
/// `per_reason` rows of each reason (none: the summary only); returns the number of rows.
fn quarantine_summary(
    result: &run::RunResult,
    per_reason: Option<usize>,
    out: &mut String,
) -> usize {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    let all: Vec<(&str, &crate::ingest::Quarantined)> = result
        .orgs
        .iter()
        .flat_map(|r| r.quarantined.iter().map(move |q| (r.id.as_str(), q)))
        .collect();
    if all.is_empty() {
        return 0;
    }
    let mut by_reason: BTreeMap<String, Vec<(&str, &crate::ingest::Quarantined)>> = BTreeMap::new();
    let mut by_account: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for &(org, q) in &all {
        by_reason
            .entry(reason_kind(&q.reason))
            .or_default()
            .push((org, q));
        let account = if q.account.is_empty() {
            "(none)".to_string()
        } else {
            q.account.clone()
        };
        *by_account.entry((account, org)).or_default() += 1;
    }
    let mut reasons: Vec<_> = by_reason.into_iter().collect();
    reasons.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    let _ = writeln!(out, "{} row(s) quarantined, by reason:", all.len());
    for (kind, rows) in reasons.iter().take(10) {
        let _ = writeln!(out, "  {:>8}  {kind}", rows.len());
    }
    if reasons.len() > 10 {
        let _ = writeln!(out, "  ... and {} other reason(s)", reasons.len() - 10);
    }
    let mut accounts: Vec<_> = by_account.into_iter().collect();
    accounts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let _ = writeln!(out, "by usage account:");
    for ((account, org), n) in accounts.iter().take(10) {
        let _ = writeln!(out, "  {n:>8}  {account} (org `{org}`)");
    }
    if accounts.len() > 10 {
        let _ = writeln!(out, "  ... and {} other account(s)", accounts.len() - 10);
    }
    let Some(per_reason) = per_reason else {
        return all.len();
    };
    for (kind, rows) in &reasons {
        let _ = writeln!(out, "{kind}:");
        for (_, q) in rows.iter().take(per_reason) {
            let at = q.line.map(|l| format!(" line {l}")).unwrap_or_default();
            let col = if q.column.is_empty() {
                String::new()
            } else {
                format!(", column `{}`", q.column)
            };
            let val = if q.value.is_empty() {
                String::new()
            } else {
                format!(", value `{}`", q.value)
            };
            let _ = writeln!(
                out,
                "  {}: row {}{at}{col}{val}: {}",
                q.file.display(),
                q.row,
                q.reason
            );
        }
        if rows.len() > per_reason {
            let _ = writeln!(out, "  ... and {} more", rows.len() - per_reason);
        }
    }
    all.len()
}
