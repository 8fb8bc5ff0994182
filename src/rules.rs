//! Pricing rules with AWS Billing Conductor semantics, compiled once per plan.
//!
//! A plan holds rules of four scopes. For a line, the most specific matching
//! modifier wins (SKU > SERVICE > BILLING_ENTITY > GLOBAL) and rules never stack
//! (shared reference §2.4). Free-tier (TIERING) rules are resolved separately
//! with the same precedence (SERVICE > GLOBAL), so a plan may say "free tier off"
//! globally and still mark up one service.

use std::sync::Mutex;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use crate::money::{mul_fixed, Percent};

/// Scope of a rule, most general first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every line.
    Global,
    /// One seller: `AWS`, `AWS Marketplace`, `AISPL`.
    BillingEntity(String),
    /// One service (product code, e.g. `AmazonEC2`).
    Service(String),
    /// A service plus usage type and/or operation, optionally one region.
    Sku(SkuMatch),
}

/// The match fields of a SKU-scoped rule; at least one of usage type and operation is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SkuMatch {
    /// Product code.
    pub service: String,
    /// `line_item_usage_type`, if the rule names one.
    pub usage_type: Option<String>,
    /// `line_item_operation`, if the rule names one.
    pub operation: Option<String>,
    /// Region code, if the rule names one.
    pub region: Option<String>,
}

impl SkuMatch {
    /// Whether the rule matches a line's key.
    fn matches(&self, key: &SkuKey<'_>) -> bool {
        self.service == key.service
            && self
                .usage_type
                .as_deref()
                .is_none_or(|u| u == key.usage_type)
            && self.operation.as_deref().is_none_or(|o| o == key.operation)
            && self.region.as_deref().is_none_or(|r| r == key.region)
    }

    /// Specificity among SKU rules: usage type counts 4, operation 2, region 1,
    /// so every combination has a distinct weight and ties cannot happen.
    fn weight(&self) -> u8 {
        (self.usage_type.is_some() as u8) * 4
            + (self.operation.is_some() as u8) * 2
            + (self.region.is_some() as u8)
    }
}

/// One tier of a custom rate table: from `from` units (inclusive) at `rate` per unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// Lower bound in pricing units, internal scale.
    pub from: i128,
    /// Price per unit, internal scale.
    pub rate: i128,
}

/// A custom tiered rate table; tiers are contiguous, the first starts at 0 and
/// the last has no upper bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierTable {
    tiers: Vec<Tier>,
}

impl TierTable {
    /// Builds a table, checking that tiers start at 0 and ascend strictly.
    pub fn new(tiers: Vec<Tier>) -> Result<TierTable, String> {
        if tiers.is_empty() {
            return Err("a custom rate needs at least one tier".into());
        }
        if tiers[0].from != 0 {
            return Err("the first tier must start at 0".into());
        }
        for w in tiers.windows(2) {
            if w[1].from <= w[0].from {
                return Err(
                    "tiers must ascend: each `from` must be greater than the previous one".into(),
                );
            }
        }
        if let Some(t) = tiers.iter().find(|t| t.rate < 0) {
            return Err(format!(
                "tier rates cannot be negative (tier from {})",
                crate::money::format_fixed_exact(t.from)
            ));
        }
        Ok(TierTable { tiers })
    }

    /// The tiers in order.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The charge for a cumulative `quantity` (internal scale) across all tiers.
    ///
    /// Each tier's portion is `units × rate` rounded at the internal scale.
    /// Negative quantities (usage corrections) are charged at the first tier.
    pub fn charge(&self, quantity: i128) -> Option<i128> {
        if quantity <= 0 {
            return mul_fixed(quantity, self.tiers[0].rate);
        }
        let mut total: i128 = 0;
        for (i, t) in self.tiers.iter().enumerate() {
            if quantity <= t.from {
                break;
            }
            let upper = self
                .tiers
                .get(i + 1)
                .map(|n| n.from.min(quantity))
                .unwrap_or(quantity);
            let units = upper - t.from;
            total = total.checked_add(mul_fixed(units, t.rate)?)?;
        }
        Some(total)
    }
}

