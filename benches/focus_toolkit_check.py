#!/usr/bin/env python3
"""A second reader nobody on the project wrote: focus-data-toolkit's FOCUS 1.4
bundle validation (referential integrity, reconciliation, lifecycle) over every
Cost and Usage + InvoiceDetail + BillingPeriod bundle of a billxfer
`--focus-version 1.4 --format csv` run.

Usage: benches/focus_toolkit_check.py OUT/PERIOD   (called by .ci/run)

One disagreement is expected and checked for what it is (docs/EXPORTS.md,
"FOCUS 1.4"): FDT-CROSS-015 on an invoice line whose charges mix ChargeCategory
values (Usage and Purchase: an RI fee and its covered usage on one customer
invoice line). FOCUS 1.4 lets such an aggregated InvoiceDetail record be
`Usage`; the toolkit compares row by row. Every other diagnostic fails the check.
"""
import csv
import json
import subprocess
import sys
from pathlib import Path


def categories_of_line(cost_csv: Path, detail_id: str) -> set:
    with cost_csv.open(newline="") as f:
        return {r["ChargeCategory"] for r in csv.DictReader(f) if r["InvoiceDetailId"] == detail_id}


def main(period_dir: Path) -> int:
    failures, bundles, expected = [], 0, 0
    for detail in sorted(period_dir.glob("**/focus-invoice-detail/*.csv")):
        base = detail.parent.parent
        name = detail.name
        cost, period = base / "focus" / name, base / "focus-billing-period" / name
        if not cost.exists() or not period.exists():
            failures.append(f"{detail}: no matching Cost and Usage or BillingPeriod file")
            continue
        out = subprocess.run(
            [sys.executable, "-m", "focus_data_toolkit", "validate-bundle",
             "--cost-and-usage", str(cost), "--invoice-detail", str(detail),
             "--billing-period", str(period), "--format", "json"],
            capture_output=True, text=True)
        try:
            report = json.loads(out.stdout)
        except json.JSONDecodeError:
            failures.append(f"{cost}: the toolkit gave no report: {out.stderr.strip()[:300]}")
            continue
        bundles += 1
        for d in report.get("diagnostics", []):
            if d.get("severity") not in ("ERROR", "WARNING"):
                continue
            keys = d.get("record_keys", {})
            if d.get("rule_id") == "FDT-CROSS-015" and len(categories_of_line(cost, keys.get("InvoiceDetailId", ""))) > 1:
                expected += 1
                continue
            failures.append(f"{cost}: {d.get('rule_id')}: {d.get('message')}")
    for line in failures:
        print(f"focus_toolkit_check: {line}")
    print(f"focus_toolkit_check: {bundles} FOCUS 1.4 bundle(s) read by focus-data-toolkit; "
          f"{expected} expected mixed-category line(s); " + ("ok" if not failures and bundles else f"{len(failures)} failure(s)"))
    return 1 if failures or not bundles else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
