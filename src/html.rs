//! Human-facing HTML pages: the customer's printable invoice and the partner's dashboard.
//! (Placeholder until the pages are written.)

use crate::config::{Config, Org};
use crate::invoice::CustomerInvoice;
use crate::run::RunResult;
use crate::types::BillingPeriod;

/// The customer's self-contained, printable invoice page.
pub fn customer_invoice_page(
    _config: &Config,
    _org: &Org,
    _invoice: &CustomerInvoice,
    _period: BillingPeriod,
) -> String {
    String::new()
}

/// The partner's self-contained dashboard for the month.
pub fn partner_dashboard_page(_config: &Config, _result: &RunResult) -> String {
    String::new()
}
