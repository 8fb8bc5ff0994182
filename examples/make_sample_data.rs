//! Writes the sample month in `sample_data/` (inputs only; `billxfer.toml` and
//! `EXPECTED.md` are hand-written beside them).
//!
//! Run from the repository root:
//!
//! ```text
//! cargo run --example make_sample_data -- sample_data
//! ```
//!
//! Every row is listed below with the figures that EXPECTED.md works through.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// One CUR line, as text so that every figure is written exactly as a person reads it.
struct Line {
    id: &'static str,
    period: &'static str,
    payer: &'static str,
    account: &'static str,
    line_type: &'static str,
    product: &'static str,
    usage_type: &'static str,
    operation: &'static str,
    entity: &'static str,
    usage: &'static str,
    rate: &'static str,
    cost: &'static str,
    description: &'static str,
}

#[allow(clippy::too_many_arguments)]
const fn l(
    id: &'static str,
    account: &'static str,
    line_type: &'static str,
    product: &'static str,
    usage_type: &'static str,
    operation: &'static str,
    usage: &'static str,
    rate: &'static str,
    cost: &'static str,
    description: &'static str,
) -> Line {
    Line {
        id,
        period: "2026-10",
        payer: "900000000001",
        account,
        line_type,
        product,
        usage_type,
        operation,
        entity: "AWS",
        usage,
        rate,
        cost,
        description,
    }
}

fn partner() -> Vec<Line> {
    vec![
        l(
            "P1",
            "900000000001",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:t3.micro",
            "RunInstances",
            "720",
            "0.0104",
            "7.488",
            "$0.0104 per On Demand Linux t3.micro Instance Hour",
        ),
        l(
            "P2",
            "900000000002",
            "Usage",
            "AmazonS3",
            "USE1-TimedStorage-ByteHrs",
            "StandardStorage",
            "100",
            "0.023",
            "2.3",
            "$0.023 per GB - first 50 TB / month of storage used",
        ),
        l(
            "P3",
            "900000000001",
            "SppDiscount",
            "AmazonEC2",
            "USE1-BoxUsage:t3.micro",
            "RunInstances",
            "0",
            "",
            "-0.7488",
            "Solution Provider Program discount",
        ),
        l(
            "P4",
            "900000000001",
            "Tax",
            "AmazonEC2",
            "",
            "",
            "1",
            "",
            "0.7",
            "Tax for product code AmazonEC2",
        ),
    ]
}

fn acme_parquet() -> Vec<Line> {
    let mut v = vec![
        l(
            "A1",
            "111100000001",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:m5.large",
            "RunInstances",
            "100",
            "0.096",
            "9.6",
            "$0.096 per On Demand Linux m5.large Instance Hour",
        ),
        l(
            "A2",
            "111100000002",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:t3.small",
            "RunInstances",
            "200",
            "0.0208",
            "4.16",
            "$0.0208 per On Demand Linux t3.small Instance Hour",
        ),
        l(
            "A3",
            "111100000001",
            "Usage",
            "AmazonS3",
            "USE1-TimedStorage-ByteHrs",
            "StandardStorage",
            "1000",
            "0.023",
            "23",
            "$0.023 per GB - first 50 TB / month of storage used",
        ),
        l(
            "A4",
            "111100000002",
            "Usage",
            "AmazonS3",
            "USE1-Requests-Tier1",
            "PutObject",
            "2000",
            "0.000005",
            "0",
            "$0.00 per request under the monthly free tier",
        ),
        l(
            "A5",
            "111100000002",
            "Usage",
            "prod-abc123",
            "Units",
            "Subscribe",
            "1",
            "50",
            "50",
            "Acme Analytics (AWS Marketplace) monthly subscription",
        ),
        // Quarantined: account 222200000001 belongs to globex, not acme.
        l(
            "A9",
            "222200000001",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:t3.micro",
            "RunInstances",
            "480",
            "0.0104",
            "5",
            "misrouted line of another org",
        ),
    ];
    v[4].entity = "AWS Marketplace";
    v
}

