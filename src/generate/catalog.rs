//! The generator's SKU catalog: real product codes, usage types, operations,
//! regions and public rates, most popular first.

/// One SKU of the catalog.
#[derive(Debug, Clone)]
pub struct Sku {
    /// Product code.
    pub product: &'static str,
    /// Usage type (with region prefix).
    pub usage_type: String,
    /// Operation.
    pub operation: &'static str,
    /// Region code.
    pub region: &'static str,
    /// Pricing unit.
    pub unit: &'static str,
    /// Public rate, internal scale.
    pub rate: i128,
    /// Typical usage per line, internal scale.
    pub usage: i128,
    /// Billing entity.
    pub entity: &'static str,
    /// Line description.
    pub description: String,
    /// Whether Savings Plans / RIs can cover it.
    pub commitment: bool,
}

const REGIONS: &[(&str, &str)] = &[
    ("USE1", "us-east-1"),
    ("USW2", "us-west-2"),
    ("EUC1", "eu-central-1"),
    ("EU", "eu-west-1"),
    ("APN1", "ap-northeast-1"),
    ("USE2", "us-east-2"),
    ("APS2", "ap-southeast-2"),
    ("CAN1", "ca-central-1"),
];

/// Services of the catalogue, most used first (popularity order and per-service plan rules).
pub(super) const SERVICES: [&str; 9] = [
    "AmazonEC2",
    "AmazonS3",
    "AmazonRDS",
    "AWSLambda",
    "AmazonCloudWatch",
    "AWSELB",
    "AmazonDynamoDB",
    "awskms",
    "AWSQueueService",
];

const INSTANCES: &[(&str, &str)] = &[
    ("t3.micro", "0.0104"),
    ("t3.small", "0.0208"),
    ("t3.medium", "0.0416"),
    ("t3.large", "0.0832"),
    ("m5.large", "0.096"),
    ("m5.xlarge", "0.192"),
    ("m5.2xlarge", "0.384"),
    ("c5.large", "0.085"),
    ("c5.xlarge", "0.17"),
    ("c5.2xlarge", "0.34"),
    ("r5.large", "0.126"),
    ("r5.xlarge", "0.252"),
    ("m6g.large", "0.077"),
    ("c6g.xlarge", "0.136"),
    ("r6g.2xlarge", "0.4032"),
    ("m7i.large", "0.1008"),
    ("g4dn.xlarge", "0.526"),
    ("i3.large", "0.156"),
];

const DB_INSTANCES: &[(&str, &str)] = &[
    ("db.t3.medium", "0.068"),
    ("db.m5.large", "0.171"),
    ("db.r5.large", "0.25"),
    ("db.r6g.xlarge", "0.43"),
];

fn fixed(s: &str) -> i128 {
    crate::money::parse_fixed(s).unwrap_or(0)
}

