//! Human-facing HTML pages: the customer's printable invoice and the partner's dashboard.
//!
//! Both pages are self-contained: one HTML file with inline CSS, inline SVG charts
//! and the partner's logo as a `data:` URI. They load nothing (no scripts, fonts,
//! stylesheets or images from the network) and say so with a Content-Security-Policy
//! that forbids it. Every text value is HTML-escaped. Every amount is a rounded
//! invoice figure written with `format_fixed(v, 2)`, exactly as in the JSON and CSV
//! files. No timestamps: re-runs stay byte-identical.
//!
//! The customer page is built from the customer invoice model only (plus the
//! partner's name, address, logo and payment terms from the config), so it cannot
//! show an actual cost, a margin or another org's data.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::config::{CliKind, Config, Org, Partner};
use crate::invoice::{margin_percent, CustomerInvoice, CURRENCY_DECIMALS};
use crate::money::{format_fixed, Money};
use crate::pipeline::{Role, RunResult};
use crate::types::BillingPeriod;

/// Logos larger than this are not embedded (every invoice page carries a copy).
const MAX_LOGO_BYTES: u64 = 512 * 1024;

/// Orgs per page of the dashboard's full table.
const TABLE_PAGE: usize = 250;

/// Orgs shown at each end of the margin chart when there are more than twice as many.
const CHART_ENDS: usize = 20;

/// Services shown in the revenue chart before the rest are summed as "Other".
const CHART_SERVICES: usize = 15;

/// Rows of the lowest-margins table.
const LOWEST: usize = 20;

/// Rows of the quarantine table.
const QUARANTINE_ROWS: usize = 50;

/// Nothing may be fetched: styles are inline, images are `data:` URIs, no scripts.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Escapes text for HTML element content and quoted attribute values (and SVG).
/// C0 control characters other than tab and newline are dropped: they are not
/// allowed in HTML text.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    esc_into(&mut out, s);
    out
}

fn esc_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {}
            c => out.push(c),
        }
    }
}

/// An amount as in the invoice files: cents, no thousands separator.
fn amt(v: i128) -> String {
    format_fixed(v, CURRENCY_DECIMALS)
}

/// Standard base64 (RFC 4648, with padding).
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (chunk[0] as u32) << 16 | (b1 as u32) << 8 | b2 as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// The partner's logo as a `data:` URI, or `None` when there is none, its type is
/// not PNG/JPEG/SVG, or it cannot be read (the page is then rendered without it).
fn logo_data_uri(issuer: &Partner) -> Option<String> {
    let path = issuer.logo.as_ref()?;
    let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
    let mime = match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        _ => return None,
    };
    if std::fs::metadata(path).ok()?.len() > MAX_LOGO_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    if bytes.is_empty() {
        return None;
    }
    Some(format!("data:{mime};base64,{}", base64(&bytes)))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn month_name(p: BillingPeriod) -> &'static str {
    MONTHS[(p.month().clamp(1, 12) - 1) as usize]
}

fn days_in_month(p: BillingPeriod) -> u8 {
    match p.month() {
        4 | 6 | 9 | 11 => 30,
        2 => {
            let y = p.year() as u32;
            if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) {
                29
            } else {
                28
            }
        }
        _ => 31,
    }
}

/// "October 2026".
fn period_title(p: BillingPeriod) -> String {
    format!("{} {}", month_name(p), p.year())
}

/// "1 October 2026 – 31 October 2026".
fn period_range(p: BillingPeriod) -> String {
    let (m, y) = (month_name(p), p.year());
    format!("1 {m} {y} \u{2013} {} {m} {y}", days_in_month(p))
}

/// Multi-line text (the address) as escaped lines joined by `<br>`.
fn lines_html(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(esc)
        .collect::<Vec<_>>()
        .join("<br>")
}

fn head(out: &mut String, title: &str, css: &str) {
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
    );
    out.push_str("<meta name=\"generator\" content=\"billxfer\">\n");
    let _ = writeln!(out, "<title>{}</title>", esc(title));
    out.push_str("<style>\n");
    out.push_str(BASE_CSS);
    out.push_str(css);
    out.push_str("</style>\n</head>\n");
}

