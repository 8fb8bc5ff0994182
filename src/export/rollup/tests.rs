//! Roll-up tests: sums, order, nulls, merging, refusals.

use super::*;
use arrow::array::{StringArray, TimestampMillisecondArray};

const ONE: i128 = 10_000_000_000;
const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;

/// 2026-10-01T00:00:00Z and 2026-11-01T00:00:00Z in milliseconds.
fn oct() -> i64 {
    crate::types::BillingPeriod::parse("2026-10")
        .unwrap()
        .start_micros()
        / 1000
}

fn nov() -> i64 {
    oct() + 31 * DAY
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn dec_type() -> DataType {
    DataType::Decimal128(38, 10)
}

/// A FOCUS-like schema: two metrics, the four dates, a decimal key, a line-only id, a text key.
fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("BilledCost", dec_type(), true),
        Field::new("BillingPeriodEnd", ts(), true),
        Field::new("BillingPeriodStart", ts(), true),
        Field::new("ChargePeriodEnd", ts(), true),
        Field::new("ChargePeriodStart", ts(), true),
        Field::new("ConsumedQuantity", dec_type(), true),
        Field::new("ListUnitPrice", dec_type(), true),
        Field::new("ResourceId", DataType::Utf8, true),
        Field::new("SubAccountId", DataType::Utf8, true),
    ]))
}

/// (cost, start offset from Oct 1, quantity, unit price, resource, account); lines last an hour.
type Line = (
    i128,
    i64,
    Option<i128>,
    Option<i128>,
    &'static str,
    Option<&'static str>,
);

fn batch(lines: &[Line]) -> RecordBatch {
    let times = |f: &dyn Fn(&Line) -> i64| -> ArrayRef {
        Arc::new(
            lines
                .iter()
                .map(|l| Some(f(l)))
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        )
    };
    let decs = |f: &dyn Fn(&Line) -> Option<i128>| -> ArrayRef {
        Arc::new(
            lines
                .iter()
                .map(f)
                .collect::<Decimal128Array>()
                .with_precision_and_scale(38, 10)
                .unwrap(),
        )
    };
    RecordBatch::try_new(
        schema(),
        vec![
            decs(&|l| Some(l.0)),
            times(&|_| nov()),
            times(&|_| oct()),
            times(&|l| oct() + l.1 + H),
            times(&|l| oct() + l.1),
            decs(&|l| l.2),
            decs(&|l| l.3),
            Arc::new(lines.iter().map(|l| Some(l.4)).collect::<StringArray>()),
            Arc::new(lines.iter().map(|l| l.5).collect::<StringArray>()),
        ],
    )
    .unwrap()
}

const HALF: i128 = ONE / 2;

fn sample() -> Vec<Line> {
    vec![
        (ONE, H, Some(2 * ONE), Some(HALF), "i-1", Some("b")),
        (2 * ONE, 5 * H, Some(4 * ONE), Some(HALF), "i-2", Some("b")),
        (3 * ONE, DAY + H, Some(ONE), Some(HALF), "i-1", Some("b")),
        (ONE / 4, 2 * H, None, None, "tax", Some("a")),
        (ONE / 4, 9 * H, None, None, "tax", Some("a")),
        (7 * ONE, 3 * H, Some(ONE), Some(HALF), "i-3", None),
        (5, DAY + 7 * H, Some(3), Some(HALF), "i-9", Some("a")),
    ]
}

/// Each output row as text: cells joined by spaces, nulls as `-`, times as ISO 8601.
fn rows_text(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<Vec<String>> = b
            .columns()
            .iter()
            .map(|c| {
                if matches!(c.data_type(), DataType::Timestamp(_, _)) {
                    let raw = cast(c, &DataType::Int64).unwrap();
                    raw.as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.map_or("-".into(), crate::timestamp::iso_from_millis))
                        .collect()
                } else {
                    let s = cast(c, &DataType::Utf8).unwrap();
                    s.as_string::<i32>()
                        .iter()
                        .map(|v| v.unwrap_or("-").to_string())
                        .collect()
                }
            })
            .collect();
        for i in 0..b.num_rows() {
            let cells: Vec<&str> = cols.iter().map(|c| c[i].as_str()).collect();
            out.push(cells.join(" "));
        }
    }
    out
}

