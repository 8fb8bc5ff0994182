//! FOCUS 1.2: the columns billxfer writes, the service category lookup, and a
//! validator for the FOCUS rules an exporter must keep (`billxfer validate-focus`).
//!
//! The rules checked are those of `cur-and-focus.md` section 2 (FOCUS 1.2 text):
//! mandatory columns present; BilledCost, EffectiveCost, ListCost and
//! ContractedCost never null; ListCost = ListUnitPrice × PricingQuantity and
//! ContractedCost = ContractedUnitPrice × PricingQuantity when both are present
//! and ChargeClass is not `Correction`; unit prices, PricingQuantity and
//! PricingCategory null on Tax rows and present on Usage/Purchase rows; unit
//! prices not negative; allowed values of ChargeCategory, ChargeClass,
//! ChargeFrequency, PricingCategory, CommitmentDiscountStatus/Category,
//! ServiceCategory; ChargeFrequency not `Usage-Based` on Purchase rows;
//! ConsumedQuantity null outside Usage rows; commitment columns null without a
//! CommitmentDiscountId; ISO 8601 UTC dates and 3-letter currencies in CSV files.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchReader};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

mod v14;

use crate::error::{Error, Result};
use crate::money::{parse_fixed, ONE};

/// A FOCUS column's storage type in billxfer's exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text.
    Text,
    /// Decimal128(38,10): exact, as FOCUS asks of Decimal columns.
    Decimal,
    /// Timestamp (milliseconds, UTC).
    DateTime,
}

/// The FOCUS 1.2 columns, in the specification's order, with their types and whether they are mandatory.
pub const COLUMNS: &[(&str, ColumnType, bool)] = &[
    ("AvailabilityZone", ColumnType::Text, false),
    ("BilledCost", ColumnType::Decimal, true),
    ("BillingAccountId", ColumnType::Text, true),
    ("BillingAccountName", ColumnType::Text, true),
    ("BillingAccountType", ColumnType::Text, false),
    ("BillingCurrency", ColumnType::Text, true),
    ("BillingPeriodEnd", ColumnType::DateTime, true),
    ("BillingPeriodStart", ColumnType::DateTime, true),
    ("CapacityReservationId", ColumnType::Text, false),
    ("CapacityReservationStatus", ColumnType::Text, false),
    ("ChargeCategory", ColumnType::Text, true),
    ("ChargeClass", ColumnType::Text, true),
    ("ChargeDescription", ColumnType::Text, true),
    ("ChargeFrequency", ColumnType::Text, false),
    ("ChargePeriodEnd", ColumnType::DateTime, true),
    ("ChargePeriodStart", ColumnType::DateTime, true),
    ("CommitmentDiscountCategory", ColumnType::Text, false),
    ("CommitmentDiscountId", ColumnType::Text, false),
    ("CommitmentDiscountName", ColumnType::Text, false),
    ("CommitmentDiscountQuantity", ColumnType::Decimal, false),
    ("CommitmentDiscountStatus", ColumnType::Text, false),
    ("CommitmentDiscountType", ColumnType::Text, false),
    ("CommitmentDiscountUnit", ColumnType::Text, false),
    ("ConsumedQuantity", ColumnType::Decimal, false),
    ("ConsumedUnit", ColumnType::Text, false),
    ("ContractedCost", ColumnType::Decimal, true),
    ("ContractedUnitPrice", ColumnType::Decimal, false),
    ("EffectiveCost", ColumnType::Decimal, true),
    ("InvoiceId", ColumnType::Text, false),
    ("InvoiceIssuerName", ColumnType::Text, true),
    ("ListCost", ColumnType::Decimal, true),
    ("ListUnitPrice", ColumnType::Decimal, false),
    ("PricingCategory", ColumnType::Text, false),
    ("PricingCurrency", ColumnType::Text, false),
    (
        "PricingCurrencyContractedUnitPrice",
        ColumnType::Decimal,
        false,
    ),
    ("PricingCurrencyEffectiveCost", ColumnType::Decimal, false),
    ("PricingCurrencyListUnitPrice", ColumnType::Decimal, false),
    ("PricingQuantity", ColumnType::Decimal, true),
    ("PricingUnit", ColumnType::Text, true),
    ("ProviderName", ColumnType::Text, true),
    ("PublisherName", ColumnType::Text, true),
    ("RegionId", ColumnType::Text, false),
    ("RegionName", ColumnType::Text, false),
    ("ResourceId", ColumnType::Text, false),
    ("ResourceName", ColumnType::Text, false),
    ("ResourceType", ColumnType::Text, false),
    ("ServiceCategory", ColumnType::Text, true),
    ("ServiceName", ColumnType::Text, true),
    ("ServiceSubcategory", ColumnType::Text, false),
    ("SkuId", ColumnType::Text, false),
    ("SkuMeter", ColumnType::Text, false),
    ("SkuPriceDetails", ColumnType::Text, false),
    ("SkuPriceId", ColumnType::Text, false),
    ("SubAccountId", ColumnType::Text, false),
    ("SubAccountName", ColumnType::Text, false),
    ("SubAccountType", ColumnType::Text, false),
    ("Tags", ColumnType::Text, false),
];

