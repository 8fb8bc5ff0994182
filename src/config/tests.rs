//! Unit tests of config loading and validation.

use super::*;
use crate::money::MAX_ABS;

fn load(text: &str) -> Result<Config> {
    Config::from_str(text, Path::new("test.toml"), PathBuf::new(), String::new())
}

const MINIMAL: &str = r#"
[partner]
id = "partner"
name = "Partner"
management_account = "999999999999"

[[plans]]
id = "std"
rules = [ { id = "g", scope = "global", type = "markup", percent = "7.126" } ]

[[orgs]]
id = "acme"
name = "Acme"
management_account = "111111111111"
accounts = ["111111111112"]
files = ["acme.csv"]
plan = "std"
transfer = { start = "2026-01" }
"#;

fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Err(Error::Config { problems, .. }) => problems,
        other => panic!("expected config problems, got {other:?}"),
    }
}

#[test]
fn minimal_config_loads() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.orgs.len(), 1);
    assert_eq!(c.orgs[0].accounts.len(), 2);
    let PlanKind::Rated(rs) = &c.orgs[0].plan.kind else {
        panic!()
    };
    assert_eq!(rs.rules()[0].action, Some(Action::Markup(Percent(713))));
    assert!(c.plans.contains_key("basic") && c.plans.contains_key("passthrough"));
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let text = MINIMAL.replace("plan = \"std\"", "plan = \"std\"\nplna = 1");
    let p = problems(&text);
    assert!(p[0].contains("plna"), "{p:?}");
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = MINIMAL
        .replace("plan = \"std\"", "plan = \"nope\"")
        .replace(
            "accounts = [\"111111111112\"]",
            "accounts = [\"999999999999\", \"1234567890123\"]",
        )
        .replace("percent = \"7.126\"", "percent = \"-3\"");
    let p = problems(&text);
    let all = p.join("\n");
    assert!(all.contains("plan `nope` does not exist"), "{all}");
    assert!(
        all.contains("claimed by both partner `partner` and org `acme`"),
        "{all}"
    );
    assert!(
        all.contains("`1234567890123` is not an AWS account id"),
        "{all}"
    );
    assert!(all.contains("out of range"), "{all}");
    assert!(p.len() >= 4, "{all}");
}

#[test]
fn passthrough_needs_explicit_opt_in() {
    let text = MINIMAL.replace("plan = \"std\"", "plan = \"passthrough\"");
    assert!(problems(&text).join("\n").contains("allow_passthrough"));
    let ok = text.replace(
        "plan = \"passthrough\"",
        "plan = \"passthrough\"\nallow_passthrough = true",
    );
    assert!(load(&ok).is_ok());
}

#[test]
fn duplicate_rules_and_ids_are_refused() {
    let text = MINIMAL.replace(
            "rules = [ { id = \"g\", scope = \"global\", type = \"markup\", percent = \"7.126\" } ]",
            "rules = [ { id = \"g\", scope = \"global\", type = \"markup\", percent = \"1\" }, { id = \"h\", scope = \"global\", type = \"discount\", percent = \"2\" } ]",
        );
    assert!(problems(&text).join("\n").contains("same scope and match"));
    let twice = format!("{MINIMAL}\n[[orgs]]\nid = \"acme\"\nname = \"x\"\nmanagement_account = \"222222222222\"\nfiles = [\"x\"]\nplan = \"basic\"\ntransfer = {{ start = \"2026-01\" }}\n");
    assert!(problems(&twice).join("\n").contains("used twice"));
}

#[test]
fn mid_month_transfer_is_refused() {
    let text = MINIMAL.replace("start = \"2026-01\"", "start = \"2026-03-15\"");
    assert!(problems(&text)
        .join("\n")
        .contains("START_DATE_NOT_BEGINNING_OF_MONTH"));
    let ok = MINIMAL.replace("start = \"2026-01\"", "start = \"2026-03-01\"");
    assert_eq!(
        load(&ok).unwrap().orgs[0].transfer.start,
        BillingPeriod::new(2026, 3).unwrap()
    );
}

