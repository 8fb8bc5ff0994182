//! Organizations and plans as validated from the raw config: the plan tables of
//! each level, the ids and accounts each org claims, the chain of who bills whom
//! (docs/CHAINS.md) and one org's entry with its custom line items.

use super::*;

/// The built-in plans and the plans declared under `key` (the top's `plans`, or a seller's).
pub(super) fn plan_table(
    p: &mut Problems,
    key: &str,
    raw: &[RawPlan],
) -> BTreeMap<String, Arc<Plan>> {
    let mut plans: BTreeMap<String, Arc<Plan>> = BTreeMap::new();
    plans.insert(
        "basic".into(),
        Arc::new(Plan {
            id: "basic".into(),
            description: "Public on-demand prices; non-public discounts, credits, tax and support excluded (AWS BasicPricingPlan).".into(),
            kind: PlanKind::Rated(Arc::new(RuleSet::default())),
            base: ProformaBase::Billed,
        }),
    );
    plans.insert(
        "passthrough".into(),
        Arc::new(Plan {
            id: "passthrough".into(),
            description: "The bill of the level above, line for line (AWS Passthrough).".into(),
            kind: PlanKind::Passthrough,
            base: ProformaBase::Billed,
        }),
    );
    for (i, plan) in raw.iter().enumerate() {
        let key = format!("{key}[{i}] (id `{}`)", plan.id);
        if plans.contains_key(&plan.id) {
            let why = if plan.id == "basic" || plan.id == "passthrough" {
                "is a built-in plan"
            } else {
                "is defined twice"
            };
            p.push(&format!("{key}.id"), format!("plan id `{}` {why}", plan.id));
            continue;
        }
        if plan.id.is_empty() {
            p.push(&format!("{key}.id"), "plan ids cannot be empty");
            continue;
        }
        if let Some(rs) = rule_set(p, &key, &plan.rules) {
            plans.insert(
                plan.id.clone(),
                Arc::new(Plan {
                    id: plan.id.clone(),
                    description: plan.description.clone(),
                    kind: PlanKind::Rated(Arc::new(rs)),
                    base: plan.base,
                }),
            );
        }
    }
    plans
}

/// Ids and accounts claimed so far: each id and each account belongs to one org.
pub(super) struct Registry {
    /// Account → the label of the org that claims it.
    claimed: BTreeMap<AccountId, String>,
    /// Ids used (the partner's included).
    ids: BTreeSet<String>,
    /// Lower-cased id → (key, id): ids equal but for case would overwrite each
    /// other's files on a case-insensitive filesystem (macOS, Windows).
    folded: BTreeMap<String, (String, String)>,
}

impl Registry {
    pub(super) fn new(partner_id: &str, claimed: BTreeMap<AccountId, String>) -> Registry {
        Registry {
            claimed,
            ids: BTreeSet::from([partner_id.to_string()]),
            folded: BTreeMap::from([(
                partner_id.to_ascii_lowercase(),
                ("partner.id".to_string(), partner_id.to_string()),
            )]),
        }
    }

    /// Claims an org id, reporting a repeat or a case-only difference.
    fn claim_id(&mut self, p: &mut Problems, key: &str, id: &str) {
        if !self.ids.insert(id.to_string()) {
            p.push(
                &format!("{key}.id"),
                format!(
                    "org id `{id}` is used twice (the partner's and the sellers' ids count too)"
                ),
            );
        } else if let Some((other_key, other_id)) = self.folded.get(&id.to_ascii_lowercase()) {
            p.push(
                &format!("{key}.id"),
                format!(
                    "org id `{id}` differs from `{other_id}` ({other_key}) only by case; ids name output files, which would overwrite each other on a case-insensitive filesystem (macOS, Windows): make them differ by more than case"
                ),
            );
        } else {
            self.folded.insert(
                id.to_ascii_lowercase(),
                (format!("{key}.id"), id.to_string()),
            );
        }
    }
}

