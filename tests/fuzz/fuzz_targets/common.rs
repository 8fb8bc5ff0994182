// Shared by the ingestion targets: an org that owns the sample accounts, rated on a plan with every rule kind.
use std::collections::HashSet;
use std::sync::Arc;

use billxfer::ingest::ChunkSource;
use billxfer::normalize::OrgCheck;
use billxfer::money::Percent;
use billxfer::rate::{Pricing, Rater};
use billxfer::rules::{Action, Rule, RuleSet, Scope, SkuMatch, Tier, TierTable};
use billxfer::pipeline::{rate_source, Silent};
use billxfer::types::BillingPeriod;

/// Runs `f`, ignoring panics raised inside dependencies (the binary turns those into
/// errors naming the file, see `run::guarded`) but letting a panic in billxfer's own
/// code through, so libFuzzer reports it.
pub fn own_panics_only(f: impl FnOnce()) {
    use std::cell::RefCell;
    thread_local!(static LOCATION: RefCell<String> = const { RefCell::new(String::new()) });
    std::panic::set_hook(Box::new(|info| {
        let loc = info.location().map(|l| l.file().to_string()).unwrap_or_default();
        LOCATION.with(|l| *l.borrow_mut() = loc);
    }));
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        let loc = LOCATION.with(|l| l.borrow().clone());
        if !loc.contains(".cargo/registry") && !loc.contains("/rustc/") {
            panic!("panic in billxfer code at {loc}");
        }
    }
}

pub fn exercise(mut source: Box<dyn ChunkSource>) {
    let check = OrgCheck {
        label: "org `fuzz`".into(),
        accounts: ["111111111111", "111111111112", "111100000001", "111100000002"].iter().map(|s| s.to_string()).collect::<HashSet<_>>(),
        period: BillingPeriod::new(2026, 3).unwrap(),
        currency: "USD".into(),
        require_billed_cost: true,
        management_account: "111111111111".into(),
        excluded: Default::default(),
        payers: (["900000000001".to_string()].into_iter().collect(), "the partner".into()),
    };
    let tiers = TierTable::new(vec![Tier { from: 0, rate: 1_000_000 }, Tier { from: 10_000_000_000, rate: 500_000 }]).unwrap();
    let rules = RuleSet::new(vec![
        Rule { id: "g".into(), scope: Scope::Global, action: Some(Action::Markup(Percent(1000))), free_tier: None },
        Rule { id: "ft".into(), scope: Scope::Global, action: None, free_tier: Some(false) },
        Rule {
            id: "t".into(),
            scope: Scope::Sku(SkuMatch { service: "AmazonS3".into(), usage_type: None, operation: Some("StandardStorage".into()), region: None }),
            action: Some(Action::Custom(Arc::new(tiers))),
            free_tier: None,
        },
    ])
    .unwrap();
    let pricing = Pricing::Rules(Arc::new(rules));
    let mut rater = Rater::new(Pricing::Billed, pricing.clone());
    if rate_source(source.as_mut(), std::path::Path::new("fuzz"), &check, &mut rater, &Silent).is_ok() {
        let mut ledger = rater.finish();
        let _ = ledger.finalize(&Pricing::Billed, &pricing);
    }
}