/// What a winning rule does to a line's public price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Public price × (1 + p/100).
    Markup(Percent),
    /// Public price × (1 − p/100).
    Discount(Percent),
    /// Replace the public price with a tier table over the org's monthly usage of the SKU.
    Custom(Arc<TierTable>),
}

/// A compiled rule with its user-visible id.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule id from the config.
    pub id: String,
    /// Scope and match.
    pub scope: Scope,
    /// The modifier, or `None` for a free-tier (TIERING) rule.
    pub action: Option<Action>,
    /// For TIERING rules: whether the AWS free tier applies.
    pub free_tier: Option<bool>,
}

/// The fields of a line that rules match on.
#[derive(Debug, Clone, Copy)]
pub struct SkuKey<'a> {
    /// Product code (service).
    pub service: &'a str,
    /// Usage type.
    pub usage_type: &'a str,
    /// Operation.
    pub operation: &'a str,
    /// Region code.
    pub region: &'a str,
    /// Billing entity (`AWS`, `AWS Marketplace`).
    pub billing_entity: &'a str,
}

/// The outcome of resolving a line's key against a rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Index of the winning modifier rule in the rule set, if any.
    pub rule: Option<u32>,
    /// The winning action (`None`: public price unchanged).
    pub action: Option<Action>,
    /// Whether the free tier applies (default on, as in AWS).
    pub free_tier: bool,
}

/// A plan's rules, indexed by scope for resolution.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    global: Option<u32>,
    by_entity: HashMap<String, u32>,
    by_service: HashMap<String, u32>,
    by_sku_service: HashMap<String, Vec<u32>>,
    tiering_global: Option<bool>,
    tiering_service: HashMap<String, bool>,
    /// Resolutions already made, by key text: shared by every task rating on this
    /// plan, so a key is resolved once per run rather than once per file.
    resolved: ResolutionMemo,
}

/// [`RuleSet::resolve_memoized`]'s memo; a clone starts empty (it is a cache).
#[derive(Debug, Default)]
struct ResolutionMemo(Mutex<HashMap<Box<str>, Resolution>>);

impl Clone for ResolutionMemo {
    fn clone(&self) -> ResolutionMemo {
        ResolutionMemo::default()
    }
}

impl RuleSet {
    /// Indexes rules; fails on two rules of the same kind with the same scope and match.
    pub fn new(rules: Vec<Rule>) -> Result<RuleSet, String> {
        let mut set = RuleSet::default();
        for (i, rule) in rules.iter().enumerate() {
            let i = i as u32;
            let dup = |other: u32| {
                format!(
                    "rules `{}` and `{}` have the same scope and match; a plan may hold only one (Billing Conductor: PRICING_RULE_IN_PRICING_PLAN_CONFLICT)",
                    rules[other as usize].id, rule.id
                )
            };
            if let Some(ft) = rule.free_tier {
                let slot = match &rule.scope {
                    Scope::Global => set.tiering_global.replace(ft).map(|_| ()),
                    Scope::Service(s) => set.tiering_service.insert(s.clone(), ft).map(|_| ()),
                    _ => {
                        return Err(format!(
                        "rule `{}`: free-tier (tiering) rules take scope global or service only",
                        rule.id
                    ))
                    }
                };
                if slot.is_some() {
                    let other = rules
                        .iter()
                        .position(|r| r.free_tier.is_some() && r.scope == rule.scope)
                        .unwrap_or(0) as u32;
                    return Err(dup(other));
                }
                continue;
            }
            match &rule.scope {
                Scope::Global => {
                    if let Some(o) = set.global.replace(i) {
                        return Err(dup(o));
                    }
                }
                Scope::BillingEntity(e) => {
                    if let Some(o) = set.by_entity.insert(e.clone(), i) {
                        return Err(dup(o));
                    }
                }
                Scope::Service(s) => {
                    if let Some(o) = set.by_service.insert(s.clone(), i) {
                        return Err(dup(o));
                    }
                }
                Scope::Sku(m) => {
                    let list = set.by_sku_service.entry(m.service.clone()).or_default();
                    if let Some(&o) = list
                        .iter()
                        .find(|&&o| rules[o as usize].scope == rule.scope)
                    {
                        return Err(dup(o));
                    }
                    list.push(i);
                }
            }
            if matches!(rule.action, Some(Action::Custom(_)))
                && !matches!(rule.scope, Scope::Sku(_))
            {
                return Err(format!(
                    "rule `{}`: custom rates take scope sku only",
                    rule.id
                ));
            }
        }
        // Most specific SKU rule first, so resolution takes the first match.
        for list in set.by_sku_service.values_mut() {
            list.sort_by_key(|&i| match &rules[i as usize].scope {
                Scope::Sku(m) => std::cmp::Reverse(m.weight()),
                _ => std::cmp::Reverse(0),
            });
        }
        set.rules = rules;
        Ok(set)
    }