/// Custom columns billxfer adds after the FOCUS ones (FOCUS asks for the `x_` prefix).
pub const EXTRA_COLUMNS: &[&str] = &[
    "x_ServiceCode",
    "x_UsageType",
    "x_Operation",
    "x_LineItemType",
];

/// The partner's dataset names the customer organization of each row.
pub const CUSTOMER_ORG_COLUMN: &str = "x_CustomerOrg";

/// Arrow type of a FOCUS column type.
pub fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::Text => DataType::Utf8,
        ColumnType::Decimal => DataType::Decimal128(38, 10),
        ColumnType::DateTime => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
    }
}

/// A FOCUS version billxfer writes and validates (docs/EXPORTS.md, "FOCUS versions").
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
pub enum FocusVersion {
    /// FOCUS 1.2 (what AWS Data Exports offers; the default).
    #[default]
    #[value(name = "1.2")]
    #[serde(rename = "1.2")]
    V1_2,
    /// FOCUS 1.3: service and host providers, split cost allocation columns,
    /// ContractApplied, and charges that sum to each invoice's total.
    #[value(name = "1.3")]
    #[serde(rename = "1.3")]
    V1_3,
    /// FOCUS 1.4: 1.3 without ProviderName and PublisherName, with InvoiceDetailId on
    /// every charge and the InvoiceDetail and BillingPeriod datasets beside it.
    #[value(name = "1.4")]
    #[serde(rename = "1.4")]
    V1_4,
}

impl FocusVersion {
    /// `1.2`, `1.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            FocusVersion::V1_2 => "1.2",
            FocusVersion::V1_3 => "1.3",
            FocusVersion::V1_4 => "1.4",
        }
    }

    /// Whether the version has 1.3's provider columns and invoice rule (1.3 and later).
    pub fn from_1_3(self) -> bool {
        self != FocusVersion::V1_2
    }
}

/// Columns FOCUS 1.4 removes from the Cost and Usage dataset (deprecated in 1.3).
pub const COLUMNS_REMOVED_IN_1_4: &[&str] = &["ProviderName", "PublisherName"];

/// Columns FOCUS 1.3 adds to the Cost and Usage dataset, with their types and
/// whether the column is mandatory (a mandatory column may still allow nulls).
pub const COLUMNS_ADDED_IN_1_3: &[(&str, ColumnType, bool)] = &[
    ("AllocatedMethodDetails", ColumnType::Text, false),
    ("AllocatedMethodId", ColumnType::Text, false),
    ("AllocatedResourceId", ColumnType::Text, false),
    ("AllocatedResourceName", ColumnType::Text, false),
    ("AllocatedTags", ColumnType::Text, false),
    ("ContractApplied", ColumnType::Text, false),
    ("HostProviderName", ColumnType::Text, true),
    ("ServiceProviderName", ColumnType::Text, true),
];

