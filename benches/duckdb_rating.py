#!/usr/bin/env python3
"""Independent re-rating of a billxfer month with DuckDB SQL, for benchmarks and cross-checks.

Usage:
    python3 benches/duckdb_rating.py --config BASE/billxfer.toml --period 2026-10 \
        [--billxfer-out OUTDIR [--lines]] [--threads N] [--show N]

It reads the same Parquet files as `billxfer run` (the `files` globs of the config, relative to the
config's folder) and computes, per organization, with one SQL pipeline over all orgs:

* actual track (`[actual] mode = "billed"` only): per (usage account, product code, line item
  type) the sum of `line_item_net_unblended_cost` (when the column exists and the value is not null)
  else `line_item_unblended_cost`, each group rounded to cents, summed per org
  = `partner/invoices/<org>.json` "total" (the partner's own org included);
* pro forma track (docs/DOMAIN.md), for rules plans (custom plans and `basic`) and `passthrough`:
  `Usage` lines priced from the unblended cost with the single most specific matching rule
  (SKU > SERVICE > BILLING_ENTITY > GLOBAL; SKU weights usage type 4, operation 2, region 1), the
  free tier turned off by `tiering` rules (SERVICE > GLOBAL), SKU `custom` tier tables over the org's
  month split by quantity with exact largest-remainder allocation; public constructs (RI/SP, fees,
  bundled and RI volume discounts) at their unblended cost; tax, credits, refunds, non-public
  discounts and support left out; then per (account, product) rounded to cents and summed
  = `customers/<org>/invoice.json` "subtotal". Custom line items are evaluated from the SQL
  aggregates (flat, then percentage items) to give "total" too.

All money is exact, in billxfer's own representation: integers counting 10^-10 units (BIGINT per
row, HUGEINT in sums and products; the whole of pass 2 is redone with HUGEINT rows when a value
does not fit BIGINT, i.e. beyond about +-9.2e8). Doubles become round(x * 1e10) below 10^5, and
above that go through their shortest text, like billxfer's ryu reading (DuckDB's own
CAST(x AS DECIMAL(38,10)) is not exact there: 500000000.25 becomes 500000000.2499999744). Rate
strings are parsed as DECIMAL(38,10); products (usage x rate, markups, tier portions) are rounded
half away from zero at the 10th decimal as billxfer does; the tier allocation is exact largest
remainder; invoice lines are rounded to cents with the config's [run] rounding mode.

Pipeline: pass 1 reads the rule-matching text columns and the public-rate texts (GROUPING SETS) to
resolve every distinct (plan, product, usage type, operation, region, billing entity) key once;
pass 2 joins every row to its org (account, file) and to its resolved key, prices both tracks and
aggregates per (account, product, line item type); a last step on the small aggregate settles custom
tiers, free-tier lines without a rate (a third pass, only when there are such lines), and the
invoice lines. Text columns are used as read (no coalesce()), which keeps DuckDB's dictionary
vectors: joins and GROUP BY on them are then several times faster.

Row checks applied (billxfer quarantines the rest): the usage account belongs to the file's org,
the line item type is one of the 17 known spellings, the billing period (bill_billing_period_start_date,
else line_item_usage_start_date) is the period, the currency is USD or empty, the amounts are finite
numbers, the unblended cost is present, public rates are not negative, and `Usage` quantities are
not negative.

Limits (not needed for generated bases): Parquet input only; `[actual] mode = "public"` is not
supported; when files differ in schema, per-row COALESCE is used across the alternative columns
(product_region_code / product_region, billing period / usage start), where billxfer picks the
column per file.

Prints the elapsed seconds of the SQL part (also as a line `ELAPSED_SQL <seconds>`). With
--billxfer-out, compares per org the actual total, the pro forma subtotal and the total with
billxfer's JSON outputs under OUTDIR/PERIOD/ and exits 1 on any difference (exact to the cent);
--lines also compares every invoice line (actual lines with their exact amounts, customer lines,
custom line items).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from decimal import (ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP,
                     Decimal, getcontext, localcontext)

try:
    import duckdb
except ImportError:  # pragma: no cover - convenience for fresh machines
    print("duckdb_rating: `import duckdb` failed; running `pip install duckdb`", file=sys.stderr)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "duckdb"])
    import duckdb

getcontext().prec = 80

LINE_TYPES = [
    "Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation",
    "SavingsPlanUpfrontFee", "SavingsPlanRecurringFee", "RIFee", "Fee", "Tax", "Credit", "Refund",
    "EdpDiscount", "PrivateRateDiscount", "SppDiscount", "BundledDiscount", "Discount",
    "RiVolumeDiscount",
]
# Left out of the pro forma track on rules plans (DOMAIN.md); the other types are taken at their
# unblended cost, except Usage, which the rules price. Support products are left out whatever the type.
EXCLUDED = ["Tax", "Credit", "Refund", "EdpDiscount", "PrivateRateDiscount", "SppDiscount", "Discount"]
TEN = Decimal("1e-10")
CENT = Decimal("0.01")


def die(msg: str, code: int = 2) -> None:
    print(f"duckdb_rating: error: {msg}", file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

def dec(v, what: str) -> Decimal:
    """A config number: string parsed exactly, TOML int as text, TOML float via shortest repr."""
    if isinstance(v, bool):
        die(f"{what}: expected a number")
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, str):
        try:
            return Decimal(v.strip())
        except Exception:
            die(f"{what}: `{v}` is not a number")
    die(f"{what}: expected a number")


def fixed(v, what: str) -> Decimal:
    return dec(v, what).quantize(TEN, ROUND_HALF_UP)


def percent(v, what: str) -> Decimal:
    return dec(v, what).quantize(CENT, ROUND_HALF_UP)


def month(v: str, what: str) -> tuple[int, int]:
    s = str(v).strip()
    if len(s) == 10 and s.endswith("-01"):
        s = s[:7]
    try:
        y, m = s.split("-")
        y, m = int(y), int(m)
        assert len(s) == 7 and 1 <= m <= 12
    except Exception:
        die(f"{what}: `{v}` is not a month YYYY-MM")
    return (y, m)


def resolve_files(base: str, patterns: list[str], who: str) -> list[str]:
    out: set[str] = set()
    for p in patterns:
        full = p if os.path.isabs(p) else os.path.join(base, p)
        if any(ch in p for ch in "*?["):
            hits = []
            for f in glob.glob(full, recursive=True):
                name = os.path.basename(f)
                low = name.lower()
                if not os.path.isfile(f) or name.startswith(".") or low.endswith(".json") or low.endswith(".metadata"):
                    continue
                hits.append(os.path.abspath(f))
            if not hits:
                die(f"{who}: the pattern `{p}` matches no file (relative to {base})", 1)
            out.update(hits)
        else:
            if not os.path.isfile(full):
                die(f"{who}: input file {full} does not exist", 1)
            out.add(os.path.abspath(full))
    return sorted(out)


def load_config(path: str, period: tuple[int, int]):
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    base = os.path.dirname(os.path.abspath(path))
    actual = cfg.get("actual", {})
    if str(actual.get("mode", "billed")).lower() != "billed":
        die('only [actual] mode = "billed" is supported by this script')
    rounding = str(cfg.get("run", {}).get("rounding", "half_away_from_zero")).lower()
    if rounding not in ("half_away_from_zero", "half_even", "toward_zero", "away_from_zero"):
        die(f"[run] rounding `{rounding}` is not known")

    plans: dict[str, list[dict]] = {"basic": []}
    for p in cfg.get("plans", []):
        rules = []
        for i, r in enumerate(p.get("rules", [])):
            rid = f"plans `{p['id']}` rule `{r.get('id')}`"
            rule = {
                "idx": i,
                "id": r["id"],
                "scope": str(r["scope"]).lower(),
                "type": str(r["type"]).lower(),
                "service": r.get("service"),
                "entity": r.get("billing_entity"),
                "ut": r.get("usage_type"),
                "op": r.get("operation"),
                "region": r.get("region"),
                "pct": percent(r["percent"], rid) if "percent" in r else None,
                "free_tier": r.get("free_tier"),
                "tiers": [(fixed(t["from"], rid), fixed(t["rate"], rid)) for t in r.get("tiers", [])],
            }
            rules.append(rule)
        plans[p["id"]] = rules

    partner = cfg["partner"]
    orgs = [{
        "id": partner["id"],
        "kind": "none",
        "plan": None,
        "accounts": [partner["management_account"], *partner.get("accounts", [])],
        "files": resolve_files(base, partner.get("files", []), f"partner `{partner['id']}`") if partner.get("files") else [],
        "management": partner["management_account"],
        "clis": [],
    }]
    skipped = []
    for o in cfg.get("orgs", []):
        t = o["transfer"]
        start = month(t["start"], f"org `{o['id']}` transfer.start")
        end = month(t["end"], f"org `{o['id']}` transfer.end") if "end" in t else None
        if period < start or (end is not None and period > end):
            skipped.append(o["id"])
            continue
        plan = o["plan"]
        if plan == "passthrough":
            kind = "passthrough"
        elif plan in plans:
            kind = "rules"
        else:
            die(f"org `{o['id']}`: plan `{plan}` does not exist")
        clis = []
        for c in o.get("custom_line_items", []):
            cs = month(c["start"], f"org `{o['id']}` item `{c['id']}`.start")
            ce = month(c["end"], f"org `{o['id']}` item `{c['id']}`.end") if "end" in c else None
            clis.append({
                "id": c["id"],
                "kind": str(c["kind"]).lower(),
                "flat": fixed(c["flat"], c["id"]) if "flat" in c else None,
                "percent": percent(c["percent"], c["id"]) if "percent" in c else None,
                "include_org_total": c.get("include_org_total", True),
                "include_items": c.get("include_items", []),
                "exclude_spn": c.get("exclude_savings_plan_negation", False),
                "service": c.get("service"),
                "applies": cs <= period and (ce is None or period <= ce),
            })
        orgs.append({
            "id": o["id"],
            "kind": kind,
            "plan": plan if kind == "rules" else None,
            "accounts": [o["management_account"], *o.get("accounts", [])],
            "files": resolve_files(base, o["files"], f"org `{o['id']}`"),
            "management": o["management_account"],
            "clis": clis,
        })
    return orgs, plans, rounding, skipped


# ---------------------------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------------------------

def lit(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, Decimal)):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def values_table(con, name: str, cols: str, rows: list[tuple]) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({cols})")
    for i in range(0, len(rows), 5000):
        chunk = rows[i:i + 5000]
        if chunk:
            con.execute(f"INSERT INTO {name} VALUES " + ",".join("(" + ",".join(lit(x) for x in r) + ")" for r in chunk))


def units(d: Decimal) -> int:
    return int(d.scaleb(10).to_integral_value(ROUND_HALF_UP))


def from_units(v) -> Decimal:
    return Decimal(int(v)).scaleb(-10)


def round_cents_py(x: Decimal, mode: str) -> Decimal:
    r = {"half_away_from_zero": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN,
         "toward_zero": ROUND_DOWN, "away_from_zero": "away"}[mode]
    if r == "away":
        return x.quantize(CENT, ROUND_CEILING if x >= 0 else ROUND_FLOOR)
    return x.quantize(CENT, r)


# Macros over integer 10^-10 units (HUGEINT where a product could leave BIGINT).
MACROS = {
    # a × b of two unit values, rounded half away from zero at the 10th decimal (money::mul_fixed)
    "hmul": "(a, b) AS (CASE WHEN a::HUGEINT * b < 0 THEN -1 ELSE 1 END) "
            "* ((abs(a::HUGEINT * b) + 5000000000) // 10000000000)",
    # markup/discount: a × k / 10000, k = 10000 ± hundredths of a percent (Percent::adjust)
    "hmod": "(a, k) AS (CASE WHEN a < 0 THEN -1 ELSE 1 END) * ((abs(a::HUGEINT) * k + 5000) // 10000)",
    # the same on BIGINT while |a| × k stays below 2^63: lim = 9e18 // k, precomputed per rule
    # (k is at most 1,010,000 for a 10000% markup)
    "bmod": "(a, k, lim) AS CASE WHEN abs(a) < lim "
            "THEN (CASE WHEN a < 0 THEN -1 ELSE 1 END) * ((abs(a) * k + 5000) // 10000) "
            "ELSE CAST(hmod(a, k) AS @IT@) END",
}
CENTS = {
    "half_away_from_zero": "(v) AS (CASE WHEN v < 0 THEN -1 ELSE 1 END) * ((abs(v::HUGEINT) + 50000000) // 100000000) * 100000000",
    "toward_zero": "(v) AS (CASE WHEN v < 0 THEN -1 ELSE 1 END) * (abs(v::HUGEINT) // 100000000) * 100000000",
    "away_from_zero": "(v) AS (CASE WHEN v < 0 THEN -1 ELSE 1 END) * ((abs(v::HUGEINT) + 99999999) // 100000000) * 100000000",
    "half_even": "(v) AS (CASE WHEN v < 0 THEN -1 ELSE 1 END) * (abs(v::HUGEINT) // 100000000 + CASE "
                 "WHEN abs(v::HUGEINT) % 100000000 > 50000000 THEN 1 "
                 "WHEN abs(v::HUGEINT) % 100000000 = 50000000 AND (abs(v::HUGEINT) // 100000000) % 2 = 1 THEN 1 "
                 "ELSE 0 END) * 100000000",
}


def rate(con, orgs, plans, period, rounding, threads):
    """Runs the SQL; returns per-org totals, the custom-line-item bases, elapsed seconds, stages."""
    y, m = period
    p_start = f"{y:04d}-{m:02d}-01 00:00:00+00"
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    p_end = f"{ny:04d}-{nm:02d}-01 00:00:00+00"

    con.execute(f"SET threads={int(threads)}")
    con.execute("SET preserve_insertion_order=false")
    con.execute("SET TimeZone='UTC'")
    con.execute(f"CREATE OR REPLACE TEMP MACRO cents{CENTS[rounding]}")

    # Lookup tables: (account, file) -> org and plan, the rules, free-tier rules, tier tables.
    files = [(f, o["id"]) for o in orgs for f in o["files"]]
    if not files:
        die("no input files", 1)
    for f, _ in files:
        with open(f, "rb") as fh:
            if fh.read(4) != b"PAR1":
                die(f"{f}: not a Parquet file (this script reads Parquet only)")
    used_plans = sorted({o["plan"] for o in orgs if o["kind"] == "rules"})
    plan_id = {p: i for i, p in enumerate(used_plans)}
    values_table(con, "files", "fi INTEGER, org VARCHAR", [(i, o) for i, (_, o) in enumerate(files)])
    values_table(con, "accts", "org VARCHAR, account VARCHAR, plan_id INTEGER, kind VARCHAR",
                 [(o["id"], a, plan_id.get(o["plan"]), o["kind"]) for o in orgs for a in o["accounts"]])
    con.execute("CREATE OR REPLACE TEMP TABLE accf AS SELECT a.*, f.fi FROM accts a JOIN files f USING (org)")
    rule_rows, tiering_rows, tier_rows = [], [], []
    for pid in used_plans:
        for r in plans[pid]:
            if r["type"] == "tiering":
                tiering_rows.append((plan_id[pid], r["service"] if r["scope"] == "service" else None, bool(r["free_tier"])))
                continue
            if r["scope"] == "sku":
                prio = 100 + 4 * (r["ut"] is not None) + 2 * (r["op"] is not None) + (r["region"] is not None)
            else:
                prio = {"service": 3, "billing_entity": 2, "global": 1}[r["scope"]]
            hundredths = int(r["pct"] * 100) if r["pct"] is not None else None
            k = {"markup": 10000 + (hundredths or 0), "discount": 10000 - (hundredths or 0)}.get(r["type"])
            rule_rows.append((plan_id[pid], r["idx"], r["scope"], r["type"], r["service"], r["entity"], r["ut"],
                              r["op"], r["region"], k, prio))
            if r["type"] == "custom":
                tiers = r["tiers"]
                for j, (frm, rt) in enumerate(tiers):
                    upto = units(tiers[j + 1][0]) if j + 1 < len(tiers) else None
                    tier_rows.append((plan_id[pid], r["idx"], j, units(frm), upto, units(rt)))
    values_table(con, "rules", "plan_id INTEGER, idx INTEGER, scope VARCHAR, type VARCHAR, service VARCHAR, "
                 "entity VARCHAR, ut VARCHAR, op VARCHAR, region VARCHAR, k INTEGER, prio INTEGER", rule_rows)
    values_table(con, "tiering", "plan_id INTEGER, service VARCHAR, free_tier BOOLEAN", tiering_rows)
    values_table(con, "tiers", "plan_id INTEGER, idx INTEGER, j INTEGER, frm HUGEINT, upto HUGEINT, rate HUGEINT",
                 tier_rows)
    values_table(con, "ltypes", "lt VARCHAR, code INTEGER", [(t, i) for i, t in enumerate(LINE_TYPES)])

    file_list = "[" + ",".join(lit(f) for f, _ in files) + "]"
    src = f"read_parquet({file_list}, union_by_name=true, hive_partitioning=false)"
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    for need in ("line_item_usage_account_id", "line_item_line_item_type", "line_item_product_code",
                 "line_item_usage_amount", "line_item_unblended_cost"):
        if need not in types:
            die(f"missing required column {need}", 1)

    def raw(*names: str) -> str:
        """A text column as read: NULL stays NULL (billxfer reads it as ""). Not wrapping the
        column in coalesce() keeps DuckDB's dictionary vectors, which makes joins and GROUP BY on
        these columns several times faster; NULL and "" are merged where it matters."""
        present = [n for n in names if n in types]
        if not present:
            return "NULL::VARCHAR"
        return present[0] if len(present) == 1 else f"coalesce({', '.join(present)})"

    class Num:
        """A numeric input column: its value in 10^-10 units (integer type @IT@, see pipeline()),
        and row checks written on the raw column so that DuckDB does not convert a value twice."""

        def __init__(self, name: str):
            self.name = name
            t = types.get(name, "").upper()
            self.kind = "absent" if name not in types else "double" if t in ("DOUBLE", "FLOAT", "REAL") \
                else "text" if t == "VARCHAR" else "decimal"
            x = name
            exact = "CAST(CAST({x} AS DECIMAL(38,10)) * 10000000000::DECIMAL(11,0) AS @IT@)"
            if self.kind == "absent":
                self.value, self.bad, self.present, self.negative = "NULL::@IT@", "FALSE", "FALSE", "FALSE"
            elif self.kind == "double":
                # Below 10^5, x * 10^10 rounded is the exact unit count (the same as billxfer's
                # shortest-text reading whenever the text has at most 10 decimals). Above, the
                # double goes through its shortest text, as billxfer does: DuckDB's own
                # CAST(DOUBLE AS DECIMAL) is not exact there (500000000.25 -> 500000000.2499999744).
                self.value = (f"CASE WHEN abs({x}) < 100000 THEN CAST(round({x} * 1e10) AS @IT@) "
                              f"WHEN isfinite({x}) THEN {exact.format(x=f'CAST({x} AS VARCHAR)')} END")
                self.bad = f"NOT coalesce(isfinite({x}), TRUE)"
                self.present = f"{x} IS NOT NULL"
                self.negative = f"coalesce(round({x} * 1e10) < 0, FALSE)"
            elif self.kind == "text":
                d = f"TRY_CAST({x} AS DECIMAL(38,10))"
                self.value = exact.format(x=d)
                self.bad = f"({x} IS NOT NULL AND {x} <> '' AND {d} IS NULL)"
                self.present = f"{d} IS NOT NULL"
                self.negative = f"coalesce({d} < 0, FALSE)"
            else:
                self.value = exact.format(x=x)
                self.bad, self.present = "FALSE", f"{x} IS NOT NULL"
                self.negative = f"coalesce({x} < 0, FALSE)"

    usage = Num("line_item_usage_amount")
    unb = Num("line_item_unblended_cost")
    net = Num("line_item_net_unblended_cost")
    pub_rate = Num("pricing_public_on_demand_rate")
    pcost = Num("pricing_public_on_demand_cost")

    periods = [n for n in ("bill_billing_period_start_date", "line_item_usage_start_date") if n in types]
    if not periods:
        die("missing billing period column", 1)
    period_expr = f"coalesce({', '.join(periods)})" if len(periods) > 1 else periods[0]
    lt_list = ",".join(lit(t) for t in LINE_TYPES)
    key_cols = (f"{raw('line_item_product_code')} AS product, {raw('line_item_usage_type')} AS ut, "
                f"{raw('line_item_operation')} AS op, {raw('product_region_code', 'product_region')} AS region, "
                f"{raw('bill_billing_entity')} AS entity")
    rate_raw = pub_rate.name if pub_rate.kind != "absent" else "NULL::VARCHAR"
    currency = raw("line_item_currency_code")
    same = "{a}.product IS NOT DISTINCT FROM {b}.product AND {a}.ut IS NOT DISTINCT FROM {b}.ut " \
           "AND {a}.op IS NOT DISTINCT FROM {b}.op AND {a}.region IS NOT DISTINCT FROM {b}.region " \
           "AND {a}.entity IS NOT DISTINCT FROM {b}.entity"

    timings = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        timings[name] = time.perf_counter() - t0 - sum(timings.values())

    # Pass 1: the distinct rule-matching keys (a superset: no row checks), and the distinct public
    # rates, so that rates are parsed once per distinct text rather than once per row.
    con.execute(f"""
      CREATE OR REPLACE TEMP TABLE pass1 AS
      SELECT product, ut, op, region, entity, rate_raw, GROUPING(rate_raw) AS is_key
      FROM (SELECT {key_cols}, {rate_raw} AS rate_raw FROM {src})
      GROUP BY GROUPING SETS ((product, ut, op, region, entity), (rate_raw))
    """)
    con.execute("""
      CREATE OR REPLACE TEMP TABLE keys AS
      SELECT row_number() OVER () AS kid, product, ut, op, region, entity FROM pass1 WHERE is_key = 1
    """)
    # Rows whose public rate is unusable (not a number, negative) are quarantined by billxfer.
    if pub_rate.kind == "text":
        bad_rates = [r[0] for r in con.execute(f"""
          SELECT rate_raw FROM pass1 WHERE is_key = 0 AND rate_raw IS NOT NULL
            AND ({pub_rate.bad.replace(pub_rate.name, 'rate_raw')} OR {pub_rate.negative.replace(pub_rate.name, 'rate_raw')})
        """).fetchall()]
        rate_check = (f"coalesce({rate_raw} NOT IN ({', '.join(lit(r) for r in bad_rates)}), TRUE)"
                      if bad_rates else "TRUE")
    elif pub_rate.kind == "absent":
        rate_check = "TRUE"
    else:
        rate_check = f"NOT ({pub_rate.bad}) AND NOT {pub_rate.negative}"
    lap("keys")

    # The winning modifier rule and the free-tier setting of every (plan, key), resolved once.
    # billxfer reads a missing text as "", hence the coalesce() when matching rules.
    con.execute("""
      CREATE OR REPLACE TEMP TABLE res AS
      WITH pk AS (
        SELECT p.plan_id, k.* FROM keys k CROSS JOIN (SELECT DISTINCT plan_id FROM accts WHERE kind = 'rules') p
      ),
      cand AS (
        SELECT pk.plan_id, pk.kid, r.idx, r.type, r.k, r.prio
        FROM pk JOIN rules r ON r.plan_id = pk.plan_id AND (
             (r.scope = 'sku' AND r.service = coalesce(pk.product, '')
                AND (r.ut IS NULL OR r.ut = coalesce(pk.ut, ''))
                AND (r.op IS NULL OR r.op = coalesce(pk.op, ''))
                AND (r.region IS NULL OR r.region = coalesce(pk.region, '')))
          OR (r.scope = 'service' AND r.service = coalesce(pk.product, ''))
          OR (r.scope = 'billing_entity' AND r.entity = coalesce(pk.entity, ''))
          OR r.scope = 'global')
      ),
      win AS (
        SELECT plan_id, kid, arg_max(idx, prio) AS idx, arg_max(type, prio) AS type, arg_max(k, prio) AS k
        FROM cand GROUP BY ALL
      )
      SELECT pk.*,
             CASE WHEN w.type = 'custom' THEN w.idx END AS tier_rule,
             CASE WHEN w.type IN ('markup', 'discount') AND w.k <> 10000 THEN w.k END AS k,
             CASE WHEN w.type IN ('markup', 'discount') AND w.k <> 10000
                  THEN 9000000000000000000 // greatest(w.k, 1) END::BIGINT AS lim,
             coalesce(ts.free_tier, tg.free_tier, TRUE) AS free_tier
      FROM pk
      LEFT JOIN win w USING (plan_id, kid)
      LEFT JOIN tiering ts ON ts.plan_id = pk.plan_id AND ts.service = coalesce(pk.product, '')
      LEFT JOIN tiering tg ON tg.plan_id = pk.plan_id AND tg.service IS NULL
    """)
    lap("resolve")

    def pipeline(it: str):
        """Pass 2 and the settlement, with per-row amounts in integer type `it` (BIGINT: fast;
        HUGEINT: for amounts or quantities beyond +-9.2e8, which make BIGINT overflow)."""
        def ex(sql: str):
            return con.execute(sql.replace("@IT@", it))

        for name, body in MACROS.items():
            ex(f"CREATE OR REPLACE TEMP MACRO {name}{body}")

        # Every row the run rates, with its org and plan. Row checks use the raw columns; amounts are
        # converted to 10^-10 units once. The public rate stays raw: it is needed on few rows.
        base_sql = f"""
          SELECT a.org, a.plan_id, a.kind, t.*,
                 coalesce(t.product LIKE 'AWSSupport%' OR t.product = 'AWSDeveloperSupport', FALSE) AS support
          FROM (
            SELECT file_index AS fi,
                   line_item_usage_account_id AS account,
                   line_item_line_item_type AS lt,
                   {key_cols},
                   coalesce({usage.value}, 0) AS usage,
                   {unb.value} AS unb,
                   {net.value} AS net,
                   {rate_raw} AS rate_raw
            FROM {src}
            WHERE line_item_line_item_type IN ({lt_list})
              AND {period_expr} >= TIMESTAMPTZ '{p_start}' AND {period_expr} < TIMESTAMPTZ '{p_end}'
              AND coalesce({currency}, '') IN ('', 'USD')
              AND {unb.present} AND NOT ({unb.bad}) AND NOT ({usage.bad}) AND NOT ({net.bad}) AND NOT ({pcost.bad})
              AND {rate_check}
              AND NOT (line_item_line_item_type = 'Usage' AND {usage.negative})
          ) t
          JOIN accf a ON a.account = t.account AND a.fi = t.fi
        """
        rate_units = pub_rate.value.replace(pub_rate.name, "b.rate_raw") if pub_rate.kind != "absent" else "NULL::@IT@"

        # Pass 2: every row rated on both tracks, summed per line key. Amounts that depend on the
        # whole month (custom tiers, free-tier-off lines without a rate) are carried as quantities.
        ex(f"""
          CREATE OR REPLACE TEMP TABLE agg AS
          SELECT account, product, lt, t_rule AS tier_rule, d_kid,
                 count(*) AS nrows,
                 sum(actual) AS actual,
                 sum(pf) AS pf,
                 count(*) FILTER (WHERE pf_included) AS pf_rows,
                 sum(tier_qty) AS tier_qty,
                 sum(def_qty) AS def_qty
          FROM (
            SELECT b.account, b.product, b.lt,
                   coalesce(b.net, b.unb) AS actual,
                   (b.kind = 'passthrough' OR b.kind = 'rules' AND NOT b.support
                     AND b.lt NOT IN ({",".join(lit(t) for t in EXCLUDED)})) AS pf_included,
                   (b.kind = 'rules' AND b.lt = 'Usage' AND NOT b.support) AS rated,
                   CASE WHEN rated THEN r.tier_rule END AS t_rule,
                   -- free tier off: the line's own public rate (NULL: not such a line; <= 0: deferred)
                   CASE WHEN rated AND r.tier_rule IS NULL AND NOT r.free_tier AND b.usage > 0 AND b.unb = 0
                        THEN coalesce({rate_units}, 0) END AS free_rate,
                   coalesce(free_rate <= 0, FALSE) AS deferred,
                   CASE WHEN deferred THEN r.kid END AS d_kid,
                   CASE WHEN t_rule IS NOT NULL THEN b.usage END AS tier_qty,
                   CASE WHEN deferred THEN b.usage END AS def_qty,
                   CASE
                     WHEN b.kind = 'passthrough' THEN coalesce(b.net, b.unb)
                     WHEN NOT pf_included THEN 0
                     WHEN NOT rated THEN b.unb
                     WHEN t_rule IS NOT NULL THEN 0
                     WHEN free_rate IS NOT NULL THEN
                       CASE WHEN free_rate <= 0 THEN 0
                            WHEN r.k IS NULL THEN CAST(hmul(b.usage, free_rate) AS @IT@)
                            ELSE CAST(hmod(hmul(b.usage, free_rate), r.k) AS @IT@) END
                     WHEN r.k IS NULL THEN b.unb
                     ELSE bmod(b.unb, r.k, r.lim)
                   END AS pf
            FROM ({base_sql}) b
            LEFT JOIN res r ON b.kind = 'rules' AND b.lt = 'Usage' AND r.plan_id = b.plan_id
                 AND {same.format(a='r', b='b')}
          )
          GROUP BY ALL
        """)
        # billxfer keys lines by org (accounts belong to one org) and reads a missing text as "".
        ex("""
          CREATE OR REPLACE TEMP TABLE agg AS
          SELECT a.org, a.plan_id, coalesce(g.account, '') AS account, coalesce(g.product, '') AS product, g.lt,
                 g.tier_rule, g.d_kid, sum(nrows) AS nrows, sum(actual) AS actual, sum(pf) AS pf,
                 sum(pf_rows) AS pf_rows, sum(tier_qty) AS tier_qty, sum(def_qty) AS def_qty
          FROM agg g JOIN accts a ON a.account = g.account
          GROUP BY ALL
        """)
        lap("rate")

        # Free tier off without a rate on the line: the highest paid rate seen for the key this month
        # (billxfer records it over the org's rated Usage lines). Needs another pass; only when used.
        n_def = ex("SELECT count(*) FROM agg WHERE def_qty IS NOT NULL").fetchone()[0]
        norm = "coalesce(k.product, '') AS product, coalesce(k.ut, '') AS ut, coalesce(k.op, '') AS op, " \
               "coalesce(k.region, '') AS region, coalesce(k.entity, '') AS entity"
        if n_def:
            ex(f"""
              CREATE OR REPLACE TEMP TABLE maxrate AS
              SELECT b.org, {norm}, max({rate_units}) AS rate
              FROM ({base_sql}) b JOIN keys k ON {same.format(a='k', b='b')}
              WHERE b.kind = 'rules' AND b.lt = 'Usage' AND NOT b.support AND {rate_units} > 0
              GROUP BY ALL
            """)
        else:
            ex("CREATE OR REPLACE TEMP TABLE maxrate (org VARCHAR, product VARCHAR, ut VARCHAR, op VARCHAR, "
                        "region VARCHAR, entity VARCHAR, rate HUGEINT)")
        ex(f"""
          CREATE OR REPLACE TEMP TABLE deferred_qty AS
          SELECT g.org, g.plan_id, g.account, g.product, g.lt, {norm}, r.k, sum(g.def_qty) AS q
          FROM agg g JOIN keys k ON k.kid = g.d_kid JOIN res r ON r.plan_id = g.plan_id AND r.kid = g.d_kid
          WHERE g.def_qty IS NOT NULL
          GROUP BY ALL
        """)
        lap("maxrate")

        # Settle the month: tier charges per (org, rule) split by largest remainder in 10^-10 units
        # (rules::allocate_proportionally), deferred free-tier quantities, then the invoice lines.
        ex("""
          CREATE OR REPLACE TEMP TABLE lines AS
          WITH tq AS (
            SELECT org, plan_id, tier_rule, account, product, lt, sum(tier_qty) AS q
            FROM agg WHERE tier_rule IS NOT NULL GROUP BY ALL
          ),
          rq AS (SELECT org, plan_id, tier_rule, sum(q) AS q FROM tq GROUP BY ALL),
          charge AS (
            SELECT rq.org, rq.tier_rule,
                   CASE WHEN rq.q <= 0
                        THEN any_value(hmul(rq.q, t.rate)) FILTER (WHERE t.j = 0)
                        ELSE coalesce(sum(hmul(CASE WHEN t.upto IS NULL OR rq.q < t.upto THEN rq.q ELSE t.upto END - t.frm,
                                               t.rate)) FILTER (WHERE rq.q > t.frm), 0)
                   END AS charge
            FROM rq JOIN tiers t ON t.plan_id = rq.plan_id AND t.idx = rq.tier_rule
            GROUP BY rq.org, rq.tier_rule, rq.q
          ),
          w AS (
            SELECT tq.org, tq.tier_rule, tq.account, tq.product, tq.lt, l.code,
                   greatest(tq.q, 0)::HUGEINT AS wt, abs(c.charge)::HUGEINT AS cu,
                   CASE WHEN c.charge < 0 THEN -1 ELSE 1 END AS sgn
            FROM tq JOIN charge c USING (org, tier_rule) JOIN ltypes l ON l.lt = tq.lt
          ),
          w2 AS (
            SELECT *, sum(wt) OVER (PARTITION BY org, tier_rule) AS s,
                   row_number() OVER (PARTITION BY org, tier_rule ORDER BY account, product, code) AS pos
            FROM w
          ),
          w3 AS (
            SELECT *,
                   CASE WHEN s = 0 THEN (CASE WHEN pos = 1 THEN cu ELSE 0 END) ELSE (cu * wt) // s END AS q0,
                   CASE WHEN s = 0 THEN 0 ELSE (cu * wt) % s END AS rem
            FROM w2
          ),
          w4 AS (
            SELECT *, cu - sum(q0) OVER (PARTITION BY org, tier_rule) AS leftover,
                   row_number() OVER (PARTITION BY org, tier_rule ORDER BY rem DESC, account, product, code) AS rk
            FROM w3
          ),
          shares AS (
            SELECT org, account, product, lt, sum(sgn * (q0 + CASE WHEN rk <= leftover THEN 1 ELSE 0 END)) AS amount
            FROM w4 GROUP BY ALL
          ),
          deferred AS (
            SELECT d.org, d.account, d.product, d.lt,
                   sum(CASE WHEN d.k IS NULL THEN hmul(d.q, m.rate) ELSE hmod(hmul(d.q, m.rate), d.k) END) AS amount
            FROM (SELECT org, account, product, lt, ut, op, region, entity, any_value(k) AS k, sum(q) AS q
                  FROM deferred_qty GROUP BY ALL) d
            JOIN maxrate m USING (org, product, ut, op, region, entity)
            GROUP BY ALL
          ),
          base AS (
            SELECT org, account, product, lt, sum(nrows) AS nrows, sum(actual) AS actual, sum(pf) AS pf,
                   sum(pf_rows) AS pf_rows
            FROM agg GROUP BY ALL
          )
          SELECT b.org, b.account, b.product, b.lt, b.nrows, b.actual, b.pf_rows,
                 b.pf + coalesce(s.amount, 0) + coalesce(d.amount, 0) AS pf
          FROM base b
          LEFT JOIN shares s USING (org, account, product, lt)
          LEFT JOIN deferred d USING (org, account, product, lt)
        """)
        unpriced = ex("""
          SELECT d.org, d.product, d.ut, sum(d.q) FROM deferred_qty d
          WHERE NOT EXISTS (SELECT 1 FROM maxrate m WHERE m.org = d.org AND m.product = d.product AND m.ut = d.ut
                            AND m.op = d.op AND m.region = d.region AND m.entity = d.entity)
          GROUP BY ALL ORDER BY ALL
        """).fetchall()
        for org, product, ut, q in unpriced:
            print(f"warning: {org}: free tier is off for {product} {ut} but no paid rate for it was seen this month: "
                  f"{from_units(q)} units stay at 0", file=sys.stderr)

        totals = ex("""
          WITH act AS (
            SELECT org, sum(cents(actual)) AS total, sum(actual) AS exact, sum(nrows) AS nrows
            FROM lines GROUP BY org
          ),
          cust AS (
            SELECT org, sum(cents(pf)) AS subtotal, sum(pf) AS exact
            FROM (SELECT org, account, product, sum(pf) AS pf, sum(pf_rows) AS pf_rows FROM lines GROUP BY ALL)
            WHERE pf_rows > 0 OR pf <> 0
            GROUP BY org
          )
          SELECT act.org, act.nrows, act.total, act.exact, cust.subtotal, cust.exact
          FROM act LEFT JOIN cust USING (org) ORDER BY act.org
        """).fetchall()
        # Bases of percentage custom line items: the exact pro forma total per service, with and
        # without Savings Plans negation.
        pf_by_service = ex("""
          SELECT org, product, lt = 'SavingsPlanNegation' AS spn, sum(pf) FROM lines GROUP BY ALL
        """).fetchall()
        lap("settle")
        return totals, pf_by_service

    try:
        totals, pf_by_service = pipeline("BIGINT")
    except (duckdb.OutOfRangeException, duckdb.ConversionException) as err:
        print(f"duckdb_rating: values beyond BIGINT units ({str(err).splitlines()[0]}); rerating with HUGEINT",
              file=sys.stderr)
        totals, pf_by_service = pipeline("HUGEINT")
    elapsed = time.perf_counter() - t0
    return totals, pf_by_service, elapsed, timings


def invoice_lines(con):
    """Every invoice line (for --lines): actual per (org, account, product, type) with the exact
    amount, and customer per (org, account, product)."""
    actual = con.execute("SELECT org, account, product, lt, cents(actual), actual FROM lines").fetchall()
    customer = con.execute("""
      SELECT org, account, product, cents(pf)
      FROM (SELECT org, account, product, sum(pf) AS pf, sum(pf_rows) AS pf_rows FROM lines GROUP BY ALL)
      WHERE pf_rows > 0 OR pf <> 0
    """).fetchall()
    return actual, customer


def compare_lines(con, root: str, orgs: list, pf_by_service: list, rounding: str) -> list[str]:
    actual, customer = invoice_lines(con)
    mine_a = {(o, a, p, t): (from_units(r).quantize(CENT), from_units(e)) for o, a, p, t, r, e in actual}
    mine_c = {(o, a, p): from_units(r).quantize(CENT) for o, a, p, r in customer}
    out = []
    for org in orgs:
        oid = org["id"]
        try:
            with open(os.path.join(root, "partner", "invoices", f"{oid}.json")) as f:
                inv = json.load(f)
        except FileNotFoundError:
            continue
        theirs = {(oid, l["account_id"], l["service"], l["line_item_type"]): (Decimal(l["amount"]), Decimal(l["exact_amount"]))
                  for l in inv["lines"]}
        for k in sorted(set(theirs) | {k for k in mine_a if k[0] == oid}):
            if mine_a.get(k) != theirs.get(k):
                out.append(f"actual line {k}: duckdb {mine_a.get(k)} billxfer {theirs.get(k)}")
        if org["kind"] == "none":
            continue
        try:
            with open(os.path.join(root, "customers", oid, "invoice.json")) as f:
                cust = json.load(f)
        except FileNotFoundError:
            continue
        theirs = {(oid, l["account_id"], l["service"]): Decimal(l["amount"]) for l in cust["lines"]}
        for k in sorted(set(theirs) | {k for k in mine_c if k[0] == oid}):
            if mine_c.get(k) != theirs.get(k):
                out.append(f"customer line {k}: duckdb {mine_c.get(k)} billxfer {theirs.get(k)}")
        _, items = custom_items(org, pf_by_service, rounding)
        theirs = {c["id"]: Decimal(c["amount"]) for c in cust.get("custom_line_items", [])}
        mine = {i: r for i, _, r in items}
        for k in sorted(set(theirs) | set(mine)):
            if mine.get(k) != theirs.get(k):
                out.append(f"custom line item {oid}/{k}: duckdb {mine.get(k)} billxfer {theirs.get(k)}")
    return out


def custom_items(org: dict, pf_by_service: list, rounding: str) -> tuple[Decimal, list]:
    """Σ of the rounded custom line items that apply (flat, then percentage items)."""
    parts = [(prod, spn, v) for (o, prod, spn, v) in pf_by_service if o == org["id"]]
    active = [c for c in org["clis"] if c["applies"]]
    sign = lambda c, v: v if c["kind"] == "fee" else -v  # noqa: E731
    flat = {c["id"]: sign(c, c["flat"]) for c in active if c["flat"] is not None}
    out = []
    for c in active:
        if c["flat"] is not None:
            exact = sign(c, c["flat"])
        else:
            b = sum((flat[i] for i in c["include_items"] if i in flat), Decimal(0))
            if c["include_org_total"]:
                b += sum((from_units(v) for prod, spn, v in parts
                          if not (c["exclude_spn"] and spn) and (c["service"] is None or c["service"] == prod)),
                         Decimal(0))
            with localcontext() as ctx:
                ctx.prec = 80
                exact = sign(c, (b * c["percent"] / 100).quantize(TEN, ROUND_HALF_UP))
        out.append((c["id"], exact, round_cents_py(exact, rounding)))
    return sum((r for _, _, r in out), Decimal(0)), out


def main() -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends quietly
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--period", required=True, help="YYYY-MM")
    ap.add_argument("--billxfer-out", help="billxfer's --out folder, to compare totals with")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--show", type=int, default=10, help="mismatches to print (default 10)")
    ap.add_argument("--lines", action="store_true",
                    help="with --billxfer-out, also compare every invoice line (slower on large bases)")
    args = ap.parse_args()

    period = month(args.period, "--period")
    orgs, plans, rounding, skipped = load_config(args.config, period)
    con = duckdb.connect()
    totals, pf_by_service, elapsed, timings = rate(con, orgs, plans, period, rounding, args.threads)
    rows = sum(t[1] for t in totals)
    print(f"duckdb {duckdb.__version__}: rated {rows} rows of {len(totals)} orgs in {elapsed:.3f} s "
          f"({rows / elapsed:,.0f} rows/s, {args.threads} threads)")
    print("stages: " + ", ".join(f"{k} {v:.3f} s" for k, v in timings.items()))
    print(f"ELAPSED_SQL {elapsed:.6f}")
    if skipped:
        print(f"not billed to the partner this month: {len(skipped)} org(s)")

    by_id = {o["id"]: o for o in orgs}
    mine = {}
    for org, nrows, total, exact, subtotal, pf_exact in totals:
        o = by_id[org]
        entry = {"actual": from_units(total).quantize(CENT), "rows": nrows, "actual_exact": from_units(exact)}
        if o["kind"] != "none":
            sub = from_units(subtotal).quantize(CENT) if subtotal is not None else Decimal("0.00")
            cli_sum, _ = custom_items(o, pf_by_service, rounding)
            entry["subtotal"] = sub
            entry["total"] = sub + cli_sum
            entry["pf_exact"] = from_units(pf_exact or 0)
        mine[org] = entry
    for o in orgs:  # orgs without a rated row still get (zero) invoices from billxfer
        if o["id"] not in mine:
            mine[o["id"]] = {"actual": Decimal("0.00"), "rows": 0, "actual_exact": Decimal(0)}
            if o["kind"] != "none":
                cli_sum, _ = custom_items(o, pf_by_service, rounding)
                mine[o["id"]].update(subtotal=Decimal("0.00"), total=cli_sum, pf_exact=Decimal(0))

    sums = {k: sum((e.get(k, Decimal(0)) for oid, e in mine.items() if by_id[oid]["kind"] != "none"), Decimal(0)).quantize(CENT)
            for k in ("actual", "subtotal", "total")}
    print(f"customers: actual {sums['actual']}, pro forma subtotal {sums['subtotal']}, total {sums['total']}")

    if not args.billxfer_out:
        return 0
    root = os.path.join(args.billxfer_out, f"{period[0]:04d}-{period[1]:02d}")
    compared, mismatches = 0, []
    try:
        with open(os.path.join(root, "manifest.json")) as f:
            manifest = {m["org_id"]: m for m in json.load(f)["orgs"]}
    except FileNotFoundError:
        manifest = {}
        mismatches.append(f"billxfer output missing: {os.path.join(root, 'manifest.json')}")
    for oid, e in sorted(mine.items()):
        compared += 1
        try:
            with open(os.path.join(root, "partner", "invoices", f"{oid}.json")) as f:
                inv = json.load(f)
            checks = [("actual total", e["actual"], Decimal(inv["total"]))]
            if by_id[oid]["kind"] != "none":
                with open(os.path.join(root, "customers", oid, "invoice.json")) as f:
                    cust = json.load(f)
                checks += [("pro forma subtotal", e["subtotal"], Decimal(cust["subtotal"])),
                           ("pro forma total", e["total"], Decimal(cust["total"]))]
            m = manifest.get(oid)
            if m is not None:
                checks += [("rows rated", e["rows"], m["rows_rated"]),
                           ("exact actual (manifest)", e["actual_exact"], Decimal(m["actual_exact"]))]
                if m.get("proforma_exact") is not None and "pf_exact" in e:
                    checks.append(("exact pro forma (manifest)", e["pf_exact"], Decimal(m["proforma_exact"])))
        except FileNotFoundError as err:
            mismatches.append(f"{oid}: billxfer output missing: {err.filename}")
            continue
        for what, d, b in checks:
            if d != b:
                mismatches.append(f"{oid} {what}: duckdb {d} billxfer {b} (diff {d - b})")
    print(f"compared {compared} orgs (actual total, pro forma subtotal and total; rows and exact totals "
          f"of the manifest) with {root}: "
          f"{len(mismatches)} mismatch(es)")
    if args.lines:
        line_mismatches = compare_lines(con, root, orgs, pf_by_service, rounding)
        print(f"compared every invoice line: {len(line_mismatches)} mismatch(es)")
        mismatches += line_mismatches
    for line in mismatches[:args.show]:
        print("  " + line)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
