//! The analyst side, on polars: `billxfer report` over a finished run's FOCUS
//! exports. (Daily and monthly roll-ups are streamed in the export pass itself:
//! `crate::export::rollup`.)
//!
//! Money stays exact here too: the report sums BilledCost as decimals and reads
//! the sums back as exact text.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::money::{format_fixed, format_fixed_exact, parse_fixed, round_to_minor, Rounding};

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

// ---------------------------------------------------------------------------
// billxfer report

/// Which amounts a report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportTrack {
    /// What customers are charged (and, for the partner, actual and margin).
    Proforma,
    /// What AWS charges the partner (partner files only).
    Actual,
}

/// A report request.
#[derive(Debug, Clone)]
pub struct ReportSpec {
    /// The run's output folder for the period (`<out>/<period>`).
    pub dir: PathBuf,
    /// Only this org.
    pub org: Option<String>,
    /// Grouping dimensions: org, account, service, region, usage_type, day, tag:KEY.
    pub by: Vec<String>,
    /// Which amounts.
    pub track: ReportTrack,
    /// Only the N largest groups.
    pub top: Option<usize>,
    /// Only what the customer may see.
    pub customer_view: bool,
}

/// One row of a report: group values and exact amounts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportRow {
    /// Dimension name → value ("" when absent).
    pub group: Vec<(String, String)>,
    /// Σ pro forma (customers' charges), exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proforma: Option<String>,
    /// Σ actual, exact (partner view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// pro forma − actual (partner view, pro forma track).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<String>,
}

/// A finished report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Grouping dimensions.
    pub by: Vec<String>,
    /// Rows, largest first.
    pub rows: Vec<ReportRow>,
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
fn focus_files(dir: &Path, partner: bool, org: Option<&str>) -> Result<Vec<(String, PathBuf)>> {
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
        let mut orgs: Vec<String> = match std::fs::read_dir(&customers) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect(),
            Err(_) => Vec::new(),
        };
        orgs.sort();
        for o in orgs {
            push_dir(o.clone(), customers.join(&o).join("focus"))?;
        }
    }
    Ok(out)
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
pub fn report(spec: &ReportSpec) -> Result<Report> {
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
    let customers = if want_proforma {
        focus_files(&spec.dir, false, spec.org.as_deref())?
    } else {
        Vec::new()
    };
    if want_proforma && customers.is_empty() {
        return Err(Error::input(
            &spec.dir,
            "no customer FOCUS export found (customers/<org>/focus/): run with --exports focus or all, and check --org",
        ));
    }
    for (org, p) in &customers {
        frames.push(load_focus(org, p, &dims, &dim_names)?.with_columns([
            col("__amount").alias("__proforma"),
            lit(0i64).cast(DataType::Decimal(38, 10)).alias("__actual"),
        ]));
    }
    if want_actual {
        let partner = focus_files(&spec.dir, true, spec.org.as_deref())?;
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

fn cents(v: &Option<String>) -> String {
    v.as_deref()
        .and_then(|t| parse_fixed(t).ok())
        .map(|x| format_fixed(round_to_minor(x, 2, Rounding::HalfAwayFromZero), 2))
        .unwrap_or_default()
}

impl Report {
    /// Amount columns present, in order.
    fn amount_columns(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        let first = self.rows.first();
        if first.is_none_or(|r| r.proforma.is_some()) {
            c.push("proforma");
        }
        if first.is_some_and(|r| r.actual.is_some()) {
            c.push("actual");
        }
        if first.is_some_and(|r| r.margin.is_some()) {
            c.push("margin");
        }
        c
    }

    fn amounts(r: &ReportRow, cols: &[&str], exact: bool) -> Vec<String> {
        cols.iter()
            .map(|c| {
                let v = match *c {
                    "proforma" => &r.proforma,
                    "actual" => &r.actual,
                    _ => &r.margin,
                };
                if exact {
                    v.clone().unwrap_or_default()
                } else {
                    cents(v)
                }
            })
            .collect()
    }

    /// An aligned text table, amounts in cents.
    pub fn table(&self) -> String {
        let cols = self.amount_columns();
        let mut grid: Vec<Vec<String>> = vec![self
            .by
            .iter()
            .cloned()
            .chain(cols.iter().map(|c| c.to_string()))
            .collect()];
        for r in &self.rows {
            grid.push(
                r.group
                    .iter()
                    .map(|(_, v)| {
                        if v.is_empty() {
                            "-".to_string()
                        } else {
                            v.clone()
                        }
                    })
                    .chain(Self::amounts(r, &cols, false))
                    .collect(),
            );
        }
        let widths: Vec<usize> = (0..grid[0].len())
            .map(|k| {
                grid.iter()
                    .map(|row| row[k].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let nkeys = self.by.len();
        let mut out = String::new();
        for row in &grid {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    if k < nkeys {
                        format!("{c:<w$}", w = widths[k])
                    } else {
                        format!("{c:>w$}", w = widths[k])
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// CSV with exact amounts; text cells formula-neutralized.
    pub fn csv(&self) -> String {
        let cols = self.amount_columns();
        let mut out = self
            .by
            .iter()
            .map(|b| crate::csv_cell::csv_field(b))
            .chain(cols.iter().map(|c| c.to_string()))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
        for r in &self.rows {
            let line: Vec<String> = r
                .group
                .iter()
                .map(|(_, v)| crate::csv_cell::csv_field(v))
                .chain(Self::amounts(r, &cols, true))
                .collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }

    /// JSON with exact amounts.
    pub fn json(&self) -> String {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut o = serde_json::Map::new();
                for (k, v) in &r.group {
                    o.insert(k.clone(), serde_json::Value::String(v.clone()));
                }
                for (k, v) in [
                    ("proforma", &r.proforma),
                    ("actual", &r.actual),
                    ("margin", &r.margin),
                ] {
                    if let Some(v) = v {
                        o.insert(k.into(), serde_json::Value::String(v.clone()));
                    }
                }
                serde_json::Value::Object(o)
            })
            .collect();
        let mut s =
            serde_json::to_string_pretty(&serde_json::json!({ "by": self.by, "rows": rows }))
                .unwrap_or_default();
        s.push('\n');
        s
    }
}
