//! Tests of the row checks: the column-wise pass against the row-by-row verdict.

use super::*;

const HEADER: &str = "bill_billing_period_start_date,bill_payer_account_id,bill_invoice_id,bill_billing_entity,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_operation,line_item_usage_amount,line_item_currency_code,line_item_unblended_cost,pricing_public_on_demand_rate,product_region_code\n";

/// (period, payer, account, type, usage, currency, cost, rate, passes?)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
);

const ROWS: &[Row] = &[
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Usage",
        "1",
        "USD",
        "0.5",
        "0.5",
        true,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "222222222222",
        "Usage",
        "1",
        "USD",
        "0.5",
        "0.5",
        false,
    ),
    (
        "2026-10-01T00:00:00Z",
        "888888888888",
        "111111111111",
        "Usage",
        "1",
        "USD",
        "0.5",
        "0.5",
        false,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Mystery",
        "1",
        "USD",
        "0.5",
        "0.5",
        false,
    ),
    (
        "2026-09-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Usage",
        "1",
        "USD",
        "0.5",
        "0.5",
        false,
    ),
    (
        "",
        "999999999999",
        "111111111111",
        "Usage",
        "1",
        "USD",
        "0.5",
        "0.5",
        false,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Usage",
        "1",
        "EUR",
        "0.5",
        "0.5",
        false,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Usage",
        "1",
        "",
        "0.5",
        "0.5",
        true,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Usage",
        "1",
        "USD",
        "-0.5",
        "0.5",
        false,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Usage",
        "1",
        "USD",
        "0.5",
        "-0.5",
        false,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Usage",
        "-1",
        "USD",
        "0.5",
        "0.5",
        false,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Credit",
        "-1",
        "USD",
        "-0.5",
        "",
        true,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Credit",
        "0",
        "USD",
        "0.5",
        "",
        false,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Tax",
        "0",
        "USD",
        "-0.1",
        "",
        true,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "111111111111",
        "Usage",
        "1",
        "USD",
        "",
        "0.5",
        false,
    ),
    (
        "2026-10-01T00:00:00Z",
        "999999999999",
        "",
        "Usage",
        "1",
        "USD",
        "0.5",
        "0.5",
        false,
    ),
    (
        "2026-10-01T00:00:00Z",
        "",
        "111111111111",
        "Usage",
        "1",
        "USD",
        "0.5",
        "0.5",
        false,
    ),
];

#[test]
fn column_checks_pass_exactly_the_rows_the_verdict_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cur.csv");
    let mut text = HEADER.to_string();
    for (period, payer, account, lt, usage, currency, cost, rate, _) in ROWS {
        text.push_str(&format!(
            "{period},{payer},INV-1,AWS,{account},{lt},AmazonEC2,BoxUsage,RunInstances,{usage},{currency},{cost},{rate},us-east-1\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    let mut source = crate::ingest::open(&path).unwrap();
    let mut chunk = source.next_chunk().unwrap().unwrap();
    let map = source.column_map().clone();
    let check = OrgCheck {
        label: "org t".into(),
        accounts: ["111111111111".to_string()].into_iter().collect(),
        period: BillingPeriod::parse("2026-10").unwrap(),
        currency: "USD".into(),
        require_billed_cost: true,
        management_account: "999999999999".into(),
        excluded: Arc::default(),
        payers: (
            ["999999999999".to_string()].into_iter().collect(),
            "not the org's payer".into(),
        ),
    };
    prepare_columns(&path, &map, &mut chunk, &check, &mut Vec::new()).unwrap();
    let num = std::mem::take(&mut chunk.num);
    let rows = RowChecks::new(&map, &chunk, &num, &check);
    let passing = rows.passing(ROWS.len());
    for (i, row) in ROWS.iter().enumerate() {
        let verdict = rows.verdict(i).map_err(|r| r.reason);
        assert_eq!(verdict.is_ok(), row.8, "row {i}: the verdict: {verdict:?}");
        match LineType::from_code(passing[i]) {
            Some(lt) => assert_eq!(verdict, Ok(lt), "row {i}"),
            None => assert!(verdict.is_err(), "row {i} left undecided though it passes"),
        }
    }
}

#[test]
fn key_checks_refuse_by_each_values_verdict_and_nulls_as_asked() {
    use arrow::array::{DictionaryArray, Int32Array, StringArray};
    use arrow::datatypes::Int32Type;
    let values = StringArray::from(vec!["USD", "EUR", "JPY"]);
    let keys = Int32Array::from(vec![Some(0), Some(1), None, Some(2), Some(0), None]);
    let column = DictionaryArray::<Int32Type>::try_new(keys, std::sync::Arc::new(values)).unwrap();
    let (u, x) = (RowChecks::UNDECIDED, 7u8);
    // Verdicts by value: USD yes, EUR no, JPY yes.
    let ok = [true, false, true];
    let mut pass = vec![x; 6];
    refuse_where_not(&mut pass, &column, &ok, true);
    assert_eq!(pass, vec![x, u, x, x, x, x], "a null passes");
    let mut pass = vec![x; 6];
    refuse_where_not(&mut pass, &column, &ok, false);
    assert_eq!(pass, vec![x, u, u, x, x, u], "a null is refused");
    // Codes by value; a null key has none.
    assert_eq!(by_key(&column, &[1, 2, 3]), vec![1, 2, u, 3, 1, u]);
}
