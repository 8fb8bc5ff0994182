//! The polars side of `billxfer report`: read each FOCUS export's report columns,
//! group by the requested dimensions, sum exactly.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::*;
use crate::money::format_fixed_exact;

fn pe(path: &Path) -> impl Fn(PolarsError) -> Error + '_ {
    move |e| Error::input(path, format!("polars: {e}"))
}

/// Reads the columns of a Parquet file that `keep(name, is_nested)` accepts.
fn read_parquet_columns(path: &Path, keep: impl Fn(&str, bool) -> bool) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let columns: Vec<String> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| Error::input(path, format!("not a readable Parquet file: {e}")))?
            .schema()
            .fields()
            .iter()
            .filter(|f| keep(f.name(), f.data_type().is_nested()))
            .map(|f| f.name().clone())
            .collect();
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(f)
        .with_columns(Some(columns))
        .finish()
        .map_err(pe(path))
}

fn dimension(name: &str) -> std::result::Result<Expr, String> {
    Ok(match name {
        "org" => col("__org"),
        "account" => col("SubAccountId"),
        "service" => col("x_ServiceCode").fill_null(col("ServiceName")),
        "region" => col("RegionId"),
        "usage_type" => col("x_UsageType"),
        "line_type" => col("x_LineItemType"),
        "category" => col("ChargeCategory"),
        "day" => col("ChargePeriodStart").dt().to_string("%Y-%m-%d"),
        t if t.starts_with("tag:") && t.len() > 4 => {
            let key = &t[4..];
            let path = format!("$['{}']", key.replace('\'', "\\'"));
            col("Tags").str().json_path_match(lit(path))
        }
        other => {
            return Err(format!(
                "unknown --by dimension `{other}`: use org, account, service, region, usage_type, line_type, category, day or tag:KEY"
            ))
        }
    }
    .cast(DataType::String)
    .fill_null(lit(""))
    .alias(name))
}

/// FOCUS export files of a run: (org, path) for customers or for the partner.
fn focus_files(
    dir: &Path,
    partner: bool,
    org: Option<&str>,
    skip: &BTreeSet<String>,
) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut push_dir = |org_id: String, d: PathBuf| -> Result<()> {
        if !d.is_dir() {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)
            .map_err(|e| Error::io(&d, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet" || x == "csv"))
            .collect();
        entries.sort();
        for p in entries {
            let id = if partner {
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| {
                        s.rsplit_once('-')
                            .map(|(a, _)| a.rsplit_once('-').map(|(b, _)| b).unwrap_or(a))
                    })
                    .unwrap_or("")
                    .to_string()
            } else {
                org_id.clone()
            };
            if org.is_none_or(|o| o == id) {
                out.push((id, p));
            }
        }
        Ok(())
    };
    if partner {
        push_dir(String::new(), dir.join("partner/focus"))?;
    } else {
        let customers = dir.join("customers");
        for o in subfolders(&customers) {
            if !skip.contains(&o) {
                push_dir(o.clone(), customers.join(&o).join("focus"))?;
            }
        }
        // A seller's own usage, at the top's prices (docs/CHAINS.md).
        let sellers = dir.join("sellers");
        for s in subfolders(&sellers) {
            push_dir(s.clone(), sellers.join(&s).join("own/focus"))?;
        }
    }
    Ok(out)
}

/// The names of the folders in `dir`, sorted (none when it does not exist).
fn subfolders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// The orgs of a run billed through a seller (the manifest's `orgs[].seller`):
/// their FOCUS export is at the seller's prices, so the top's own view leaves
/// them out; what the top charges the seller for them is in `partner/margin.csv`.
fn sellers_customers(dir: &Path) -> Result<BTreeSet<String>> {
    Ok(manifest_orgs(dir)?
        .iter()
        .filter(|o| o["seller"].is_string())
        .filter_map(|o| o["org_id"].as_str().map(String::from))
        .collect())
}

/// The run's manifest entries per org (none when there is no manifest).
fn manifest_orgs(dir: &Path) -> Result<Vec<serde_json::Value>> {
    let path = dir.join("manifest.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(Vec::new());
    };
    let manifest: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::input(&path, format!("not a billxfer manifest: {e}")))?;
    Ok(manifest["orgs"].as_array().cloned().unwrap_or_default())
}

