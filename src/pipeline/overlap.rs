//! Deliveries compared: the same bytes twice, and rows a later delivery repeats.

use super::*;

/// Orgs whose files come from more than one delivery.
pub(super) fn orgs_with_several_deliveries(files: &[InputFile]) -> BTreeSet<usize> {
    let mut seen: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
    for f in files {
        seen.entry(f.org_index).or_default().insert(&f.delivery);
    }
    seen.into_iter()
        .filter(|(_, d)| d.len() > 1)
        .map(|(o, _)| o)
        .collect()
}

/// The same bytes given twice (two paths, links, copies) would bill the same usage twice.
pub(super) fn same_content_twice(
    files: &[InputFile],
    outcomes: &[Option<FileOutcome>],
) -> Result<()> {
    let mut by_hash: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, o) in outcomes.iter().enumerate() {
        if let Some(o) = o {
            if o.report.rows_read > 0 && !o.report.sha256.is_empty() {
                by_hash.entry(&o.report.sha256).or_default().push(i);
            }
        }
    }
    let org_of = |i: usize| files[i].org_index;
    let problems: Vec<String> = by_hash
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(h, v)| {
            let where_: Vec<String> = v
                .iter()
                .map(|&i| {
                    let org = outcomes[i].as_ref().map(|o| o.report.org.as_str()).unwrap_or("");
                    format!("{} (org `{org}`)", files[i].display)
                })
                .collect();
            let across = v.iter().any(|&i| org_of(i) != org_of(v[0]));
            format!(
                "{} have the same content (sha256 {}): billing both would bill the same usage twice{}; give the file once",
                where_.join(" and "),
                &h[..16.min(h.len())],
                if across { ", to two organizations" } else { "" }
            )
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid { problems })
    }
}

/// Rows not to bill per org: file (as displayed) -> row -> reason.
pub(super) type Exclusions = BTreeMap<usize, ExcludedRows>;

/// One delivery of an org, for the overlap check.
pub(super) struct DeliverySet<'a> {
    label: &'a str,
    files: Vec<usize>,
    /// Sorted (hash, file, row) of every rated row.
    rows: Vec<(u64, usize, u64)>,
    /// Newest modification time of its files, then its label: the order of "latest".
    newest: (std::time::SystemTime, &'a str),
}

