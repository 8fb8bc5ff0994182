//! `billxfer validate`, `validate-focus` and `decode-floor`: checks that write nothing.

use std::path::PathBuf;
use std::time::Instant;

use crate::config::Config;
use crate::error::Result;
use crate::pipeline;
use crate::types::BillingPeriod;

use super::parse_period;
use super::summary::{notes, quarantine_summary};

/// Arguments of `billxfer validate-focus`.
#[derive(Debug, clap::Args)]
pub struct ValidateFocusArgs {
    /// FOCUS files (Parquet or CSV).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The FOCUS version whose rules to check: 1.2; 1.3 (1.2's rules plus the provider
    /// columns and the charges of each invoice summing to whole minor units); 1.4 (1.3's
    /// without ProviderName/PublisherName, with InvoiceDetailId, the InvoiceDetail and
    /// BillingPeriod datasets, and, for files given together, the joins between them).
    #[arg(long, value_enum, default_value = "1.2")]
    pub version: crate::focus::FocusVersion,
}

/// The month's inputs a check reads: `billxfer validate` and the hidden `decode-floor`.
#[derive(Debug, clap::Args)]
pub struct MonthInputs {
    /// The configuration file.
    #[arg(long, short, default_value = "billxfer.toml")]
    pub config: PathBuf,
    /// Billing period whose rows to read and check (YYYY-MM); default: the single period found.
    #[arg(long, short, value_parser = parse_period)]
    pub period: Option<BillingPeriod>,
}

/// Arguments of `billxfer validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub inputs: MonthInputs,
    /// List every row that would be quarantined (default: a summary by reason and
    /// account, then the first 3 rows of each reason).
    #[arg(long)]
    pub all: bool,
}

pub(super) fn cmd_validate_focus(a: ValidateFocusArgs) -> Result<i32> {
    let mut bad = 0usize;
    for (f, violations) in crate::focus::validate_files(&a.files, a.version)? {
        let f = &f;
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

pub(super) fn cmd_decode_floor(a: MonthInputs) -> Result<()> {
    let started = Instant::now();
    let config = Config::load(&a.config)?;
    let rows = pipeline::decode_floor(&config, a.period)?;
    eprintln!(
        "billxfer: decode floor: {rows} rows in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(super) fn cmd_validate(a: ValidateArgs) -> Result<i32> {
    let config = Config::load(&a.inputs.config)?;
    let period = pipeline::choose_period(&config, a.inputs.period)?;
    let result = pipeline::rate_all(&config, period, &pipeline::Silent)?;
    let mut out = String::new();
    notes(&config, &result, &mut out);
    let quarantined =
        quarantine_summary(&result, Some(if a.all { usize::MAX } else { 3 }), &mut out);
    print!("{out}");
    let rows = result.rows_read();
    println!(
        "{}: config ok; {} file(s), {rows} row(s) for {period}; {quarantined} row(s) would be quarantined{}",
        a.inputs.config.display(),
        result.orgs.iter().map(|r| r.files.len()).sum::<usize>(),
        if quarantined > 0 && !a.all { " (--all lists every row)" } else { "" }
    );
    Ok(if quarantined > 0 { 1 } else { 0 })
}