/// Shared styles. System fonts only. (No figures with two decimals here, so that
/// a number found in a page is always an invoice figure.)
const BASE_CSS: &str = "\
:root{--ink:#1a2230;--muted:#5b6678;--line:#dde2ea;--soft:#f3f5f8;--accent:#1f4e79;--neg:#b42318;--pos:#2f6fae}
*{box-sizing:border-box}
html{-webkit-print-color-adjust:exact;print-color-adjust:exact}
body{margin:0;background:#eef1f5;color:var(--ink);font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,\"Liberation Sans\",\"DejaVu Sans\",sans-serif;font-size:14px;line-height:1.4}
h1,h2,h3{margin:0;font-weight:600}
table{width:100%;border-collapse:collapse}
th,td{padding:6px 8px;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
thead th{font-size:12px;text-transform:uppercase;letter-spacing:.5px;color:var(--muted);font-weight:600;border-bottom:2px solid var(--line)}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.muted{color:var(--muted)}
.neg{color:var(--neg)}
a{color:var(--accent)}
";

const INVOICE_CSS: &str = "\
.sheet{max-width:840px;margin:32px auto;background:#fff;padding:44px 52px;box-shadow:0 1px 6px #0000001f;border-radius:4px}
.head{display:flex;justify-content:space-between;gap:32px;padding-bottom:24px;border-bottom:3px solid var(--accent)}
.logo{display:block;max-height:56px;max-width:240px;margin-bottom:12px}
.issuer-name{font-size:18px;font-weight:600}
.doc{text-align:right;min-width:250px}
.doc h1{font-size:30px;letter-spacing:2px;text-transform:uppercase;color:var(--accent);margin-bottom:10px}
.meta{width:auto;margin-left:auto}
.meta th,.meta td{border:0;padding:2px 0 2px 16px;text-align:right}
.meta th{color:var(--muted);font-weight:400}
.parties{display:flex;justify-content:space-between;gap:32px;margin:28px 0}
.parties h2,.section h2{font-size:12px;text-transform:uppercase;letter-spacing:1px;color:var(--muted);margin-bottom:6px}
.customer-name{font-size:16px;font-weight:600}
.due{background:var(--soft);border-left:4px solid var(--accent);padding:14px 20px;min-width:260px;text-align:right}
.due-amount{font-size:26px;font-weight:700;font-variant-numeric:tabular-nums}
.due-amount span{font-size:14px;font-weight:600;color:var(--muted);margin-left:6px}
.section{margin-top:28px}
tr.acct th{background:var(--soft);font-weight:600;font-size:13px}
tr.acct th span{font-weight:400;color:var(--muted)}
td.indent{padding-left:24px}
tfoot th,tfoot td{border-bottom:0;font-weight:600}
.totals-wrap{display:flex;justify-content:flex-end;margin-top:28px}
.totals{width:340px}
.totals th{font-weight:400}
.totals tr.grand th,.totals tr.grand td{font-size:17px;font-weight:700;border-top:2px solid var(--ink);border-bottom:0;padding-top:10px}
.foot{margin-top:40px;padding-top:16px;border-top:1px solid var(--line);font-size:12px;color:var(--muted)}
.foot p{margin:4px 0}
.foot strong{color:var(--ink)}
@page{margin:14mm 12mm}
@media print{
body{background:#fff;font-size:10pt;line-height:1.3}
.sheet{max-width:none;margin:0;padding:0;box-shadow:none;border-radius:0}
th,td{padding:4px 6px}
.head{padding-bottom:14px}
.parties{margin:16px 0}
.due{padding:10px 16px}
.section,.totals-wrap{margin-top:16px}
.foot{margin-top:20px;padding-top:10px}
thead{display:table-header-group}
tr,.totals-wrap,.parties,.head,.foot{break-inside:avoid}
h2{break-after:avoid}
a{color:inherit;text-decoration:none}
}
@media (max-width:640px){.sheet{margin:0;padding:20px}.head,.parties{flex-direction:column}.doc{text-align:left}}
";

/// The customer's self-contained, printable invoice page.
///
/// It shows exactly the figures of the customer's `invoice.json`: usage lines
/// (grouped by account, then service), custom line items, subtotal, fees,
/// credits and total, in the partner's currency. The invoice model keeps one
/// amount per account and service and no usage quantities or unit prices, so
/// the page has no quantity or unit-price columns rather than inventing them.
pub fn customer_invoice_page(
    config: &Config,
    org: &Org,
    invoice: &CustomerInvoice,
    fx: Option<&crate::fx::Applied>,
    period: BillingPeriod,
) -> String {
    let parties = InvoiceParties {
        number: format!("{}-{}", org.id, period),
        issuer: config.issuer(org),
        bill_to: (&org.name, org.id.as_str(), org.management_account.as_str()),
        usage_of: org.id.as_str(),
        currency: org.currency,
        fx,
    };
    invoice_page(&parties, invoice, period)
}

/// Who an invoice page is from and to, and whose usage it bills.
pub struct InvoiceParties<'a> {
    /// Invoice number.
    pub number: String,
    /// The issuer (the top partner, or a seller).
    pub issuer: &'a Partner,
    /// Bill to: name, org id, management account.
    pub bill_to: (&'a str, &'a str, &'a str),
    /// The org whose AWS usage is billed.
    pub usage_of: &'a str,
    /// The invoice currency.
    pub currency: crate::fx::Currency,
    /// The rate that converted the invoice from USD, when its currency is not USD.
    pub fx: Option<&'a crate::fx::Applied>,
}

/// An invoice page between any two levels of a chain (see [`customer_invoice_page`]).
pub fn invoice_page(
    parties: &InvoiceParties<'_>,
    invoice: &CustomerInvoice,
    period: BillingPeriod,
) -> String {
    let partner = parties.issuer;
    let currency = esc(parties.currency.code());
    let decimals = parties.currency.decimals();
    let money = |v: Money| format_fixed(v.0, decimals);
    let number = parties.number.clone();
    let (bill_name, bill_id, mgmt) = parties.bill_to;
    let mut o = String::with_capacity(16 * 1024 + invoice.lines.len() * 128);
    head(
        &mut o,
        &format!("Invoice {number} \u{2013} {}", partner.name),
        INVOICE_CSS,
    );
    o.push_str("<body>\n<main class=\"sheet\">\n<header class=\"head\">\n<div class=\"issuer\">\n");
    if let Some(uri) = logo_data_uri(partner) {
        let _ = writeln!(
            o,
            "<img class=\"logo\" src=\"{uri}\" alt=\"{}\">",
            esc(&partner.name)
        );
    }
    let _ = writeln!(o, "<div class=\"issuer-name\">{}</div>", esc(&partner.name));
    if !partner.address.trim().is_empty() {
        let _ = writeln!(
            o,
            "<div class=\"muted\">{}</div>",
            lines_html(&partner.address)
        );
    }
    o.push_str("</div>\n<div class=\"doc\">\n<h1>Invoice</h1>\n<table class=\"meta\">\n");
    let _ = writeln!(
        o,
        "<tr><th>Invoice number</th><td>{}</td></tr>",
        esc(&number)
    );
    let _ = writeln!(
        o,
        "<tr><th>Billing period</th><td>{} ({})</td></tr>",
        esc(&period_title(period)),
        period
    );
    let _ = writeln!(
        o,
        "<tr><th>Service dates</th><td>{}</td></tr>",
        period_range(period)
    );
    let _ = writeln!(o, "<tr><th>Currency</th><td>{currency}</td></tr>");
    if let Some(fx) = parties.fx {
        let _ = writeln!(
            o,
            "<tr><th>Exchange rate</th><td>1 USD = {} {currency} on {} ({})</td></tr>",
            esc(&fx.rate_text()),
            esc(&fx.date),
            esc(&fx.source)
        );
    }
    o.push_str("</table>\n</div>\n</header>\n");

    // Parties and amount due.
    o.push_str("<section class=\"parties\">\n<div>\n<h2>Bill to</h2>\n");
    let _ = writeln!(o, "<div class=\"customer-name\">{}</div>", esc(bill_name));
    let _ = writeln!(o, "<div>Organization <b>{}</b></div>", esc(bill_id));
    let _ = writeln!(o, "<div>Management account <b>{}</b></div>", esc(mgmt));
    o.push_str("</div>\n<div class=\"due\">\n<h2>Amount due</h2>\n");
    let _ = writeln!(
        o,
        "<div class=\"due-amount\">{}<span>{currency}</span></div>",
        money(invoice.total)
    );
    if !partner.payment_terms.trim().is_empty() {
        let _ = writeln!(
            o,
            "<div class=\"muted\">{}</div>",
            esc(partner.payment_terms.trim())
        );
    }
    o.push_str("</div>\n</section>\n");

    // Usage lines, grouped by account (the lines are sorted by account, then service).
    o.push_str("<section class=\"section\">\n<h2>AWS usage by account and service</h2>\n");
    o.push_str("<table class=\"lines\">\n<thead><tr><th>Service</th>");
    let _ = writeln!(
        o,
        "<th class=\"num\">Amount ({currency})</th></tr></thead>\n<tbody>"
    );
    if invoice.lines.is_empty() {
        o.push_str("<tr><td class=\"muted\" colspan=\"2\">No usage this period.</td></tr>\n");
    }
    let mut last_account: Option<&str> = None;
    for l in &invoice.lines {
        if last_account != Some(l.account.as_str()) {
            last_account = Some(l.account.as_str());
            let note = if l.account.as_str() == mgmt {
                " <span>(management account)</span>"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "<tr class=\"acct\"><th colspan=\"2\">Account {}{note}</th></tr>",
                esc(l.account.as_str())
            );
        }
        let _ = writeln!(
            o,
            "<tr><td class=\"indent\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&l.service),
            money(l.amount)
        );
    }
    o.push_str("</tbody>\n<tfoot><tr><th>Usage subtotal</th>");
    let _ = writeln!(
        o,
        "<td class=\"num\">{}</td></tr></tfoot>\n</table>\n</section>",
        money(invoice.subtotal)
    );

    // Custom line items, in config order.
    if !invoice.custom.is_empty() {
        o.push_str("<section class=\"section\">\n<h2>Fees and credits</h2>\n<table>\n");
        o.push_str("<thead><tr><th>Description</th><th>Type</th><th>Account</th><th>Service</th>");
        let _ = writeln!(
            o,
            "<th class=\"num\">Amount ({currency})</th></tr></thead>\n<tbody>"
        );
        for c in &invoice.custom {
            let kind = match c.kind {
                CliKind::Fee => "Fee",
                CliKind::Credit => "Credit",
            };
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{kind}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                esc(&c.description),
                esc(c.account.as_str()),
                esc(&c.service),
                money(c.amount)
            );
        }
        o.push_str("</tbody>\n</table>\n</section>\n");
    }

    // Totals.
    o.push_str("<div class=\"totals-wrap\">\n<table class=\"totals\">\n");
    for (label, v) in [
        ("Usage subtotal", invoice.subtotal),
        ("Fees", invoice.fees),
        ("Credits", invoice.credits),
    ] {
        let _ = writeln!(
            o,
            "<tr><th>{label}</th><td class=\"num\">{}</td></tr>",
            money(v)
        );
    }
    let _ = writeln!(
        o,
        "<tr class=\"grand\"><th>Total ({currency})</th><td class=\"num\">{}</td></tr>",
        money(invoice.total)
    );
    o.push_str("</table>\n</div>\n");

    // Footer.
    o.push_str("<footer class=\"foot\">\n");
    if !partner.payment_terms.trim().is_empty() {
        let _ = writeln!(
            o,
            "<p><strong>Payment terms:</strong> {}</p>",
            esc(partner.payment_terms.trim())
        );
    }
    let _ = writeln!(
        o,
        "<p>Please quote invoice number <strong>{}</strong> with your payment. All amounts are in {currency}.</p>",
        esc(&number)
    );
    let _ = writeln!(
        o,
        "<p>AWS usage of organization {} for {}, billed by {}.</p>",
        esc(parties.usage_of),
        esc(&period_title(period)),
        esc(&partner.name)
    );
    o.push_str("</footer>\n</main>\n</body>\n</html>\n");
    o
}

const DASHBOARD_CSS: &str = "\
.wrap{max-width:1240px;margin:0 auto;padding:24px}
.dash-head{display:flex;align-items:center;gap:20px;margin-bottom:20px}
.dash-head img{max-height:44px;max-width:200px}
.dash-head h1{font-size:22px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:14px;margin-bottom:16px}
.kpi,.card{background:#fff;border:1px solid var(--line);border-radius:6px}
.kpi{padding:14px 16px}
.kpi .label{font-size:12px;text-transform:uppercase;letter-spacing:.5px;color:var(--muted)}
.kpi .value{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums;margin:2px 0}
.kpi .value small{font-size:13px;font-weight:600;color:var(--muted);margin-left:4px}
.kpi .sub{font-size:12px;color:var(--muted)}
.card{padding:16px 18px;margin-bottom:16px}
.card h2{font-size:16px;margin-bottom:4px}
.card p.note{margin:0 0 10px;font-size:12px;color:var(--muted)}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
.grid2 .card{margin-bottom:16px}
svg.chart{display:block;max-width:100%;height:auto}
svg.chart text{font-family:inherit;font-size:12px;fill:var(--ink)}
svg.chart text.v{font-variant-numeric:tabular-nums}
svg.chart text.gap{fill:var(--muted);font-style:italic}
svg.chart .p{fill:var(--pos)}
svg.chart .n{fill:var(--neg)}
svg.chart line{stroke:#9aa5b5;stroke-width:1}
.tbl td,.tbl th{padding:4px 8px;font-size:13px}
.tbl td:nth-child(n+3){text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.tbl th:nth-child(n+3){text-align:right}
.tbl tr.loss td:nth-child(5),.tbl tr.loss td:nth-child(6){color:var(--neg);font-weight:600}
.tbl .id{color:var(--muted);font-size:12px}
details{border-top:1px solid var(--line)}
details summary{cursor:pointer;padding:8px 4px;font-weight:600}
details summary span{font-weight:400;color:var(--muted)}
.files{font-size:12px;color:var(--muted);margin:8px 0 24px}
@media print{body{background:#fff}.wrap{padding:0}.card,.kpi{break-inside:avoid}details{display:none}details[open]{display:block}}
";

/// One customer org's month, for the dashboard.
struct OrgRow<'a> {
    id: &'a str,
    name: &'a str,
    /// The invoice the top issues for the org, relative to the output folder.
    invoice: String,
    actual: i128,
    proforma: i128,
    quarantined: usize,
}

impl OrgRow<'_> {
    fn margin(&self) -> i128 {
        self.proforma - self.actual
    }

    /// Margin as a fraction of pro forma revenue, for ordering only; an org with no
    /// revenue but a cost sorts first, one with neither counts as 0.
    fn ratio(&self) -> f64 {
        if self.proforma == 0 {
            match self.margin().cmp(&0) {
                Ordering::Less => f64::NEG_INFINITY,
                Ordering::Equal => 0.0,
                Ordering::Greater => f64::INFINITY,
            }
        } else {
            self.margin() as f64 / self.proforma as f64
        }
    }

    fn percent(&self) -> String {
        margin_percent(Money(self.actual), Money(self.proforma))
            .map(|p| format!("{p}%"))
            .unwrap_or_else(|| "\u{2013}".into())
    }
}

/// A horizontal bar of a chart.
struct Bar {
    label: String,
    title: String,
    value: i128,
}

/// Truncates a label for a chart (whole characters), with an ellipsis.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('\u{2026}');
        t
    }
}

/// A horizontal bar chart as inline SVG: positive bars to the right of the zero
/// line, negative ones (in red) to its left; `gap` inserts a note row before the
/// bar of that index.
fn bar_chart(aria: &str, bars: &[Bar], gap: Option<(usize, String)>) -> String {
    const W: f64 = 560.0;
    const LABEL_W: f64 = 180.0;
    const VALUE_W: f64 = 80.0;
    const ROW: f64 = 20.0;
    const TOP: f64 = 6.0;
    let x0 = LABEL_W + 8.0;
    let area = W - VALUE_W - 8.0 - x0;
    let to_f = |v: i128| v as f64 / 1e10;
    let max_pos = bars
        .iter()
        .map(|b| to_f(b.value.max(0)))
        .fold(0.0, f64::max);
    let max_neg = bars
        .iter()
        .map(|b| to_f(-b.value.min(0)))
        .fold(0.0, f64::max);
    let span = if max_pos + max_neg > 0.0 {
        max_pos + max_neg
    } else {
        1.0
    };
    let zero = x0 + area * max_neg / span;
    let rows = bars.len() + usize::from(gap.is_some());
    let h = TOP * 2.0 + ROW * rows.max(1) as f64;
    let mut s = String::with_capacity(200 + bars.len() * 260);
    let _ = write!(
        s,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {h}\" width=\"{W}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        esc(aria)
    );
    if bars.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" class=\"gap\">No data</text>",
            x0,
            TOP + 14.0
        );
    }
    let mut y = TOP;
    for (i, b) in bars.iter().enumerate() {
        if let Some((at, note)) = &gap {
            if *at == i {
                let _ = write!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" class=\"gap\" text-anchor=\"middle\">{}</text>",
                    W / 2.0,
                    y + 14.0,
                    esc(note)
                );
                y += ROW;
            }
        }
        let v = to_f(b.value);
        let w = area * v.abs() / span;
        let w = if b.value != 0 { w.max(1.0) } else { 0.0 };
        let x = if b.value < 0 { zero - w } else { zero };
        let class = if b.value < 0 { "n" } else { "p" };
        let _ = write!(
            s,
            "<g><title>{}</title><text x=\"{LABEL_W}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"13\" rx=\"2\"/><text class=\"v\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></g>",
            esc(&b.title),
            y + 14.0,
            esc(&short(&b.label, 28)),
            y + 3.5,
            W - 2.0,
            y + 14.0,
            amt(b.value)
        );
        y += ROW;
    }
    if !bars.is_empty() {
        let _ = write!(
            s,
            "<line x1=\"{zero:.1}\" y1=\"{}\" x2=\"{zero:.1}\" y2=\"{:.1}\"/>",
            TOP - 2.0,
            h - TOP + 2.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Thousands separators for counts ("4,960").
fn count(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn org_link(r: &OrgRow<'_>) -> String {
    let (id, href) = (esc(r.id), esc(&r.invoice));
    if r.name == r.id {
        format!("<a href=\"../{href}\">{id}</a>")
    } else {
        format!(
            "<a href=\"../{href}\">{}</a> <span class=\"id\">{id}</span>",
            esc(r.name)
        )
    }
}

/// The page of the invoice the top issues for an org (for a seller's customer,
/// the one it issues to the seller).
pub fn top_invoice_page(o: &Org) -> String {
    match o.seller() {
        Some(s) => format!("sellers/{s}/invoices/{}.html", o.id),
        None => format!("{}/invoice.html", o.proforma_dir()),
    }
}

fn table_head(o: &mut String) {
    o.push_str("<table class=\"tbl\">\n<thead><tr><th>#</th><th>Customer org (invoice)</th><th>Pro forma</th><th>Actual</th><th>Margin</th><th>Margin %</th><th>Quarantined</th><th>Actual invoice</th></tr></thead>\n<tbody>\n");
}

fn table_row(o: &mut String, rank: usize, r: &OrgRow<'_>) {
    let id = esc(r.id);
    let neg = if r.margin() < 0 {
        " class=\"loss\""
    } else {
        ""
    };
    let q = if r.quarantined > 0 {
        format!(
            "<a href=\"../quarantine/{id}.csv\">{}</a>",
            count(r.quarantined)
        )
    } else {
        "0".into()
    };
    let _ = writeln!(
        o,
        "<tr{neg}><td>{rank}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{q}</td><td><a href=\"invoices/{id}.json\">json</a></td></tr>",
        org_link(r),
        amt(r.proforma),
        amt(r.actual),
        amt(r.margin()),
        r.percent()
    );
}

/// What the partner pays AWS for an org: the billed total, net of its program discounts.
fn net_actual(r: &crate::pipeline::OrgResult) -> i128 {
    r.discounts
        .as_ref()
        .map_or(r.actual.total, |d| d.net_total)
        .0
}

/// The partner's self-contained dashboard for the month.
///
/// Totals of the customer orgs (actual, pro forma, margin, as in the manifest),
/// the partner's own org apart (actual only), a chart of margin by customer org
/// (every org, or the top and bottom 20 when there are more than 40), a chart of
/// pro forma revenue by service, the lowest margins, quarantine counts, orgs not
/// billed, and every customer org in a table sorted by margin (lowest first), in
/// collapsible pages of 250 so that 5,000 orgs stay usable without scripts.
pub fn partner_dashboard_page(config: &Config, result: &RunResult) -> String {
    let partner = &config.partner;
    let currency = esc(&partner.currency);
    let period = result.period;

    let mut rows: Vec<OrgRow<'_>> = Vec::new();
    let mut own: Vec<(&str, i128, usize)> = Vec::new();
    let mut by_service: BTreeMap<&str, i128> = BTreeMap::new();
    let mut quarantine: Vec<(&str, usize)> = Vec::new();
    for r in &result.orgs {
        let org_cfg = config.party(r.org_index).customer();
        if !r.quarantined.is_empty() {
            quarantine.push((r.id.as_str(), r.quarantined.len()));
        }
        // What the top is paid for the org: a seller's customer is paid for by the seller.
        let billed_by_top = match r.role {
            Role::EndCustomer => r.seller_cost.as_ref(),
            Role::Customer | Role::Seller => r.customer.as_ref(),
            Role::Partner => None,
        };
        match (billed_by_top, org_cfg) {
            (Some(c), Some(o)) => {
                for l in &c.lines {
                    *by_service.entry(l.service.as_str()).or_default() += l.amount.0;
                }
                for x in &c.custom {
                    *by_service.entry(x.service.as_str()).or_default() += x.amount.0;
                }
                rows.push(OrgRow {
                    id: r.id.as_str(),
                    name: o.name.as_str(),
                    invoice: top_invoice_page(o),
                    actual: net_actual(r),
                    proforma: c.total.0,
                    quarantined: r.quarantined.len(),
                });
            }
            _ => own.push((r.id.as_str(), net_actual(r), r.quarantined.len())),
        }
    }
    let total_actual: i128 = rows.iter().map(|r| r.actual).sum();
    let total_proforma: i128 = rows.iter().map(|r| r.proforma).sum();
    let total_margin = total_proforma - total_actual;
    let negatives = rows.iter().filter(|r| r.margin() < 0).count();
    let quarantined_total: usize = quarantine.iter().map(|q| q.1).sum();

    let mut o = String::with_capacity(64 * 1024 + rows.len() * 300);
    head(
        &mut o,
        &format!("{} \u{2013} billing dashboard {period}", partner.name),
        DASHBOARD_CSS,
    );
    o.push_str("<body>\n<div class=\"wrap\">\n<header class=\"dash-head\">\n");
    if let Some(uri) = logo_data_uri(partner) {
        let _ = writeln!(o, "<img src=\"{uri}\" alt=\"{}\">", esc(&partner.name));
    }
    let _ = writeln!(
        o,
        "<div><h1>Billing dashboard \u{2013} {}</h1><div class=\"muted\">{} \u{b7} billing period {period} \u{b7} amounts in {currency} \u{b7} partner use only</div></div>",
        esc(&period_title(period)),
        esc(&partner.name)
    );
    o.push_str("</header>\n");

    // Totals.
    o.push_str("<section class=\"kpis\">\n");
    let kpi = |o: &mut String, label: &str, value: String, unit: &str, sub: String, neg: bool| {
        let class = if neg { " neg" } else { "" };
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!("<small>{unit}</small>")
        };
        let _ = writeln!(
            o,
            "<div class=\"kpi\"><div class=\"label\">{label}</div><div class=\"value{class}\">{value}{unit}</div><div class=\"sub\">{sub}</div></div>"
        );
    };
    kpi(
        &mut o,
        "Pro forma revenue",
        amt(total_proforma),
        &currency,
        format!("{} customer org(s) invoiced", count(rows.len())),
        false,
    );
    kpi(
        &mut o,
        "Actual cost",
        amt(total_actual),
        &currency,
        "what AWS bills for these orgs".into(),
        false,
    );
    kpi(
        &mut o,
        "Margin",
        amt(total_margin),
        &currency,
        match margin_percent(Money(total_actual), Money(total_proforma)) {
            Some(p) => format!("{p}% of pro forma revenue"),
            None => "no pro forma revenue".into(),
        },
        total_margin < 0,
    );
    kpi(
        &mut o,
        "Negative margins",
        count(negatives),
        "",
        "customer org(s) billed below cost".into(),
        negatives > 0,
    );
    kpi(
        &mut o,
        "Quarantined rows",
        count(quarantined_total),
        "",
        format!("in {} org(s)", count(quarantine.len())),
        false,
    );
    o.push_str("</section>\n");

    // The partner's own organization, apart from the customers.
    if !own.is_empty() {
        o.push_str("<section class=\"card\">\n<h2>Partner's own organization</h2>\n<p class=\"note\">Invoiced to the partner on its own; not included in the customer totals.</p>\n<table class=\"tbl\">\n<thead><tr><th>Org</th><th>Actual invoice</th><th>Actual</th><th>Quarantined</th></tr></thead>\n<tbody>\n");
        for (id, actual, q) in &own {
            let id = esc(id);
            let _ = writeln!(
                o,
                "<tr><td>{id}</td><td><a href=\"invoices/{id}.json\">invoices/{id}.json</a></td><td>{}</td><td>{}</td></tr>",
                amt(*actual),
                count(*q)
            );
        }
        o.push_str("</tbody>\n</table>\n</section>\n");
    }

    // Charts.
    o.push_str(
        "<div class=\"grid2\">\n<section class=\"card\">\n<h2>Margin by customer org</h2>\n",
    );
    let mut by_margin: Vec<&OrgRow<'_>> = rows.iter().collect();
    by_margin.sort_by(|a, b| b.margin().cmp(&a.margin()).then(a.id.cmp(b.id)));
    let bar = |r: &OrgRow<'_>| Bar {
        label: r.name.to_string(),
        title: format!(
            "{} ({}): margin {} {} ({})",
            r.name,
            r.id,
            amt(r.margin()),
            partner.currency,
            r.percent()
        ),
        value: r.margin(),
    };
    let (bars, gap) = if by_margin.len() > 2 * CHART_ENDS {
        let n = by_margin.len();
        let bars: Vec<Bar> = by_margin[..CHART_ENDS]
            .iter()
            .chain(&by_margin[n - CHART_ENDS..])
            .map(|r| bar(r))
            .collect();
        let hidden = n - 2 * CHART_ENDS;
        let _ = writeln!(
            o,
            "<p class=\"note\">The {CHART_ENDS} highest and {CHART_ENDS} lowest of {} orgs, in {currency}; every org is in the table below.</p>",
            count(n)
        );
        (
            bars,
            Some((
                CHART_ENDS,
                format!("\u{22ef} {} orgs in between \u{22ef}", count(hidden)),
            )),
        )
    } else {
        let _ = writeln!(
            o,
            "<p class=\"note\">Pro forma revenue minus actual cost, in {currency}, highest first.</p>"
        );
        (by_margin.iter().map(|r| bar(r)).collect(), None)
    };
    o.push_str(&bar_chart("Margin by customer org", &bars, gap));
    o.push_str("\n</section>\n<section class=\"card\">\n<h2>Pro forma revenue by service</h2>\n");
    let mut services: Vec<(&str, i128)> = by_service.into_iter().collect();
    services.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut sbars: Vec<Bar> = services
        .iter()
        .take(CHART_SERVICES)
        .map(|(s, v)| Bar {
            label: s.to_string(),
            title: format!("{s}: {} {}", amt(*v), partner.currency),
            value: *v,
        })
        .collect();
    if services.len() > CHART_SERVICES {
        let rest = &services[CHART_SERVICES..];
        let v: i128 = rest.iter().map(|s| s.1).sum();
        sbars.push(Bar {
            label: format!("Other ({} services)", count(rest.len())),
            title: format!(
                "{} other services: {} {}",
                count(rest.len()),
                amt(v),
                partner.currency
            ),
            value: v,
        });
    }
    let _ = writeln!(
        o,
        "<p class=\"note\">Usage lines and custom line items (under their service) of every customer invoice, in {currency}.</p>"
    );
    o.push_str(&bar_chart("Pro forma revenue by service", &sbars, None));
    o.push_str("\n</section>\n</div>\n");

    // Lowest margins, by margin percentage.
    let mut by_ratio: Vec<&OrgRow<'_>> = rows.iter().collect();
    by_ratio.sort_by(|a, b| {
        a.ratio()
            .total_cmp(&b.ratio())
            .then(a.margin().cmp(&b.margin()))
            .then(a.id.cmp(b.id))
    });
    o.push_str("<section class=\"card\">\n<h2>Lowest margins</h2>\n");
    let _ = writeln!(
        o,
        "<p class=\"note\">The {} customer org(s) with the lowest margin as a percentage of pro forma revenue; {} org(s) have a negative margin.</p>",
        by_ratio.len().min(LOWEST),
        count(negatives)
    );
    table_head(&mut o);
    for (i, r) in by_ratio.iter().take(LOWEST).enumerate() {
        table_row(&mut o, i + 1, r);
    }
    o.push_str("</tbody>\n</table>\n</section>\n");

    // Quarantine counts.
    quarantine.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    o.push_str("<section class=\"card\">\n<h2>Quarantined rows by org</h2>\n");
    if quarantine.is_empty() {
        o.push_str("<p class=\"note\">No row was quarantined this month.</p>\n");
    } else {
        let _ = writeln!(
            o,
            "<p class=\"note\">{} row(s) in {} org(s) were not rated; each org's file lists them with the reason.{}</p>",
            count(quarantined_total),
            count(quarantine.len()),
            if quarantine.len() > QUARANTINE_ROWS {
                format!(" The {QUARANTINE_ROWS} orgs with the most are shown; the table below has every org's count.")
            } else {
                String::new()
            }
        );
        o.push_str("<table class=\"tbl\">\n<thead><tr><th>#</th><th>Org</th><th>Rows</th><th>File</th></tr></thead>\n<tbody>\n");
        for (i, (id, n)) in quarantine.iter().take(QUARANTINE_ROWS).enumerate() {
            let id = esc(id);
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{id}</td><td>{}</td><td><a href=\"../quarantine/{id}.csv\">quarantine/{id}.csv</a></td></tr>",
                i + 1,
                count(*n)
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    o.push_str("</section>\n");

    // Orgs outside their transfer this month.
    if !result.not_billed.is_empty() {
        o.push_str("<section class=\"card\">\n<h2>Not billed this month</h2>\n<table class=\"tbl\">\n<thead><tr><th>Org</th><th>Reason</th></tr></thead>\n<tbody>\n");
        for nb in &result.not_billed {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&nb.org),
                esc(&nb.reason)
            );
        }
        o.push_str("</tbody>\n</table>\n</section>\n");
    }

    // Every customer org, lowest margin first.
    by_margin.reverse();
    o.push_str("<section class=\"card\">\n<h2>All customer orgs</h2>\n");
    let _ = writeln!(
        o,
        "<p class=\"note\">{} org(s), sorted by margin, lowest first. The org name opens its invoice; json opens what AWS bills the partner for it.</p>",
        count(by_margin.len())
    );
    if by_margin.len() <= TABLE_PAGE {
        table_head(&mut o);
        for (i, r) in by_margin.iter().enumerate() {
            table_row(&mut o, i + 1, r);
        }
        o.push_str("</tbody>\n</table>\n");
    } else {
        for (p, page) in by_margin.chunks(TABLE_PAGE).enumerate() {
            let first = p * TABLE_PAGE + 1;
            let last = first + page.len() - 1;
            let _ = writeln!(
                o,
                "<details{}><summary>Orgs {} to {} <span>(margin {} to {})</span></summary>",
                if p == 0 { " open" } else { "" },
                count(first),
                count(last),
                amt(page[0].margin()),
                amt(page[page.len() - 1].margin())
            );
            table_head(&mut o);
            for (i, r) in page.iter().enumerate() {
                table_row(&mut o, first + i, r);
            }
            o.push_str("</tbody>\n</table>\n</details>\n");
        }
    }
    o.push_str("</section>\n");

    let _ = writeln!(
        o,
        "<p class=\"files\">Same run: <a href=\"margin.csv\">margin.csv</a> (per org and service) \u{b7} <a href=\"../manifest.json\">manifest.json</a> (inputs, reconciliation checks) \u{b7} billxfer {}</p>",
        env!("CARGO_PKG_VERSION")
    );
    o.push_str("</div>\n</body>\n</html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert(\"x\" & 'y')</script>\u{0}"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }

    #[test]
    fn period_dates() {
        let p = |y, m| BillingPeriod::new(y, m).unwrap();
        assert_eq!(
            period_range(p(2026, 10)),
            "1 October 2026 \u{2013} 31 October 2026"
        );
        assert_eq!(days_in_month(p(2028, 2)), 29);
        assert_eq!(days_in_month(p(2100, 2)), 28);
        assert_eq!(days_in_month(p(2026, 4)), 30);
    }

    #[test]
    fn counts_have_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(4960), "4,960");
        assert_eq!(count(1234567), "1,234,567");
    }
}
