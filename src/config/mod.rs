//! The TOML configuration: partner, customer organizations, rate cards, custom line items.
//!
//! Loading is two steps: serde reads the raw structures (unknown keys are
//! refused with the file's line and column), then [`Config::load`] checks
//! every semantic rule, collects *all* problems with their key paths, and
//! fails once. The result is a validated [`Config`] whose types cannot hold an
//! invalid state. Keys are documented in docs/CONFIG.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::money::{Percent, Rounding, ONE};
use crate::rules::{Action, Rule, RuleSet, Scope, SkuMatch, Tier, TierTable};
use crate::types::{AccountId, BillingPeriod, OrgId};

mod decimal;
mod orgs;
mod plan_rules;

pub use decimal::{ConfigDecimalError, DecimalText, ExactDecimal};
use orgs::{chain_map, org_entry, plan_table, Registry};
use plan_rules::rule_set;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    run: RawRun,
    partner: RawPartner,
    #[serde(default)]
    actual: RawActual,
    #[serde(default)]
    plans: Vec<RawPlan>,
    #[serde(default)]
    orgs: Vec<RawOrg>,
    #[serde(default)]
    sellers: Vec<RawSeller>,
    fx: Option<RawFx>,
}

/// `[fx]`: the exchange-rate file for invoices in other currencies than USD.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFx {
    rates: String,
    #[serde(default)]
    source: String,
    rate_date: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    #[serde(default)]
    rounding: Rounding,
    #[serde(default)]
    duplicates: DuplicatePolicy,
    #[serde(default)]
    allow_empty_period: bool,
    #[serde(default)]
    show_zero_lines: bool,
}

/// What to do when two deliveries of an org's month share line items (docs/INPUTS.md).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicatePolicy {
    /// Stop the run, naming the files and the count of shared rows.
    #[default]
    Error,
    /// Bill the latest delivery; quarantine the older one's shared rows as duplicates.
    KeepLatest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    id: String,
    name: String,
    management_account: String,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default = "usd")]
    currency: String,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    address: String,
    logo: Option<String>,
    #[serde(default)]
    payment_terms: String,
}

fn usd() -> String {
    "USD".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActual {
    #[serde(default)]
    mode: ActualMode,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    discount_reports: Vec<String>,
}

/// How the partner's actual cost (what AWS charges) is found for each line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActualMode {
    /// Each line's own billed cost as delivered in the CUR (passthrough).
    #[default]
    Billed,
    /// Public on-demand price adjusted by the `[actual]` rules (inputs with no billed cost).
    Public,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    id: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    base: ProformaBase,
    #[serde(default)]
    rules: Vec<RawRule>,
}

/// What a rules plan's markups and discounts apply to on a `Usage` line (docs/DOMAIN.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProformaBase {
    /// The line's unblended cost as AWS billed it to this org (free tier and volume tiers applied).
    #[default]
    Billed,
    /// Usage × `pricing_public_on_demand_rate` (else the public cost): the price list, as
    /// Billing Conductor does; free-tier lines (unblended 0) stay free while the free tier is on.
    PublicOnDemand,
}