/// The Cost and Usage columns of a version, sorted by name as the specification lists them.
pub fn columns(version: FocusVersion) -> Vec<(&'static str, ColumnType, bool)> {
    let mut all: Vec<(&'static str, ColumnType, bool)> = COLUMNS.to_vec();
    if version.from_1_3() {
        all.extend_from_slice(COLUMNS_ADDED_IN_1_3);
    }
    if version == FocusVersion::V1_4 {
        all.retain(|(name, _, _)| !COLUMNS_REMOVED_IN_1_4.contains(name));
        // Conditional in 1.4 ("when the invoice issuer supports payable invoices"):
        // billxfer issues them, so it is always there.
        all.push(("InvoiceDetailId", ColumnType::Text, true));
    }
    all.sort_by(|a, b| a.0.cmp(b.0));
    all
}

/// The schema of billxfer's FOCUS exports (`partner`: with the customer org column).
pub fn schema(partner: bool) -> SchemaRef {
    schema_of(partner, FocusVersion::V1_2)
}

/// The schema of a FOCUS version's export.
pub fn schema_of(partner: bool, version: FocusVersion) -> SchemaRef {
    let mut fields: Vec<Field> = columns(version)
        .iter()
        .map(|(name, t, _)| Field::new(*name, arrow_type(*t), true))
        .collect();
    for x in EXTRA_COLUMNS {
        fields.push(Field::new(*x, DataType::Utf8, true));
    }
    if partner {
        fields.push(Field::new(CUSTOMER_ORG_COLUMN, DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

/// FOCUS ServiceCategory of an AWS product code (FOCUS 1.2 allowed values); `Other` when unknown.
pub fn service_category(product_code: &str) -> &'static str {
    match product_code {
        "AmazonEC2"
        | "AWSLambda"
        | "AmazonECS"
        | "AmazonEKS"
        | "AmazonLightsail"
        | "ComputeSavingsPlans"
        | "AWSBatch"
        | "AmazonWorkSpaces"
        | "AWSFargate" => "Compute",
        "AmazonS3"
        | "AmazonEFS"
        | "AmazonFSx"
        | "AWSBackup"
        | "AmazonS3GlacierDeepArchive"
        | "AmazonGlacier"
        | "AWSStorageGateway" => "Storage",
        "AmazonRDS" | "AmazonDynamoDB" | "AmazonElastiCache" | "AmazonRedshift" | "AmazonDocDB"
        | "AmazonNeptune" | "AmazonTimestream" | "AmazonMemoryDB" => "Databases",
        "AmazonVPC"
        | "AWSELB"
        | "AmazonCloudFront"
        | "AmazonRoute53"
        | "AWSDataTransfer"
        | "AmazonApiGateway"
        | "AWSDirectConnect"
        | "AWSGlobalAccelerator" => "Networking",
        "AmazonCloudWatch"
        | "AWSCloudTrail"
        | "AWSConfig"
        | "AWSCostExplorer"
        | "AWSSystemsManager"
        | "AWSSupportBusiness"
        | "AWSSupportEnterprise"
        | "AWSDeveloperSupport"
        | "AWSCloudFormation"
        | "AWSBillingConductor" => "Management and Governance",
        "awskms" | "AWSSecretsManager" | "AWSShield" | "awswaf" | "AmazonGuardDuty"
        | "AWSSecurityHub" | "AmazonInspector" | "AmazonMacie" => "Security",
        "AWSQueueService" | "AmazonSNS" | "AmazonSQS" | "AWSEvents" | "AmazonStates"
        | "AmazonMQ" => "Integration",
        "AWSGlue"
        | "AmazonAthena"
        | "AmazonKinesis"
        | "AmazonKinesisFirehose"
        | "AmazonES"
        | "AmazonQuickSight"
        | "ElasticMapReduce"
        | "AmazonMSK" => "Analytics",
        "AmazonSageMaker" | "AmazonBedrock" | "AmazonRekognition" | "AmazonComprehend"
        | "AmazonTextract" | "AmazonPolly" | "transcribe" | "translate" => {
            "AI and Machine Learning"
        }
        "AmazonCognito" | "AWSDirectoryService" => "Identity",
        "AWSCodeBuild" | "AWSCodePipeline" | "AWSCodeCommit" | "AWSCodeArtifact" => {
            "Developer Tools"
        }
        _ => "Other",
    }
}

/// The catch-all FOCUS 1.2 subcategory of a service category (`Other (<category>)`).
pub fn other_subcategory(category: &str) -> &'static str {
    match category {
        "AI and Machine Learning" => "Other (AI and Machine Learning)",
        "Analytics" => "Other (Analytics)",
        "Business Applications" => "Other (Business Applications)",
        "Compute" => "Other (Compute)",
        "Databases" => "Other (Databases)",
        "Developer Tools" => "Other (Developer Tools)",
        "Identity" => "Other (Identity)",
        "Integration" => "Other (Integration)",
        "Internet of Things" => "Other (Internet of Things)",
        "Management and Governance" => "Other (Management and Governance)",
        "Media" => "Other (Media)",
        "Migration" => "Other (Migration)",
        "Mobile" => "Other (Mobile)",
        "Multicloud" => "Other (Multicloud)",
        "Networking" => "Other (Networking)",
        "Security" => "Other (Security)",
        "Storage" => "Other (Storage)",
        "Web" => "Other (Web)",
        _ => "Other (Other)",
    }
}

/// Allowed FOCUS 1.2 ServiceCategory values.
pub const SERVICE_CATEGORIES: &[&str] = &[
    "AI and Machine Learning",
    "Analytics",
    "Business Applications",
    "Compute",
    "Databases",
    "Developer Tools",
    "Multicloud",
    "Identity",
    "Integration",
    "Internet of Things",
    "Management and Governance",
    "Media",
    "Migration",
    "Mobile",
    "Networking",
    "Security",
    "Storage",
    "Web",
    "Other",
];

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Data row number (1-based), 0 for a file-level problem.
    pub row: u64,
    /// Column concerned.
    pub column: String,
    /// The rule, in words.
    pub rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.row == 0 {
            write!(f, "column {}: {}", self.column, self.rule)
        } else {
            write!(f, "row {}, column {}: {}", self.row, self.column, self.rule)
        }
    }
}

/// Tolerance of the ListCost = ListUnitPrice × PricingQuantity checks: 1e-6 in
/// the billing currency, for producers that round products to fewer places.
const PRODUCT_TOLERANCE: i128 = ONE / 1_000_000;

/// A FOCUS table as text cells by column name (case-insensitive), for checking.
struct Table {
    names: Vec<String>,
    columns: Vec<Vec<Option<String>>>,
    rows: usize,
    from_csv: bool,
}

impl Table {
    fn col(&self, name: &str) -> Option<&Vec<Option<String>>> {
        self.names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| &self.columns[i])
    }
}

