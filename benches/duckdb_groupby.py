#!/usr/bin/env python3
"""The plainest aggregate of a month, in DuckDB, as the yardstick for `billxfer run`.

Usage:
    python3 benches/duckdb_groupby.py --config BASE/billxfer.toml [--threads 2]

Reads every input file of the config (the partner's and every org's `files` globs, relative to the
config's folder) and runs, warm (the query once untimed, then once timed):

    SELECT line_item_usage_account_id, line_item_product_code, line_item_usage_type,
           line_item_line_item_type, sum(line_item_unblended_cost), sum(line_item_usage_amount)
    FROM read_parquet([...]) GROUP BY ALL

It prints `ELAPSED_SQL <seconds>` for the timed run and `groups <n>`. This does much less than
billxfer (one track, doubles, no rules, no checks), which is the point: benches/scale.sh reports
billxfer's invoices-only time against it (issue 12's target: <= 1.0x at 20M lines).
"""

import argparse
import glob
import os
import sys
import time
import tomllib


def files_of(config_path: str) -> list[str]:
    with open(config_path, "rb") as f:
        cfg = tomllib.load(f)
    base = os.path.dirname(os.path.abspath(config_path))
    patterns = list(cfg.get("partner", {}).get("files", []))
    for org in cfg.get("orgs", []):
        patterns.extend(org.get("files", []))
    out: set[str] = set()
    for p in patterns:
        full = p if os.path.isabs(p) else os.path.join(base, p)
        for f in glob.glob(full, recursive=True) if any(c in p for c in "*?[") else [full]:
            if os.path.isfile(f) and f.endswith(".parquet"):
                out.add(os.path.abspath(f))
    return sorted(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    import duckdb

    files = files_of(args.config)
    if not files:
        print("no Parquet input files found", file=sys.stderr)
        return 1
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    sql = (
        "SELECT line_item_usage_account_id, line_item_product_code, line_item_usage_type, "
        "line_item_line_item_type, sum(line_item_unblended_cost) AS cost, "
        f"sum(line_item_usage_amount) AS usage FROM read_parquet([{listed}]) GROUP BY ALL"
    )
    con.execute(sql).fetchall()  # warm: file metadata and page cache
    t = time.perf_counter()
    groups = len(con.execute(sql).fetchall())
    elapsed = time.perf_counter() - t
    print(f"ELAPSED_SQL {elapsed:.3f}")
    print(f"groups {groups} over {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