/// A downstream seller (reseller) in a two-level chain: its own organization's
/// usage, the top's plan for it, its customers and its own plans for them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeller {
    id: String,
    name: String,
    management_account: String,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    plan: String,
    #[serde(default)]
    allow_passthrough: bool,
    transfer: RawTransfer,
    currency: Option<String>,
    #[serde(default)]
    custom_line_items: Vec<RawCli>,
    #[serde(default)]
    customers: Vec<String>,
    #[serde(default)]
    plans: Vec<RawPlan>,
    #[serde(default)]
    address: String,
    #[serde(default)]
    payment_terms: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    scope: String,
    #[serde(rename = "type")]
    kind: String,
    percent: Option<DecimalText>,
    service: Option<String>,
    billing_entity: Option<String>,
    usage_type: Option<String>,
    operation: Option<String>,
    region: Option<String>,
    free_tier: Option<bool>,
    tiers: Option<Vec<RawTier>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    from: DecimalText,
    rate: DecimalText,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    id: String,
    name: String,
    management_account: String,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    plan: String,
    #[serde(default)]
    allow_passthrough: bool,
    transfer: RawTransfer,
    currency: Option<String>,
    #[serde(default)]
    custom_line_items: Vec<RawCli>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransfer {
    start: String,
    end: Option<String>,
    #[serde(default)]
    source_payer: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCli {
    id: String,
    description: String,
    kind: String,
    flat: Option<DecimalText>,
    percent: Option<DecimalText>,
    include_org_total: Option<bool>,
    #[serde(default)]
    include_items: Vec<String>,
    #[serde(default)]
    exclude_savings_plan_negation: bool,
    service: Option<String>,
    account: Option<String>,
    start: String,
    end: Option<String>,
    presentation_service: Option<String>,
}

/// The validated configuration of a run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of the config file as given.
    pub path: PathBuf,
    /// Folder that relative input paths are resolved against (the config's folder).
    pub base_dir: PathBuf,
    /// SHA-256 of the config file's bytes, recorded in the manifest.
    pub digest: String,
    /// Things a person should know about the config (e.g. account ids padded to 12 digits).
    pub warnings: Vec<String>,
    /// Rounding of invoice lines to cents.
    pub rounding: Rounding,
    /// Overlapping deliveries: stop (default) or keep the latest (`[run] duplicates`).
    pub duplicates: DuplicatePolicy,
    /// Whether an org whose files hold no row of the period may be invoiced 0.00 (`[run] allow_empty_period`).
    pub allow_empty_period: bool,
    /// Whether invoices list lines of 0.00 (`[run] show_zero_lines`; default: left out).
    pub show_zero_lines: bool,
    /// The partner (bill-transfer account) and its own organization.
    pub partner: Partner,
    /// How actual costs are found.
    pub actual: ActualCard,
    /// Pricing plans by id, including the built-in `basic` and `passthrough`.
    pub plans: BTreeMap<String, Arc<Plan>>,
    /// Customer organizations in config order.
    pub orgs: Vec<Org>,
    /// Exchange rates for invoices in other currencies (`[fx]`; docs/CURRENCY.md).
    pub fx: Option<crate::fx::RateTable>,
    /// Partner Discount Business Report deliveries: paths or glob patterns
    /// (`[actual] discount_reports`; docs/DISCOUNTS.md).
    pub discount_reports: Vec<String>,
}

/// The partner: the bill-transfer account and its own organization's usage.
#[derive(Debug, Clone)]
pub struct Partner {
    /// Id naming the partner's own invoice file.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// Management (bill-transfer) account.
    pub management_account: AccountId,
    /// Accounts of the partner's own organization.
    pub accounts: BTreeSet<AccountId>,
    /// Billing currency (USD).
    pub currency: String,
    /// Input file paths or glob patterns of the partner's own usage.
    pub files: Vec<String>,
    /// Postal address printed on customer invoices (lines separated by newlines).
    pub address: String,
    /// Logo image (PNG, JPEG or SVG) embedded in customer invoices, resolved against the config's folder.
    pub logo: Option<PathBuf>,
    /// Payment terms printed on customer invoices (e.g. "Net 30").
    pub payment_terms: String,
}

/// The partner's actual rate card.
#[derive(Debug, Clone)]
pub enum ActualCard {
    /// Billed cost as delivered.
    Billed,
    /// Public price adjusted by partner-discount rules.
    Public(Arc<RuleSet>),
}

/// How a plan prices a customer's lines.
#[derive(Debug, Clone)]
pub enum PlanKind {
    /// The actual bill, line for line (AWS `Passthrough`).
    Passthrough,
    /// Public prices adjusted by rules (AWS `BasicPricingPlan` is the empty rule set).
    Rated(Arc<RuleSet>),
}