fn acme_csv() -> Vec<Line> {
    vec![
        l(
            "A6",
            "111100000001",
            "EdpDiscount",
            "AmazonEC2",
            "USE1-BoxUsage:m5.large",
            "RunInstances",
            "0",
            "",
            "-1.376",
            "Enterprise Discount Program discount",
        ),
        l(
            "A7",
            "111100000001",
            "Tax",
            "AmazonEC2",
            "",
            "",
            "1",
            "",
            "1.2",
            "Tax for product code AmazonEC2",
        ),
        l(
            "A8",
            "111100000002",
            "Credit",
            "AmazonS3",
            "",
            "",
            "0",
            "",
            "-3",
            "AWS promotional credit",
        ),
        // Quarantined: a line item type billxfer does not know.
        l(
            "A10",
            "111100000001",
            "FlatRateSubscription",
            "AmazonEC2",
            "",
            "",
            "1",
            "",
            "7",
            "flat rate subscription",
        ),
    ]
}

fn globex_file1() -> Vec<Line> {
    let mut v = vec![
        l(
            "B1",
            "222200000001",
            "Usage",
            "AmazonS3",
            "USE1-TimedStorage-ByteHrs",
            "StandardStorage",
            "400",
            "0.023",
            "9.2",
            "$0.023 per GB - first 50 TB / month of storage used",
        ),
        l(
            "B3",
            "222200000003",
            "SavingsPlanCoveredUsage",
            "AmazonEC2",
            "USE1-BoxUsage:c5.xlarge",
            "RunInstances",
            "100",
            "0.17",
            "17",
            "Compute Savings Plan covered usage",
        ),
        l(
            "B4",
            "222200000003",
            "SavingsPlanNegation",
            "AmazonEC2",
            "USE1-BoxUsage:c5.xlarge",
            "RunInstances",
            "0",
            "",
            "-17",
            "SavingsPlanNegation used by AccountId : 222200000003",
        ),
        l(
            "B5",
            "222200000001",
            "SavingsPlanRecurringFee",
            "ComputeSavingsPlans",
            "ComputeSP:1yrNoUpfront",
            "",
            "1",
            "",
            "12",
            "1 year No Upfront Compute Savings Plan",
        ),
        l(
            "B8",
            "222200000001",
            "PrivateRateDiscount",
            "AmazonS3",
            "USE1-TimedStorage-ByteHrs",
            "StandardStorage",
            "0",
            "",
            "-0.92",
            "Private rate discount",
        ),
        l(
            "B9",
            "222200000001",
            "Tax",
            "AmazonS3",
            "",
            "",
            "1",
            "",
            "2",
            "Tax for product code AmazonS3",
        ),
    ];
    v[0].payer = "900000000001";
    v
}

fn globex_file2() -> Vec<Line> {
    let mut v = vec![
        l(
            "B2",
            "222200000002",
            "Usage",
            "AmazonS3",
            "USE1-TimedStorage-ByteHrs",
            "StandardStorage",
            "400",
            "0.023",
            "9.2",
            "$0.023 per GB - first 50 TB / month of storage used",
        ),
        l(
            "B6",
            "222200000002",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:t3.micro",
            "RunInstances",
            "300",
            "0.0104",
            "3.12",
            "$0.0104 per On Demand Linux t3.micro Instance Hour",
        ),
        l(
            "B7",
            "222200000002",
            "Usage",
            "AWSLambda",
            "USE1-Request",
            "Invoke",
            "1000000",
            "0.0000002",
            "0.2",
            "$0.20 per 1M requests",
        ),
        // Quarantined: a September line in the October run.
        l(
            "B10",
            "222200000002",
            "Usage",
            "AWSLambda",
            "USE1-Request",
            "Invoke",
            "5000000",
            "0.0000002",
            "1",
            "late September line",
        ),
    ];
    v[3].period = "2026-09";
    v
}