    /// The rules in config order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether every key resolves with the free tier on (no tiering rule turns it off),
    /// so no line of this plan is priced at a SKU's paid rate at month end.
    pub fn free_tier_always_on(&self) -> bool {
        self.tiering_global != Some(false) && self.tiering_service.values().all(|on| *on)
    }

    /// [`RuleSet::resolve`], remembered under `text`, which must identify `key`
    /// exactly (the kernel's length-prefixed key text).
    pub fn resolve_memoized(&self, text: &str, key: &SkuKey<'_>) -> Resolution {
        // A poisoned memo (a panic elsewhere while it was held) is still a valid cache.
        let memo = || self.resolved.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = memo().get(text) {
            return r.clone();
        }
        let r = self.resolve(key);
        memo().insert(text.into(), r.clone());
        r
    }

    /// Resolves one distinct key: the most specific modifier (SKU > service >
    /// billing entity > global) and whether the free tier applies. Call once per
    /// key and cache the result.
    pub fn resolve(&self, key: &SkuKey<'_>) -> Resolution {
        let sku = self.by_sku_service.get(key.service).and_then(|list| {
            list.iter()
                .copied()
                .find(|&i| match &self.rules[i as usize].scope {
                    Scope::Sku(m) => m.matches(key),
                    _ => false,
                })
        });
        let rule = sku
            .or_else(|| self.by_service.get(key.service).copied())
            .or_else(|| self.by_entity.get(key.billing_entity).copied())
            .or(self.global);
        let free_tier = self
            .tiering_service
            .get(key.service)
            .copied()
            .or(self.tiering_global)
            .unwrap_or(true);
        Resolution {
            rule,
            action: rule.and_then(|i| self.rules[i as usize].action.clone()),
            free_tier,
        }
    }
}

/// Applies a markup or discount to a public-price amount; `None` on overflow.
/// (Custom tier tables are applied to a month's quantity, not to one line.)
#[inline(always)]
pub fn apply_modifier(public_amount: i128, action: Option<&Action>) -> Option<i128> {
    match action.and_then(Action::signed_hundredths) {
        None => Some(public_amount),
        Some(h) => Percent::adjust(public_amount, h),
    }
}

impl Action {
    /// The hundredths of a percent this action adds to a public price: a markup's,
    /// a discount's negated; `None` for a tier table (priced at month end).
    pub fn signed_hundredths(&self) -> Option<i64> {
        match self {
            Action::Markup(p) => Some(p.0),
            Action::Discount(p) => Some(-p.0),
            Action::Custom(_) => None,
        }
    }
}

/// A line's public on-demand amount: `quantity × rate` when the rate is known,
/// else the delivered public cost, else `None`.
pub fn public_amount(
    quantity: i128,
    rate: Option<i128>,
    public_cost: Option<i128>,
) -> Option<Option<i128>> {
    match (rate, public_cost) {
        (Some(r), _) => mul_fixed(quantity, r).map(Some),
        (None, Some(c)) => Some(Some(c)),
        (None, None) => Some(None),
    }
}