fn names(b: &RecordBatch) -> Vec<String> {
    b.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[test]
fn daily_groups_sum_exactly_and_sort_by_key() {
    let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Day)).unwrap();
    r.push(&batch(&sample())).unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(r.metric_total("BilledCost").unwrap(), 13 * ONE + HALF + 5);
    assert_eq!(r.metric_names(), ["BilledCost", "ConsumedQuantity"]);
    let out = r.finish().unwrap();
    assert_eq!(out.len(), 1);
    // ResourceId is line-only; the other columns keep their order and types.
    assert_eq!(
        names(&out[0]),
        [
            "BilledCost",
            "BillingPeriodEnd",
            "BillingPeriodStart",
            "ChargePeriodEnd",
            "ChargePeriodStart",
            "ConsumedQuantity",
            "ListUnitPrice",
            "SubAccountId"
        ]
    );
    assert_eq!(out[0].schema().field(0).data_type(), &dec_type());
    assert_eq!(out[0].schema().field(3).data_type(), &ts());
    // Sorted by the keys in column order (the period, the day, the unit price, the
    // account; nulls first). The tax group's quantities are all null: null.
    let p = "2026-11-01T00:00:00Z 2026-10-01T00:00:00Z";
    assert_eq!(
        rows_text(&out),
        [
            format!("0.5000000000 {p} 2026-10-01T10:00:00Z 2026-10-01T00:00:00Z - - a"),
            format!("7.0000000000 {p} 2026-10-01T04:00:00Z 2026-10-01T00:00:00Z 1.0000000000 0.5000000000 -"),
            format!("3.0000000000 {p} 2026-10-01T06:00:00Z 2026-10-01T00:00:00Z 6.0000000000 0.5000000000 b"),
            format!("0.0000000005 {p} 2026-10-02T08:00:00Z 2026-10-02T00:00:00Z 0.0000000003 0.5000000000 a"),
            format!("3.0000000000 {p} 2026-10-02T02:00:00Z 2026-10-02T00:00:00Z 1.0000000000 0.5000000000 b"),
        ]
    );
}

#[test]
fn monthly_groups_take_the_billing_period() {
    let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Month)).unwrap();
    r.push(&batch(&sample())).unwrap();
    let out = r.finish().unwrap();
    let p = "2026-11-01T00:00:00Z 2026-10-01T00:00:00Z 2026-11-01T00:00:00Z 2026-10-01T00:00:00Z";
    assert_eq!(
        rows_text(&out),
        [
            format!("0.5000000000 {p} - - a"),
            format!("7.0000000000 {p} 1.0000000000 0.5000000000 -"),
            format!("0.0000000005 {p} 0.0000000003 0.5000000000 a"),
            format!("6.0000000000 {p} 7.0000000000 0.5000000000 b"),
        ]
    );
}

#[test]
fn a_metric_is_null_only_when_every_row_is_null() {
    let lines: Vec<Line> = vec![
        (ONE, H, None, None, "x", Some("a")),
        (ONE, 2 * H, Some(-ONE), None, "x", Some("a")),
        (ONE, 3 * H, Some(ONE), None, "x", Some("a")),
        (ONE, 4 * H, None, None, "x", Some("b")),
    ];
    let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Month)).unwrap();
    r.push(&batch(&lines)).unwrap();
    let out = r.finish().unwrap();
    let q = out[0]
        .column_by_name("ConsumedQuantity")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    // a: -1 + 1 = 0, not null; b: null on its only row.
    assert_eq!(q.iter().collect::<Vec<_>>(), [Some(0), None]);
}