fn initech() -> Vec<Line> {
    vec![
        l(
            "C1",
            "333300000001",
            "Usage",
            "AmazonRDS",
            "USE1-InstanceUsage:db.t3.medium",
            "CreateDBInstance:0002",
            "720",
            "0.068",
            "48.96",
            "$0.068 per RDS db.t3.medium instance hour",
        ),
        l(
            "C2",
            "333300000002",
            "Usage",
            "AmazonCloudWatch",
            "USE1-CW:MetricMonitorUsage",
            "MetricStorage",
            "10",
            "0.3",
            "3",
            "$0.30 per metric-month",
        ),
        l(
            "C3",
            "333300000001",
            "DiscountedUsage",
            "AmazonEC2",
            "USE1-BoxUsage:m5.large",
            "RunInstances",
            "720",
            "0.096",
            "0",
            "Reserved Instance covered usage",
        ),
        l(
            "C4",
            "333300000001",
            "RIFee",
            "AmazonEC2",
            "USE1-HeavyUsage:m5.large",
            "RunInstances",
            "720",
            "",
            "40",
            "Reserved Instance recurring fee",
        ),
        l(
            "C5",
            "333300000001",
            "SppDiscount",
            "AmazonRDS",
            "USE1-InstanceUsage:db.t3.medium",
            "CreateDBInstance:0002",
            "0",
            "",
            "-2.448",
            "Solution Provider Program discount",
        ),
        l(
            "C6",
            "333300000002",
            "Fee",
            "AWSSupportBusiness",
            "Dollar",
            "",
            "1",
            "",
            "100",
            "AWS Support (Business)",
        ),
        l(
            "C7",
            "333300000001",
            "Refund",
            "AmazonRDS",
            "",
            "",
            "0",
            "",
            "-5",
            "Refund for service interruption",
        ),
        // Quarantined: the cost is not a number.
        l(
            "C8",
            "333300000002",
            "Usage",
            "AmazonCloudWatch",
            "USE1-CW:Requests",
            "GetMetricData",
            "1000",
            "0.00001",
            "abc",
            "garbled amount",
        ),
    ]
}

fn period_start(p: &str) -> String {
    format!("{p}-01T00:00:00Z")
}

fn period_millis(p: &str) -> i64 {
    // Days from 1970-01-01 to the first of the month (2026-09 / 2026-10 only need this simple table).
    match p {
        "2026-09" => 1_788_220_800_000,
        "2026-10" => 1_790_812_800_000,
        other => panic!("sample generator knows no period {other}"),
    }
}

const CUR2_HEADER: &[&str] = &[
    "identity_line_item_id",
    "bill_billing_period_start_date",
    "bill_payer_account_id",
    "bill_payer_account_name",
    "bill_billing_entity",
    "bill_invoice_id",
    "line_item_usage_account_id",
    "line_item_line_item_type",
    "line_item_usage_start_date",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_operation",
    "line_item_usage_amount",
    "line_item_currency_code",
    "line_item_unblended_rate",
    "line_item_unblended_cost",
    "pricing_public_on_demand_rate",
    "pricing_public_on_demand_cost",
    "product_region_code",
    "line_item_line_item_description",
];

fn public_cost(x: &Line) -> String {
    if x.rate.is_empty()
        || x.line_type != "Usage"
            && x.line_type != "SavingsPlanCoveredUsage"
            && x.line_type != "DiscountedUsage"
    {
        String::new()
    } else {
        // usage × rate, written exactly (the generator's figures are short decimals).
        let u: rust_decimal::Decimal = x.usage.parse().expect("usage");
        let r: rust_decimal::Decimal = x.rate.parse().expect("rate");
        (u * r).normalize().to_string()
    }
}

