//! Criterion benches for the kernels: rule lookup, rating a batch, turning a
//! ledger into invoice lines, and the f64 parse boundary.
//!
//! Run with `cargo bench --bench kernels`. Whole-run figures (against the
//! decode floor and DuckDB) come from `benches/scale.sh`.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, DictionaryArray, UInt64Array, UInt8Array};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use billxfer::config::{CliCharge, CliKind, CustomLineItem, Org, Plan, PlanKind, Transfer};
use billxfer::generate::{catalog, zipf_cumulative, Rng};
use billxfer::invoice::{actual_invoice, customer_invoice};
use billxfer::money::{fixed_from_f64, fixed_from_f64_text, mul_fixed, Percent, Rounding, ONE};
use billxfer::normalize::normalized_schema;
use billxfer::rate::{Pricing, Rater};
use billxfer::rules::{Action, Rule, RuleSet, Scope, SkuKey, SkuMatch, Tier, TierTable};
use billxfer::types::LineType;
use billxfer::types::{AccountId, BillingPeriod, OrgId};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const ROWS: usize = 65_536;

/// A plan like the generated ones: global, per-service, marketplace, ~300 SKU rules, one tier table.
fn plan() -> RuleSet {
    let cat = catalog();
    let mut rules = vec![
        Rule {
            id: "g".into(),
            scope: Scope::Global,
            action: Some(Action::Markup(Percent(1250))),
            free_tier: None,
        },
        Rule {
            id: "ec2".into(),
            scope: Scope::Service("AmazonEC2".into()),
            action: Some(Action::Markup(Percent(500))),
            free_tier: None,
        },
        Rule {
            id: "s3".into(),
            scope: Scope::Service("AmazonS3".into()),
            action: Some(Action::Discount(Percent(300))),
            free_tier: None,
        },
        Rule {
            id: "mp".into(),
            scope: Scope::BillingEntity("AWS Marketplace".into()),
            action: Some(Action::Markup(Percent(0))),
            free_tier: None,
        },
    ];
    for (i, s) in cat.iter().enumerate().step_by(2) {
        if s.usage_type == "USE1-TimedStorage-ByteHrs" {
            continue;
        }
        rules.push(Rule {
            id: format!("sku-{i}"),
            scope: Scope::Sku(SkuMatch {
                service: s.product.into(),
                usage_type: Some(s.usage_type.clone()),
                operation: Some(s.operation.into()),
                region: None,
            }),
            action: Some(Action::Markup(Percent((i as i64 * 37) % 3000))),
            free_tier: None,
        });
    }
    let tiers = TierTable::new(vec![
        Tier {
            from: 0,
            rate: 240_000_000,
        },
        Tier {
            from: 5000 * ONE,
            rate: 210_000_000,
        },
    ])
    .unwrap();
    rules.push(Rule {
        id: "tiers".into(),
        scope: Scope::Sku(SkuMatch {
            service: "AmazonS3".into(),
            usage_type: Some("USE1-TimedStorage-ByteHrs".into()),
            operation: None,
            region: None,
        }),
        action: Some(Action::Custom(Arc::new(tiers))),
        free_tier: None,
    });
    RuleSet::new(rules).unwrap()
}

/// A normalized batch with the generator's mix of services, accounts and line types.
fn batch(rows: usize, accounts: usize) -> RecordBatch {
    let cat = catalog();
    let sku_cum = zipf_cumulative(cat.len(), 0.9);
    let acc_cum = zipf_cumulative(accounts, 1.2);
    let mut rng = Rng::new(1, 2);
    let (mut acct, mut lt, mut sku, mut usage, mut rate, mut cost) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rows {
        let s = rng.pick(&sku_cum);
        let a = rng.pick(&acc_cum);
        let t = match rng.below(100) {
            0..=3 => LineType::SavingsPlanCoveredUsage,
            4..=6 => LineType::DiscountedUsage,
            7 => LineType::Tax,
            _ => LineType::Usage,
        };
        let u = cat[s].usage;
        acct.push(format!("{:012}", 100_000_000_000u64 + a as u64));
        lt.push(t as u8);
        sku.push(s);
        usage.push(u);
        rate.push(Some(cat[s].rate));
        cost.push(Some(mul_fixed(u, cat[s].rate).unwrap()));
    }
    let dict = |v: Vec<&str>| -> ArrayRef {
        Arc::new(v.into_iter().collect::<DictionaryArray<Int32Type>>())
    };
    let dec = |v: Vec<Option<i128>>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(38, 10)
                .unwrap(),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from((1..=rows as u64).collect::<Vec<_>>())),
        dict(acct.iter().map(String::as_str).collect()),
        Arc::new(UInt8Array::from(lt)),
        dict(sku.iter().map(|&s| cat[s].product).collect()),
        dict(sku.iter().map(|&s| cat[s].usage_type.as_str()).collect()),
        dict(sku.iter().map(|&s| cat[s].operation).collect()),
        dict(sku.iter().map(|&s| cat[s].region).collect()),
        dict(sku.iter().map(|&s| cat[s].entity).collect()),
        dec(usage.into_iter().map(Some).collect()),
        dec(rate),
        dec(vec![None; rows]),
        dec(cost.clone()),
        dec(vec![None; rows]),
        dec(cost.into_iter().map(|c| Some(c.unwrap_or(0))).collect()),
    ];
    RecordBatch::try_new(normalized_schema(), columns).unwrap()
}

