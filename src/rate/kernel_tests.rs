//! Tests of the rating kernel (`Rater`), of the below-public check and of SKU key texts.

use super::*;
use crate::money::parse_fixed;
use crate::rules::{Rule, RuleSet, Scope};
use arrow::array::{ArrayRef, UInt64Array};
use std::sync::Arc;

fn d(s: &str) -> i128 {
    parse_fixed(s).unwrap()
}

#[test]
fn below_public_boundary_by_hand() {
    // 1 unit at 1.00: public 1.00, the 0.1% tolerance puts the boundary at 0.999.
    assert!(!billed_below_public(d("1"), d("1"), d("0.999")));
    assert!(billed_below_public(d("1"), d("1"), d("0.9989999999")));
    // 0.5 units at 3e-10: exact 1.5e-10, rounded to 2e-10 (half away from zero), so
    // the boundary is 1.998e-10: 1e-10 is below it, 2e-10 is not.
    assert!(billed_below_public(
        d("0.5"),
        d("0.0000000003"),
        d("0.0000000001")
    ));
    assert!(!billed_below_public(
        d("0.5"),
        d("0.0000000003"),
        d("0.0000000002")
    ));
    // 3 units at 0.3333333334: 1.0000000002, boundary 0.9990000001998.
    assert!(billed_below_public(
        d("3"),
        d("0.3333333334"),
        d("0.9990000001")
    ));
    assert!(!billed_below_public(
        d("3"),
        d("0.3333333334"),
        d("0.9990000002")
    ));
    // A public amount rounding to 0 counts nothing; neither does a negative quantity.
    assert!(!billed_below_public(
        d("0.0000000001"),
        d("0.4"),
        d("0.0000000001")
    ));
    assert!(!billed_below_public(d("-2"), d("1"), d("0.5")));
}

proptest::proptest! {
    #[test]
    fn below_public_fast_path_agrees_with_the_rounded_amount(
        qty in -10_000_000_000_000_000i128..10_000_000_000_000_000_000i128,
        rate in 1i128..100_000_000_000_000i128,
        offset in -3i128..3i128,
        far in proptest::bool::ANY,
    ) {
        // Unblended near the boundary public × 0.999 (where the shortcut must defer), or anywhere.
        let public = crate::money::mul_fixed(qty, rate).unwrap_or(0);
        let u = if far { (qty / 3).abs() + 1 } else { (public * 999 / 1000 + offset).max(1) };
        proptest::prop_assert_eq!(
            billed_below_public(qty, rate, u),
            billed_below_public_exact(qty, rate, u)
        );
    }
}

#[test]
fn decimal_lengths_are_their_digits() {
    for n in [0usize, 7, 10, 99, 100, 12_345, usize::MAX] {
        let mut buf = String::from("x");
        push_decimal(&mut buf, n);
        assert_eq!(buf, format!("x{n}"));
    }
}

#[test]
fn sku_texts_tell_apart_keys_that_a_separator_would_merge() {
    let key = |usage_type, operation| SkuKey {
        service: "AmazonEC2",
        usage_type,
        operation,
        region: "us-east-1",
        billing_entity: "AWS",
    };
    // Joined with a separator, both would read `AmazonEC2|a|b||us-east-1|AWS`.
    let (one, two) = (key("a\u{1f}b", ""), key("a", "b\u{1f}"));
    let (mut a, mut b) = (String::new(), String::new());
    let parts = write_sku_text(&mut a, &one);
    write_sku_text(&mut b, &two);
    assert_ne!(a, b);
    let entry = SkuEntry {
        text: Arc::from(a.as_str()),
        parts,
    };
    let back = entry.key();
    assert_eq!(
        (
            back.service.as_str(),
            back.usage_type.as_str(),
            back.operation.as_str()
        ),
        ("AmazonEC2", "a\u{1f}b", "")
    );
    assert_eq!(
        (back.region.as_str(), back.billing_entity.as_str()),
        ("us-east-1", "AWS")
    );
}

