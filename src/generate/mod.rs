//! `billxfer generate`: a synthetic, realistic customer base for tests and benchmarks.
//!
//! Deterministic for a seed: every file is produced by its own task whose random
//! stream is derived from (seed, org, file), so the bytes do not depend on the
//! number of threads. Org sizes follow a Zipf law (a few huge orgs, many small),
//! services follow a Zipf-like mix over a catalog of real product codes, usage
//! types and operations; lines are hourly, with Savings Plans, RI, tax, credits,
//! EDP/SPP discounts, free-tier lines, Marketplace charges and tags.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, MapBuilder, MapFieldNames, StringArray,
    StringBuilder, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::money::{format_fixed_exact, ONE};
use crate::types::BillingPeriod;

mod catalog;

use catalog::SERVICES;
pub use catalog::{catalog, Sku};

/// Output format of generated usage files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// CUR 2.0 Parquet (snappy), as AWS Data Exports writes it.
    Parquet,
    /// CUR 2.0 CSV.
    Csv,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Customer organizations.
    pub orgs: usize,
    /// Accounts per organization.
    pub accounts_per_org: usize,
    /// Total usage lines across customer orgs (the partner's own org adds ~1%).
    pub lines: u64,
    /// Billing period.
    pub period: BillingPeriod,
    /// Random seed.
    pub seed: u64,
    /// Output folder.
    pub out: PathBuf,
    /// File format.
    pub format: Format,
    /// Lines per file before a new file starts (AWS splits large exports).
    pub lines_per_file: u64,
}

/// What was generated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Files written.
    pub files: usize,
    /// Rows written, all orgs and the partner.
    pub rows: u64,
    /// Rows per org id (partner included), in config order.
    pub rows_per_org: Vec<(String, u64)>,
}

/// SplitMix64: small, fast, and fully specified, so a seed means the same bytes forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed and a stream id.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Picks an index by cumulative weights (last element = total).
    pub fn pick(&mut self, cumulative: &[u64]) -> usize {
        let total = *cumulative.last().unwrap_or(&1);
        let x = self.below(total.max(1));
        cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len() - 1)
    }
}

/// Cumulative Zipf weights for `n` items with exponent `s` (scaled to integers).
/// Floats here shape a random distribution; no money passes through them.
pub fn zipf_cumulative(n: usize, s: f64) -> Vec<u64> {
    let mut acc = 0u64;
    (1..=n)
        .map(|k| {
            acc += ((1e9 / (k as f64).powf(s)) as u64).max(1);
            acc
        })
        .collect()
}

/// Splits `total` lines across `n` orgs by a Zipf law (exponent 1.1), each at least `min`.
pub fn org_sizes(total: u64, n: usize, min: u64) -> Vec<u64> {
    if n == 0 {
        return Vec::new();
    }
    let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(1.1)).collect();
    let sum: f64 = weights.iter().sum();
    let mut sizes: Vec<u64> = weights
        .iter()
        .map(|w| ((total as f64) * w / sum) as u64)
        .map(|s| s.max(min))
        .collect();
    let assigned: u64 = sizes.iter().sum();
    if assigned < total {
        sizes[0] += total - assigned;
    } else {
        let mut extra = assigned - total;
        for s in sizes.iter_mut() {
            let take = extra.min(s.saturating_sub(min));
            *s -= take;
            extra -= take;
        }
    }
    sizes
}

/// Account id `k` (0-based) of org `org` (1-based); org 0 is the partner.
pub fn account_id(org: usize, k: usize) -> String {
    if org == 0 {
        format!("999999{:06}", k + 1)
    } else {
        format!("{:06}{:06}", 100_000 + org, k + 1)
    }
}

/// Org id of org `org` (1-based).
pub fn org_id(org: usize) -> String {
    format!("o{org:05}")
}

fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let tags = DataType::Map(
        Arc::new(Field::new(
            "key_value",
            DataType::Struct(
                vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", DataType::Utf8, true),
                ]
                .into(),
            ),
            false,
        )),
        false,
    );
    Arc::new(Schema::new(vec![
        Field::new("identity_time_interval", dict.clone(), true),
        Field::new("bill_bill_type", dict.clone(), true),
        Field::new("bill_billing_entity", dict.clone(), true),
        Field::new("bill_billing_period_start_date", ts.clone(), true),
        Field::new("bill_billing_period_end_date", ts.clone(), true),
        Field::new("bill_invoice_id", dict.clone(), true),
        Field::new("bill_invoicing_entity", dict.clone(), true),
        Field::new("bill_payer_account_id", dict.clone(), true),
        Field::new("bill_payer_account_name", dict.clone(), true),
        Field::new("line_item_usage_account_id", dict.clone(), true),
        Field::new("line_item_usage_account_name", dict.clone(), true),
        Field::new("line_item_line_item_type", dict.clone(), true),
        Field::new("line_item_usage_start_date", ts.clone(), true),
        Field::new("line_item_usage_end_date", ts, true),
        Field::new("line_item_product_code", dict.clone(), true),
        Field::new("line_item_usage_type", dict.clone(), true),
        Field::new("line_item_operation", dict.clone(), true),
        Field::new("line_item_resource_id", dict.clone(), true),
        Field::new("line_item_usage_amount", DataType::Float64, true),
        Field::new("line_item_currency_code", dict.clone(), true),
        Field::new("line_item_unblended_rate", dict.clone(), true),
        Field::new("line_item_unblended_cost", DataType::Float64, true),
        Field::new("line_item_line_item_description", dict.clone(), true),
        Field::new("pricing_public_on_demand_rate", dict.clone(), true),
        Field::new("pricing_public_on_demand_cost", DataType::Float64, true),
        Field::new("pricing_unit", dict.clone(), true),
        Field::new("pricing_term", dict.clone(), true),
        Field::new("product_region_code", dict, true),
        Field::new("resource_tags", tags, true),
    ]))
}

/// Rows of one file, column by column, with dictionary keys into shared value lists.
#[derive(Default)]
struct Rows {
    hour: Vec<i32>,
    entity: Vec<i32>,
    account: Vec<i32>,
    line_type: Vec<i32>,
    sku: Vec<i32>,
    resource: Vec<i32>,
    usage: Vec<Option<f64>>,
    cost: Vec<f64>,
    public_cost: Vec<Option<f64>>,
    rate: Vec<Option<i32>>,
    desc: Vec<i32>,
    tags: Vec<u8>,
    /// Exact cost (internal scale) of each row, for the test oracle.
    exact_cost: Vec<i128>,
}

/// Line item types the generator writes, in dictionary order.
const TYPES: &[&str] = &[
    "Usage",
    "SavingsPlanCoveredUsage",
    "SavingsPlanNegation",
    "DiscountedUsage",
    "Tax",
    "Credit",
    "EdpDiscount",
    "SppDiscount",
    "RIFee",
    "SavingsPlanRecurringFee",
    "Fee",
    "Refund",
];

fn to_f64(v: i128) -> f64 {
    // Correctly rounded: |v| < 2^53 for generated amounts, and 10^10 is exact.
    v as f64 / ONE as f64
}

struct Ctx<'a> {
    catalog: &'a [Sku],
    sku_cum: Vec<u64>,
    account_cum: Vec<u64>,
    period: BillingPeriod,
    hours: i64,
}

