//! What a run or a validation tells a human about notes and quarantined rows.

use crate::config::Config;
use crate::pipeline;

/// Config warnings, deliveries chosen in export roots, orgs not billed and each org's warnings.
pub(super) fn notes(config: &Config, result: &pipeline::RunResult, out: &mut String) {
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
pub(super) fn quarantine_summary(
    result: &pipeline::RunResult,
    per_reason: Option<usize>,
    out: &mut String,
) -> usize {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    let all: Vec<(&str, &crate::normalize::Quarantined)> = result
        .orgs
        .iter()
        .flat_map(|r| r.quarantined.iter().map(move |q| (r.id.as_str(), q)))
        .collect();
    if all.is_empty() {
        return 0;
    }
    let mut by_reason: BTreeMap<String, Vec<(&str, &crate::normalize::Quarantined)>> =
        BTreeMap::new();
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