/// Refuses to sum a customer invoiced in another currency than USD with USD
/// figures: its FOCUS BilledCost is in its own currency (docs/CURRENCY.md).
fn refuse_other_currencies(dir: &Path, customers: &[(String, PathBuf)]) -> Result<()> {
    let orgs = manifest_orgs(dir)?;
    let problems: Vec<String> = orgs
        .iter()
        .filter_map(|o| Some((o["org_id"].as_str()?, o["exchange_rate"]["to"].as_str()?)))
        .filter(|(id, _)| customers.iter().any(|(c, _)| c == id))
        .map(|(id, cur)| format!("org `{id}` is invoiced in {cur}: its FOCUS BilledCost is in {cur}, and the partner view sums USD; see it with --customer-view --org {id}, report the others with --org, or read partner/margin.csv (USD, with each invoice's currency)"))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid { problems })
    }
}

fn load_focus(org: &str, path: &Path, dims: &[Expr], dim_names: &[&str]) -> Result<LazyFrame> {
    let df = if path.extension().is_some_and(|x| x == "csv") {
        let opts = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0));
        let raw = opts
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(pe(path))?;
        raw.lazy()
            .with_columns([
                col("BilledCost").cast(DataType::Decimal(38, 10)),
                col("ChargePeriodStart").str().to_datetime(
                    Some(TimeUnit::Milliseconds),
                    Some(TimeZone::UTC),
                    StrptimeOptions {
                        format: Some("%Y-%m-%dT%H:%M:%SZ".into()),
                        ..Default::default()
                    },
                    lit("raise"),
                ),
            ])
            .collect()
            .map_err(pe(path))?
    } else {
        // Only the report's columns: a FOCUS file has 62.
        read_parquet_columns(path, |name, _| REPORT_COLUMNS.contains(&name))?
    };
    let mut select = vec![lit(org.to_string()).alias("__org")];
    if df.schema().contains("x_CustomerOrg") {
        select[0] = col("x_CustomerOrg").alias("__org");
    }
    for needed in REPORT_COLUMNS.iter().filter(|c| **c != "x_CustomerOrg") {
        if !df.schema().contains(needed) {
            return Err(Error::input(
                path,
                format!("not a billxfer FOCUS export: no {needed} column"),
            ));
        }
    }
    let lf = df.lazy().with_column(select.remove(0));
    // Grouped per file at once, so memory holds groups, not rows.
    let names: Vec<Expr> = dim_names.iter().map(|n| col(*n)).collect();
    let grouped = lf
        .select(
            dims.iter()
                .cloned()
                .chain([col("BilledCost")
                    .cast(DataType::Decimal(38, 10))
                    .alias("__amount")])
                .collect::<Vec<_>>(),
        )
        .group_by(names)
        .agg([col("__amount").sum()])
        .collect()
        .map_err(pe(path))?;
    Ok(grouped.lazy())
}

/// The columns `billxfer report` reads from a FOCUS export.
const REPORT_COLUMNS: &[&str] = &[
    "SubAccountId",
    "ServiceName",
    "x_ServiceCode",
    "RegionId",
    "x_UsageType",
    "x_LineItemType",
    "ChargeCategory",
    "Tags",
    "ChargePeriodStart",
    "BilledCost",
    "x_CustomerOrg",
];