/// A pricing plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Plan id (`basic`, `passthrough` or the config's).
    pub id: String,
    /// Free text.
    pub description: String,
    /// What the plan does.
    pub kind: PlanKind,
    /// What markups and discounts apply to on `Usage` lines.
    pub base: ProformaBase,
}

/// The months a customer's bill is transferred to the partner (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// First transferred month.
    pub start: BillingPeriod,
    /// Last transferred month, if the transfer was withdrawn.
    pub end: Option<BillingPeriod>,
    /// Whether rows may name the org's own management account as payer (files
    /// exported from the customer's organization) besides the partner's.
    pub source_payer: bool,
}

impl Transfer {
    /// Whether the partner pays `period` (a month is attributed whole to one payer).
    pub fn covers(&self, period: BillingPeriod) -> bool {
        self.start <= period && self.end.is_none_or(|e| period <= e)
    }
}

/// A customer organization whose bill is transferred to the partner.
#[derive(Debug, Clone)]
pub struct Org {
    /// Id naming the org's output folder.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// The bill-source (management) account.
    pub management_account: AccountId,
    /// Every account of the org, management account included.
    pub accounts: BTreeSet<AccountId>,
    /// Input file paths or glob patterns.
    pub files: Vec<String>,
    /// The pro forma plan.
    pub plan: Arc<Plan>,
    /// The billing transfer.
    pub transfer: Transfer,
    /// Custom line items.
    pub custom_line_items: Vec<CustomLineItem>,
    /// Where the org sits in a chain: a direct customer, a seller's own usage, or a seller's customer.
    pub level: Level,
    /// The currency of the org's invoice (for a seller: of the invoices the top issues to it).
    pub currency: crate::fx::Currency,
}

/// Where an org sits in the chain of who bills whom (docs/CHAINS.md).
#[derive(Debug, Clone)]
pub enum Level {
    /// A customer the top partner bills directly.
    Direct,
    /// A downstream seller's own usage, priced by the top's plan for the seller;
    /// the seller bills `customers` in turn.
    Seller {
        /// The seller's end customers, in config order.
        customers: Vec<OrgId>,
    },
    /// An end customer billed through a seller.
    EndCustomer {
        /// The seller.
        seller: OrgId,
        /// The top's plan for the seller's group: the seller's cost of this org.
        cost_plan: Arc<Plan>,
        /// The seller as the issuer of this org's invoice.
        issuer: Arc<Partner>,
    },
}

impl Org {
    /// The folder of the org's pro forma outputs: `customers/<id>`, or
    /// `sellers/<id>/own` for a seller's own usage (what the top charges it).
    pub fn proforma_dir(&self) -> String {
        match self.level {
            Level::Seller { .. } => format!("sellers/{}/own", self.id),
            _ => format!("customers/{}", self.id),
        }
    }

    /// The seller this org's bill goes through, if any.
    pub fn seller(&self) -> Option<&OrgId> {
        match &self.level {
            Level::EndCustomer { seller, .. } => Some(seller),
            _ => None,
        }
    }
}

/// FEE adds to the bill, CREDIT takes off it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CliKind {
    /// A charge.
    Fee,
    /// A reduction.
    Credit,
}

/// How a custom line item's amount is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliCharge {
    /// A fixed amount (internal scale, positive).
    Flat(i128),
    /// A percentage of a base.
    Percentage {
        /// The percentage (2 decimals).
        percent: Percent,
        /// Include the org's pro forma total (excluding flat items).
        include_org_total: bool,
        /// Flat items of the same org whose amounts join the base.
        include_items: Vec<String>,
        /// Leave Savings Plans negation lines out of the org total.
        exclude_savings_plan_negation: bool,
        /// Limit the org total to one service.
        service: Option<String>,
    },
}