#[test]
fn merging_equals_pushing_everything_into_one() {
    // A deterministic pseudo-random month: several batches, every key mixed.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let accounts = [Some("a"), Some("b"), None];
    let batches: Vec<RecordBatch> = (0..6)
        .map(|_| {
            let lines: Vec<Line> = (0..500)
                .map(|_| {
                    let v = next();
                    (
                        (v % 1_000_000) as i128 * 1_234_567 - 300_000_000_000,
                        ((v >> 20) % 31) as i64 * DAY + ((v >> 30) % 24) as i64 * H,
                        (v % 7 != 0).then_some(((v >> 8) % 10_000) as i128),
                        (v % 5 != 0).then_some(((v >> 12) % 3) as i128 * HALF),
                        "r",
                        accounts[((v >> 40) % 3) as usize],
                    )
                })
                .collect();
            batch(&lines)
        })
        .collect();
    for per in [Per::Day, Per::Month] {
        let spec = RollUpSpec::focus(per);
        let mut one = RollUp::new(schema(), spec).unwrap();
        for b in &batches {
            one.push(b).unwrap();
        }
        let total = one.metric_total("BilledCost").unwrap();
        let expected = one.finish().unwrap();
        // Parts in another order: 5, 4, 3 into one, 0, 1, 2 into another, plus an empty one.
        let mut a = RollUp::new(schema(), spec).unwrap();
        let mut b = RollUp::new(schema(), spec).unwrap();
        let empty = RollUp::new(schema(), spec).unwrap();
        for p in batches.iter().rev().take(3) {
            a.push(p).unwrap();
        }
        for p in batches.iter().take(3) {
            b.push(p).unwrap();
        }
        a.merge(b).unwrap();
        a.merge(empty).unwrap();
        assert_eq!(a.metric_total("BilledCost").unwrap(), total);
        let merged = a.finish().unwrap();
        assert_eq!(merged, expected, "{per:?}");
        assert!(expected[0].num_rows() >= 12, "{per:?}");
    }
}

#[test]
fn output_batches_follow_the_key_order() {
    let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Day)).unwrap();
    r.push(&batch(&sample())).unwrap();
    let whole = rows_text(&r.finish().unwrap());
    let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Day)).unwrap();
    r.push(&batch(&sample())).unwrap();
    let mut parts = Vec::new();
    r.finish_with(2, |b| {
        assert!(b.num_rows() <= 2);
        parts.push(b);
        Ok(())
    })
    .unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(rows_text(&parts), whole);
}

#[test]
fn cur_sums_every_decimal_column_and_drops_maps() {
    use arrow::array::MapBuilder;
    let schema = Arc::new(Schema::new(vec![
        Field::new("bill_billing_period_start_date", ts(), true),
        Field::new("bill_billing_period_end_date", ts(), true),
        Field::new("line_item_usage_start_date", ts(), true),
        Field::new("line_item_usage_end_date", ts(), true),
        Field::new("line_item_unblended_cost", dec_type(), true),
        Field::new("line_item_usage_amount", dec_type(), true),
        Field::new("line_item_unblended_rate", DataType::Utf8, true),
        Field::new("line_item_usage_type", DataType::Utf8, true),
        Field::new(
            "resource_tags",
            MapBuilder::new(
                None,
                arrow::array::StringBuilder::new(),
                arrow::array::StringBuilder::new(),
            )
            .finish()
            .data_type()
            .clone(),
            true,
        ),
    ]));
    let t = |v: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
    };
    let d = |v: Vec<i128>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(38, 10)
                .unwrap(),
        )
    };
    let mut tags = MapBuilder::new(
        None,
        arrow::array::StringBuilder::new(),
        arrow::array::StringBuilder::new(),
    );
    for v in ["x", "y"] {
        tags.keys().append_value("env");
        tags.values().append_value(v);
        tags.append(true).unwrap();
    }
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            t(vec![oct(), oct()]),
            t(vec![nov(), nov()]),
            t(vec![oct() + 25 * H, oct() + 47 * H]),
            t(vec![oct() + 26 * H, oct() + 48 * H]),
            d(vec![ONE, 2 * ONE]),
            d(vec![3 * ONE, 4 * ONE]),
            Arc::new(StringArray::from(vec!["0.1", "0.2"])),
            Arc::new(StringArray::from(vec!["BoxUsage", "BoxUsage"])),
            Arc::new(tags.finish()),
        ],
    )
    .unwrap();
    let mut r = RollUp::new(schema, RollUpSpec::cur(Per::Day)).unwrap();
    r.push(&b).unwrap();
    assert_eq!(
        r.metric_names(),
        ["line_item_unblended_cost", "line_item_usage_amount"]
    );
    let out = r.finish().unwrap();
    assert_eq!(
        names(&out[0]),
        [
            "bill_billing_period_start_date",
            "bill_billing_period_end_date",
            "line_item_usage_start_date",
            "line_item_usage_end_date",
            "line_item_unblended_cost",
            "line_item_usage_amount",
            "line_item_usage_type"
        ]
    );
    assert_eq!(
        rows_text(&out),
        ["2026-10-01T00:00:00Z 2026-11-01T00:00:00Z 2026-10-02T00:00:00Z 2026-10-03T00:00:00Z 3.0000000000 7.0000000000 BoxUsage"]
    );
}

