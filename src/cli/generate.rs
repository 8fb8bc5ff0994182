//! `billxfer generate`: a synthetic customer base for tests and benchmarks.

use std::path::PathBuf;
use std::time::Instant;

use crate::error::Result;
use crate::pipeline;
use crate::types::BillingPeriod;

use super::parse_period;

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
    #[arg(long, value_name = "N", value_parser = pipeline::parse_threads)]
    pub threads: Option<usize>,
}

pub(super) fn cmd_generate(a: GenerateArgs) -> Result<()> {
    pipeline::configure_threads(a.threads);
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