fn cur2_values(x: &Line) -> Vec<String> {
    vec![
        x.id.into(),
        period_start(x.period),
        x.payer.into(),
        "Northwind Cloud Partners".into(),
        x.entity.into(),
        "EUINUS26-000123".into(),
        x.account.into(),
        x.line_type.into(),
        period_start(x.period),
        x.product.into(),
        x.usage_type.into(),
        x.operation.into(),
        x.usage.into(),
        "USD".into(),
        x.rate.into(),
        x.cost.into(),
        x.rate.into(),
        public_cost(x),
        if x.usage_type.starts_with("USE1") {
            "us-east-1".into()
        } else {
            String::new()
        },
        x.description.into(),
    ]
}

fn csv_line(values: &[String]) -> String {
    let cells: Vec<String> = values
        .iter()
        .map(|v| {
            if v.contains([',', '"']) {
                format!("\"{}\"", v.replace('"', "\"\""))
            } else {
                v.clone()
            }
        })
        .collect();
    cells.join(",") + "\n"
}

/// Contoso, a downstream seller: its own usage (the top partner prices it).
fn contoso() -> Vec<Line> {
    vec![l(
        "D1",
        "444400000001",
        "Usage",
        "AmazonEC2",
        "USE1-BoxUsage:t3.small",
        "RunInstances",
        "720",
        "0.0208",
        "14.976",
        "$0.0208 per On Demand Linux t3.small Instance Hour",
    )]
}

/// Umbrella, Contoso's customer.
fn umbrella() -> Vec<Line> {
    vec![
        l(
            "U1",
            "555500000001",
            "Usage",
            "AmazonS3",
            "USE1-TimedStorage-ByteHrs",
            "PutObject",
            "200",
            "0.023",
            "4.6",
            "$0.023 per GB-Month of storage used",
        ),
        l(
            "U2",
            "555500000001",
            "Usage",
            "AmazonEC2",
            "USE1-BoxUsage:m5.large",
            "RunInstances",
            "100",
            "0.096",
            "9.6",
            "$0.096 per On Demand Linux m5.large Instance Hour",
        ),
    ]
}

/// Hooli, Contoso's other customer.
fn hooli() -> Vec<Line> {
    vec![
        l(
            "H1",
            "666600000001",
            "Usage",
            "AWSLambda",
            "USE1-Request",
            "Invoke",
            "2000000",
            "0.0000002",
            "0.4",
            "$0.20 per 1M requests",
        ),
        l(
            "H2",
            "666600000001",
            "Usage",
            "AmazonRDS",
            "USE1-InstanceUsage:db.t3.micro",
            "CreateDBInstance:0002",
            "720",
            "0.017",
            "12.24",
            "$0.017 per RDS db.t3.micro instance hour",
        ),
    ]
}

fn write_cur2_csv(path: &Path, lines: &[Line], gzip: bool) {
    let mut text = csv_line(
        &CUR2_HEADER
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    );
    for x in lines {
        text.push_str(&csv_line(&cur2_values(x)));
    }
    if gzip {
        let f = File::create(path).expect("create");
        // A fixed mtime of 0 keeps the gzip bytes identical on every regeneration.
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(f, flate2::Compression::default());
        gz.write_all(text.as_bytes()).expect("write");
        gz.finish().expect("finish");
    } else {
        fs::write(path, text).expect("write");
    }
}