#[test]
fn refusals_are_errors_not_panics() {
    // A batch of another schema.
    let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Day)).unwrap();
    let other = Arc::new(Schema::new(vec![Field::new(
        "BilledCost",
        dec_type(),
        true,
    )]));
    let b = RecordBatch::try_new(
        other.clone(),
        vec![Arc::new(
            Decimal128Array::from(vec![1i128])
                .with_precision_and_scale(38, 10)
                .unwrap(),
        )],
    )
    .unwrap();
    assert!(r.push(&b).is_err());
    // Merging roll-ups of different datasets or granularities.
    let month = RollUp::new(schema(), RollUpSpec::focus(Per::Month)).unwrap();
    assert!(r.merge(month).is_err());
    let lone = RollUp::new(other, RollUpSpec::focus(Per::Day)).unwrap();
    assert!(r.merge(lone).is_err());
    // A metric that is not a 10-decimal Decimal128.
    let text = Arc::new(Schema::new(vec![Field::new(
        "BilledCost",
        DataType::Utf8,
        true,
    )]));
    assert!(RollUp::new(text, RollUpSpec::focus(Per::Day)).is_err());
    // A start without an end.
    let half = Arc::new(Schema::new(vec![Field::new(
        "ChargePeriodStart",
        ts(),
        true,
    )]));
    assert!(RollUp::new(half, RollUpSpec::focus(Per::Day)).is_err());
    // Sums beyond i128.
    let mut r = RollUp::new(schema(), RollUpSpec::focus(Per::Month)).unwrap();
    let big = i128::MAX / 2 + 1;
    let e = r
        .push(&batch(&[
            (big, 0, None, None, "x", None),
            (big, H, None, None, "x", None),
        ]))
        .unwrap_err();
    assert!(e.to_string().contains("roll-up"), "{e}");
    assert!(r.metric_total("SubAccountId").is_err());
}

#[test]
fn daily_groups_equal_a_naive_aggregate_of_the_same_rows() {
    // Oracle: a BTreeMap keyed like the output's sort (the constant period
    // columns, then day, unit price, account; `None` sorts first, as nulls do).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let accounts = [Some("a"), Some("b"), Some("c"), None];
    let lines: Vec<Line> = (0..3_000)
        .map(|_| {
            let v = next();
            (
                (v % 100_000) as i128 * 7_919 - 100_000_000,
                ((v >> 20) % 31) as i64 * DAY + ((v >> 30) % 24) as i64 * H,
                (v % 9 != 0).then_some(((v >> 8) % 1_000) as i128),
                (v % 4 != 0).then_some(((v >> 12) % 3) as i128 * HALF),
                "r",
                accounts[((v >> 40) % 4) as usize],
            )
        })
        .collect();
    type Group = (i128, Option<i128>, i64);
    let mut oracle: std::collections::BTreeMap<(i64, Option<i128>, Option<&str>), Group> =
        Default::default();
    for l in &lines {
        let day = l.1 / DAY * DAY;
        let g = oracle.entry((day, l.3, l.5)).or_insert((0, None, i64::MIN));
        g.0 += l.0;
        if let Some(q) = l.2 {
            g.1 = Some(g.1.unwrap_or(0) + q);
        }
        g.2 = g.2.max(l.1 + H);
    }
    let mut agg = RollUp::new(schema(), RollUpSpec::focus(Per::Day)).unwrap();
    for chunk in lines.chunks(700) {
        agg.push(&batch(chunk)).unwrap();
    }
    let mut got = Vec::new();
    for b in agg.finish().unwrap() {
        let dec = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_primitive::<Decimal128Type>()
                .clone()
        };
        let time = |n: &str| {
            let raw = cast(b.column_by_name(n).unwrap(), &DataType::Int64).unwrap();
            raw.as_primitive::<Int64Type>().clone()
        };
        let (cost, qty, price) = (
            dec("BilledCost"),
            dec("ConsumedQuantity"),
            dec("ListUnitPrice"),
        );
        let (start, end) = (time("ChargePeriodStart"), time("ChargePeriodEnd"));
        let account = b
            .column_by_name("SubAccountId")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for i in 0..b.num_rows() {
            got.push((
                (
                    start.value(i) - oct(),
                    price.is_valid(i).then(|| price.value(i)),
                    account.is_valid(i).then(|| account.value(i).to_string()),
                ),
                (
                    cost.value(i),
                    qty.is_valid(i).then(|| qty.value(i)),
                    end.value(i) - oct(),
                ),
            ));
        }
    }
    let want: Vec<_> = oracle
        .into_iter()
        .map(|((d, p, a), g)| ((d, p, a.map(str::to_string)), g))
        .collect();
    assert!(
        want.len() > 300,
        "{} groups: too few to mix combinations and days",
        want.len()
    );
    assert_eq!(got, want);
}