fn gen_rows(ctx: &Ctx<'_>, rng: &mut Rng, n: u64, accounts: usize, org_level: bool) -> Rows {
    let mut r = Rows::default();
    let push = |r: &mut Rows,
                hour: i32,
                account: i32,
                lt: i32,
                sku: i32,
                usage: Option<i128>,
                cost: i128,
                public: Option<i128>,
                rate: Option<i32>,
                desc: i32,
                resource: i32,
                tags: u8,
                entity: i32| {
        r.hour.push(hour);
        r.account.push(account);
        r.line_type.push(lt);
        r.sku.push(sku);
        r.usage.push(usage.map(to_f64));
        r.cost.push(to_f64(cost));
        r.public_cost.push(public.map(to_f64));
        r.rate.push(rate);
        r.desc.push(desc);
        r.resource.push(resource);
        r.tags.push(tags);
        r.entity.push(entity);
        r.exact_cost.push(cost);
    };
    let mut written = 0u64;
    while written < n {
        let s = rng.pick(&ctx.sku_cum);
        let sku = &ctx.catalog[s];
        let account = rng.pick(&ctx.account_cum).min(accounts - 1) as i32;
        let hour = rng.below(ctx.hours as u64) as i32;
        // Usage varies ±50% around the SKU's typical amount, with 6 decimals.
        let factor = 500_000 + rng.below(1_000_000) as i128; // 0.5 .. 1.5 in millionths
        let usage = if sku.unit == "Hrs" {
            sku.usage
        } else {
            (sku.usage * factor / 1_000_000 / 10_000) * 10_000
        };
        let usage = usage.max(10_000);
        let cost = crate::money::mul_fixed(usage, sku.rate).unwrap_or(0);
        let resource = (account as u64 * 64 + rng.below(64)) as i32;
        let tags = rng.below(4) as u8;
        let entity = (sku.entity != "AWS") as i32;
        let roll = rng.below(1000);
        let (line_type, billed) = if sku.commitment && roll < 60 && n - written >= 2 {
            // Savings Plans covered usage, followed by its negation.
            push(
                &mut r,
                hour,
                account,
                2,
                s as i32,
                Some(0),
                -cost,
                None,
                None,
                s as i32,
                resource,
                tags,
                entity,
            );
            written += 1;
            (1, cost)
        } else if sku.commitment && roll < 90 {
            // RI-covered usage: the cost sits in the RIFee line.
            (3, 0)
        } else if sku.product == "AmazonS3" && sku.unit == "Requests" && roll < 150 {
            // Free-tier line: the paid rate is written, the cost is 0.
            (0, 0)
        } else {
            (0, cost)
        };
        push(
            &mut r,
            hour,
            account,
            line_type,
            s as i32,
            Some(usage),
            billed,
            Some(cost),
            Some(s as i32),
            s as i32,
            resource,
            tags,
            entity,
        );
        written += 1;
    }
    if org_level {
        // Monthly lines: tax, credit, EDP and SPP discounts, RI and SP fees, support, a refund.
        let total: i128 = r.exact_cost.iter().sum();
        let pct = |p: i128| (total * p / 1000 / 100_000_000) * 100_000_000; // cents
        let ec2 = ctx
            .catalog
            .iter()
            .position(|s| s.product == "AmazonEC2")
            .unwrap_or(0) as i32;
        let s3 = ctx
            .catalog
            .iter()
            .position(|s| s.product == "AmazonS3")
            .unwrap_or(0) as i32;
        let monthly: [(i32, i32, i128); 8] = [
            (4, ec2, pct(60)),
            (4, s3, pct(12)),
            (5, ec2, -pct(20)),
            (6, ec2, -pct(50)),
            (7, s3, -pct(25)),
            (8, ec2, pct(30)),
            (9, ec2, pct(40)),
            (11, s3, -pct(3)),
        ];
        for (i, (lt, sku, cost)) in monthly.into_iter().enumerate() {
            let account = (i % accounts) as i32;
            push(
                &mut r, 0, account, lt, sku, None, cost, None, None, -1, -1, 0, 0,
            );
        }
        // Business support as a Fee line.
        push(
            &mut r,
            0,
            0,
            10,
            -2,
            None,
            pct(100).max(29 * ONE),
            None,
            None,
            -2,
            -1,
            0,
            0,
        );
    }
    r
}

fn dict(keys: Vec<Option<i32>>, values: &Arc<StringArray>) -> ArrayRef {
    let keys = Int32Array::from(keys);
    Arc::new(
        DictionaryArray::<Int32Type>::try_new(keys, values.clone() as ArrayRef).unwrap_or_else(
            |_| DictionaryArray::<Int32Type>::from_iter(std::iter::empty::<&str>()),
        ),
    )
}

struct Dicts {
    hours: Arc<StringArray>,
    accounts: Arc<StringArray>,
    account_names: Arc<StringArray>,
    types: Arc<StringArray>,
    products: Arc<StringArray>,
    usage_types: Arc<StringArray>,
    operations: Arc<StringArray>,
    resources: Arc<StringArray>,
    rates: Arc<StringArray>,
    descriptions: Arc<StringArray>,
    units: Arc<StringArray>,
    regions: Arc<StringArray>,
    entity: Arc<StringArray>,
}

