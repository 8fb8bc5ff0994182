//! The Partner Discount Business Report joined to a finished month: each state
//! of the run's month goes to the org that owns its account, onto the rated
//! lines of its service; what matches nothing is reported, not dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::config::Config;
use crate::discounts::{DiscountReport, DiscountState};
use crate::error::{Error, Result};
use crate::invoice::org_discounts;
use crate::money::format_fixed_exact;
use crate::types::BillingPeriod;

use super::OrgResult;

/// A report row of the month that no rated line takes, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unmatched {
    /// `dbr_id_pk`.
    pub key: String,
    /// Linked account.
    pub account: String,
    /// Product code.
    pub service: String,
    /// `total_discount`, exact.
    pub total_discount: String,
    /// Why it matched no rated line.
    pub reason: String,
    /// File and row of its latest state.
    pub from: String,
}

/// What the report gave the month (the manifest's `discount_report`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiscountSummary {
    /// Deliveries read, in order.
    pub files: Vec<String>,
    /// CDC rows read in all deliveries.
    pub rows_read: u64,
    /// Keys whose latest state is for the run's month.
    pub states_for_period: u64,
    /// Of those, how many were joined to a rated line.
    pub matched: u64,
    /// The others.
    pub unmatched: Vec<Unmatched>,
    /// Rows whose components do not add up to their total.
    pub warnings: Vec<String>,
}

/// The report's files: every path or glob of `[actual] discount_reports`, sorted.
fn report_files(config: &Config) -> Result<Vec<(PathBuf, String)>> {
    let mut files = BTreeSet::new();
    let mut problems = Vec::new();
    for pattern in &config.discount_reports {
        let full = config.base_dir.join(pattern);
        let text = full.to_string_lossy().to_string();
        let found: Vec<PathBuf> = match glob::glob(&text) {
            Ok(paths) => paths.flatten().filter(|p| p.is_file()).collect(),
            Err(e) => {
                problems.push(format!(
                    "[actual] discount_reports: bad glob pattern `{pattern}`: {e}"
                ));
                continue;
            }
        };
        if found.is_empty() {
            problems.push(format!(
                "[actual] discount_reports: `{pattern}` matches no file (relative to the config's folder)"
            ));
        }
        files.extend(found);
    }
    if !problems.is_empty() {
        return Err(Error::Invalid { problems });
    }
    Ok(files
        .into_iter()
        .map(|p| {
            let shown = p
                .strip_prefix(&config.base_dir)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            (p, shown)
        })
        .collect())
}

/// Reads the report and gives each billed org its discounts for `period`.
pub(super) fn apply(
    config: &Config,
    period: BillingPeriod,
    orgs: &mut [OrgResult],
) -> Result<Option<DiscountSummary>> {
    if config.discount_reports.is_empty() {
        return Ok(None);
    }
    let report = DiscountReport::load(&report_files(config)?)?;
    let owner: BTreeMap<&str, usize> = (0..=config.orgs.len())
        .flat_map(|i| {
            config
                .party(i)
                .accounts()
                .iter()
                .map(move |a| (a.as_str(), i))
        })
        .collect();
    let partner_payer = config.partner.management_account.as_str();
    let mut parts: BTreeMap<usize, BTreeMap<(String, String, String), i128>> = BTreeMap::new();
    let mut summary = DiscountSummary {
        files: report.files.clone(),
        rows_read: report.rows_read,
        states_for_period: 0,
        matched: 0,
        unmatched: Vec::new(),
        warnings: report.warnings.clone(),
    };
    for s in report.for_period(period) {
        summary.states_for_period += 1;
        match place(s, &owner, partner_payer, orgs, config) {
            Err(reason) => summary.unmatched.push(Unmatched {
                key: s.key.clone(),
                account: s.account.clone(),
                service: s.service.clone(),
                total_discount: format_fixed_exact(s.total),
                reason,
                from: s.from.clone(),
            }),
            Ok(position) => {
                summary.matched += 1;
                let org = parts.entry(position).or_default();
                for (component, v) in &s.components {
                    let e = org
                        .entry((s.account.clone(), s.service.clone(), component.to_string()))
                        .or_default();
                    *e = e
                        .checked_add(*v)
                        .ok_or_else(|| Error::Overflow("summing discounts".into()))?;
                }
            }
        }
    }
    for (position, p) in parts {
        let r = &mut orgs[position];
        r.discounts = Some(org_discounts(p, &r.actual, config.rounding)?);
    }
    Ok(Some(summary))
}

/// The position in `orgs` of the org whose rated line takes the state, or why none does.
fn place(
    s: &DiscountState,
    owner: &BTreeMap<&str, usize>,
    partner_payer: &str,
    orgs: &[OrgResult],
    config: &Config,
) -> std::result::Result<usize, String> {
    if s.payer != partner_payer {
        return Err(format!(
            "payer {} is not the partner's bill-transfer account {partner_payer}",
            s.payer
        ));
    }
    let Some(&index) = owner.get(s.account.as_str()) else {
        return Err(format!(
            "account {} belongs to no org of the config",
            s.account
        ));
    };
    let label = config.party(index).label();
    let Some(position) = orgs.iter().position(|r| r.org_index == index) else {
        return Err(format!("{label} is not billed to the partner this month"));
    };
    let rated = orgs[position]
        .ledger
        .lines
        .iter()
        .any(|(k, v)| k.account == s.account && k.service == s.service && v.rows > 0);
    if !rated {
        return Err(format!(
            "{label} has no rated line of account {} and service {} this month",
            s.account, s.service
        ));
    }
    Ok(position)
}
