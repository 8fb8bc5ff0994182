//! `billxfer report`: a grouped table over a finished run's FOCUS exports, on
//! polars (`engine`, built with the `report` cargo feature: polars is two thirds
//! of a first build, docs/PERFORMANCE.md "Build"). Daily and monthly roll-ups are
//! streamed in the export pass itself (`crate::export::rollup`).
//!
//! Money stays exact here too: the report sums BilledCost as decimals and reads
//! the sums back as exact text.

#[cfg(feature = "report")]
mod engine;

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::money::{format_fixed, parse_fixed, round_to_minor, Rounding};

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

/// Builds a report from a finished run's FOCUS exports.
pub fn report(spec: &ReportSpec) -> Result<Report> {
    #[cfg(feature = "report")]
    {
        engine::report(spec)
    }
    #[cfg(not(feature = "report"))]
    {
        let _ = spec;
        Err(Error::Invalid {
            problems: vec![NOT_BUILT.to_string()],
        })
    }
}

/// What `billxfer report` says in a build without the `report` feature.
pub const NOT_BUILT: &str = "this billxfer was built without `billxfer report`, which needs polars (two thirds of a first build): rebuild with `cargo build --release --features report`, or query the FOCUS exports directly (DuckDB, pandas: docs/EXPORTS.md)";

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
