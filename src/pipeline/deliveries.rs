//! Which files make up an organization's month: AWS export folders and their manifests.
//!
//! An org's input may name files, glob patterns, or an export root as AWS delivers it
//! (docs/INPUTS.md). In a root, the manifests say which files form a delivery; billxfer
//! takes the latest complete delivery of each billing period and ignores the rest, so
//! month-to-date snapshots and stale chunks are never billed together.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::types::BillingPeriod;

/// One data file of a delivery.
#[derive(Debug, Clone)]
pub struct Found {
    /// Path on disk.
    pub path: PathBuf,
    /// The delivery the file belongs to (a manifest, or a folder when there is none).
    pub delivery: String,
}

/// What billxfer chose in an export root, for the run's manifest and the console.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryChoice {
    /// The export root as given.
    pub root: String,
    /// The billing period.
    pub period: String,
    /// The manifest whose files are billed.
    pub manifest: String,
    /// How it was chosen.
    pub rule: String,
    /// Data files billed.
    pub files: usize,
    /// Other deliveries of the period found and not billed (manifests).
    pub ignored: Vec<String>,
}

/// Manifests and status objects that sit beside CUR data files and are not data.
pub fn is_sidecar(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.starts_with('.')
        || name == "aws-programmatic-access-test-object"
        || [".json", ".metadata", ".sql", ".yml", ".yaml", ".txt", ".md"]
            .iter()
            .any(|e| name.ends_with(e))
}

/// Folders under an export root that never hold billable rows.
fn is_skipped_dir(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with('.') || n == "metadata" || n == "cost_and_usage_data_status"
}

/// A parsed manifest: Data Exports (`dataFiles`) or legacy CUR (`reportKeys`).
#[derive(Debug)]
struct Manifest {
    path: PathBuf,
    period: Option<BillingPeriod>,
    /// S3 keys of the data files (bucket removed).
    keys: Vec<String>,
    /// True for the period-level manifest, which AWS overwrites at every refresh so that
    /// it always describes the latest delivery (both Data Exports and legacy CUR).
    period_level: bool,
    /// The `<timestamp>-<execution-id>` folder of a Data Exports execution manifest.
    execution_folder: Option<String>,
}

/// The billing period named by a path component: `BILLING_PERIOD=YYYY-MM` (any case) or
/// a legacy `yyyymmdd-yyyymmdd` range.
fn period_of_component(c: &str) -> Option<BillingPeriod> {
    let lower = c.to_ascii_lowercase();
    if let Some(p) = lower.strip_prefix("billing_period=") {
        return BillingPeriod::parse(p).ok();
    }
    let b = c.as_bytes();
    if b.len() == 17
        && b[8] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, x)| i == 8 || x.is_ascii_digit())
    {
        return BillingPeriod::parse(&format!("{}-{}", &c[..4], &c[4..6])).ok();
    }
    None
}

