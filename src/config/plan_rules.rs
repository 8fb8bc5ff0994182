//! Pricing rules as written in the config, checked and compiled to a [`RuleSet`].

use super::*;

pub(super) fn rule_set(p: &mut Problems, plan_key: &str, rules: &[RawRule]) -> Option<RuleSet> {
    let mut compiled = Vec::new();
    let mut ok = true;
    let mut ids = BTreeSet::new();
    for (i, r) in rules.iter().enumerate() {
        let key = format!("{plan_key}.rules[{i}] (id `{}`)", r.id);
        if !ids.insert(r.id.clone()) {
            p.push(
                &format!("{key}.id"),
                format!("rule id `{}` is used twice in this plan", r.id),
            );
        }
        match rule(p, &key, r) {
            Some(rule) => compiled.push(rule),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    RuleSet::new(compiled)
        .map_err(|e| p.push(&format!("{plan_key}.rules"), e))
        .ok()
}

fn rule(p: &mut Problems, key: &str, r: &RawRule) -> Option<Rule> {
    let scope_name = r.scope.to_ascii_lowercase();
    let kind = r.kind.to_ascii_lowercase();
    let need = |p: &mut Problems, field: &str, v: &Option<String>| -> Option<String> {
        match v {
            Some(s) if !s.trim().is_empty() => Some(s.clone()),
            _ => {
                p.push(
                    &format!("{key}.{field}"),
                    format!("scope `{scope_name}` needs `{field}`"),
                );
                None
            }
        }
    };
    let forbid = |p: &mut Problems, field: &str, v: bool| {
        if v {
            p.push(
                &format!("{key}.{field}"),
                format!("`{field}` does not apply to scope `{scope_name}`"),
            );
        }
    };
    let forbid_sku_fields = |p: &mut Problems, r: &RawRule| {
        for (field, set) in [
            ("usage_type", r.usage_type.is_some()),
            ("operation", r.operation.is_some()),
            ("region", r.region.is_some()),
        ] {
            if set {
                p.push(
                    &format!("{key}.{field}"),
                    format!("`{field}` applies to scope `sku` only, not `{scope_name}`"),
                );
            }
        }
    };
    let scope = match scope_name.as_str() {
        "global" => {
            forbid(p, "service", r.service.is_some());
            forbid(p, "billing_entity", r.billing_entity.is_some());
            forbid_sku_fields(p, r);
            Some(Scope::Global)
        }
        "service" => {
            forbid(p, "billing_entity", r.billing_entity.is_some());
            forbid_sku_fields(p, r);
            need(p, "service", &r.service).map(Scope::Service)
        }
        "billing_entity" => {
            forbid(p, "service", r.service.is_some());
            forbid_sku_fields(p, r);
            let e = need(p, "billing_entity", &r.billing_entity)?;
            if !["AWS", "AWS Marketplace", "AISPL"].contains(&e.as_str()) {
                p.push(&format!("{key}.billing_entity"), format!("`{e}` is not a billing entity: use \"AWS\", \"AWS Marketplace\" or \"AISPL\""));
                return None;
            }
            Some(Scope::BillingEntity(e))
        }
        "sku" => {
            forbid(p, "billing_entity", r.billing_entity.is_some());
            let service = need(p, "service", &r.service)?;
            if r.usage_type.is_none() && r.operation.is_none() {
                p.push(key, "scope `sku` needs `usage_type` and/or `operation` (Billing Conductor: INVALID_SKU_COMBO)");
                return None;
            }
            Some(Scope::Sku(SkuMatch {
                service,
                usage_type: r.usage_type.clone(),
                operation: r.operation.clone(),
                region: r.region.clone(),
            }))
        }
        other => {
            p.push(
                &format!("{key}.scope"),
                format!("`{other}` is not a scope: use global, service, billing_entity or sku"),
            );
            None
        }
    }?;
    let percent = |p: &mut Problems| -> Option<Percent> {
        let Some(t) = &r.percent else {
            p.push(
                &format!("{key}.percent"),
                format!("type `{kind}` needs `percent`"),
            );
            return None;
        };
        percent_value(p, &format!("{key}.percent"), t)
    };
    let mut free_tier = None;
    let action = match kind.as_str() {
        "markup" => {
            let v = percent(p)?;
            if !(0..=1_000_000).contains(&v.0) {
                p.push(&format!("{key}.percent"), format!("`{v}` is out of range: a markup is 0 to 10000 percent (Billing Conductor: ILLEGAL_MODIFIER_PERCENTAGE)"));
                return None;
            }
            Some(Action::Markup(v))
        }
        "discount" => {
            let v = percent(p)?;
            if !(0..=10_000).contains(&v.0) {
                p.push(&format!("{key}.percent"), format!("`{v}` is out of range: a discount is 0 to 100 percent (Billing Conductor: ILLEGAL_MODIFIER_PERCENTAGE)"));
                return None;
            }
            Some(Action::Discount(v))
        }
        "tiering" => {
            let Some(ft) = r.free_tier else {
                p.push(
                    &format!("{key}.free_tier"),
                    "type `tiering` needs `free_tier = true|false`",
                );
                return None;
            };
            free_tier = Some(ft);
            None
        }
        "custom" => {
            let Some(tiers) = &r.tiers else {
                p.push(
                    &format!("{key}.tiers"),
                    "type `custom` needs `tiers = [{ from = \"0\", rate = \"...\" }, ...]`",
                );
                return None;
            };
            let mut parsed = Vec::new();
            for (j, t) in tiers.iter().enumerate() {
                let from = decimal(p, &format!("{key}.tiers[{j}].from"), &t.from, 10);
                let rate = decimal(p, &format!("{key}.tiers[{j}].rate"), &t.rate, 10);
                parsed.push(Tier {
                    from: from?,
                    rate: rate?,
                });
            }
            let table = TierTable::new(parsed)
                .map_err(|e| p.push(&format!("{key}.tiers"), e))
                .ok()?;
            Some(Action::Custom(Arc::new(table)))
        }
        other => {
            p.push(
                &format!("{key}.type"),
                format!("`{other}` is not a rule type: use markup, discount, tiering or custom"),
            );
            return None;
        }
    };
    if kind != "tiering" && r.free_tier.is_some() {
        p.push(
            &format!("{key}.free_tier"),
            "`free_tier` applies to type `tiering` only",
        );
    }
    if kind != "custom" && r.tiers.is_some() {
        p.push(
            &format!("{key}.tiers"),
            "`tiers` applies to type `custom` only",
        );
    }
    if (kind == "tiering" || kind == "custom") && r.percent.is_some() {
        p.push(
            &format!("{key}.percent"),
            format!("`percent` does not apply to type `{kind}`"),
        );
    }
    Some(Rule {
        id: r.id.clone(),
        scope,
        action,
        free_tier,
    })
}