/// A custom line item (Billing Conductor CLI).
#[derive(Debug, Clone)]
pub struct CustomLineItem {
    /// Id, unique within the org.
    pub id: String,
    /// Text shown on the invoice.
    pub description: String,
    /// Fee or credit.
    pub kind: CliKind,
    /// Flat or percentage.
    pub charge: CliCharge,
    /// Account the item is allocated to (default: the management account).
    pub account: AccountId,
    /// First month (inclusive).
    pub start: BillingPeriod,
    /// Last month (inclusive); `None` = recurring.
    pub end: Option<BillingPeriod>,
    /// Service the item is shown under (default `AWSBillingConductor`).
    pub presentation_service: String,
}

impl CustomLineItem {
    /// Whether the item applies in `period`.
    pub fn applies(&self, period: BillingPeriod) -> bool {
        self.start <= period && self.end.is_none_or(|e| period <= e)
    }
}

/// Collects problems with their key paths.
/// Problems (refusals) and warnings found while validating, each prefixed by its key.
struct Problems(Vec<String>, Vec<String>);

impl Problems {
    fn push(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }

    fn warn(&mut self, msg: String) {
        self.1.push(msg);
    }
}

/// Whose inputs, ledger and invoices an org index stands for: index 0 is the
/// partner's own organization, customer orgs follow from 1 in config order.
#[derive(Debug, Clone, Copy)]
pub enum Party<'a> {
    /// The partner's own organization (actual cost only, never a customer invoice).
    Partner(&'a Partner),
    /// A customer organization.
    Customer(&'a Org),
}

impl<'a> Party<'a> {
    /// The customer org, `None` for the partner.
    pub fn customer(self) -> Option<&'a Org> {
        match self {
            Party::Partner(_) => None,
            Party::Customer(o) => Some(o),
        }
    }

    /// The org id (the partner's id for the partner).
    pub fn id(self) -> &'a OrgId {
        match self {
            Party::Partner(p) => &p.id,
            Party::Customer(o) => &o.id,
        }
    }

    /// `partner `x`` or `org `x``, for messages.
    pub fn label(self) -> String {
        match self {
            Party::Partner(p) => format!("partner `{}`", p.id),
            Party::Customer(o) => format!("org `{}`", o.id),
        }
    }

    /// The management account (the bill-transfer account for the partner).
    pub fn management_account(self) -> &'a AccountId {
        match self {
            Party::Partner(p) => &p.management_account,
            Party::Customer(o) => &o.management_account,
        }
    }

    /// Every account of the party.
    pub fn accounts(self) -> &'a BTreeSet<AccountId> {
        match self {
            Party::Partner(p) => &p.accounts,
            Party::Customer(o) => &o.accounts,
        }
    }
}