/// The SKU catalog with Zipf-like popularity (most popular first).
pub fn catalog() -> Vec<Sku> {
    let mut v = Vec::new();
    let sku = |product,
               usage_type: String,
               operation,
               region,
               unit,
               rate: &str,
               usage: &str,
               description: String,
               commitment| Sku {
        product,
        usage_type,
        operation,
        region,
        unit,
        rate: fixed(rate),
        usage: fixed(usage),
        entity: "AWS",
        description,
        commitment,
    };
    for (prefix, region) in REGIONS {
        for (itype, rate) in INSTANCES {
            v.push(sku(
                "AmazonEC2",
                format!("{prefix}-BoxUsage:{itype}"),
                "RunInstances",
                region,
                "Hrs",
                rate,
                "1",
                format!("${rate} per On Demand Linux {itype} Instance Hour"),
                true,
            ));
        }
        v.push(sku(
            "AmazonS3",
            format!("{prefix}-TimedStorage-ByteHrs"),
            "StandardStorage",
            region,
            "GB-Mo",
            "0.023",
            "0.35",
            "$0.023 per GB - first 50 TB / month of storage used".into(),
            false,
        ));
        v.push(sku(
            "AmazonS3",
            format!("{prefix}-Requests-Tier1"),
            "PutObject",
            region,
            "Requests",
            "0.000005",
            "1200",
            "$0.005 per 1,000 PUT, COPY, POST, or LIST requests".into(),
            false,
        ));
        v.push(sku(
            "AmazonS3",
            format!("{prefix}-Requests-Tier2"),
            "GetObject",
            region,
            "Requests",
            "0.0000004",
            "9000",
            "$0.004 per 10,000 GET and all other requests".into(),
            false,
        ));
        v.push(sku(
            "AmazonS3",
            format!("{prefix}-DataTransfer-Out-Bytes"),
            "GetObject",
            region,
            "GB",
            "0.09",
            "0.8",
            "$0.090 per GB - first 10 TB / month data transfer out".into(),
            false,
        ));
        v.push(sku(
            "AmazonEC2",
            format!("{prefix}-EBS:VolumeUsage.gp3"),
            "CreateVolume-Gp3",
            region,
            "GB-Mo",
            "0.08",
            "0.14",
            "$0.08 per GB-month of General Purpose (gp3) provisioned storage".into(),
            false,
        ));
        v.push(sku(
            "AmazonEC2",
            format!("{prefix}-NatGateway-Hours"),
            "NatGateway",
            region,
            "Hrs",
            "0.045",
            "1",
            "$0.045 per NAT Gateway Hour".into(),
            false,
        ));
        v.push(sku(
            "AWSLambda",
            format!("{prefix}-Request"),
            "Invoke",
            region,
            "Requests",
            "0.0000002",
            "25000",
            "AWS Lambda - Total Requests".into(),
            true,
        ));
        v.push(sku(
            "AWSLambda",
            format!("{prefix}-Lambda-GB-Second"),
            "Invoke",
            region,
            "Lambda-GB-Second",
            "0.0000166667",
            "3600",
            "AWS Lambda - Total Compute".into(),
            true,
        ));
        for (db, rate) in DB_INSTANCES {
            v.push(sku(
                "AmazonRDS",
                format!("{prefix}-InstanceUsage:{db}"),
                "CreateDBInstance:0002",
                region,
                "Hrs",
                rate,
                "1",
                format!("${rate} per RDS {db} instance hour (or partial hour) running MySQL"),
                true,
            ));
        }
        v.push(sku(
            "AmazonDynamoDB",
            format!("{prefix}-ReadRequestUnits"),
            "GetItem",
            region,
            "ReadRequestUnits",
            "0.00000025",
            "40000",
            "$0.25 per million read request units".into(),
            false,
        ));
        v.push(sku(
            "AmazonCloudWatch",
            format!("{prefix}-CW:MetricMonitorUsage"),
            "MetricStorage",
            region,
            "Metrics",
            "0.3",
            "0.0014",
            "$0.30 per metric-month - first 10,000 metrics".into(),
            false,
        ));
        v.push(sku(
            "AWSELB",
            format!("{prefix}-LoadBalancerUsage"),
            "LoadBalancing:Application",
            region,
            "Hrs",
            "0.0225",
            "1",
            "$0.0225 per Application LoadBalancer-hour".into(),
            false,
        ));
        v.push(sku(
            "awskms",
            format!("{prefix}-KMS-Requests"),
            "Decrypt",
            region,
            "Requests",
            "0.000003",
            "800",
            "$0.03 per 10,000 requests".into(),
            false,
        ));
        v.push(sku(
            "AWSQueueService",
            format!("{prefix}-Requests-Tier1"),
            "ReceiveMessage",
            region,
            "Requests",
            "0.0000004",
            "5000",
            "$0.40 per million Amazon SQS standard requests".into(),
            false,
        ));
    }
    let mut mp = sku(
        "prod-7xk2mplc4",
        "Units".into(),
        "Subscribe",
        "",
        "Units",
        "0.25",
        "1",
        "Partner analytics SaaS (AWS Marketplace), per unit".into(),
        false,
    );
    mp.entity = "AWS Marketplace";
    v.push(mp);
    // Popularity: interleave so that EC2 in us-east-1 leads, as in real bills.
    v.sort_by_key(|s| {
        let region_rank = REGIONS
            .iter()
            .position(|(_, r)| *r == s.region)
            .unwrap_or(0);
        let product_rank = SERVICES.iter().position(|p| *p == s.product).unwrap_or(9);
        (region_rank, product_rank)
    });
    v
}