proptest::proptest! {
    /// Where the 64-bit path decides a row, it decides as the checked 128-bit path
    /// (with its exact fallback at the boundary) does; amounts of every size, and
    /// unblended costs at and around usage × rate.
    #[test]
    fn the_small_below_public_path_decides_as_the_checked_one(
        qty in proptest::prop_oneof![proptest::num::i64::ANY, -(1i64 << 40)..1i64 << 40],
        rate in proptest::prop_oneof![proptest::num::i64::ANY, 0i64..1i64 << 36],
        unblended in proptest::prop_oneof![proptest::num::i64::ANY, -(1i64 << 50)..1i64 << 50],
        near in proptest::option::of(-2_000i64..2_000),
    ) {
        let (qty, rate) = (qty as i128, rate as i128);
        // Near: the unblended cost within a few units of the 0.1% boundary itself.
        let unblended = match (near, mul_fixed(qty, rate)) {
            (Some(d), Some(p)) => p * (1000 - BELOW_PUBLIC_TOLERANCE_PER_MILLE) / 1000 + d as i128,
            _ => unblended as i128,
        };
        if let Some(below) = billed_below_public_small(qty, rate, unblended) {
            proptest::prop_assert_eq!(below, billed_below_public_wide(qty, rate, unblended));
        }
    }
}

/// (account, type, product, usage_type, usage, rate, unblended, net)
type Row<'a> = (
    &'a str,
    LineType,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
);

fn batch(rows: &[Row<'_>]) -> RecordBatch {
    let s = |f: &dyn Fn(&Row<'_>) -> String| -> ArrayRef {
        let v: Vec<String> = rows.iter().map(f).collect();
        Arc::new(
            v.iter()
                .map(|x| x.as_str())
                .collect::<DictionaryArray<Int32Type>>(),
        )
    };
    let dm = |v: Vec<Option<i128>>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(38, 10)
                .unwrap(),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(
            (1..=rows.len() as u64).collect::<Vec<_>>(),
        )),
        s(&|r| r.0.to_string()),
        Arc::new(UInt8Array::from(
            rows.iter().map(|r| r.1 as u8).collect::<Vec<_>>(),
        )),
        s(&|r| r.2.to_string()),
        s(&|r| r.3.to_string()),
        s(&|_| "op".to_string()),
        s(&|_| "us-east-1".to_string()),
        s(&|_| "AWS".to_string()),
        dm(rows.iter().map(|r| Some(d(r.4))).collect()),
        dm(rows.iter().map(|r| r.5.map(d)).collect()),
        dm(vec![None; rows.len()]),
        dm(rows.iter().map(|r| Some(d(r.6))).collect()),
        dm(rows.iter().map(|r| r.7.map(d)).collect()),
        dm(rows.iter().map(|r| Some(d(r.6))).collect()),
    ];
    RecordBatch::try_new(crate::normalize::normalized_schema(), columns).unwrap()
}

fn rules(list: Vec<Rule>) -> Pricing {
    Pricing::Rules(Arc::new(RuleSet::new(list).unwrap()))
}

#[test]
fn t_d9_margin_basic_versus_passthrough() {
    // OD-equivalent 1000, EDP 10% -> billable 900.
    let rows = [
        (
            "111111111111",
            LineType::Usage,
            "AmazonEC2",
            "Box",
            "1000",
            Some("1"),
            "1000",
            None,
        ),
        (
            "111111111111",
            LineType::EdpDiscount,
            "AmazonEC2",
            "Box",
            "0",
            None,
            "-100",
            None,
        ),
    ];
    let mut basic = Rater::new(Pricing::Billed, rules(vec![]));
    basic.rate(&batch(&rows)).unwrap();
    let mut l = basic.finish();
    l.finalize(&Pricing::Billed, &rules(vec![])).unwrap();
    assert_eq!(l.total(Track::Actual).unwrap(), d("900"));
    assert_eq!(l.total(Track::Proforma).unwrap(), d("1000"));
    let mut pass = Rater::new(Pricing::Billed, Pricing::SameAsActual);
    pass.rate(&batch(&rows)).unwrap();
    let l = pass.finish();
    assert_eq!(
        l.total(Track::Proforma).unwrap() - l.total(Track::Actual).unwrap(),
        0
    );
}

