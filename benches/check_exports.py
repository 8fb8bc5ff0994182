#!/usr/bin/env python3
"""Checks billxfer's Parquet exports with DuckDB, a reader other than the one
that wrote them (arrow-rs): documented column names and types (docs/EXPORTS.md),
and that each file sums to the amount exports.json and the invoices state.

Usage: python3 benches/check_exports.py OUT/PERIOD
Exit 0 when every check passes; prints each failure and exits 1 otherwise.
"""

import json
import sys
from decimal import Decimal
from pathlib import Path

import duckdb

# Types DuckDB must see (docs/EXPORTS.md).
CUR_TYPES = {
    "bill_billing_period_start_date": "TIMESTAMP WITH TIME ZONE",
    "bill_billing_period_end_date": "TIMESTAMP WITH TIME ZONE",
    "bill_payer_account_id": "VARCHAR",
    "bill_invoice_id": "VARCHAR",
    "line_item_usage_account_id": "VARCHAR",
    "line_item_line_item_type": "VARCHAR",
    "line_item_product_code": "VARCHAR",
    "line_item_usage_start_date": "TIMESTAMP WITH TIME ZONE",
    "line_item_usage_amount": "DOUBLE",
    "line_item_unblended_rate": "VARCHAR",
    "line_item_unblended_cost": "DOUBLE",
    "pricing_public_on_demand_rate": "VARCHAR",
    "pricing_public_on_demand_cost": "DOUBLE",
}
FOCUS_TYPES = {
    "BilledCost": "DECIMAL(38,10)",
    "EffectiveCost": "DECIMAL(38,10)",
    "ListCost": "DECIMAL(38,10)",
    "ContractedCost": "DECIMAL(38,10)",
    "PricingQuantity": "DECIMAL(38,10)",
    "ChargePeriodStart": "TIMESTAMP WITH TIME ZONE",
    "BillingPeriodStart": "TIMESTAMP WITH TIME ZONE",
    "ChargeCategory": "VARCHAR",
    "SubAccountId": "VARCHAR",
    "ServiceName": "VARCHAR",
    "InvoiceIssuerName": "VARCHAR",
}
# Never in a customer's CUR export.
CONFIDENTIAL_PREFIXES = ("line_item_net_", "discount")


def main(period_dir: Path) -> int:
    failures = []
    listing = json.loads((period_dir / "exports.json").read_text())
    manifest = json.loads((period_dir / "manifest.json").read_text())
    exact = {o["org_id"]: o for o in manifest["orgs"]}
    con = duckdb.connect()
    checked = 0
    for f in listing["files"]:
        path = period_dir / f["path"]
        if path.suffix != ".parquet":
            continue
        kind = f["kind"]
        if kind not in ("cur", "focus", "partner_focus"):
            continue  # FOCUS 1.4's InvoiceDetail and BillingPeriod: checked by validate-focus --version 1.4
        desc = {
            r[0]: r[1]
            for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        }
        expected = CUR_TYPES if kind == "cur" else FOCUS_TYPES
        for col, typ in expected.items():
            if listing["granularity"] != "line" and col.endswith("_rate"):
                continue  # roll-ups drop per-line rates (docs/EXPORTS.md)
            if desc.get(col) != typ:
                failures.append(f"{f['path']}: column {col} is {desc.get(col)}, expected {typ}")
        if kind == "cur":
            for col in desc:
                if col.startswith(CONFIDENTIAL_PREFIXES) or "_net_" in col:
                    failures.append(f"{f['path']}: confidential column {col}")
        cost = "line_item_unblended_cost" if kind == "cur" else "BilledCost"
        rows, total = con.execute(
            f"SELECT count(*), sum({cost}::DECIMAL(38,10)) FROM read_parquet('{path}')"
        ).fetchone()
        total = Decimal(total or 0)
        if rows != f["rows"]:
            failures.append(f"{f['path']}: {rows} rows, exports.json says {f['rows']}")
        if total != Decimal(f["cost_total"]):
            failures.append(f"{f['path']}: sums to {total}, exports.json says {f['cost_total']}")
        org = exact[f["org"]]
        invoice = org["actual_exact"] if kind == "partner_focus" else org["proforma_invoice_exact"]
        if kind == "focus" and "exchange_rate" in org:
            # An invoice in another currency: each row is converted on its own, so the
            # rows sum to the converted invoice within half a 10^-10 unit per row
            # (docs/CURRENCY.md); the file's currency is the invoice's.
            invoice = org["invoice_exact_in_currency"]
            slack = Decimal(rows) * Decimal("0.00000000005") + Decimal("0.00000000005") * 8
            if f["currency"] != org["exchange_rate"]["to"]:
                failures.append(f"{f['path']}: exports.json says {f['currency']}, the invoice is in {org['exchange_rate']['to']}")
            if abs(total - Decimal(invoice)) > slack:
                failures.append(f"{f['path']}: sums to {total}, the converted invoice's exact total is {invoice}")
        elif total != Decimal(invoice):
            failures.append(f"{f['path']}: sums to {total}, the invoice's exact total is {invoice}")
        checked += 1
    if checked == 0:
        failures.append(f"{period_dir}: no Parquet export to check")
    for line in failures:
        print(f"check_exports: {line}")
    print(f"check_exports: {checked} Parquet export(s) read with DuckDB {duckdb.__version__}: "
          + ("ok" if not failures else f"{len(failures)} failure(s)"))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