fn dicts(ctx: &Ctx<'_>, org: usize, accounts: usize) -> Dicts {
    let cat = ctx.catalog;
    let (y, m) = (ctx.period.year(), ctx.period.month());
    let hours: Vec<String> = (0..ctx.hours)
        .map(|h| {
            let (d, hh) = (h / 24 + 1, h % 24);
            let (d2, hh2) = if hh == 23 { (d + 1, 0) } else { (d, hh + 1) };
            let end = if d2 > ctx.hours / 24 {
                ctx.period.end_iso()
            } else {
                format!("{y:04}-{m:02}-{d2:02}T{hh2:02}:00:00Z")
            };
            format!("{y:04}-{m:02}-{d:02}T{hh:02}:00:00Z/{end}")
        })
        .collect();
    let s = |v: Vec<String>| Arc::new(StringArray::from(v));
    // Index -2 (support) and -1 (monthly lines) map past the catalog.
    let mut products: Vec<String> = cat.iter().map(|k| k.product.to_string()).collect();
    products.push("AWSSupportBusiness".into());
    let mut usage_types: Vec<String> = cat.iter().map(|k| k.usage_type.clone()).collect();
    usage_types.push("Dollar".into());
    let mut operations: Vec<String> = cat.iter().map(|k| k.operation.to_string()).collect();
    operations.push(String::new());
    let mut descriptions: Vec<String> = cat.iter().map(|k| k.description.clone()).collect();
    descriptions.push("AWS Support (Business)".into());
    descriptions.push("Monthly charge".into());
    Dicts {
        hours: s(hours),
        accounts: s((0..accounts).map(|k| account_id(org, k)).collect()),
        account_names: s((0..accounts)
            .map(|k| format!("{}-account-{}", org_id(org.max(1)), k + 1))
            .collect()),
        types: s(TYPES.iter().map(|t| t.to_string()).collect()),
        products: s(products),
        usage_types: s(usage_types),
        operations: s(operations),
        resources: s((0..accounts * 64)
            .map(|k| {
                format!(
                    "arn:aws:ec2:us-east-1:{}:instance/i-{:017x}",
                    account_id(org, k / 64),
                    (org as u64) << 32 | k as u64
                )
            })
            .collect()),
        rates: s(cat.iter().map(|k| format_fixed_exact(k.rate)).collect()),
        descriptions: s(descriptions),
        units: s(cat.iter().map(|k| k.unit.to_string()).collect()),
        regions: s(cat.iter().map(|k| k.region.to_string()).collect()),
        entity: s(vec!["AWS".into(), "AWS Marketplace".into()]),
    }
}