#[test]
fn t1_passthrough_shows_the_invoice() {
    let rows = [(
        "111111111111",
        LineType::Usage,
        "AmazonEC2",
        "Box",
        "100",
        Some("1"),
        "98",
        None,
    )];
    let mut r = Rater::new(Pricing::Billed, Pricing::SameAsActual);
    let out = r.rate(&batch(&rows)).unwrap();
    assert_eq!(out.actual, vec![d("98")]);
    assert_eq!(out.proforma, vec![d("98")]);
}

#[test]
fn net_unblended_is_the_billed_cost_when_present() {
    let rows = [(
        "111111111111",
        LineType::Usage,
        "AmazonEC2",
        "Box",
        "10",
        Some("1"),
        "10",
        Some("9.5"),
    )];
    let mut r = Rater::new(Pricing::Billed, rules(vec![]));
    let out = r.rate(&batch(&rows)).unwrap();
    assert_eq!(out.actual, vec![d("9.5")]);
    assert_eq!(out.proforma, vec![d("10")]);
}

#[test]
fn t_d8_free_tier_off_prices_the_free_units_at_the_first_paid_rate() {
    // First 1 GB free (rate 0), then 9 GB at 0.09.
    let rows = [
        (
            "111111111111",
            LineType::Usage,
            "AmazonS3",
            "DataTransfer-Out-Bytes",
            "1",
            Some("0"),
            "0",
            None,
        ),
        (
            "111111111111",
            LineType::Usage,
            "AmazonS3",
            "DataTransfer-Out-Bytes",
            "9",
            Some("0.09"),
            "0.81",
            None,
        ),
    ];
    let on = rules(vec![]);
    let off = rules(vec![Rule {
        id: "ft".into(),
        scope: Scope::Global,
        action: None,
        free_tier: Some(false),
    }]);
    for (pricing, expected) in [(on, "0.81"), (off, "0.90")] {
        let mut r = Rater::new(Pricing::Billed, pricing.clone());
        r.rate(&batch(&rows)).unwrap();
        let mut l = r.finish();
        l.finalize(&Pricing::Billed, &pricing).unwrap();
        assert_eq!(l.total(Track::Proforma).unwrap(), d(expected));
    }
}

#[test]
fn t_d8_free_tier_off_with_cur_style_free_lines() {
    // Real CUR writes the paid public rate on free-tier lines and a cost of 0.
    let rows = [
        (
            "111111111111",
            LineType::Usage,
            "AmazonS3",
            "DataTransfer-Out-Bytes",
            "1",
            Some("0.09"),
            "0",
            None,
        ),
        (
            "111111111111",
            LineType::Usage,
            "AmazonS3",
            "DataTransfer-Out-Bytes",
            "9",
            Some("0.09"),
            "0.81",
            None,
        ),
    ];
    let off = rules(vec![Rule {
        id: "ft".into(),
        scope: Scope::Global,
        action: None,
        free_tier: Some(false),
    }]);
    for (pricing, expected) in [(rules(vec![]), "0.81"), (off, "0.90")] {
        let mut r = Rater::new(Pricing::Billed, pricing.clone());
        let out = r.rate(&batch(&rows)).unwrap();
        assert_eq!(out.proforma.iter().sum::<i128>(), d(expected));
    }
}