/// End customer id → index of the seller that lists it, after refusing what
/// AWS billing transfer cannot do: cycles, chains longer than two levels, an
/// org under two sellers, and customers that are not in `[[orgs]]`.
pub(super) fn chain_map(p: &mut Problems, raw: &RawConfig) -> BTreeMap<String, usize> {
    let sellers: BTreeMap<&str, usize> = raw
        .sellers
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let orgs: BTreeSet<&str> = raw.orgs.iter().map(|o| o.id.as_str()).collect();
    let mut under: BTreeMap<String, usize> = BTreeMap::new();
    for (i, s) in raw.sellers.iter().enumerate() {
        let key = format!("sellers[{i}] (id `{}`).customers", s.id);
        for c in &s.customers {
            if c == &s.id {
                p.push(
                    &key,
                    format!("seller `{c}` lists itself as its customer: a chain cannot be a cycle"),
                );
            } else if c == &raw.partner.id {
                p.push(&key, format!("`{c}` is the top partner: a seller cannot bill the partner above it (a cycle)"));
            } else if let Some(&j) = sellers.get(c.as_str()) {
                if raw.sellers[j].customers.iter().any(|x| x == &s.id) {
                    p.push(&key, format!("sellers `{}` and `{c}` list each other as customers: a chain cannot be a cycle", s.id));
                } else {
                    p.push(&key, format!("`{c}` is a seller itself: AWS billing transfer allows at most two levels (top partner -> seller -> end customer), so a seller's customer cannot bill customers of its own"));
                }
            } else if !orgs.contains(c.as_str()) {
                p.push(&key, format!("`{c}` is not an org: list each end customer under [[orgs]] and name it here"));
            } else if let Some(&j) = under.get(c) {
                if j == i {
                    p.push(&key, format!("org `{c}` is listed twice"));
                } else {
                    p.push(&key, format!("org `{c}` is listed under two sellers, `{}` and `{}`: an org's bill is transferred to one payer", raw.sellers[j].id, s.id));
                }
            } else {
                under.insert(c.clone(), i);
            }
        }
    }
    under
}

/// Validates one org (a direct customer, an end customer or a seller's own
/// usage) against the plans of its level.
pub(super) fn org_entry(
    p: &mut Problems,
    key: &str,
    o: &RawOrg,
    registry: &mut Registry,
    (plans, whose): (&BTreeMap<String, Arc<Plan>>, &str),
    level: Level,
) -> Option<Org> {
    let id = OrgId::parse(&o.id)
        .map_err(|e| p.push(&format!("{key}.id"), e))
        .ok();
    registry.claim_id(p, key, &o.id);
    let mgmt = account(
        p,
        &format!("{key}.management_account"),
        &o.management_account,
    );
    let mut accounts = BTreeSet::new();
    for (j, a) in o.accounts.iter().enumerate() {
        if let Some(a) = account(p, &format!("{key}.accounts[{j}]"), a) {
            accounts.insert(a);
        }
    }
    if let Some(m) = &mgmt {
        accounts.insert(m.clone());
    }
    let label = format!("org `{}`", o.id);
    for a in &accounts {
        if let Some(other) = registry.claimed.insert(a.clone(), label.clone()) {
            p.push(&format!("{key}.accounts"), format!("account {a} is claimed by both {other} and {label}; an account belongs to exactly one organization"));
        }
    }
    if o.files.is_empty() {
        p.push(
            &format!("{key}.files"),
            "no input files: give at least one path or glob pattern",
        );
    }
    let plan = match plans.get(&o.plan) {
        Some(pl) => Some(pl.clone()),
        None => {
            let known: Vec<&str> = plans.keys().map(String::as_str).collect();
            p.push(
                &format!("{key}.plan"),
                format!(
                    "plan `{}` does not exist in {whose} (known plans: {})",
                    o.plan,
                    known.join(", ")
                ),
            );
            None
        }
    };
    if let Some(pl) = &plan {
        if matches!(pl.kind, PlanKind::Passthrough) && !o.allow_passthrough {
            let shown = match level {
                Level::EndCustomer { .. } => "its seller's cost (the top partner's prices)",
                _ => "the partner's actual bill, including non-public discounts",
            };
            p.push(
                &format!("{key}.plan"),
                format!("the passthrough plan shows this customer {shown}; set `allow_passthrough = true` on the org to confirm"),
            );
        }
    }
    let transfer = transfer(p, key, &o.transfer);
    let currency = match o.currency.as_deref() {
        None => Some(crate::fx::Currency::USD),
        Some(c) => crate::fx::Currency::parse(c)
            .map_err(|e| p.push(&format!("{key}.currency"), e))
            .ok(),
    };
    let clis = custom_items(p, key, &o.custom_line_items, mgmt.as_ref(), &accounts);
    Some(Org {
        id: id?,
        name: o.name.clone(),
        management_account: mgmt?,
        accounts,
        files: o.files.clone(),
        plan: plan?,
        transfer: transfer?,
        custom_line_items: clis,
        level,
        currency: currency?,
    })
}

