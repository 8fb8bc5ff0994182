//! `billxfer report`: a grouped table over a finished run's FOCUS exports.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::types::BillingPeriod;

use super::parse_period;

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
    pub track: crate::report::ReportTrack,
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

pub(super) fn cmd_report(a: ReportArgs) -> Result<()> {
    if !cfg!(feature = "report") {
        return Err(Error::Invalid {
            problems: vec![crate::report::NOT_BUILT.to_string()],
        });
    }
    let spec = crate::report::ReportSpec {
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
    let report = crate::report::report(&spec)?;
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