#[test]
fn rating_sums_only_leaves_the_ledger_that_rating_rows_leaves() {
    use crate::rules::{SkuMatch, Tier, TierTable};
    let table = TierTable::new(vec![
        Tier {
            from: 0,
            rate: d("0.08"),
        },
        Tier {
            from: d("20"),
            rate: d("0.06"),
        },
    ])
    .unwrap();
    let s3 = Scope::Sku(SkuMatch {
        service: "AmazonS3".into(),
        usage_type: Some("TimedStorage".into()),
        operation: None,
        region: None,
    });
    let pricing = rules(vec![
        Rule {
            id: "tiers".into(),
            scope: s3,
            action: Some(Action::Custom(Arc::new(table))),
            free_tier: None,
        },
        Rule {
            id: "up".into(),
            scope: Scope::Global,
            action: Some(Action::Markup(Percent(1000))),
            free_tier: None,
        },
        Rule {
            id: "no-free-tier".into(),
            scope: Scope::Global,
            action: None,
            free_tier: Some(false),
        },
    ]);
    let rows = [
        (
            "111111111111",
            LineType::Usage,
            "AmazonS3",
            "TimedStorage",
            "25",
            Some("0.09"),
            "2.25",
            None,
        ),
        (
            "111111111111",
            LineType::Usage,
            "AmazonEC2",
            "BoxUsage",
            "2",
            Some("0.5"),
            "0",
            None,
        ),
        (
            "222222222222",
            LineType::Usage,
            "AmazonEC2",
            "BoxUsage",
            "3",
            Some("0.5"),
            "1.5",
            None,
        ),
        (
            "222222222222",
            LineType::Tax,
            "AmazonEC2",
            "Tax",
            "0",
            None,
            "0.3",
            None,
        ),
    ];
    let ledger = |sums_only: bool| {
        let mut r = Rater::new(Pricing::Billed, pricing.clone());
        if sums_only {
            r.rate_sums(&batch(&rows)).unwrap();
        } else {
            let out = r.rate(&batch(&rows)).unwrap();
            assert_eq!(out.proforma.len(), rows.len());
        }
        let mut l = r.finish();
        l.finalize(&Pricing::Billed, &pricing).unwrap();
        format!("{l:?}")
    };
    assert_eq!(ledger(true), ledger(false));
    // And the figures are the hand-computed ones: 25 units tiered = 20 x 0.08 + 5 x 0.06
    // = 1.90; EC2 with the free tier off: 5 x 0.5 = 2.50, marked up 10% = 2.75.
    let mut r = Rater::new(Pricing::Billed, pricing.clone());
    r.rate_sums(&batch(&rows)).unwrap();
    let mut l = r.finish();
    l.finalize(&Pricing::Billed, &pricing).unwrap();
    assert_eq!(l.total(Track::Proforma).unwrap(), d("4.65"));
    assert_eq!(l.total(Track::Actual).unwrap(), d("4.05"));
}

#[test]
fn custom_tiers_accumulate_over_the_org_month_across_batches_and_accounts() {
    use crate::rules::{SkuMatch, Tier, TierTable};
    let table = TierTable::new(vec![
        Tier {
            from: 0,
            rate: d("0.08"),
        },
        Tier {
            from: d("20"),
            rate: d("0.06"),
        },
    ])
    .unwrap();
    let pricing = rules(vec![Rule {
        id: "s3".into(),
        scope: Scope::Sku(SkuMatch {
            service: "AmazonS3".into(),
            usage_type: Some("TimedStorage".into()),
            operation: None,
            region: None,
        }),
        action: Some(Action::Custom(Arc::new(table))),
        free_tier: None,
    }]);
    let mut r = Rater::new(Pricing::Billed, pricing.clone());
    r.rate(&batch(&[(
        "111111111111",
        LineType::Usage,
        "AmazonS3",
        "TimedStorage",
        "15",
        Some("0.09"),
        "1.35",
        None,
    )]))
    .unwrap();
    r.rate(&batch(&[(
        "222222222222",
        LineType::Usage,
        "AmazonS3",
        "TimedStorage",
        "15",
        Some("0.09"),
        "1.35",
        None,
    )]))
    .unwrap();
    let mut l = r.finish();
    l.finalize(&Pricing::Billed, &pricing).unwrap();
    // 30 units: 20 x 0.08 + 10 x 0.06 = 2.20, split 1.10 / 1.10.
    assert_eq!(l.total(Track::Proforma).unwrap(), d("2.2"));
    let shares: Vec<i128> = l.lines.values().map(|s| s.proforma).collect();
    assert_eq!(shares, vec![d("1.1"), d("1.1")]);
}