/// Text of each cell; timestamps as ISO 8601 UTC, decimals exact. The error is
/// the column's (its caller names the file).
fn cells(a: &ArrayRef) -> std::result::Result<Vec<Option<String>>, arrow::error::ArrowError> {
    let a = match a.data_type() {
        DataType::Timestamp(_, _) => {
            let ms = crate::timestamp::to_utc_millis(a)?;
            let p = ms.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            return Ok(p
                .iter()
                .map(|v| v.map(crate::timestamp::iso_from_millis))
                .collect());
        }
        _ => cast(a, &DataType::Utf8)?,
    };
    let s = a.as_string::<i32>();
    Ok(s.iter().map(|v| v.map(str::to_string)).collect())
}

fn load(path: &Path) -> Result<Table> {
    let is_parquet = crate::ingest::is_parquet(path)?;
    if is_parquet {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| Error::input(path, format!("not a readable Parquet file: {e}")))?;
        let schema = reader.schema();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
        let mut rows = 0;
        for b in reader {
            let b: RecordBatch = b.map_err(|e| Error::input(path, e.to_string()))?;
            rows += b.num_rows();
            for (i, c) in b.columns().iter().enumerate() {
                columns[i].extend(cells(c).map_err(|e| Error::input(path, e.to_string()))?);
            }
        }
        Ok(Table {
            names,
            columns,
            rows,
            from_csv: false,
        })
    } else {
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .map_err(|e| Error::input(path, e.to_string()))?;
        let names: Vec<String> = r
            .headers()
            .map_err(|e| Error::input(path, format!("cannot read the CSV header: {e}")))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
        let mut rows = 0;
        for rec in r.records() {
            let rec = rec.map_err(|e| Error::input(path, e.to_string()))?;
            if rec.len() == 1 && rec[0].is_empty() {
                continue;
            }
            rows += 1;
            for (i, col) in columns.iter_mut().enumerate() {
                let v = rec.get(i).unwrap_or("");
                col.push((!is_null_text(v)).then(|| v.to_string()));
            }
        }
        Ok(Table {
            names,
            columns,
            rows,
            from_csv: true,
        })
    }
}

/// Whether a CSV cell means null: empty, or the literal `null`/`NULL` that FOCUS samples
/// and many exporters write (billxfer's readers take it as null too).
fn is_null_text(v: &str) -> bool {
    let t = v.trim();
    t.is_empty() || t.eq_ignore_ascii_case("null")
}

/// Checks a FOCUS file (Parquet or CSV) against the rules listed in the module doc.
pub fn validate_file(path: &Path) -> Result<Vec<Violation>> {
    validate_file_as(path, FocusVersion::V1_2)
}

/// Checks a FOCUS file against a version's rules: 1.2's, and for 1.3 also its
/// mandatory provider columns and its invoice rule (see [`validate_1_3`]).
pub fn validate_file_as(path: &Path, version: FocusVersion) -> Result<Vec<Violation>> {
    let mut all = validate_files(&[path.to_path_buf()], version)?;
    Ok(all.pop().map(|(_, v)| v).unwrap_or_default())
}