/// Finds deliveries of one org that overlap (shared line item identities, or sibling
/// folders holding files of the same names: versions of one export). By default that
/// stops the run; with `keep-latest`, the older delivery's repeated rows are returned
/// to be quarantined (docs/INPUTS.md).
pub(super) fn overlapping_deliveries(
    config: &Config,
    files: &[InputFile],
    outcomes: &[Option<FileOutcome>],
    compared: &BTreeSet<usize>,
) -> Result<Exclusions> {
    let mut problems = Vec::new();
    let mut exclusions: Exclusions = BTreeMap::new();
    for &org in compared {
        let mut sets: BTreeMap<&str, DeliverySet> = BTreeMap::new();
        for (i, f) in files.iter().enumerate().filter(|(_, f)| f.org_index == org) {
            let mtime = std::fs::metadata(&f.path)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            let set = sets.entry(&f.delivery).or_insert_with(|| DeliverySet {
                label: &f.delivery,
                files: Vec::new(),
                rows: Vec::new(),
                newest: (std::time::UNIX_EPOCH, &f.delivery),
            });
            set.files.push(i);
            set.newest.0 = set.newest.0.max(mtime);
            if let Some(o) = &outcomes[i] {
                set.rows.extend(o.identity.iter().map(|&(h, r)| (h, i, r)));
            }
        }
        let mut sets: Vec<DeliverySet> = sets.into_values().collect();
        for s in &mut sets {
            s.rows.sort_unstable();
        }
        // Oldest first, so each pair is (older, newer).
        sets.sort_by(|a, b| a.newest.cmp(&b.newest));
        for a in 0..sets.len() {
            for b in a + 1..sets.len() {
                let (older, newer) = (&sets[a], &sets[b]);
                let shared = shared_rows(&older.rows, &newer.rows);
                let versions = sibling_versions(files, older, newer);
                if shared.is_empty() && !versions {
                    continue;
                }
                let org_id = &outcomes[older.files[0]]
                    .as_ref()
                    .map(|o| o.report.org.clone())
                    .unwrap_or_default();
                match config.duplicates {
                    crate::config::DuplicatePolicy::Error => {
                        problems.push(overlap_message(files, org_id, older, newer, &shared))
                    }
                    crate::config::DuplicatePolicy::KeepLatest => {
                        let map = exclusions.entry(org).or_default();
                        exclude_older(files, map, older, newer, &shared, versions);
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(exclusions)
    } else {
        Err(Error::Invalid { problems })
    }
}

/// Pairs (older row, newer row) that share an identity: (older file, row, newer file, row).
pub(super) fn shared_rows(
    older: &[(u64, usize, u64)],
    newer: &[(u64, usize, u64)],
) -> Vec<(usize, u64, usize, u64)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < older.len() && j < newer.len() {
        match older[i].0.cmp(&newer[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push((older[i].1, older[i].2, newer[j].1, newer[j].2));
                i += 1;
            }
        }
    }
    out
}

/// Two folder deliveries side by side holding files of the same names: two versions of
/// one export (month-to-date snapshots), even when AWS changed the line item ids.
pub(super) fn sibling_versions(files: &[InputFile], a: &DeliverySet, b: &DeliverySet) -> bool {
    let parent = |s: &DeliverySet| Path::new(s.label).parent().map(Path::to_path_buf);
    if parent(a).is_none() || parent(a) != parent(b) {
        return false;
    }
    let names = |s: &DeliverySet| -> BTreeSet<std::ffi::OsString> {
        s.files
            .iter()
            .filter_map(|&i| files[i].path.file_name().map(|n| n.to_os_string()))
            .collect()
    };
    !names(a).is_disjoint(&names(b))
}

pub(super) fn overlap_message(
    files: &[InputFile],
    org: &str,
    older: &DeliverySet,
    newer: &DeliverySet,
    shared: &[(usize, u64, usize, u64)],
) -> String {
    let list = |s: &DeliverySet| {
        let names: Vec<&str> = s
            .files
            .iter()
            .take(3)
            .map(|&i| files[i].display.as_str())
            .collect();
        let more = s.files.len().saturating_sub(3);
        format!(
            "{}{}",
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    };
    let why = match shared.first() {
        Some(&(fa, ra, fb, rb)) => format!(
            "they share {} line item(s) (same identity_line_item_id and time interval, e.g. {}:{ra} and {}:{rb})",
            shared.len(),
            files[fa].display,
            files[fb].display
        ),
        None => "they are sibling folders holding files of the same names (two versions of one export)".into(),
    };
    format!(
        "org `{org}`: two deliveries of the month overlap and would be billed twice: [{}] and [{}]; {why}. Give one delivery (an export root lets billxfer pick the latest from its manifests), or set `duplicates = \"keep-latest\"` under [run] to bill the later one ({}) and quarantine the other's repeated rows",
        list(older),
        list(newer),
        newer.label
    )
}

/// Marks the older delivery's repeated rows (all of it, for versions of one export) as duplicates.
pub(super) fn exclude_older(
    files: &[InputFile],
    map: &mut ExcludedRows,
    older: &DeliverySet,
    newer: &DeliverySet,
    shared: &[(usize, u64, usize, u64)],
    versions: bool,
) {
    for &(fa, ra, fb, rb) in shared {
        map.entry(PathBuf::from(&files[fa].display))
            .or_default()
            .entry(ra)
            .or_insert_with(|| {
                format!(
                    "duplicate of {}:{rb} (a later delivery of the same line is billed)",
                    files[fb].display
                )
            });
    }
    if versions {
        for &(_, fa, ra) in &older.rows {
            map.entry(PathBuf::from(&files[fa].display))
                .or_default()
                .entry(ra)
                .or_insert_with(|| {
                    format!(
                        "superseded by the later delivery {} (another version of the same export)",
                        newer.label
                    )
                });
        }
    }
}