#[test]
fn transfer_ends_on_a_month_boundary() {
    let ok = MINIMAL.replace(
        "start = \"2026-01\"",
        "start = \"2026-01\", end = \"2026-06-30\"",
    );
    assert_eq!(
        load(&ok).unwrap().orgs[0].transfer.end,
        BillingPeriod::new(2026, 6)
    );
    let bad = MINIMAL.replace(
        "start = \"2026-01\"",
        "start = \"2026-01\", end = \"2026-06-15\"",
    );
    assert!(problems(&bad)
        .join("\n")
        .contains("END_DATE_NOT_END_OF_MONTH"));
    let feb = MINIMAL.replace(
        "start = \"2026-01\"",
        "start = \"2026-01\", end = \"2028-02-29\"",
    );
    assert!(load(&feb).is_ok());
}

#[test]
fn sku_fields_on_other_scopes_are_named() {
    let text = MINIMAL.replace(
        "scope = \"global\", type",
        "scope = \"global\", operation = \"Run\", type",
    );
    assert!(problems(&text)
        .join("\n")
        .contains(".operation: `operation` applies to scope `sku` only"));
}

#[test]
fn t_d10_month_attribution() {
    let t = Transfer {
        start: BillingPeriod::new(2026, 3).unwrap(),
        end: BillingPeriod::new(2026, 6),
        source_payer: false,
    };
    let m = |x| BillingPeriod::new(2026, x).unwrap();
    assert!(!t.covers(m(2)));
    assert!(t.covers(m(3)) && t.covers(m(6)));
    assert!(!t.covers(m(7)));
}

#[test]
fn org_ids_that_escape_are_refused() {
    let text = MINIMAL.replace("id = \"acme\"", "id = \"../acme\"");
    assert!(problems(&text).join("\n").contains("not a valid org id"));
}

#[test]
fn numbers_may_be_toml_floats() {
    let text = MINIMAL.replace("percent = \"7.126\"", "percent = 7.124");
    let c = load(&text).unwrap();
    let PlanKind::Rated(rs) = &c.orgs[0].plan.kind else {
        panic!()
    };
    assert_eq!(rs.rules()[0].action, Some(Action::Markup(Percent(712))));
}

#[test]
fn one_rule_for_every_decimal() {
    let fixed = |t: &str, places| ExactDecimal::parse(t).and_then(|d| d.to_fixed(places));
    let hundredths = |t: &str| ExactDecimal::parse(t).and_then(|d| d.to_hundredths_rounded());
    // Plain and scientific notation give the same exact value.
    assert_eq!(fixed("1E6", 10), Ok(1_000_000 * ONE));
    // Ten places are kept exactly; an eleventh is refused, never rounded.
    assert_eq!(fixed("0.0000000001", 10), Ok(1));
    assert_eq!(
        fixed("0.00000000001", 10),
        Err(ConfigDecimalError::TooPrecise {
            needed: 11,
            max: 10
        })
    );
    assert_eq!(fixed("1e6", 10), fixed("1000000", 10));
    assert_eq!(fixed("1e2", 10), fixed("100", 10));
    assert_eq!(fixed("2.5E-3", 10), Ok(25 * ONE / 10_000));
    assert_eq!(fixed("+.5e+1", 10), Ok(5 * ONE));
    assert_eq!(fixed(" -12.50 ", 10), Ok(-125 * ONE / 10));
    assert_eq!(fixed("1e-10", 10), Ok(1));
    assert_eq!(fixed("0e999999999999", 10), Ok(0));
    // Trailing zeros are not places the value needs.
    assert_eq!(fixed("0.100000000000", 10), Ok(ONE / 10));
    assert_eq!(fixed("1500e-3", 1), Ok(15 * ONE / 10));
    assert_eq!(
        fixed("1500e-3", 0),
        Err(ConfigDecimalError::TooPrecise { needed: 1, max: 0 })
    );
    assert_eq!(fixed("1500e-3", 3), fixed("1.5", 3));
    // Too many places is refused, never rounded, with what is needed and allowed.
    let e = fixed("1e-12", 10).unwrap_err();
    assert_eq!(
        e,
        ConfigDecimalError::TooPrecise {
            needed: 12,
            max: 10
        }
    );
    assert_eq!(
        e.to_string(),
        "needs 12 decimal places, but this key takes at most 10 (it is never rounded)"
    );
    assert!(matches!(
        fixed("0.00000000001", 10),
        Err(ConfigDecimalError::TooPrecise { needed: 11, .. })
    ));
    assert!(matches!(
        fixed("1e-999999999999", 10),
        Err(ConfigDecimalError::TooPrecise { .. })
    ));
    assert_eq!(fixed("1e18", 10), Ok(MAX_ABS));
    assert_eq!(
        fixed("1.0000000001e18", 10),
        Err(ConfigDecimalError::Overflow)
    );
    assert_eq!(
        fixed("1e999999999999", 10),
        Err(ConfigDecimalError::Overflow)
    );
    for bad in [
        "", " ", "e5", "1e", "1e+", "1.2.3", "--1", "0x10", "1,5", "1e2.5", ".",
    ] {
        assert!(fixed(bad, 10).is_err(), "{bad:?} was accepted");
    }
    assert_eq!(fixed("1e2.5", 10), Err(ConfigDecimalError::Invalid));
    // Percentages: the same syntax, rounded once, exactly, to 2 decimals.
    assert_eq!(hundredths("1e2"), Ok(10_000));
    assert_eq!(hundredths("7.126"), Ok(713));
    assert_eq!(hundredths("7.125"), Ok(713));
    assert_eq!(hundredths("-7.125"), Ok(-713));
    assert_eq!(hundredths("7.124999999999999"), Ok(712));
    assert_eq!(hundredths("5e-3"), Ok(1));
    assert_eq!(hundredths("4.9e-3"), Ok(0));
    assert_eq!(hundredths("1e-999999"), Ok(0));
    assert_eq!(hundredths("1e30"), Err(ConfigDecimalError::Overflow));
}