/// Checks FOCUS files together: each against its version's rules, and for 1.4
/// the InvoiceDetail and BillingPeriod datasets among them and the joins between
/// a Cost and Usage file and the InvoiceDetail files of its invoices.
pub fn validate_files(
    paths: &[std::path::PathBuf],
    version: FocusVersion,
) -> Result<Vec<(std::path::PathBuf, Vec<Violation>)>> {
    let tables: Vec<Table> = paths.iter().map(|p| load(p)).collect::<Result<_>>()?;
    let details: Vec<&Table> = tables
        .iter()
        .filter(|t| {
            version == FocusVersion::V1_4 && v14::dataset_of(t) == v14::Dataset::InvoiceDetail
        })
        .collect();
    let mut out = Vec::new();
    for (path, t) in paths.iter().zip(&tables) {
        let dataset = if version == FocusVersion::V1_4 {
            v14::dataset_of(t)
        } else {
            v14::Dataset::CostAndUsage
        };
        let violations = match dataset {
            v14::Dataset::InvoiceDetail => v14::invoice_detail(t),
            v14::Dataset::BillingPeriod => v14::billing_period(t),
            v14::Dataset::CostAndUsage => {
                let mut v = validate(t);
                if version.from_1_3() {
                    v.extend(validate_1_3(t));
                }
                if version == FocusVersion::V1_4 {
                    // 1.3's mandatory ProviderName and PublisherName are gone in 1.4.
                    v.retain(|x| !COLUMNS_REMOVED_IN_1_4.contains(&x.column.as_str()));
                    v.extend(v14::cost_and_usage(t));
                    v.extend(v14::cross(t, &details));
                }
                v
            }
        };
        out.push((path.clone(), violations));
    }
    Ok(out)
}

/// FOCUS 1.3's rules an exporter must keep beyond 1.2's:
/// - the 1.3 columns are present (ServiceProviderName and HostProviderName are
///   mandatory; the allocation columns and ContractApplied are checked only when present);
/// - ServiceProviderName, InvoiceIssuerName and the deprecated ProviderName and
///   PublisherName are never null; AllocatedResourceName is null exactly when
///   AllocatedResourceId is;
/// - InvoiceHandling: the charges of each InvoiceId sum to that invoice's total,
///   which an invoice states in its currency's minor unit: so the sum of
///   BilledCost per (InvoiceId, BillingCurrency) must be a whole number of minor
///   units (ISO 4217, `crate::fx`). A file alone cannot show the invoice's total
///   itself; billxfer's tests compare each sum with its invoice.
fn validate_1_3(t: &Table) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut push = |row: usize, column: &str, rule: String| out.push(violation(row, column, rule));
    for (name, _, mandatory) in COLUMNS_ADDED_IN_1_3 {
        if *mandatory && t.col(name).is_none() {
            push(0, name, "mandatory FOCUS 1.3 column is missing".into());
        }
    }
    let get = |name: &str, i: usize| cell(t, name, i);
    let mut invoices: std::collections::BTreeMap<(String, String), (i128, usize)> =
        Default::default();
    for i in 0..t.rows {
        for c in [
            "ServiceProviderName",
            "InvoiceIssuerName",
            "ProviderName",
            "PublisherName",
        ] {
            if t.col(c).is_some() && get(c, i).is_none() {
                push(i + 1, c, "must not be null".into());
            }
        }
        let (id, name) = (
            get("AllocatedResourceId", i),
            get("AllocatedResourceName", i),
        );
        if id.is_some() != name.is_some() {
            push(
                i + 1,
                "AllocatedResourceName",
                "must be null exactly when AllocatedResourceId is null".into(),
            );
        }
        let (Some(id), Some(cost)) = (get("InvoiceId", i), get("BilledCost", i).and_then(num))
        else {
            continue;
        };
        let currency = get("BillingCurrency", i).unwrap_or("").to_string();
        let e = invoices
            .entry((id.to_string(), currency))
            .or_insert((0, i + 1));
        e.0 = e.0.saturating_add(cost);
    }
    for ((id, currency), (sum, first_row)) in invoices {
        let decimals = crate::fx::Currency::parse(&currency).map_or(2, |c| c.decimals());
        let unit = 10i128.pow(10 - decimals);
        if sum % unit != 0 {
            push(
                first_row,
                "BilledCost",
                format!(
                    "the charges of invoice `{id}` sum to {} {currency}, not a whole number of the currency's minor unit: they cannot sum to the invoice's total (FOCUS 1.3 InvoiceHandling)",
                    crate::money::format_fixed_exact(sum)
                ),
            );
        }
    }
    out
}

/// A violation of `rule` at `row` (0: the file) in `column`.
fn violation(row: usize, column: &str, rule: impl Into<String>) -> Violation {
    Violation {
        row: row as u64,
        column: column.to_string(),
        rule: rule.into(),
    }
}