fn batch(
    ctx: &Ctx<'_>,
    schema: &SchemaRef,
    d: &Dicts,
    r: &Rows,
    payer: &str,
    payer_name: &str,
) -> Result<RecordBatch> {
    let n = r.hour.len();
    let cat_len = ctx.catalog.len() as i32;
    let sku_key = |k: i32| if k >= 0 { k } else { cat_len }; // -1/-2 -> the extra entry
    let start_ms = period_ms(ctx.period);
    let end_ms = period_ms(ctx.period.next());
    let single = |v: &str| Arc::new(StringArray::from(vec![v.to_string()]));
    let constant = |v: &str| dict(vec![Some(0); n], &single(v));
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    let mut tags = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
    for &t in &r.tags {
        if t >= 1 {
            tags.keys().append_value("user_env");
            tags.values()
                .append_value(["prod", "dev", "staging"][(t % 3) as usize]);
        }
        if t >= 2 {
            tags.keys().append_value("user_cost_center");
            tags.values().append_value(format!("cc-{}", t * 17 % 50));
        }
        tags.append(true)
            .map_err(|e| Error::input("generate", e.to_string()))?;
    }
    let columns: Vec<ArrayRef> = vec![
        dict(r.hour.iter().map(|&h| Some(h)).collect(), &d.hours),
        constant("Anniversary"),
        dict(r.entity.iter().map(|&e| Some(e)).collect(), &d.entity),
        Arc::new(TimestampMillisecondArray::from(vec![start_ms; n]).with_timezone("UTC")),
        Arc::new(TimestampMillisecondArray::from(vec![end_ms; n]).with_timezone("UTC")),
        constant("EUINUS26-PARTNER-0001"),
        constant("Amazon Web Services, Inc."),
        constant(payer),
        constant(payer_name),
        dict(r.account.iter().map(|&a| Some(a)).collect(), &d.accounts),
        dict(
            r.account.iter().map(|&a| Some(a)).collect(),
            &d.account_names,
        ),
        dict(r.line_type.iter().map(|&t| Some(t)).collect(), &d.types),
        Arc::new(
            TimestampMillisecondArray::from(
                r.hour
                    .iter()
                    .map(|&h| start_ms + h as i64 * 3_600_000)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMillisecondArray::from(
                r.hour
                    .iter()
                    .map(|&h| start_ms + (h as i64 + 1) * 3_600_000)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        dict(
            r.sku
                .iter()
                .map(|&k| Some(if k == -2 { cat_len } else { sku_key(k.max(0)) }))
                .collect(),
            &d.products,
        ),
        dict(
            r.sku
                .iter()
                .map(|&k| {
                    if k == -1 {
                        None
                    } else {
                        Some(sku_key(if k == -2 { -2 } else { k }))
                    }
                })
                .collect(),
            &d.usage_types,
        ),
        dict(
            r.sku
                .iter()
                .map(|&k| if k < 0 { None } else { Some(k) })
                .collect(),
            &d.operations,
        ),
        dict(
            r.resource
                .iter()
                .map(|&x| if x < 0 { None } else { Some(x) })
                .collect(),
            &d.resources,
        ),
        Arc::new(Float64Array::from(r.usage.clone())),
        constant("USD"),
        dict(r.rate.clone(), &d.rates),
        Arc::new(Float64Array::from(r.cost.clone())),
        dict(
            r.desc
                .iter()
                .map(|&x| {
                    Some(if x == -2 {
                        cat_len
                    } else if x == -1 {
                        cat_len + 1
                    } else {
                        x
                    })
                })
                .collect(),
            &d.descriptions,
        ),
        dict(r.rate.clone(), &d.rates),
        Arc::new(Float64Array::from(r.public_cost.clone())),
        dict(r.rate.clone(), &d.units),
        dict(
            r.rate.iter().map(|x| x.map(|_| 0)).collect(),
            &single("OnDemand"),
        ),
        dict(
            r.sku
                .iter()
                .map(|&k| if k < 0 { None } else { Some(k) })
                .collect(),
            &d.regions,
        ),
        Arc::new(tags.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::input("generate", e.to_string()))
}

fn period_ms(p: BillingPeriod) -> i64 {
    p.start_micros() / 1000
}

/// One file to write: org index (0 = partner), file number, rows, and whether it carries the monthly lines.
#[derive(Debug, Clone)]
struct FileJob {
    org: usize,
    part: u64,
    rows: u64,
    org_level: bool,
}

/// Writes the base and its config; returns what was written.
pub fn generate(spec: &Spec) -> Result<Summary> {
    if spec.orgs == 0 || spec.accounts_per_org == 0 {
        return Err(Error::Period(
            "--orgs and --accounts-per-org must be at least 1".into(),
        ));
    }
    let catalog = catalog();
    let hours = {
        let days = (period_ms(spec.period.next()) - period_ms(spec.period)) / 86_400_000;
        days * 24
    };
    let ctx = Ctx {
        sku_cum: zipf_cumulative(catalog.len(), 0.9),
        account_cum: zipf_cumulative(spec.accounts_per_org, 1.2),
        catalog: &catalog,
        period: spec.period,
        hours,
    };
    let sizes = org_sizes(spec.lines, spec.orgs, 20);
    let partner_rows = (spec.lines / 100).max(20);
    let mut jobs = Vec::new();
    for (org, rows) in std::iter::once(partner_rows)
        .chain(sizes.iter().copied())
        .enumerate()
    {
        let mut left = rows;
        let mut part = 1;
        while left > 0 {
            let n = left.min(spec.lines_per_file.max(1));
            jobs.push(FileJob {
                org,
                part,
                rows: n,
                org_level: part == 1,
            });
            left -= n;
            part += 1;
        }
    }
    fs::create_dir_all(&spec.out).map_err(|e| Error::Output {
        path: spec.out.clone(),
        source: e,
    })?;
    let schema = schema();
    let written: Vec<Result<u64>> = jobs
        .par_iter()
        .map(|job| write_file(spec, &ctx, &schema, job))
        .collect();
    let mut rows_per_org = vec![0u64; spec.orgs + 1];
    let mut total = 0;
    for (job, w) in jobs.iter().zip(written) {
        let n = w?;
        rows_per_org[job.org] += n;
        total += n;
    }
    write_config(spec, &catalog)?;
    Ok(Summary {
        files: jobs.len(),
        rows: total,
        rows_per_org: rows_per_org
            .iter()
            .enumerate()
            .map(|(i, n)| (if i == 0 { "partner".into() } else { org_id(i) }, *n))
            .collect(),
    })
}

/// Folder of an org's files, relative to the base.
pub fn org_dir(org: usize, period: BillingPeriod) -> String {
    let name = if org == 0 {
        "partner".to_string()
    } else {
        org_id(org)
    };
    format!("{name}/data/BILLING_PERIOD={period}")
}

fn write_file(spec: &Spec, ctx: &Ctx<'_>, schema: &SchemaRef, job: &FileJob) -> Result<u64> {
    let accounts = if job.org == 0 {
        2
    } else {
        spec.accounts_per_org
    };
    let ctx = Ctx {
        account_cum: zipf_cumulative(accounts, 1.2),
        catalog: ctx.catalog,
        sku_cum: ctx.sku_cum.clone(),
        period: ctx.period,
        hours: ctx.hours,
    };
    let dir = spec.out.join(org_dir(job.org, spec.period));
    fs::create_dir_all(&dir).map_err(|e| Error::Output {
        path: dir.clone(),
        source: e,
    })?;
    let stem = if job.org == 0 {
        "partner".to_string()
    } else {
        org_id(job.org)
    };
    let d = dicts(&ctx, job.org, accounts);
    let payer = account_id(0, 0);
    let mut rng = Rng::new(spec.seed, ((job.org as u64) << 24) | job.part);
    const GROUP: u64 = 131_072;
    let mut rows_written = 0u64;
    match spec.format {
        Format::Parquet => {
            let path = dir.join(format!("{stem}-{:05}.snappy.parquet", job.part));
            let file = File::create(&path).map_err(|e| Error::Output {
                path: path.clone(),
                source: e,
            })?;
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(GROUP as usize))
                .set_created_by("billxfer generate".into())
                .build();
            let options = ArrowWriterOptions::new()
                .with_properties(props)
                .with_skip_arrow_metadata(true);
            let mut w = ArrowWriter::try_new_with_options(file, schema.clone(), options)
                .map_err(|e| Error::input(&path, e.to_string()))?;
            let mut left = job.rows;
            let mut first = job.org_level;
            while left > 0 {
                let n = left.min(GROUP);
                let rows = gen_rows(&ctx, &mut rng, n, accounts, first);
                first = false;
                rows_written += rows.hour.len() as u64;
                let b = batch(&ctx, schema, &d, &rows, &payer, "Northwind Cloud Partners")?;
                w.write(&b)
                    .map_err(|e| Error::input(&path, e.to_string()))?;
                left -= n;
            }
            w.close().map_err(|e| Error::input(&path, e.to_string()))?;
        }
        Format::Csv => {
            let path = dir.join(format!("{stem}-{:05}.csv", job.part));
            let file = File::create(&path).map_err(|e| Error::Output {
                path: path.clone(),
                source: e,
            })?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let header = "bill_billing_period_start_date,bill_billing_entity,bill_payer_account_id,bill_invoice_id,line_item_usage_account_id,line_item_line_item_type,line_item_usage_start_date,line_item_product_code,line_item_usage_type,line_item_operation,line_item_usage_amount,line_item_currency_code,line_item_unblended_rate,line_item_unblended_cost,pricing_public_on_demand_rate,pricing_public_on_demand_cost,pricing_unit,product_region_code\n";
            w.write_all(header.as_bytes()).map_err(|e| Error::Output {
                path: path.clone(),
                source: e,
            })?;
            let mut left = job.rows;
            let mut first = job.org_level;
            let mut line = String::with_capacity(512);
            while left > 0 {
                let n = left.min(GROUP);
                let rows = gen_rows(&ctx, &mut rng, n, accounts, first);
                first = false;
                rows_written += rows.hour.len() as u64;
                for i in 0..rows.hour.len() {
                    line.clear();
                    let k = rows.sku[i];
                    let (product, usage_type, op, region) = if k >= 0 {
                        let s = &ctx.catalog[k as usize];
                        (s.product, s.usage_type.as_str(), s.operation, s.region)
                    } else if k == -2 {
                        ("AWSSupportBusiness", "Dollar", "", "")
                    } else {
                        ("", "", "", "")
                    };
                    let rate = rows.rate[i]
                        .map(|r| format_fixed_exact(ctx.catalog[r as usize].rate))
                        .unwrap_or_default();
                    let unit = rows.rate[i]
                        .map(|r| ctx.catalog[r as usize].unit)
                        .unwrap_or("");
                    let hour = rows.hour[i] as i64;
                    let start = period_ms(spec.period) / 1000 + hour * 3600;
                    let _ = writeln!(
                        line,
                        "{},{},{},EUINUS26-PARTNER-0001,{},{},{},{},{},{},{},USD,{},{},{},{},{},{}",
                        spec.period.start_iso(),
                        if rows.entity[i] == 1 {
                            "AWS Marketplace"
                        } else {
                            "AWS"
                        },
                        payer,
                        d.accounts.value(rows.account[i] as usize),
                        TYPES[rows.line_type[i] as usize],
                        iso_seconds(start),
                        product,
                        usage_type,
                        op,
                        rows.usage[i]
                            .map(|u| ryu::Buffer::new().format(u).to_string())
                            .unwrap_or_default(),
                        rate,
                        ryu::Buffer::new().format(rows.cost[i]),
                        rate,
                        rows.public_cost[i]
                            .map(|u| ryu::Buffer::new().format(u).to_string())
                            .unwrap_or_default(),
                        unit,
                        region
                    );
                    w.write_all(line.as_bytes()).map_err(|e| Error::Output {
                        path: path.clone(),
                        source: e,
                    })?;
                }
                left -= n;
            }
            w.flush().map_err(|e| Error::Output {
                path: path.clone(),
                source: e,
            })?;
        }
    }
    Ok(rows_written)
}

fn iso_seconds(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let p = BillingPeriod::from_unix_micros(days * 86_400_000_000);
    let day_of_month = match p {
        Some(p) => days - period_ms(p) / 86_400_000 + 1,
        None => 1,
    };
    let p = p.map(|p| p.to_string()).unwrap_or_default();
    format!(
        "{p}-{day_of_month:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn write_config(spec: &Spec, catalog: &[Sku]) -> Result<()> {
    let mut rng = Rng::new(spec.seed, u64::MAX);
    let mut t = String::new();
    let ext = match spec.format {
        Format::Parquet => "parquet",
        Format::Csv => "csv",
    };
    let _ = writeln!(t, "# Generated by `billxfer generate --orgs {} --accounts-per-org {} --lines {} --period {} --seed {}`.", spec.orgs, spec.accounts_per_org, spec.lines, spec.period, spec.seed);
    let _ = writeln!(t, "\n[partner]\nid = \"partner\"\nname = \"Northwind Cloud Partners\"\nmanagement_account = \"{}\"\naccounts = [\"{}\"]", account_id(0, 0), account_id(0, 1));
    let _ = writeln!(
        t,
        "files = [\"{}/*.{ext}\"]\n\n[actual]\nmode = \"billed\"\n",
        org_dir(0, spec.period)
    );
    let n_plans = (spec.orgs / 10).clamp(1, 40);
    for p in 0..n_plans {
        let _ = writeln!(t, "[[plans]]\nid = \"plan-{p:02}\"\nrules = [");
        let (kind, pct) = if rng.below(3) == 0 {
            ("discount", rng.below(800))
        } else {
            ("markup", 200 + rng.below(1800))
        };
        let _ = writeln!(t, "  {{ id = \"global\", scope = \"global\", type = \"{kind}\", percent = \"{}.{:02}\" }},", pct / 100, pct % 100);
        for (i, s) in SERVICES.iter().enumerate() {
            if rng.below(2) == 0 {
                let pct = rng.below(2500);
                let kind = if rng.below(4) == 0 {
                    "discount"
                } else {
                    "markup"
                };
                let _ = writeln!(t, "  {{ id = \"svc-{i}\", scope = \"service\", service = \"{s}\", type = \"{kind}\", percent = \"{}.{:02}\" }},", pct / 100, pct % 100);
            }
        }
        let _ = writeln!(t, "  {{ id = \"marketplace\", scope = \"billing_entity\", billing_entity = \"AWS Marketplace\", type = \"markup\", percent = \"{}\" }},", rng.below(5));
        // Hundreds of SKU rules: a markup per usage type for a random subset of the catalog.
        let n_sku = 50 + rng.below(200) as usize;
        let mut chosen: Vec<usize> = (0..catalog.len())
            .filter(|_| rng.below(catalog.len() as u64) < n_sku as u64)
            .collect();
        chosen.sort_unstable();
        let tiered = catalog
            .iter()
            .position(|s| s.usage_type == "USE1-TimedStorage-ByteHrs");
        for i in chosen {
            let s = &catalog[i];
            if Some(i) == tiered {
                continue;
            }
            let pct = rng.below(3000);
            let _ = writeln!(
                t,
                "  {{ id = \"sku-{i}\", scope = \"sku\", service = \"{}\", usage_type = \"{}\", operation = \"{}\", type = \"markup\", percent = \"{}.{:02}\" }},",
                s.product, s.usage_type, s.operation, pct / 100, pct % 100
            );
        }
        if p % 2 == 0 {
            let _ = writeln!(t, "  {{ id = \"s3-tiers\", scope = \"sku\", service = \"AmazonS3\", usage_type = \"USE1-TimedStorage-ByteHrs\", type = \"custom\", tiers = [{{ from = \"0\", rate = \"0.024\" }}, {{ from = \"100\", rate = \"0.021\" }}, {{ from = \"1000\", rate = \"0.019\" }}] }},");
        }
        if p % 3 == 1 {
            let _ = writeln!(t, "  {{ id = \"no-free-tier\", scope = \"global\", type = \"tiering\", free_tier = false }},");
        }
        let _ = writeln!(t, "]\n");
    }
    for org in 1..=spec.orgs {
        let accounts: Vec<String> = (1..spec.accounts_per_org)
            .map(|k| format!("\"{}\"", account_id(org, k)))
            .collect();
        let plan = if org % 7 == 0 {
            "basic".to_string()
        } else {
            format!("plan-{:02}", org % n_plans)
        };
        let _ = writeln!(
            t,
            "[[orgs]]\nid = \"{}\"\nname = \"Customer {org}\"\nmanagement_account = \"{}\"\naccounts = [{}]\nfiles = [\"{}/*.{ext}\"]\nplan = \"{plan}\"\ntransfer = {{ start = \"{}\" }}",
            org_id(org),
            account_id(org, 0),
            accounts.join(", "),
            org_dir(org, spec.period),
            spec.period
        );
        let _ = writeln!(t, "  [[orgs.custom_line_items]]\n  id = \"managed\"\n  description = \"Managed services\"\n  kind = \"fee\"\n  flat = \"{}.00\"\n  start = \"{}\"", 50 + rng.below(500), spec.period);
        let _ = writeln!(t, "  [[orgs.custom_line_items]]\n  id = \"support\"\n  description = \"Support (percentage)\"\n  kind = \"fee\"\n  percent = \"{}\"\n  include_items = [\"managed\"]\n  start = \"{}\"", 3 + rng.below(8), spec.period);
        if org % 3 == 0 {
            let _ = writeln!(t, "  [[orgs.custom_line_items]]\n  id = \"credit\"\n  description = \"Commitment credit\"\n  kind = \"credit\"\n  percent = \"2\"\n  exclude_savings_plan_negation = true\n  start = \"{}\"", spec.period);
        }
        let _ = writeln!(t);
    }
    let path = spec.out.join("billxfer.toml");
    fs::write(&path, t).map_err(|e| Error::Output { path, source: e })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_sizes_sum_to_the_total_and_are_skewed() {
        let s = org_sizes(1_000_000, 100, 20);
        assert_eq!(s.iter().sum::<u64>(), 1_000_000);
        assert!(s[0] > 50 * s[99], "{} vs {}", s[0], s[99]);
        assert!(s.iter().all(|&x| x >= 20));
    }

    #[test]
    fn rng_is_stable() {
        let mut r = Rng::new(42, 7);
        let a: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut r = Rng::new(42, 7);
        assert_eq!(a, (0..3).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert!(Rng::new(42, 8).next_u64() != a[0]);
    }

    #[test]
    fn period_start_matches_a_known_date() {
        // 2026-10-01T00:00:00Z
        assert_eq!(
            period_ms(BillingPeriod::new(2026, 10).unwrap()),
            1_790_812_800_000
        );
        assert_eq!(
            iso_seconds(1_790_812_800 + 3600 * 25),
            "2026-10-02T01:00:00Z"
        );
    }
}