#[test]
fn decimal_keys_share_the_rule() {
    let with_flat = |flat: &str| {
        format!("{MINIMAL}\n  [[orgs.custom_line_items]]\n  id = \"f\"\n  description = \"Fee\"\n  kind = \"fee\"\n  flat = {flat}\n  start = \"2026-01\"\n")
    };
    let c = load(&with_flat("\"1E6\"")).unwrap();
    assert_eq!(
        c.orgs[0].custom_line_items[0].charge,
        CliCharge::Flat(1_000_000 * ONE)
    );
    // A TOML float written with an exponent takes the same path.
    let c = load(&with_flat("1e-7")).unwrap();
    assert_eq!(c.orgs[0].custom_line_items[0].charge, CliCharge::Flat(1000));
    let all = problems(&with_flat("\"1e-12\"")).join("\n");
    assert!(
            all.contains("custom_line_items[0] (id `f`).flat: `1e-12`: needs 12 decimal places, but this key takes at most 10"),
            "{all}"
        );
    let pct = MINIMAL.replace("percent = \"7.126\"", "percent = \"1e2\"");
    let PlanKind::Rated(rs) = &load(&pct).unwrap().orgs[0].plan.kind else {
        panic!()
    };
    assert_eq!(rs.rules()[0].action, Some(Action::Markup(Percent(10_000))));
    let tiers = |from: &str| {
        MINIMAL.replace(
                "{ id = \"g\", scope = \"global\", type = \"markup\", percent = \"7.126\" }",
                &format!("{{ id = \"t\", scope = \"sku\", service = \"AmazonS3\", usage_type = \"X\", type = \"custom\", tiers = [{{ from = \"0\", rate = \"2e-2\" }}, {{ from = {from}, rate = \"0.015\" }}] }}"),
            )
    };
    let action = |text: &str| {
        let c = load(text).unwrap();
        let PlanKind::Rated(rs) = &c.orgs[0].plan.kind else {
            panic!()
        };
        format!("{:?}", rs.rules()[0].action)
    };
    assert_eq!(action(&tiers("\"1e2\"")), action(&tiers("\"100\"")));
    assert_ne!(action(&tiers("\"1e3\"")), action(&tiers("\"100\"")));
    let all = problems(&tiers("\"x1\"")).join("\n");
    assert!(
        all.contains(".tiers[1].from: `x1`: not a decimal number"),
        "{all}"
    );
}

#[test]
fn org_ids_differing_only_by_case_are_refused() {
    let twin = |id: &str| {
        format!("{MINIMAL}\n[[orgs]]\nid = \"{id}\"\nname = \"x\"\nmanagement_account = \"222222222222\"\nfiles = [\"x\"]\nplan = \"basic\"\ntransfer = {{ start = \"2026-01\" }}\n")
    };
    let all = problems(&twin("Acme")).join("\n");
    assert!(
            all.contains("orgs[1] (id `Acme`).id: org id `Acme` differs from `acme` (orgs[0] (id `acme`).id) only by case"),
            "{all}"
        );
    let all = problems(&twin("PARTNER")).join("\n");
    assert!(
        all.contains("org id `PARTNER` differs from `partner` (partner.id) only by case"),
        "{all}"
    );
    assert!(load(&twin("acme2")).is_ok());
}