/// Builds a report from a finished run's FOCUS exports.
pub(super) fn report(spec: &ReportSpec) -> Result<Report> {
    let by = if spec.by.is_empty() {
        vec!["org".to_string()]
    } else {
        spec.by.clone()
    };
    let dims: Vec<Expr> = by
        .iter()
        .map(|b| dimension(b.trim()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|m| Error::Invalid { problems: vec![m] })?;
    if spec.customer_view {
        if spec.org.is_none() {
            return Err(Error::Invalid {
                problems: vec!["--customer-view needs --org: a customer view shows one customer's figures only".into()],
            });
        }
        if spec.track == ReportTrack::Actual {
            return Err(Error::Invalid {
                problems: vec!["--customer-view shows pro forma figures only; --track actual is partner-confidential".into()],
            });
        }
    }
    let dim_names: Vec<&str> = by.iter().map(|b| b.trim()).collect();
    let want_proforma = spec.track == ReportTrack::Proforma;
    let want_actual = spec.track == ReportTrack::Actual || !spec.customer_view;
    let mut frames: Vec<LazyFrame> = Vec::new();
    // The top's view (pro forma beside actual) shows what the top charges; a
    // customer's own view shows what the customer is charged, by whomever.
    let skip = if spec.customer_view {
        BTreeSet::new()
    } else {
        sellers_customers(&spec.dir)?
    };
    let customers = if want_proforma {
        focus_files(&spec.dir, false, spec.org.as_deref(), &skip)?
    } else {
        Vec::new()
    };
    if want_proforma && customers.is_empty() {
        return Err(Error::input(
            &spec.dir,
            "no customer FOCUS export found (customers/<org>/focus/): run with --exports focus or all, and check --org",
        ));
    }
    if want_actual && want_proforma {
        refuse_other_currencies(&spec.dir, &customers)?;
    }
    for (org, p) in &customers {
        frames.push(load_focus(org, p, &dims, &dim_names)?.with_columns([
            col("__amount").alias("__proforma"),
            lit(0i64).cast(DataType::Decimal(38, 10)).alias("__actual"),
        ]));
    }
    if want_actual {
        let partner = focus_files(&spec.dir, true, spec.org.as_deref(), &BTreeSet::new())?;
        if partner.is_empty() && spec.track == ReportTrack::Actual {
            return Err(Error::input(
                &spec.dir,
                "no partner FOCUS export found (partner/focus/): run with --exports focus or all",
            ));
        }
        // Beside pro forma figures, actual ones cover the customers' orgs only.
        let customer_orgs: Vec<&str> = customers.iter().map(|(o, _)| o.as_str()).collect();
        for (org, p) in &partner {
            if want_proforma && !customer_orgs.contains(&org.as_str()) {
                continue;
            }
            frames.push(
                load_focus(org, p, &dims, &dim_names)?.with_columns([
                    lit(0i64)
                        .cast(DataType::Decimal(38, 10))
                        .alias("__proforma"),
                    col("__amount").alias("__actual"),
                ]),
            );
        }
    }
    if frames.is_empty() {
        return Ok(Report {
            by,
            rows: Vec::new(),
        });
    }
    let all = concat(frames, UnionArgs::default()).map_err(pe(&spec.dir))?;
    let names: Vec<&str> = by.iter().map(|s| s.trim()).collect();
    let grouped = all
        .group_by(names.iter().map(|n| col(*n)).collect::<Vec<_>>())
        .agg([
            col("__proforma").sum().cast(DataType::String).alias("__p"),
            col("__actual").sum().cast(DataType::String).alias("__a"),
        ])
        .collect()
        .map_err(pe(&spec.dir))?;
    let mut rows = Vec::with_capacity(grouped.height());
    let key_cols: Vec<&StringChunked> = names
        .iter()
        .map(|n| grouped.column(n).and_then(|c| c.str()))
        .collect::<PolarsResult<_>>()
        .map_err(pe(&spec.dir))?;
    let p = grouped
        .column("__p")
        .and_then(|c| c.str())
        .map_err(pe(&spec.dir))?;
    let a = grouped
        .column("__a")
        .and_then(|c| c.str())
        .map_err(pe(&spec.dir))?;
    let mut sort_key: Vec<(i128, usize)> = Vec::new();
    for i in 0..grouped.height() {
        let pv = p.get(i).and_then(|t| parse_fixed(t).ok()).unwrap_or(0);
        let av = a.get(i).and_then(|t| parse_fixed(t).ok()).unwrap_or(0);
        let group = names
            .iter()
            .zip(&key_cols)
            .map(|(n, c)| (n.to_string(), c.get(i).unwrap_or("").to_string()))
            .collect();
        let (proforma, actual, margin) = match (want_proforma, spec.customer_view) {
            (true, true) => (Some(pv), None, None),
            (true, false) => (Some(pv), Some(av), Some(pv - av)),
            (false, _) => (None, Some(av), None),
        };
        sort_key.push((if want_proforma { pv } else { av }, rows.len()));
        rows.push(ReportRow {
            group,
            proforma: proforma.map(format_fixed_exact),
            actual: actual.map(format_fixed_exact),
            margin: margin.map(format_fixed_exact),
        });
    }
    // Largest first; ties by group values, so the order never depends on hashing.
    sort_key.sort_by(|x, y| {
        y.0.cmp(&x.0)
            .then_with(|| rows[x.1].group.cmp(&rows[y.1].group))
    });
    let mut sorted: Vec<ReportRow> = sort_key.into_iter().map(|(_, i)| rows[i].clone()).collect();
    if let Some(n) = spec.top {
        sorted.truncate(n);
    }
    Ok(Report { by, rows: sorted })
}