fn components(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// Reads a manifest; `None` when the JSON is not a cost manifest (other JSON files).
fn read_manifest(path: &Path, problems: &mut Vec<String>) -> Option<Manifest> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{}: cannot read the manifest: {e}", path.display()));
            return None;
        }
    };
    let json: serde_json::Value = match serde_json::from_slice(&text) {
        Ok(j) => j,
        Err(e) => {
            problems.push(format!(
                "{}: the manifest is not valid JSON ({e}); an interrupted copy? Copy it again or remove it",
                path.display()
            ));
            return None;
        }
    };
    let strings = |k: &str| -> Option<Vec<String>> {
        json.get(k)?.as_array().map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
    };
    let (keys, legacy) = if let Some(files) = strings("dataFiles") {
        let keys = files
            .into_iter()
            .map(|u| match u.strip_prefix("s3://") {
                Some(rest) => rest
                    .split_once('/')
                    .map(|(_, k)| k.to_string())
                    .unwrap_or_default(),
                None => u,
            })
            .collect();
        (keys, false)
    } else if let Some(keys) = strings("reportKeys") {
        (keys, true)
    } else {
        return None;
    };
    let comps = components(path);
    let dir_comps = &comps[..comps.len().saturating_sub(1)];
    let mut period = dir_comps.iter().rev().find_map(|c| period_of_component(c));
    if period.is_none() && legacy {
        period = json
            .pointer("/billingPeriod/start")
            .and_then(|v| v.as_str())
            .and_then(|s| {
                let digits: String = s.chars().filter(|c| c.is_ascii_digit()).take(6).collect();
                (digits.len() == 6)
                    .then(|| {
                        BillingPeriod::parse(&format!("{}-{}", &digits[..4], &digits[4..])).ok()
                    })
                    .flatten()
            });
    }
    if period.is_none() {
        period = keys
            .iter()
            .find_map(|k| k.split('/').find_map(period_of_component));
    }
    // Period level: the manifest's folder is the period folder itself.
    let parent_name = dir_comps.last().cloned().unwrap_or_default();
    let period_level = period_of_component(&parent_name).is_some();
    let execution_folder = (!period_level && !legacy).then_some(parent_name);
    Some(Manifest {
        path: path.to_path_buf(),
        period,
        keys,
        period_level,
        execution_folder,
    })
}

/// Every file below `dir`, sorted, not following symlinked folders.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, out);
        } else if ft.is_file() || (ft.is_symlink() && p.is_file()) {
            out.push(p);
        }
    }
}

/// Maps an S3 key of a manifest onto the local copy: the longest tail of the key
/// (at least its folder and file name) that exists under the root.
fn local_file(root: &Path, key: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
    let longest_first = 0..parts.len().saturating_sub(1);
    longest_first
        .map(|k| parts[k..].iter().collect::<PathBuf>())
        .map(|tail| root.join(tail))
        .find(|p| p.is_file())
}

/// Resolves an export root into the data files of the chosen delivery per period
/// (only `period` when given). Without manifests, every data file below it counts,
/// each folder being one delivery.
pub fn resolve_root(
    root: &Path,
    display_root: &str,
    period: Option<BillingPeriod>,
    problems: &mut Vec<String>,
    choices: &mut Vec<DeliveryChoice>,
) -> Vec<Found> {
    let mut all = Vec::new();
    walk(root, &mut all);
    let mut manifests: Vec<Manifest> = all
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("Manifest.json"))
        })
        .filter_map(|p| read_manifest(p, problems))
        .collect();
    if manifests.is_empty() {
        let in_skipped_dir = |p: &Path| {
            p.strip_prefix(root)
                .ok()
                .and_then(Path::parent)
                .is_some_and(|d| components(d).iter().any(|c| is_skipped_dir(c)))
        };
        return all
            .into_iter()
            .filter(|p| !is_sidecar(p) && !in_skipped_dir(p))
            .map(|p| Found {
                delivery: p
                    .parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                path: p,
            })
            .collect();
    }
    manifests.retain(|m| {
        if m.period.is_none() {
            problems.push(format!(
                "{}: cannot tell the billing period of this manifest (no BILLING_PERIOD=YYYY-MM or yyyymmdd-yyyymmdd folder)",
                m.path.display()
            ));
        }
        m.period.is_some() && period.is_none_or(|p| m.period == Some(p))
    });
    let mut by_period: BTreeMap<BillingPeriod, Vec<Manifest>> = BTreeMap::new();
    for m in manifests {
        if let Some(p) = m.period {
            by_period.entry(p).or_default().push(m);
        }
    }
    let mut out = Vec::new();
    for (p, ms) in by_period {
        if let Some(found) = choose(root, display_root, p, ms, problems, choices) {
            out.extend(found);
        }
    }
    out
}