fn bench_rules(c: &mut Criterion) {
    let set = plan();
    let cat = catalog();
    let keys: Vec<SkuKey<'_>> = cat
        .iter()
        .map(|s| SkuKey {
            service: s.product,
            usage_type: &s.usage_type,
            operation: s.operation,
            region: s.region,
            billing_entity: s.entity,
        })
        .collect();
    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("resolve_catalog", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(set.resolve(black_box(k)));
            }
        })
    });
    g.finish();
}

fn bench_rate(c: &mut Criterion) {
    let set = Arc::new(plan());
    let mut g = c.benchmark_group("rate");
    g.throughput(Throughput::Elements(ROWS as u64));
    for accounts in [5usize, 1000] {
        let b64 = batch(ROWS, accounts);
        g.bench_function(format!("batch_64k_{accounts}_accounts"), |b| {
            b.iter_batched(
                || Rater::new(Pricing::Billed, Pricing::Rules(set.clone())),
                |mut r| {
                    black_box(r.rate(&b64).unwrap());
                    r
                },
                BatchSize::LargeInput,
            )
        });
        // Invoices only: the line sums without per-row amounts (`billxfer run --exports none`).
        g.bench_function(format!("sums_64k_{accounts}_accounts"), |b| {
            b.iter_batched(
                || Rater::new(Pricing::Billed, Pricing::Rules(set.clone())),
                |mut r| {
                    r.rate_sums(&b64).unwrap();
                    r
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bench_aggregate(c: &mut Criterion) {
    // A month of one org with 1,000 accounts: ledger -> finalize -> invoices.
    let set = Arc::new(plan());
    let b = batch(ROWS, 1000);
    let mut rater = Rater::new(Pricing::Billed, Pricing::Rules(set.clone()));
    rater.rate(&b).unwrap();
    let ledger = rater.finish();
    let period = BillingPeriod::new(2026, 10).unwrap();
    let org = Org {
        id: OrgId::parse("bench").unwrap(),
        name: "Bench".into(),
        management_account: AccountId::parse("100000000000").unwrap(),
        accounts: Default::default(),
        files: vec![],
        plan: Arc::new(Plan {
            id: "p".into(),
            description: String::new(),
            kind: PlanKind::Rated(set.clone()),
            base: Default::default(),
        }),
        transfer: Transfer {
            start: period,
            end: None,
            source_payer: false,
        },
        level: billxfer::config::Level::Direct,
        currency: billxfer::fx::Currency::USD,
        custom_line_items: vec![CustomLineItem {
            id: "pct".into(),
            description: "pct".into(),
            kind: CliKind::Fee,
            charge: CliCharge::Percentage {
                percent: Percent(300),
                include_org_total: true,
                include_items: vec![],
                exclude_savings_plan_negation: true,
                service: None,
            },
            account: AccountId::parse("100000000000").unwrap(),
            start: period,
            end: None,
            presentation_service: "AWSBillingConductor".into(),
        }],
    };
    let mut g = c.benchmark_group("aggregate");
    g.throughput(Throughput::Elements(ledger.lines.len() as u64));
    g.bench_function(
        format!("invoices_from_{}_line_keys", ledger.lines.len()),
        |bch| {
            bch.iter_batched(
                || ledger.clone(),
                |mut l| {
                    l.finalize(&Pricing::Billed, &Pricing::Rules(set.clone()))
                        .unwrap();
                    black_box(actual_invoice(&l, Rounding::HalfAwayFromZero).unwrap());
                    black_box(
                        customer_invoice(&l, &org, period, Rounding::HalfAwayFromZero, false)
                            .unwrap(),
                    );
                },
                BatchSize::LargeInput,
            )
        },
    );
    g.finish();
}

fn bench_money(c: &mut Criterion) {
    let mut rng = Rng::new(3, 4);
    let values: Vec<f64> = (0..ROWS)
        .map(|_| (rng.below(10_000_000_000) as f64) / 1e6 * 0.0000166667)
        .collect();
    let mut g = c.benchmark_group("f64_boundary");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("fixed_from_f64", |b| {
        b.iter(|| {
            values
                .iter()
                .map(|&v| fixed_from_f64(black_box(v)).unwrap_or(0))
                .sum::<i128>()
        })
    });
    g.bench_function("shortest_text_then_parse", |b| {
        b.iter(|| {
            values
                .iter()
                .map(|&v| fixed_from_f64_text(black_box(v)).unwrap_or(0))
                .sum::<i128>()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_rules,
    bench_rate,
    bench_aggregate,
    bench_money
);
criterion_main!(benches);