/// A cell's text, `None` when null or blank.
fn cell<'t>(t: &'t Table, name: &str, i: usize) -> Option<&'t str> {
    t.col(name)
        .and_then(|c| c[i].as_deref())
        .filter(|v| !v.trim().is_empty())
}

fn num(v: &str) -> Option<i128> {
    parse_fixed(v.trim()).ok()
}

fn validate(t: &Table) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut push = |row: usize, column: &str, rule: String| {
        out.push(Violation {
            row: row as u64,
            column: column.to_string(),
            rule,
        })
    };
    for (name, _, mandatory) in COLUMNS {
        if *mandatory && t.col(name).is_none() {
            push(0, name, "mandatory FOCUS 1.2 column is missing".into());
        }
    }
    let get = |name: &str, i: usize| -> Option<&str> {
        t.col(name)
            .and_then(|c| c[i].as_deref())
            .filter(|v| !v.is_empty())
    };
    for i in 0..t.rows {
        let row = i + 1;
        let category = get("ChargeCategory", i);
        let class = get("ChargeClass", i);
        let correction = class == Some("Correction");
        for cost in ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost"] {
            if t.col(cost).is_none() {
                continue;
            }
            match get(cost, i) {
                None => push(row, cost, "must not be null".into()),
                Some(v) if num(v).is_none() => {
                    push(row, cost, format!("`{v}` is not a decimal number"))
                }
                _ => {}
            }
        }
        match category {
            None => push(row, "ChargeCategory", "must not be null".into()),
            Some(c) if !["Usage", "Purchase", "Tax", "Credit", "Adjustment"].contains(&c) => push(
                row,
                "ChargeCategory",
                format!("`{c}` is not one of Usage, Purchase, Tax, Credit, Adjustment"),
            ),
            _ => {}
        }
        if let Some(c) = class.filter(|c| *c != "Correction") {
            push(
                row,
                "ChargeClass",
                format!("`{c}` is not allowed: only Correction or null"),
            );
        }
        if let Some(f) = get("ChargeFrequency", i) {
            if !["One-Time", "Recurring", "Usage-Based"].contains(&f) {
                push(
                    row,
                    "ChargeFrequency",
                    format!("`{f}` is not one of One-Time, Recurring, Usage-Based"),
                );
            } else if f == "Usage-Based" && category == Some("Purchase") {
                push(
                    row,
                    "ChargeFrequency",
                    "must not be Usage-Based when ChargeCategory is Purchase".into(),
                );
            }
        } else if t.col("ChargeFrequency").is_some() {
            push(row, "ChargeFrequency", "must not be null".into());
        }
        if let Some(p) = get("PricingCategory", i) {
            if !["Standard", "Dynamic", "Committed", "Other"].contains(&p) {
                push(
                    row,
                    "PricingCategory",
                    format!("`{p}` is not one of Standard, Dynamic, Committed, Other"),
                );
            }
        }
        if let Some(s) = get("ServiceCategory", i) {
            if !SERVICE_CATEGORIES.contains(&s) {
                push(
                    row,
                    "ServiceCategory",
                    format!("`{s}` is not an allowed FOCUS 1.2 service category"),
                );
            }
        } else if t.col("ServiceCategory").is_some() {
            push(row, "ServiceCategory", "must not be null".into());
        }
        let priced = [
            "ListUnitPrice",
            "ContractedUnitPrice",
            "PricingQuantity",
            "PricingCategory",
        ];
        if category == Some("Tax") {
            for p in priced {
                if get(p, i).is_some() {
                    push(row, p, "must be null when ChargeCategory is Tax".into());
                }
            }
        }
        if matches!(category, Some("Usage" | "Purchase")) && !correction {
            for p in priced {
                if t.col(p).is_some() && get(p, i).is_none() {
                    push(
                        row,
                        p,
                        "must not be null on Usage and Purchase rows that are not corrections"
                            .into(),
                    );
                }
            }
        }
        for p in ["ListUnitPrice", "ContractedUnitPrice"] {
            if let Some(v) = get(p, i).and_then(num) {
                if v < 0 {
                    push(row, p, "a unit price must not be negative".into());
                }
            }
        }
        if !correction {
            let q = get("PricingQuantity", i).and_then(num);
            for (cost, price) in [
                ("ListCost", "ListUnitPrice"),
                ("ContractedCost", "ContractedUnitPrice"),
            ] {
                let (Some(p), Some(q), Some(c)) =
                    (get(price, i).and_then(num), q, get(cost, i).and_then(num))
                else {
                    continue;
                };
                let expected = crate::money::mul_fixed(p, q);
                if expected.is_none_or(|e| (e - c).abs() > PRODUCT_TOLERANCE) {
                    push(
                        row,
                        cost,
                        format!(
                            "{cost} {} differs from {price} × PricingQuantity = {}",
                            crate::money::format_fixed_exact(c),
                            expected
                                .map(crate::money::format_fixed_exact)
                                .unwrap_or_else(|| "overflow".into())
                        ),
                    );
                }
            }
        }
        if category != Some("Usage") && get("ConsumedQuantity", i).is_some() {
            push(
                row,
                "ConsumedQuantity",
                "must be null unless ChargeCategory is Usage".into(),
            );
        }
        let commitment = get("CommitmentDiscountId", i).is_some();
        for c in [
            "CommitmentDiscountCategory",
            "CommitmentDiscountName",
            "CommitmentDiscountStatus",
            "CommitmentDiscountType",
        ] {
            if !commitment && get(c, i).is_some() {
                push(
                    row,
                    c,
                    "must be null when CommitmentDiscountId is null".into(),
                );
            }
        }
        if let Some(s) = get("CommitmentDiscountStatus", i) {
            if !["Used", "Unused"].contains(&s) {
                push(
                    row,
                    "CommitmentDiscountStatus",
                    format!("`{s}` is not Used or Unused"),
                );
            }
        } else if commitment && category == Some("Usage") {
            push(
                row,
                "CommitmentDiscountStatus",
                "must not be null on a Usage row with a CommitmentDiscountId".into(),
            );
        }
        if let Some(c) = get("CommitmentDiscountCategory", i) {
            if !["Spend", "Usage"].contains(&c) {
                push(
                    row,
                    "CommitmentDiscountCategory",
                    format!("`{c}` is not Spend or Usage"),
                );
            }
        }
        if t.from_csv {
            for d in [
                "BillingPeriodStart",
                "BillingPeriodEnd",
                "ChargePeriodStart",
                "ChargePeriodEnd",
            ] {
                if let Some(v) = get(d, i) {
                    if !is_focus_datetime(v) {
                        push(row, d, format!("`{v}` is not YYYY-MM-DDTHH:mm:ssZ (UTC)"));
                    }
                }
            }
        }
        for c in ["BillingCurrency", "PricingCurrency"] {
            if let Some(v) = get(c, i) {
                if v.len() != 3 || !v.bytes().all(|b| b.is_ascii_uppercase()) {
                    push(row, c, format!("`{v}` is not an ISO 4217 currency code"));
                }
            }
        }
    }
    out
}