/// An org's custom line items, checked one by one and then together.
fn custom_items(
    p: &mut Problems,
    key: &str,
    raw: &[RawCli],
    mgmt: Option<&AccountId>,
    accounts: &BTreeSet<AccountId>,
) -> Vec<CustomLineItem> {
    let mut clis = Vec::new();
    let mut cli_ids = BTreeSet::new();
    for (j, c) in raw.iter().enumerate() {
        let ckey = format!("{key}.custom_line_items[{j}] (id `{}`)", c.id);
        if !cli_ids.insert(c.id.clone()) {
            p.push(
                &format!("{ckey}.id"),
                format!("custom line item id `{}` is used twice in this org", c.id),
            );
        }
        if let Some(cli) = custom_line_item(p, &ckey, c, mgmt, accounts) {
            clis.push(cli);
        }
    }
    // Percentage items may include flat items only (Billing Conductor: ILLEGAL_CHILD_ASSOCIATE_RESOURCE).
    for (j, c) in clis.iter().enumerate() {
        if let CliCharge::Percentage { include_items, .. } = &c.charge {
            for name in include_items {
                match clis.iter().find(|x| &x.id == name) {
                    None => p.push(
                        &format!("{key}.custom_line_items[{j}].include_items"),
                        format!("custom line item `{name}` does not exist in this org"),
                    ),
                    Some(x) if !matches!(x.charge, CliCharge::Flat(_)) => p.push(
                        &format!("{key}.custom_line_items[{j}].include_items"),
                        format!("`{name}` is a percentage item; a percentage can include flat items only"),
                    ),
                    _ => {}
                }
            }
        }
    }
    clis
}

/// One custom line item, checked against its org's accounts.
fn custom_line_item(
    p: &mut Problems,
    key: &str,
    c: &RawCli,
    mgmt: Option<&AccountId>,
    accounts: &BTreeSet<AccountId>,
) -> Option<CustomLineItem> {
    let kind = match c.kind.to_ascii_lowercase().as_str() {
        "fee" => Some(CliKind::Fee),
        "credit" => Some(CliKind::Credit),
        other => {
            p.push(
                &format!("{key}.kind"),
                format!("`{other}` is not a kind: use \"fee\" or \"credit\""),
            );
            None
        }
    };
    if c.description.trim().is_empty() || c.description.len() > 255 {
        p.push(
            &format!("{key}.description"),
            "a description of 1 to 255 characters is required (it is shown on the invoice)",
        );
    }
    let charge = match (&c.flat, &c.percent) {
        (Some(f), None) => {
            if c.include_org_total.is_some()
                || !c.include_items.is_empty()
                || c.exclude_savings_plan_negation
                || c.service.is_some()
            {
                p.push(key, "include_org_total, include_items, exclude_savings_plan_negation and service apply to percentage items only");
            }
            let v = decimal(p, &format!("{key}.flat"), f, 10)?;
            if !(0..=1_000_000 * ONE).contains(&v) {
                p.push(&format!("{key}.flat"), format!("`{}` is out of range: a flat amount is 0 to 1000000 (use kind = \"credit\" for a reduction)", f.0));
                return None;
            }
            Some(CliCharge::Flat(v))
        }
        (None, Some(pc)) => {
            let percent = percent_value(p, &format!("{key}.percent"), pc)?;
            if !(0..=1_000_000).contains(&percent.0) {
                p.push(
                    &format!("{key}.percent"),
                    format!(
                        "`{}` is out of range: a percentage item is 0 to 10000 percent",
                        pc.0
                    ),
                );
                return None;
            }
            Some(CliCharge::Percentage {
                percent,
                include_org_total: c.include_org_total.unwrap_or(true),
                include_items: c.include_items.clone(),
                exclude_savings_plan_negation: c.exclude_savings_plan_negation,
                service: c.service.clone(),
            })
        }
        _ => {
            p.push(key, "give exactly one of `flat` (an amount) or `percent`");
            None
        }
    };
    let account = match &c.account {
        Some(a) => {
            let a = account(p, &format!("{key}.account"), a)?;
            if !accounts.contains(&a) {
                p.push(
                    &format!("{key}.account"),
                    format!("account {a} is not one of this org's accounts"),
                );
                return None;
            }
            Some(a)
        }
        None => mgmt.cloned(),
    };
    let start = month(p, &format!("{key}.start"), &c.start);
    let end = match &c.end {
        Some(e) => Some(end_month(p, &format!("{key}.end"), e)?),
        None => None,
    };
    let start = start?;
    if end.is_some_and(|e| e < start) {
        p.push(&format!("{key}.end"), "the item ends before it starts");
        return None;
    }
    Some(CustomLineItem {
        id: c.id.clone(),
        description: c.description.clone(),
        kind: kind?,
        charge: charge?,
        account: account?,
        start,
        end,
        presentation_service: c
            .presentation_service
            .clone()
            .unwrap_or_else(|| "AWSBillingConductor".into()),
    })
}
