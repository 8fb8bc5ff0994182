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

pub use decimal::{ConfigDecimalError, DecimalText, ExactDecimal};

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
    })
}

/// The built-in plans and the plans declared under `key` (the top's `plans`, or a seller's).
fn plan_table(p: &mut Problems, key: &str, raw: &[RawPlan]) -> BTreeMap<String, Arc<Plan>> {
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
struct Registry {
    /// Account → the label of the org that claims it.
    claimed: BTreeMap<AccountId, String>,
    /// Ids used (the partner's included).
    ids: BTreeSet<String>,
    /// Lower-cased id → (key, id): ids equal but for case would overwrite each
    /// other's files on a case-insensitive filesystem (macOS, Windows).
    folded: BTreeMap<String, (String, String)>,
}

impl Registry {
    fn new(partner_id: &str, claimed: BTreeMap<AccountId, String>) -> Registry {
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
fn chain_map(p: &mut Problems, raw: &RawConfig) -> BTreeMap<String, usize> {
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
fn org_entry(
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

fn rule_set(p: &mut Problems, plan_key: &str, rules: &[RawRule]) -> Option<RuleSet> {
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

#[cfg(test)]
mod tests {
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
}
