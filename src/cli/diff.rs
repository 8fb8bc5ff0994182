//! `billxfer diff`: what changed between two runs of a period.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Arguments of `billxfer diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The earlier run's period folder (or its manifest.json).
    pub old: PathBuf,
    /// The later run's period folder (or its manifest.json).
    pub new: PathBuf,
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

pub(super) fn cmd_diff(a: DiffArgs) -> Result<i32> {
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
    let mut rate_notes = Vec::new();
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
        let usd_changed = row.0 != row.1 || row.2 != row.3;
        if usd_changed {
            println!(
                "{:<20} {:>16} {:>16} {:>16} {:>16}",
                id, row.0, row.1, row.2, row.3
            );
        }
        let before = rate_notes.len();
        rate_notes.extend(rate_change(id, a0, a1, usd_changed));
        rate_notes.extend(discount_changes(id, a0, a1));
        if usd_changed || rate_notes.len() > before {
            changed += 1;
        }
    }
    for note in &rate_notes {
        println!("{note}");
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

/// A line about an org whose invoice currency's rate changed between the runs:
/// "only because the rate changed" when its USD totals are the same.
fn rate_change(
    id: &str,
    old: Option<&serde_json::Value>,
    new: Option<&serde_json::Value>,
    usd_changed: bool,
) -> Option<String> {
    let (old, new) = (old?, new?);
    let (r0, r1) = (&old["exchange_rate"], &new["exchange_rate"]);
    if r0.is_null() && r1.is_null() {
        return None;
    }
    let rate = |r: &serde_json::Value| {
        format!(
            "{} {} ({})",
            r["rate"].as_str().unwrap_or("-"),
            r["to"].as_str().unwrap_or("USD"),
            r["date"].as_str().unwrap_or("-")
        )
    };
    let total = |o: &serde_json::Value| {
        o["invoice_total_in_currency"]
            .as_str()
            .unwrap_or("-")
            .to_string()
    };
    if r0 == r1 {
        return None;
    }
    let why = if usd_changed {
        "the exchange rate changed too"
    } else {
        "changed only because the exchange rate changed"
    };
    Some(format!(
        "{id}: invoice {} -> {}: {why}: 1 USD = {} -> {}",
        total(old),
        total(new),
        rate(r0),
        rate(r1)
    ))
}

/// Lines about an org's partner discounts that changed between the runs, per
/// component (a restated Partner Discount Business Report; docs/DISCOUNTS.md).
fn discount_changes(
    id: &str,
    old: Option<&serde_json::Value>,
    new: Option<&serde_json::Value>,
) -> Vec<String> {
    let of = |o: Option<&serde_json::Value>| -> std::collections::BTreeMap<String, String> {
        o.and_then(|o| o["partner_discounts_by_component"].as_object())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (d0, d1) = (of(old), of(new));
    let components: std::collections::BTreeSet<&String> = d0.keys().chain(d1.keys()).collect();
    components
        .into_iter()
        .filter_map(|c| {
            let (a, b) = (d0.get(c), d1.get(c));
            (a != b).then(|| {
                format!(
                    "{id}: partner discount `{c}` {} -> {}",
                    a.map_or("(none)", String::as_str),
                    b.map_or("(none)", String::as_str)
                )
            })
        })
        .collect()
}