/// `YYYY-MM-DDTHH:mm:ssZ` with valid field ranges.
fn is_focus_datetime(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return false;
    }
    let n = |r: std::ops::Range<usize>| v.get(r).and_then(|s| s.parse::<u32>().ok());
    matches!(
        (n(5..7), n(8..10), n(11..13), n(14..16), n(17..19)),
        (
            Some(1..=12),
            Some(1..=31),
            Some(0..=23),
            Some(0..=59),
            Some(0..=59)
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_literals_are_nulls_in_csv() {
        assert!(is_null_text("NULL"));
        assert!(is_null_text(" null "));
        assert!(is_null_text(""));
        assert!(!is_null_text("Nullable"));
        assert!(!is_null_text("0"));
    }

    fn table(rows: &[&[(&str, &str)]]) -> Table {
        let mut names: Vec<String> = COLUMNS.iter().map(|(n, _, _)| n.to_string()).collect();
        for r in rows {
            for (k, _) in r.iter() {
                if !names.iter().any(|n| n == k) {
                    names.push(k.to_string());
                }
            }
        }
        let columns = names
            .iter()
            .map(|n| {
                rows.iter()
                    .map(|r| r.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_string()))
                    .collect()
            })
            .collect();
        Table {
            names,
            columns,
            rows: rows.len(),
            from_csv: true,
        }
    }

    const GOOD: &[(&str, &str)] = &[
        ("BilledCost", "2.50"),
        ("EffectiveCost", "2.50"),
        ("ListCost", "3.00"),
        ("ListUnitPrice", "1.50"),
        ("ContractedCost", "2.50"),
        ("ContractedUnitPrice", "1.25"),
        ("PricingQuantity", "2"),
        ("PricingCategory", "Standard"),
        ("ChargeCategory", "Usage"),
        ("ChargeFrequency", "Usage-Based"),
        ("ConsumedQuantity", "2"),
        ("ServiceCategory", "Compute"),
        ("BillingCurrency", "USD"),
        ("BillingPeriodStart", "2026-10-01T00:00:00Z"),
        ("ChargePeriodStart", "2026-10-01T00:00:00Z"),
    ];

    fn with(over: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut r: Vec<(&str, &str)> = GOOD
            .iter()
            .filter(|(k, _)| !over.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        r.extend(over.iter().filter(|(_, v)| !v.is_empty()).copied());
        r
    }

    fn broken(over: &[(&'static str, &'static str)]) -> Vec<Violation> {
        validate(&table(&[&with(over)]))
    }

    #[test]
    fn a_correct_row_passes() {
        assert_eq!(broken(&[]), Vec::<Violation>::new());
    }

    #[test]
    fn each_rule_broken_on_purpose_is_reported() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("BilledCost", "")], "BilledCost"),
            (&[("EffectiveCost", "")], "EffectiveCost"),
            (&[("ListCost", "")], "ListCost"),
            (&[("ContractedCost", "")], "ContractedCost"),
            (&[("BilledCost", "1,5")], "BilledCost"),
            (&[("ListCost", "3.10")], "ListCost"),
            (&[("ContractedCost", "2.60")], "ContractedCost"),
            (&[("ChargeCategory", "Fee")], "ChargeCategory"),
            (&[("ChargeCategory", "")], "ChargeCategory"),
            (&[("ChargeClass", "Refund")], "ChargeClass"),
            (&[("ChargeFrequency", "Monthly")], "ChargeFrequency"),
            (
                &[("ChargeCategory", "Purchase"), ("ConsumedQuantity", "")],
                "ChargeFrequency",
            ),
            (&[("PricingCategory", "OnDemand")], "PricingCategory"),
            (&[("ServiceCategory", "Cloud")], "ServiceCategory"),
            (&[("ListUnitPrice", "")], "ListUnitPrice"),
            (&[("PricingQuantity", "")], "PricingQuantity"),
            (
                &[("ListUnitPrice", "-1.5"), ("ListCost", "-3.00")],
                "ListUnitPrice",
            ),
            (&[("ChargeCategory", "Credit")], "ConsumedQuantity"),
            (
                &[("CommitmentDiscountStatus", "Used")],
                "CommitmentDiscountStatus",
            ),
            (
                &[("CommitmentDiscountId", "sp-1")],
                "CommitmentDiscountStatus",
            ),
            (
                &[
                    ("CommitmentDiscountId", "sp-1"),
                    ("CommitmentDiscountStatus", "Used"),
                    ("CommitmentDiscountCategory", "Time"),
                ],
                "CommitmentDiscountCategory",
            ),
            (
                &[("ChargePeriodStart", "2026-10-01 00:00:00")],
                "ChargePeriodStart",
            ),
            (&[("BillingCurrency", "usd")], "BillingCurrency"),
        ];
        for (over, column) in cases {
            let v = broken(over);
            assert!(
                v.iter().any(|x| x.column == *column),
                "{over:?}: expected a violation on {column}, got {v:?}"
            );
        }
        // Tax rows: prices and quantity must be null.
        let tax = with(&[
            ("ChargeCategory", "Tax"),
            ("ChargeFrequency", "Recurring"),
            ("ConsumedQuantity", ""),
        ]);
        let v = validate(&table(&[&tax]));
        for c in [
            "ListUnitPrice",
            "ContractedUnitPrice",
            "PricingQuantity",
            "PricingCategory",
        ] {
            assert!(
                v.iter().any(|x| x.column == c && x.rule.contains("Tax")),
                "{c}: {v:?}"
            );
        }
        // A missing mandatory column.
        let mut t = table(&[GOOD]);
        let i = t
            .names
            .iter()
            .position(|n| n == "InvoiceIssuerName")
            .unwrap();
        t.names.remove(i);
        t.columns.remove(i);
        assert!(validate(&t)
            .iter()
            .any(|x| x.column == "InvoiceIssuerName" && x.row == 0));
    }

    #[test]
    fn corrections_skip_the_product_rule() {
        assert!(broken(&[("ChargeClass", "Correction"), ("ListCost", "9.99")]).is_empty());
    }

    #[test]
    fn every_category_has_its_other_subcategory() {
        for c in SERVICE_CATEGORIES {
            assert_eq!(other_subcategory(c), format!("Other ({c})"));
        }
    }

    #[test]
    fn datetimes_are_checked_for_range() {
        assert!(is_focus_datetime("2023-02-01T23:00:00Z"));
        assert!(!is_focus_datetime("2023-02-01T30:00:00Z"));
        assert!(!is_focus_datetime("2023-02-01T00:00:00"));
    }
}