#[test]
fn non_public_discounts_credits_tax_and_support_stay_off_the_pro_forma() {
    let rows = [
        (
            "111111111111",
            LineType::Usage,
            "AmazonEC2",
            "Box",
            "10",
            Some("1"),
            "10",
            None,
        ),
        (
            "111111111111",
            LineType::EdpDiscount,
            "AmazonEC2",
            "Box",
            "0",
            None,
            "-1",
            None,
        ),
        (
            "111111111111",
            LineType::SppDiscount,
            "AmazonEC2",
            "Box",
            "0",
            None,
            "-0.5",
            None,
        ),
        (
            "111111111111",
            LineType::Credit,
            "AmazonEC2",
            "Box",
            "0",
            None,
            "-2",
            None,
        ),
        (
            "111111111111",
            LineType::Tax,
            "AmazonEC2",
            "Box",
            "1",
            None,
            "0.7",
            None,
        ),
        (
            "111111111111",
            LineType::Usage,
            "AWSSupportBusiness",
            "Support",
            "1",
            Some("100"),
            "100",
            None,
        ),
        (
            "111111111111",
            LineType::SavingsPlanNegation,
            "AmazonEC2",
            "Box",
            "0",
            None,
            "-3",
            None,
        ),
    ];
    let mut r = Rater::new(
        Pricing::Billed,
        rules(vec![Rule {
            id: "g".into(),
            scope: Scope::Global,
            action: Some(Action::Markup(Percent(1000))),
            free_tier: None,
        }]),
    );
    let out = r.rate(&batch(&rows)).unwrap();
    assert_eq!(out.proforma, vec![d("11"), 0, 0, 0, 0, 0, d("-3")]);
    // 10 - 1 - 0.5 - 2 + 0.7 + 100 - 3
    assert_eq!(out.actual.iter().sum::<i128>(), d("104.2"));
}

#[test]
fn common_rows_take_their_rule_on_the_unblended_cost_beside_rows_that_do_not() {
    use crate::money::Percent;
    use crate::rules::tests::{rule, sku};
    use crate::rules::Action;
    let row = |product, usage_type, usage, rate, unblended, net| {
        let r: Row<'_> = (
            "111111111111",
            LineType::Usage,
            product,
            usage_type,
            usage,
            rate,
            unblended,
            net,
        );
        r
    };
    let rows = [
        // Service markup 10%, billed at the net cost: 0.98 × 1.10.
        row("AmazonEC2", "Box", "10", Some("0.1"), "0.98", Some("0.9")),
        // SKU discount 15.5% over the service markup: 100 × 0.845.
        row("AmazonS3", "Storage", "1000", Some("0.1"), "100", None),
        // 3 units × 0.845 = 2.535 units, half away from zero: 3.
        row("AmazonS3", "Storage", "1", None, "0.0000000003", None),
        // No rule: the unblended cost unchanged.
        row("AWSLambda", "Request", "1", Some("3.333"), "3.333", None),
        // Free tier off for the service: the general path, at usage × paid rate (2 × 0.5).
        row("AmazonSNS", "Publish", "2", Some("0.5"), "0", None),
        // A tax line: as delivered on the actual track, off the pro forma.
        (
            "111111111111",
            LineType::Tax,
            "AmazonEC2",
            "Tax",
            "0",
            None,
            "7",
            None,
        ),
    ];
    let service = |name: &str| Scope::Service(name.into());
    let pricing = rules(vec![
        rule("ec2", service("AmazonEC2"), Action::Markup(Percent(1_000))),
        rule("s3", service("AmazonS3"), Action::Markup(Percent(2_000))),
        rule(
            "storage",
            sku("AmazonS3", Some("Storage"), None),
            Action::Discount(Percent(1_550)),
        ),
        Rule {
            id: "no-free".into(),
            scope: service("AmazonSNS"),
            action: None,
            free_tier: Some(false),
        },
    ]);
    let mut r = Rater::new(Pricing::Billed, pricing);
    let out = r.rate(&batch(&rows)).unwrap();
    let expected = ["1.078", "84.5", "0.0000000003", "3.333", "1", "0"];
    assert_eq!(out.proforma, expected.map(d).to_vec());
    let actual = ["0.9", "100", "0.0000000003", "3.333", "0", "7"];
    assert_eq!(out.actual, actual.map(d).to_vec());
    assert_eq!(out.deferred, vec![0; 6]);
}