/// Splits `total` across `weights` in proportion, exactly: the parts sum to `total`.
///
/// Negative weights count as zero. Remainders (in internal units) go to the
/// largest fractional parts, ties to the earlier index; with no positive weight
/// everything goes to the first part.
pub fn allocate_proportionally(total: i128, weights: &[i128]) -> Vec<i128> {
    use arrow::datatypes::i256;
    if weights.is_empty() {
        return Vec::new();
    }
    let clamped: Vec<i128> = weights.iter().map(|&w| w.max(0)).collect();
    let sum: i128 = clamped.iter().fold(0i128, |a, &w| a.saturating_add(w));
    let mut parts = vec![0i128; weights.len()];
    if sum == 0 {
        parts[0] = total;
        return parts;
    }
    let magnitude = i256::from_i128(total.abs());
    let divisor = i256::from_i128(sum);
    let mut rems = Vec::with_capacity(weights.len());
    let mut assigned: i128 = 0;
    for (i, &w) in clamped.iter().enumerate() {
        let p = magnitude.wrapping_mul(i256::from_i128(w));
        let q = p.wrapping_div(divisor).as_i128();
        rems.push(p.wrapping_rem(divisor));
        parts[i] = q;
        assigned += q;
    }
    let mut left = total.abs() - assigned;
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| rems[b].cmp(&rems[a]).then(a.cmp(&b)));
    let mut k = 0;
    while left > 0 {
        parts[order[k % order.len()]] += 1;
        left -= 1;
        k += 1;
    }
    if total < 0 {
        for p in &mut parts {
            *p = -*p;
        }
    }
    parts
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::money::parse_fixed;

    fn d(s: &str) -> i128 {
        parse_fixed(s).unwrap()
    }

    /// A rule with a modifier and no free-tier setting (shared with the kernel's tests).
    pub(crate) fn rule(id: &str, scope: Scope, action: Action) -> Rule {
        Rule {
            id: id.into(),
            scope,
            action: Some(action),
            free_tier: None,
        }
    }

    /// A SKU scope in any region (shared with the kernel's tests).
    pub(crate) fn sku(service: &str, usage_type: Option<&str>, operation: Option<&str>) -> Scope {
        Scope::Sku(SkuMatch {
            service: service.into(),
            usage_type: usage_type.map(Into::into),
            operation: operation.map(Into::into),
            region: None,
        })
    }

    fn key<'a>(
        service: &'a str,
        usage_type: &'a str,
        operation: &'a str,
        entity: &'a str,
    ) -> SkuKey<'a> {
        SkuKey {
            service,
            usage_type,
            operation,
            region: "us-east-1",
            billing_entity: entity,
        }
    }

    fn price(set: &RuleSet, k: SkuKey<'_>, public: &str) -> i128 {
        let r = set.resolve(&k);
        apply_modifier(d(public), r.action.as_ref()).unwrap()
    }

    #[test]
    fn memoized_resolutions_are_the_resolutions_and_clones_start_empty() {
        let set = RuleSet::new(vec![
            rule("g", Scope::Global, Action::Discount(Percent(500))),
            rule(
                "s",
                sku("AmazonEC2", Some("BoxUsage"), None),
                Action::Markup(Percent(1000)),
            ),
        ])
        .unwrap();
        let keys = [
            key("AmazonEC2", "BoxUsage", "RunInstances", "AWS"),
            key("AmazonS3", "TimedStorage", "", "AWS"),
        ];
        for round in 0..2 {
            for (i, k) in keys.iter().enumerate() {
                let text = format!("key {i}");
                assert_eq!(
                    set.resolve_memoized(&text, k),
                    set.resolve(k),
                    "round {round}"
                );
            }
        }
        assert_eq!(set.resolve_memoized("key 0", &keys[0]).rule, Some(1));
        assert_eq!(set.resolve_memoized("key 1", &keys[1]).rule, Some(0));
        // A clone's memo is empty: a key text remembered by one set never answers for another.
        let clone = set.clone();
        assert_eq!(clone.resolve_memoized("key 0", &keys[1]).rule, Some(0));
    }

    #[test]
    fn t_d1_sku_beats_global_and_rules_never_stack() {
        let set = RuleSet::new(vec![
            rule("g", Scope::Global, Action::Discount(Percent(500))),
            rule(
                "s",
                sku(
                    "AmazonEC2",
                    Some("USE1-BoxUsage:m5.large"),
                    Some("RunInstances"),
                ),
                Action::Markup(Percent(1000)),
            ),
        ])
        .unwrap();
        // Line A: 100 h x 0.10
        let a = public_amount(d("100"), Some(d("0.10")), None)
            .unwrap()
            .unwrap();
        let r = set.resolve(&key(
            "AmazonEC2",
            "USE1-BoxUsage:m5.large",
            "RunInstances",
            "AWS",
        ));
        assert_eq!(apply_modifier(a, r.action.as_ref()), Some(d("11.00")));
        assert_eq!(
            price(&set, key("AmazonS3", "x", "y", "AWS"), "20.00"),
            d("19.00")
        );
        assert_eq!(
            price(
                &set,
                key(
                    "AmazonEC2",
                    "USE1-BoxUsage:m5.xlarge",
                    "RunInstances",
                    "AWS"
                ),
                "20.00"
            ),
            d("19.00")
        );
    }

    #[test]
    fn t_d2_service_beats_global() {
        let set = RuleSet::new(vec![
            rule(
                "svc",
                Scope::Service("AmazonEC2".into()),
                Action::Markup(Percent(300)),
            ),
            rule("g", Scope::Global, Action::Discount(Percent(500))),
        ])
        .unwrap();
        assert_eq!(
            price(&set, key("AmazonEC2", "u", "o", "AWS"), "50.00"),
            d("51.50")
        );
        assert_eq!(
            price(&set, key("AmazonRDS", "u", "o", "AWS"), "40.00"),
            d("38.00")
        );
    }

    #[test]
    fn t_d3_billing_entity_beats_global() {
        let set = RuleSet::new(vec![
            rule(
                "mp",
                Scope::BillingEntity("AWS Marketplace".into()),
                Action::Markup(Percent(0)),
            ),
            rule("g", Scope::Global, Action::Markup(Percent(800))),
        ])
        .unwrap();
        assert_eq!(
            price(&set, key("x", "u", "o", "AWS Marketplace"), "100.00"),
            d("100.00")
        );
        assert_eq!(
            price(&set, key("x", "u", "o", "AWS"), "100.00"),
            d("108.00")
        );
    }

    #[test]
    fn t4_zero_modifier_is_the_on_demand_rate() {
        let set = RuleSet::new(vec![rule("g", Scope::Global, Action::Markup(Percent(0)))]).unwrap();
        assert_eq!(price(&set, key("x", "u", "o", "AWS"), "98.00"), d("98.00"));
        let empty = RuleSet::new(vec![]).unwrap();
        assert_eq!(
            price(&empty, key("x", "u", "o", "AWS"), "98.00"),
            d("98.00")
        );
    }

    #[test]
    fn more_specific_sku_rule_wins_whatever_the_order() {
        let set = RuleSet::new(vec![
            rule(
                "op",
                sku("AmazonEC2", None, Some("RunInstances")),
                Action::Markup(Percent(100)),
            ),
            rule(
                "both",
                sku("AmazonEC2", Some("BoxUsage"), Some("RunInstances")),
                Action::Markup(Percent(200)),
            ),
            rule(
                "ut",
                sku("AmazonEC2", Some("BoxUsage"), None),
                Action::Markup(Percent(300)),
            ),
        ])
        .unwrap();
        let r = |u, o| {
            set.resolve(&key("AmazonEC2", u, o, "AWS"))
                .rule
                .map(|i| set.rules()[i as usize].id.clone())
        };
        assert_eq!(r("BoxUsage", "RunInstances").as_deref(), Some("both"));
        assert_eq!(r("BoxUsage", "Other").as_deref(), Some("ut"));
        assert_eq!(r("Other", "RunInstances").as_deref(), Some("op"));
        assert_eq!(r("Other", "Other"), None);
    }

    #[test]
    fn duplicate_scope_is_refused() {
        let err = RuleSet::new(vec![
            rule(
                "a",
                Scope::Service("AmazonEC2".into()),
                Action::Markup(Percent(1)),
            ),
            rule(
                "b",
                Scope::Service("AmazonEC2".into()),
                Action::Markup(Percent(2)),
            ),
        ])
        .unwrap_err();
        assert!(err.contains("`a` and `b`"), "{err}");
    }

    #[test]
    fn free_tier_rules_resolve_separately() {
        let set = RuleSet::new(vec![
            Rule {
                id: "ft".into(),
                scope: Scope::Global,
                action: None,
                free_tier: Some(false),
            },
            Rule {
                id: "ft-s3".into(),
                scope: Scope::Service("AmazonS3".into()),
                action: None,
                free_tier: Some(true),
            },
            rule("g", Scope::Global, Action::Markup(Percent(500))),
        ])
        .unwrap();
        let ec2 = set.resolve(&key("AmazonEC2", "u", "o", "AWS"));
        assert!(!ec2.free_tier);
        assert_eq!(ec2.action, Some(Action::Markup(Percent(500))));
        assert!(set.resolve(&key("AmazonS3", "u", "o", "AWS")).free_tier);
    }

    #[test]
    fn free_tier_always_on_only_without_an_off_rule() {
        let tiering = |id: &str, scope: Scope, on: bool| Rule {
            id: id.into(),
            scope,
            action: None,
            free_tier: Some(on),
        };
        let markup = || rule("g", Scope::Global, Action::Markup(Percent(500)));
        let on = |rules: Vec<Rule>| RuleSet::new(rules).unwrap().free_tier_always_on();
        assert!(on(vec![markup()]));
        assert!(on(vec![markup(), tiering("ft", Scope::Global, true)]));
        assert!(!on(vec![markup(), tiering("ft", Scope::Global, false)]));
        // Off for one service only, or off globally with one service back on: not always on.
        assert!(!on(vec![tiering(
            "ft-ec2",
            Scope::Service("AmazonEC2".into()),
            false
        )]));
        assert!(!on(vec![
            tiering("ft", Scope::Global, false),
            tiering("ft-s3", Scope::Service("AmazonS3".into()), true),
        ]));
    }

    #[test]
    fn t_d12_custom_tier_table() {
        // [0-20 TB @ 0.08, >20 TB @ 0.06]; 30 TB -> 20 x 0.08 + 10 x 0.06 (units: TB here)
        let t = TierTable::new(vec![
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
        assert_eq!(t.charge(d("30")), Some(d("2.2")));
        assert_eq!(t.charge(d("20")), Some(d("1.6")));
        assert_eq!(t.charge(d("5")), Some(d("0.4")));
        assert_eq!(t.charge(0), Some(0));
        assert!(TierTable::new(vec![Tier {
            from: d("1"),
            rate: 1
        }])
        .is_err());
        assert!(
            TierTable::new(vec![Tier { from: 0, rate: 1 }, Tier { from: 0, rate: 1 }]).is_err()
        );
    }

    #[test]
    fn t_d11_tiers_do_not_pool_across_orgs() {
        // Two orgs each use 6 TB with tiers 0-10 @ 0.09, >10 @ 0.085: each is rated as its own 6 TB.
        let t = TierTable::new(vec![
            Tier {
                from: 0,
                rate: d("0.09"),
            },
            Tier {
                from: d("10"),
                rate: d("0.085"),
            },
        ])
        .unwrap();
        let per_org = t.charge(d("6")).unwrap();
        assert_eq!(per_org, d("0.54"));
        assert_ne!(per_org * 2, t.charge(d("12")).unwrap());
    }

    #[test]
    fn proportional_allocation_is_exact() {
        let parts = allocate_proportionally(10, &[1, 1, 1]);
        assert_eq!(parts.iter().sum::<i128>(), 10);
        assert_eq!(parts, vec![4, 3, 3]);
        let parts = allocate_proportionally(-10, &[1, 2]);
        assert_eq!(parts.iter().sum::<i128>(), -10);
        let big =
            allocate_proportionally(d("123456789.123456789"), &[d("1000000"), d("3"), d("0.5")]);
        assert_eq!(big.iter().sum::<i128>(), d("123456789.123456789"));
        assert_eq!(allocate_proportionally(7, &[0, 0]), vec![7, 0]);
    }
}