impl Config {
    /// The party of an org index (0: the partner; an index past the last org, which
    /// billxfer never builds, also reads as the partner, the side with no customer output).
    pub fn party(&self, index: usize) -> Party<'_> {
        match index.checked_sub(1).and_then(|i| self.orgs.get(i)) {
            Some(o) => Party::Customer(o),
            None => Party::Partner(&self.partner),
        }
    }

    /// Reads, parses and validates a config file, reporting every problem at once.
    pub fn load(path: &Path) -> Result<Config> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes.clone()).map_err(|_| Error::Config {
            path: path.into(),
            problems: vec!["the file is not valid UTF-8".into()],
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let digest = hex(&Sha256::digest(&bytes));
        Config::from_str(&text, path, base_dir, digest)
    }

    /// Parses and validates config text (used by `load` and tests).
    pub fn from_str(text: &str, path: &Path, base_dir: PathBuf, digest: String) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| Error::Config {
            path: path.into(),
            problems: vec![e.to_string().trim_end().to_string()],
        })?;
        let mut p = Problems(Vec::new(), Vec::new());
        let config = build(raw, &mut p, path, base_dir, digest);
        match config {
            Some(mut c) if p.0.is_empty() => {
                c.warnings = p.1;
                Ok(c)
            }
            _ => Err(Error::Config {
                path: path.into(),
                problems: p.0,
            }),
        }
    }

    /// Who issues an org's invoice: its seller for a seller's customer, else the top partner.
    pub fn issuer<'c>(&'c self, org: &'c Org) -> &'c Partner {
        match &org.level {
            Level::EndCustomer { issuer, .. } => issuer,
            _ => &self.partner,
        }
    }

    /// Every org id, the partner's first.
    pub fn org_ids(&self) -> impl Iterator<Item = &OrgId> {
        std::iter::once(&self.partner.id).chain(self.orgs.iter().map(|o| &o.id))
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn account(p: &mut Problems, key: &str, text: &str) -> Option<AccountId> {
    match AccountId::parse_padded(text) {
        Ok((id, padded)) => {
            if padded {
                p.warn(format!(
                    "{key}: account id `{}` has fewer than 12 digits; read as {id} (AWS account ids are 12 digits)",
                    text.trim()
                ));
            }
            Some(id)
        }
        Err(e) => {
            p.push(key, e);
            None
        }
    }
}

fn build(
    raw: RawConfig,
    p: &mut Problems,
    path: &Path,
    base_dir: PathBuf,
    digest: String,
) -> Option<Config> {
    // Partner.
    let partner_id = OrgId::parse(&raw.partner.id)
        .map_err(|e| p.push("partner.id", e))
        .ok();
    let partner_mgmt = account(
        p,
        "partner.management_account",
        &raw.partner.management_account,
    );
    if raw.partner.currency != "USD" {
        p.push(
            "partner.currency",
            format!("`{}` is not supported yet: billxfer invoices in USD (AWS bills and custom line items are USD)", raw.partner.currency),
        );
    }
    let mut claimed: BTreeMap<AccountId, String> = BTreeMap::new();
    let mut partner_accounts = BTreeSet::new();
    for (i, a) in raw.partner.accounts.iter().enumerate() {
        if let Some(a) = account(p, &format!("partner.accounts[{i}]"), a) {
            partner_accounts.insert(a);
        }
    }
    if let Some(m) = &partner_mgmt {
        partner_accounts.insert(m.clone());
    }
    let partner_label = format!("partner `{}`", raw.partner.id);
    for a in &partner_accounts {
        claimed.insert(a.clone(), partner_label.clone());
    }

    // Actual rate card.
    let actual = match raw.actual.mode {
        ActualMode::Billed => {
            if !raw.actual.rules.is_empty() {
                p.push("actual.rules", "rules apply only with mode = \"public\"; with mode = \"billed\" each line's billed cost is used");
            }
            Some(ActualCard::Billed)
        }
        ActualMode::Public => {
            rule_set(p, "actual", &raw.actual.rules).map(|r| ActualCard::Public(Arc::new(r)))
        }
    };

    // Plans: the top partner's, then each seller's own (for its customers).
    let plans = plan_table(p, "plans", &raw.plans);
    let mut registry = Registry::new(&raw.partner.id, claimed);
    let chain = chain_map(p, &raw);

    // Orgs: direct customers of the top, and sellers' end customers.
    let mut orgs = Vec::new();
    let mut issuers: BTreeMap<String, Arc<Partner>> = BTreeMap::new();
    let mut seller_plans: BTreeMap<String, BTreeMap<String, Arc<Plan>>> = BTreeMap::new();
    for (i, s) in raw.sellers.iter().enumerate() {
        let key = format!("sellers[{i}] (id `{}`)", s.id);
        seller_plans.insert(
            s.id.clone(),
            plan_table(p, &format!("{key}.plans"), &s.plans),
        );
        if let (Ok(id), Some(mgmt)) = (
            OrgId::parse(&s.id),
            AccountId::parse(&s.management_account).ok(),
        ) {
            issuers.insert(
                s.id.clone(),
                Arc::new(Partner {
                    id,
                    name: s.name.clone(),
                    management_account: mgmt,
                    accounts: BTreeSet::new(),
                    currency: raw.partner.currency.clone(),
                    files: Vec::new(),
                    address: s.address.clone(),
                    logo: None,
                    payment_terms: s.payment_terms.clone(),
                }),
            );
        }
    }
    for (i, o) in raw.orgs.iter().enumerate() {
        let key = format!("orgs[{i}] (id `{}`)", o.id);
        let level = match chain.get(&o.id) {
            None => Some((Level::Direct, &plans, "the top partner's plans")),
            Some(&si) => {
                let s = &raw.sellers[si];
                let cost_plan = plans.get(&s.plan).cloned();
                match (cost_plan, issuers.get(&s.id), seller_plans.get(&s.id)) {
                    (Some(cost_plan), Some(issuer), Some(table)) => Some((
                        Level::EndCustomer {
                            seller: issuer.id.clone(),
                            cost_plan,
                            issuer: issuer.clone(),
                        },
                        table,
                        "the plans of its seller",
                    )),
                    // The seller's own problems are reported under its key.
                    _ => None,
                }
            }
        };
        let Some((level, table, whose)) = level else {
            continue;
        };
        if let Some(org) = org_entry(p, &key, o, &mut registry, (table, whose), level) {
            orgs.push(org);
        }
    }
    // Each seller's own usage, priced by the top's plan for the seller.
    for (i, s) in raw.sellers.iter().enumerate() {
        let key = format!("sellers[{i}] (id `{}`)", s.id);
        let as_org = RawOrg {
            id: s.id.clone(),
            name: s.name.clone(),
            management_account: s.management_account.clone(),
            accounts: s.accounts.clone(),
            files: s.files.clone(),
            plan: s.plan.clone(),
            allow_passthrough: s.allow_passthrough,
            transfer: s.transfer.clone(),
            currency: s.currency.clone(),
            custom_line_items: s.custom_line_items.clone(),
        };
        let customers = s
            .customers
            .iter()
            .filter_map(|c| OrgId::parse(c).ok())
            .collect();
        let level = Level::Seller { customers };
        if let Some(org) = org_entry(
            p,
            &key,
            &as_org,
            &mut registry,
            (&plans, "the top partner's plans"),
            level,
        ) {
            orgs.push(org);
        }
    }

    let fx = raw.fx.as_ref().and_then(|f| fx_table(p, f, &base_dir));
    for o in orgs
        .iter()
        .filter(|o| o.currency != crate::fx::Currency::USD)
    {
        if raw.fx.is_none() {
            p.push(
                &format!("org `{}`.currency", o.id),
                format!("invoicing in {} needs exchange rates: add an [fx] table naming a rate file (docs/CURRENCY.md)", o.currency),
            );
        }
    }
    let logo_path = match &raw.partner.logo {
        None => None,
        Some(l) => {
            let full = if Path::new(l).is_absolute() {
                PathBuf::from(l)
            } else {
                base_dir.join(l)
            };
            let ext = full
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if !["png", "jpg", "jpeg", "svg"].contains(&ext.as_str()) {
                p.push(
                    "partner.logo",
                    format!("`{l}`: the logo must be a .png, .jpg or .svg file"),
                );
                None
            } else if !full.is_file() {
                p.push(
                    "partner.logo",
                    format!(
                        "`{}` does not exist (paths are relative to the config's folder)",
                        full.display()
                    ),
                );
                None
            } else {
                Some(full)
            }
        }
    };
    Some(Config {
        path: path.into(),
        base_dir,
        digest,
        warnings: Vec::new(),
        rounding: raw.run.rounding,
        duplicates: raw.run.duplicates,
        allow_empty_period: raw.run.allow_empty_period,
        show_zero_lines: raw.run.show_zero_lines,
        partner: Partner {
            id: partner_id?,
            name: raw.partner.name,
            management_account: partner_mgmt?,
            accounts: partner_accounts,
            currency: raw.partner.currency,
            files: raw.partner.files,
            address: raw.partner.address,
            logo: logo_path,
            payment_terms: raw.partner.payment_terms,
        },
        actual: actual?,
        plans,
        orgs,
        fx,
        discount_reports: raw.actual.discount_reports,
    })
}

/// Reads `[fx]`'s rate file (relative to the config's folder).
fn fx_table(p: &mut Problems, f: &RawFx, base_dir: &Path) -> Option<crate::fx::RateTable> {
    use crate::fx::{Date, RateDate, RateTable};
    let rule = match f.rate_date.as_deref() {
        None | Some("period_end") => RateDate::PeriodEnd,
        Some(d) => match Date::parse(d) {
            Ok(d) => RateDate::OnOrBefore(d),
            Err(e) => {
                p.push("fx.rate_date", format!("{e}: use \"period_end\" (the last rate on or before the period's last day) or a date"));
                return None;
            }
        },
    };
    let path = if Path::new(&f.rates).is_absolute() {
        PathBuf::from(&f.rates)
    } else {
        base_dir.join(&f.rates)
    };
    let source = if f.source.trim().is_empty() {
        f.rates.clone()
    } else {
        f.source.clone()
    };
    RateTable::load(&path, &f.rates, source, rule)
        .map_err(|e| p.push("fx.rates", e))
        .ok()
}

fn month(p: &mut Problems, key: &str, text: &str) -> Option<BillingPeriod> {
    month_bound(p, key, text, false)
}

fn end_month(p: &mut Problems, key: &str, text: &str) -> Option<BillingPeriod> {
    month_bound(p, key, text, true)
}

/// Accepts YYYY-MM, or a date on a month boundary: the first day for starts, the
/// last day for ends (AWS ends a transfer at 23:59:59 on the last day of a month).
fn month_bound(p: &mut Problems, key: &str, text: &str, is_end: bool) -> Option<BillingPeriod> {
    let t = text.trim();
    if t.len() == 10 && t.as_bytes()[7] == b'-' {
        let period = BillingPeriod::parse(&t[..7])
            .map_err(|e| p.push(key, e))
            .ok()?;
        let day: u32 = t[8..].parse().unwrap_or(0);
        if is_end {
            let last = u32::from(period.days());
            if day == last {
                return Some(period);
            }
            p.push(key, format!("`{t}` is not the last day of a month: billing transfers end on month boundaries (AWS: END_DATE_NOT_END_OF_MONTH); write YYYY-MM for the last month billed"));
            return None;
        }
        if &t[8..] != "01" {
            p.push(key, format!("`{t}` is not the first day of a month: billing transfers start and end on month boundaries (AWS: START_DATE_NOT_BEGINNING_OF_MONTH); write YYYY-MM"));
            return None;
        }
        return Some(period);
    }
    BillingPeriod::parse(t).map_err(|e| p.push(key, e)).ok()
}

fn transfer(p: &mut Problems, key: &str, t: &RawTransfer) -> Option<Transfer> {
    let start = month(p, &format!("{key}.transfer.start"), &t.start)?;
    let end = match &t.end {
        Some(e) => Some(end_month(p, &format!("{key}.transfer.end"), e)?),
        None => None,
    };
    if let Some(e) = end {
        if e < start {
            p.push(
                &format!("{key}.transfer.end"),
                format!("the transfer ends ({e}) before it starts ({start})"),
            );
            return None;
        }
    }
    Some(Transfer {
        start,
        end,
        source_payer: t.source_payer,
    })
}

/// A decimal key: exact, at most `max_places` decimals (docs/CONFIG.md, "Numbers").
fn decimal(p: &mut Problems, key: &str, t: &DecimalText, max_places: u32) -> Option<i128> {
    ExactDecimal::parse(&t.0)
        .and_then(|d| d.to_fixed(max_places))
        .map_err(|e| p.push(key, format!("`{}`: {e}", t.0)))
        .ok()
}

/// A percentage key: exact, then rounded to 2 decimals (docs/CONFIG.md, "Numbers").
fn percent_value(p: &mut Problems, key: &str, t: &DecimalText) -> Option<Percent> {
    ExactDecimal::parse(&t.0)
        .and_then(|d| d.to_hundredths_rounded())
        .map(Percent)
        .map_err(|e| p.push(key, format!("`{}`: {e}", t.0)))
        .ok()
}

#[cfg(test)]
mod tests;