fn write_cur2_parquet(path: &Path, lines: &[Line]) {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (k, name) in CUR2_HEADER.iter().enumerate() {
        let values: Vec<String> = lines.iter().map(|x| cur2_values(x)[k].clone()).collect();
        match *name {
            "bill_billing_period_start_date" | "line_item_usage_start_date" => {
                fields.push(Field::new(*name, ts.clone(), true));
                let v: Vec<i64> = lines.iter().map(|x| period_millis(x.period)).collect();
                columns.push(Arc::new(
                    TimestampMillisecondArray::from(v).with_timezone("UTC"),
                ));
            }
            // CUR 2.0 stores costs and amounts as doubles and rates as strings.
            "line_item_usage_amount"
            | "line_item_unblended_cost"
            | "pricing_public_on_demand_cost" => {
                fields.push(Field::new(*name, DataType::Float64, true));
                let v: Vec<Option<f64>> = values
                    .iter()
                    .map(|s| {
                        if s.is_empty() {
                            None
                        } else {
                            Some(s.parse().expect("number"))
                        }
                    })
                    .collect();
                columns.push(Arc::new(Float64Array::from(v)));
            }
            _ => {
                fields.push(Field::new(*name, DataType::Utf8, true));
                let v: Vec<Option<&str>> = values
                    .iter()
                    .map(|s| if s.is_empty() { None } else { Some(s.as_str()) })
                    .collect();
                columns.push(Arc::new(StringArray::from(v)));
            }
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by("billxfer sample generator".into())
        .build();
    let mut w = ArrowWriter::try_new(File::create(path).expect("create"), schema, Some(props))
        .expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

fn write_legacy_csv(path: &Path, lines: &[Line]) {
    let header = [
        "identity/LineItemId",
        "bill/PayerAccountId",
        "bill/BillingEntity",
        "bill/BillingPeriodStartDate",
        "lineItem/UsageAccountId",
        "lineItem/LineItemType",
        "lineItem/UsageStartDate",
        "lineItem/ProductCode",
        "lineItem/UsageType",
        "lineItem/Operation",
        "lineItem/UsageAmount",
        "lineItem/CurrencyCode",
        "lineItem/UnblendedRate",
        "lineItem/UnblendedCost",
        "lineItem/LineItemDescription",
        "product/region",
        "pricing/publicOnDemandCost",
        "pricing/publicOnDemandRate",
    ];
    let mut text = csv_line(&header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for x in lines {
        let date = format!("{}-01T00:00:00.000Z", x.period);
        text.push_str(&csv_line(&[
            x.id.into(),
            x.payer.into(),
            x.entity.into(),
            date.clone(),
            x.account.into(),
            x.line_type.into(),
            date,
            x.product.into(),
            x.usage_type.into(),
            x.operation.into(),
            x.usage.into(),
            "USD".into(),
            x.rate.into(),
            x.cost.into(),
            x.description.into(),
            if x.usage_type.starts_with("USE1") {
                "us-east-1".into()
            } else {
                String::new()
            },
            public_cost(x),
            x.rate.into(),
        ]));
    }
    // Quarantined: a ragged row (C9) with fewer fields than the header.
    text.push_str("C9,900000000001,AWS,2026-10-01T00:00:00.000Z,333300000001,Usage\n");
    fs::write(path, text).expect("write");
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sample_data".into());
    let root = Path::new(&root);
    for d in [
        "partner", "acme", "globex", "initech", "contoso", "umbrella", "hooli",
    ] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    write_cur2_csv(&root.join("partner/cur-2026-10.csv.gz"), &partner(), true);
    write_cur2_parquet(
        &root.join("acme/cur-2026-10-00001.snappy.parquet"),
        &acme_parquet(),
    );
    write_cur2_csv(
        &root.join("acme/cur-2026-10-adjustments.csv"),
        &acme_csv(),
        false,
    );
    write_cur2_parquet(
        &root.join("globex/cur-2026-10-00001.snappy.parquet"),
        &globex_file1(),
    );
    write_cur2_parquet(
        &root.join("globex/cur-2026-10-00002.snappy.parquet"),
        &globex_file2(),
    );
    write_legacy_csv(&root.join("initech/legacy-cur-2026-10.csv"), &initech());
    for (org, lines) in [
        ("contoso", contoso()),
        ("umbrella", umbrella()),
        ("hooli", hooli()),
    ] {
        write_cur2_csv(&root.join(format!("{org}/cur-2026-10.csv")), &lines, false);
    }
    eprintln!("wrote sample inputs under {}", root.display());
}