#[test]
fn groups_sort_by_the_columns_before_the_day_then_the_day_then_the_columns_after() {
    // A key column before the day (service) and one after it (account), each
    // varying, rows pushed in two roll-ups and merged: the order must be the
    // lexicographic one over (service, day, account), nulls first, as a
    // BTreeMap of the same rows gives it.
    let schema = Arc::new(Schema::new(vec![
        Field::new("ServiceName", DataType::Utf8, true),
        Field::new("ChargePeriodStart", ts(), true),
        Field::new("ChargePeriodEnd", ts(), true),
        Field::new("SubAccountId", DataType::Utf8, true),
        Field::new("BilledCost", dec_type(), true),
    ]));
    let services = [Some("S3"), None, Some("EC2"), Some("Lambda")];
    let accounts = [Some("b"), Some("a"), None];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let rows: Vec<(Option<&str>, i64, Option<&str>, i128)> = (0..2_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (
                services[(x % 4) as usize],
                oct() + ((x >> 8) % 5) as i64 * DAY + ((x >> 16) % 24) as i64 * H,
                accounts[((x >> 24) % 3) as usize],
                ((x >> 32) % 1_000) as i128 * ONE / 100,
            )
        })
        .collect();
    let make = |part: &[(Option<&str>, i64, Option<&str>, i128)]| {
        let start: TimestampMillisecondArray = part.iter().map(|r| Some(r.1)).collect();
        let end: TimestampMillisecondArray = part.iter().map(|r| Some(r.1 + H)).collect();
        let cost: Decimal128Array = part.iter().map(|r| Some(r.3)).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(part.iter().map(|r| r.0).collect::<StringArray>()),
                Arc::new(start.with_timezone("UTC")),
                Arc::new(end.with_timezone("UTC")),
                Arc::new(part.iter().map(|r| r.2).collect::<StringArray>()),
                Arc::new(cost.with_precision_and_scale(38, 10).unwrap()),
            ],
        )
        .unwrap()
    };
    let mut oracle: std::collections::BTreeMap<(Option<&str>, i64, Option<&str>), i128> =
        Default::default();
    for r in &rows {
        let day = (r.1 - oct()) / DAY * DAY + oct();
        *oracle.entry((r.0, day, r.2)).or_insert(0) += r.3;
    }
    let spec = RollUpSpec::focus(Per::Day);
    let mut first = RollUp::new(schema.clone(), spec).unwrap();
    let mut second = RollUp::new(schema.clone(), spec).unwrap();
    first.push(&make(&rows[..1_300])).unwrap();
    second.push(&make(&rows[1_300..])).unwrap();
    first.merge(second).unwrap();
    let mut got = Vec::new();
    for b in first.finish().unwrap() {
        let text = |i: usize| b.column(i).as_string::<i32>().clone();
        let (service, account) = (text(0), text(3));
        let start = cast(b.column(1), &DataType::Int64).unwrap();
        let start = start.as_primitive::<Int64Type>();
        let cost = b.column(4).as_primitive::<Decimal128Type>();
        for i in 0..b.num_rows() {
            let s = service.is_valid(i).then(|| service.value(i).to_string());
            let a = account.is_valid(i).then(|| account.value(i).to_string());
            got.push(((s, start.value(i), a), cost.value(i)));
        }
    }
    let want: Vec<_> = oracle
        .into_iter()
        .map(|((s, d, a), c)| ((s.map(String::from), d, a.map(String::from)), c))
        .collect();
    assert_eq!(want.len(), 4 * 5 * 3);
    assert_eq!(got, want);
}
