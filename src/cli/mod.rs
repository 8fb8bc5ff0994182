//! Command line: parse, dispatch, print errors for humans, map them to exit codes
//! (0 ok, 1 data or input, 2 config or usage). One file per subcommand.

mod cluster;
mod diff;
mod generate;
mod report;
mod run;
mod summary;
mod validate;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::types::BillingPeriod;

pub use cluster::{ClusterArgs, ClusterRole};
pub use diff::DiffArgs;
pub use generate::GenerateArgs;
pub use report::ReportArgs;
pub use run::RunArgs;
pub use validate::{MonthInputs, ValidateArgs, ValidateFocusArgs};

const CONCEPTS: &str = "\
Concepts:
  bill-transfer account  The partner's management account. Since AWS Billing Transfer
                         (Nov 2025) it receives and pays one AWS bill per customer
                         organization, plus its own.
  bill-source account    A customer organization's management account. The org keeps
                         its AWS Organization; only its bill moves to the partner, for
                         whole months from the transfer's start month.
  actual                 What AWS charges the partner for a line: the billed cost in the
                         CUR (or public price less the partner's discounts). Partner-only.
  pro forma              What the customer is shown: public on-demand price with the
                         org's pricing plan (markup, discount, custom tiers, free tier),
                         plus custom line items (AWS Billing Conductor semantics).
                         Non-public discounts, credits, tax and support never reach it.";

/// billxfer: month-end billing for AWS Billing Transfer partners.
#[derive(Debug, Parser)]
#[command(
    name = "billxfer",
    version,
    about = "Month-end billing for AWS Billing Transfer partners: rate every CUR line at actual and pro forma rates, write one segregated invoice per customer organization.",
    after_long_help = CONCEPTS
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the month-end batch: rate every org's usage and write invoices.
    #[command(
        long_about = "Run the month-end batch.\n\nReads each organization's cost-and-usage files (CUR 2.0 or legacy CUR; Parquet, CSV or gzip CSV), rates every line at the partner's actual rates and at the org's pro forma plan, and writes under <out>/<period>/:\n  partner/invoices/<org>.json   what AWS bills the partner per org (actual)\n  partner/margin.csv            actual cost, pro forma revenue and margin per org and service\n  customers/<org>/invoice.json  the customer's pro forma invoice (also invoice.csv)\n  sellers/<seller>/             for a two-level chain ([[sellers]]): what the top charges the seller per customer and for its own usage, the seller's margin and dashboard (docs/CHAINS.md)\n  quarantine/<org>.csv          every rejected row with file, row and reason\n  manifest.json                 inputs with sha256, row counts, totals, reconciliation checks\nThe folder is built aside and renamed into place only when complete; re-running the same inputs gives byte-identical files.\n\nExample:\n  billxfer run --config sample_data/billxfer.toml --out out",
        after_long_help = CONCEPTS
    )]
    Run(RunArgs),
    /// Check the config and every input file, report all problems; write nothing.
    #[command(
        long_about = "Check the configuration (keys, ids, accounts, plans, rules, custom line items) and every input file (format, required columns, and each row's account, period, type and amounts), then report every problem at once. Writes nothing. Exits 0 when the run would rate every row, 1 when rows would be quarantined, 2 when the config or an input cannot be used.",
        after_long_help = CONCEPTS
    )]
    Validate(ValidateArgs),
    /// Write a synthetic, realistic customer base (CUR 2.0 files and a matching config).
    #[command(
        long_about = "Write a synthetic month for tests and benchmarks: per-org CUR 2.0 Parquet (or CSV) files split the way AWS splits exports, the partner's own org, and a billxfer.toml with pricing plans of hundreds of rules across all scopes, tiered SKUs and custom line items. Org sizes are Zipf-distributed (a few huge, many small); the service mix is Zipf-like over real product codes, usage types and operations; lines are hourly, with Savings Plans, RI, tax, credits, EDP/SPP discounts, free-tier lines, Marketplace charges and tags. The same seed gives the same bytes, whatever --threads is.\n\nExample:\n  billxfer generate --orgs 1000 --accounts-per-org 5 --lines 50000000 --period 2026-10 --seed 1 --out /tmp/base\n  billxfer run --config /tmp/base/billxfer.toml --period 2026-10 --out /tmp/base-out"
    )]
    Generate(GenerateArgs),
    /// Compare two finished runs of a month: totals per org and changed inputs.
    #[command(
        long_about = "Compare two finished runs (for example before and after a restated input: late credits, a changed file). OLD and NEW are period folders such as out-before/2026-10 and out/2026-10, or their manifest.json files. Prints, per organization, the actual and pro forma totals that changed, and the inputs whose content changed. Exit 0 when nothing differs, 1 when something does."
    )]
    Diff(DiffArgs),
    /// Check FOCUS files against the FOCUS 1.2 rules an exporter must keep.
    #[command(
        long_about = "Check FOCUS files (Parquet or CSV) against the FOCUS 1.2 rules an exporter must keep: mandatory columns present; BilledCost, EffectiveCost, ListCost and ContractedCost never null; ListCost = ListUnitPrice x PricingQuantity and ContractedCost = ContractedUnitPrice x PricingQuantity (to 1e-6) unless ChargeClass is Correction; unit prices, PricingQuantity and PricingCategory null on Tax rows and present on Usage/Purchase rows; unit prices not negative; allowed values of ChargeCategory, ChargeClass, ChargeFrequency, PricingCategory, ServiceCategory and the commitment columns; dates YYYY-MM-DDTHH:mm:ssZ and ISO 4217 currencies in CSV. Prints every violation with its row and column. Exit 0 when every file passes, 1 otherwise.\n\nExample:\n  billxfer validate-focus out/2026-10/customers/acme/focus/*.parquet"
    )]
    ValidateFocus(ValidateFocusArgs),
    /// Group a finished run's figures by org, account, service, region, day or tag.
    #[command(
        long_about = "Print a grouped table of a finished run's figures, read from its FOCUS exports with polars (so the run must have written them: --exports focus or all). Needs a build with `--features report` (polars is two thirds of a first build, so it is not in the default one).\n\nThe partner's view (default) shows, per group, the pro forma amount charged to customers, the actual amount AWS charges the partner for the same customers, and the margin. --track actual shows the partner's actual figures only, for every org including the partner's own. --customer-view shows one customer's pro forma figures and nothing else: safe to send to that customer.\n\nAmounts are summed exactly; the table shows them rounded to cents, --json and --csv give them exact.\n\nExamples:\n  billxfer report --out out --period 2026-10 --by org\n  billxfer report --out out --period 2026-10 --by service,region --top 10\n  billxfer report --out out --period 2026-10 --org acme --by account,tag:team --customer-view --csv"
    )]
    Report(ReportArgs),
    /// Run a role of a Ballista cluster for `run --cluster`: scheduler or executor.
    #[command(
        long_about = "Run one role of an Apache DataFusion Ballista cluster that carries billxfer's operators; `billxfer run --cluster df://ADDR` then runs the month there, with the same output bytes as a run here (except the manifest's `engine`). Needs a build with `--features distributed`. See docs/DISTRIBUTED.md.\n\nExample, one machine:\n  billxfer cluster scheduler --bind 127.0.0.1:50050 &\n  billxfer cluster executor --scheduler 127.0.0.1:50050 --port 50051 --grpc-port 50052 &\n  billxfer cluster executor --scheduler 127.0.0.1:50050 --port 50061 --grpc-port 50062 &\n  billxfer run --config sample_data/billxfer.toml --out out --cluster df://127.0.0.1:50050"
    )]
    Cluster(ClusterArgs),
    /// Read exactly the columns a run needs from every input, and nothing else (benchmark floor).
    #[command(hide = true)]
    DecodeFloor(MonthInputs),
}

pub(super) fn parse_period(s: &str) -> std::result::Result<BillingPeriod, String> {
    BillingPeriod::parse(s)
}

/// Entry point: returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    // Panics inside readers are turned into errors naming the file (run::guarded);
    // the default hook would print them as if they were crashes.
    std::panic::set_hook(Box::new(|_| {}));
    match std::panic::catch_unwind(|| dispatch(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("billxfer: error: {e}");
            e.exit_code()
        }
        Err(payload) => {
            let msg = crate::pipeline::panic_message(payload.as_ref());
            eprintln!("billxfer: internal error: {msg}. Nothing was written. This is a bug: please report it with the command and inputs.");
            70
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(a) => run::cmd_run(a).map(|_| 0),
        Command::Validate(a) => validate::cmd_validate(a),
        Command::Generate(a) => generate::cmd_generate(a).map(|_| 0),
        Command::Diff(a) => diff::cmd_diff(a),
        Command::DecodeFloor(a) => validate::cmd_decode_floor(a).map(|_| 0),
        Command::ValidateFocus(a) => validate::cmd_validate_focus(a),
        Command::Report(a) => report::cmd_report(a).map(|_| 0),
        Command::Cluster(a) => cluster::cmd_cluster(a).map(|_| 0),
    }
}