/// Orders a period's manifests newest first (docs/INPUTS.md), then takes the first
/// whose files are all present.
fn choose(
    root: &Path,
    display_root: &str,
    period: BillingPeriod,
    mut ms: Vec<Manifest>,
    problems: &mut Vec<String>,
    choices: &mut Vec<DeliveryChoice>,
) -> Option<Vec<Found>> {
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .map(|r| format!("{display_root}/{}", r.display()))
            .unwrap_or_else(|_| p.display().to_string())
    };
    // The period-level manifest first (AWS keeps it pointing at the latest refresh),
    // then Data Exports execution folders by their `<timestamp>-<execution-id>` name, newest first.
    ms.sort_by(|a, b| {
        b.period_level
            .cmp(&a.period_level)
            .then_with(|| b.execution_folder.cmp(&a.execution_folder))
            .then_with(|| a.path.cmp(&b.path))
    });
    let has_period_level = ms.first().is_some_and(|m| m.period_level);
    let legacy_unordered =
        !has_period_level && ms.iter().filter(|m| m.execution_folder.is_none()).count() > 1;
    if legacy_unordered {
        problems.push(format!(
            "{display_root}: {} deliveries of {period} ({}) and no period-level manifest to say which is the latest; keep the manifest AWS writes in the period folder, or give the files of one delivery",
            ms.len(),
            ms.iter().map(|m| rel(&m.path)).collect::<Vec<_>>().join(", ")
        ));
        return None;
    }
    let mut skipped = Vec::new();
    for (i, m) in ms.iter().enumerate() {
        let located: Vec<(String, Option<PathBuf>)> = m
            .keys
            .iter()
            .map(|k| (k.clone(), local_file(root, k)))
            .collect();
        let missing: Vec<&str> = located
            .iter()
            .filter(|(_, l)| l.is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        if !missing.is_empty() || m.keys.is_empty() {
            skipped.push(format!(
                "{} (incomplete: {} of {} listed file(s) missing, e.g. {})",
                rel(&m.path),
                missing.len(),
                m.keys.len(),
                missing.first().copied().unwrap_or("none listed")
            ));
            continue;
        }
        let rule = if m.period_level && i == 0 {
            "period-level manifest (AWS rewrites it at every refresh: the latest delivery)"
                .to_string()
        } else if skipped.is_empty() {
            "newest execution folder".to_string()
        } else {
            format!(
                "latest complete delivery; newer ones skipped: {}",
                skipped.join("; ")
            )
        };
        let ignored = ms
            .iter()
            .filter(|o| o.path != m.path)
            .map(|o| rel(&o.path))
            .collect();
        let label = rel(&m.path);
        let mut files: Vec<PathBuf> = located.into_iter().filter_map(|(_, l)| l).collect();
        files.sort();
        files.dedup();
        choices.push(DeliveryChoice {
            root: display_root.to_string(),
            period: period.to_string(),
            manifest: label.clone(),
            rule,
            files: files.len(),
            ignored,
        });
        return Some(
            files
                .into_iter()
                .map(|path| Found {
                    path,
                    delivery: label.clone(),
                })
                .collect(),
        );
    }
    problems.push(format!(
        "{display_root}: no complete delivery of {period}: {}",
        skipped.join("; ")
    ));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_from_folder_names() {
        let p = |s: &str| period_of_component(s).map(|p| p.to_string());
        assert_eq!(p("BILLING_PERIOD=2026-10").as_deref(), Some("2026-10"));
        assert_eq!(p("billing_period=2026-10").as_deref(), Some("2026-10"));
        assert_eq!(p("20261001-20261101").as_deref(), Some("2026-10"));
        assert_eq!(p("2026-10-01T00:00:00Z-abc"), None);
        assert_eq!(p("data"), None);
    }

    #[test]
    fn s3_keys_map_onto_the_longest_existing_tail() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir
            .path()
            .join("data/BILLING_PERIOD=2026-10/x-00001.snappy.parquet");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, b"PAR1").unwrap();
        let key = "prefix/x/data/BILLING_PERIOD=2026-10/x-00001.snappy.parquet";
        assert_eq!(local_file(dir.path(), key), Some(f));
        // A bare file name elsewhere is never enough.
        assert_eq!(local_file(dir.path(), "x-00001.snappy.parquet"), None);
    }
}
