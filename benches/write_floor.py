"""The writing floor of a run's Parquet exports, measured with a writer nobody on the project wrote.

Loads the Parquet files under FOLDER into memory with pyarrow, a group of about --memory-gib at a
time (not timed: decoded text takes ~30x its Parquet size), then writes each group again with
Arrow C++ under the settings billxfer's export writer uses (zstd level 1, dictionary encoding,
128K-row groups, no statistics), files spread over THREADS threads, into a temporary folder on
/dev/shm (or the system temporary folder); the groups' write times are summed. Prints the files, rows and cells and
`ELAPSED_WRITE <seconds>`: what encoding those rows costs at all, against which a whole run with
exports (reading, rating, building the rows, encoding, publishing) can be judged.

Usage: python3 benches/write_floor.py FOLDER [--threads N] [--memory-gib G]     (needs `pip install pyarrow`)
"""
import argparse
import glob
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--memory-gib", type=float, default=2.0)
    a = ap.parse_args()
    pa.set_cpu_count(a.threads)
    pa.set_io_thread_count(a.threads)
    files = sorted(glob.glob(os.path.join(a.folder, "**", "*.parquet"), recursive=True))
    if not files:
        raise SystemExit(f"write_floor: no Parquet file under {a.folder}")
    scratch = tempfile.mkdtemp(prefix="billxfer-write-floor-",
                               dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    elapsed, rows, cells = 0.0, 0, 0

    def write(item):
        i, table = item
        pq.write_table(table, os.path.join(scratch, f"{i}.parquet"), compression="zstd",
                       compression_level=1, row_group_size=131072, write_statistics=False,
                       use_dictionary=True)
        os.remove(os.path.join(scratch, f"{i}.parquet"))

    def flush(group):
        start = time.perf_counter()
        with ThreadPoolExecutor(a.threads) as pool:
            list(pool.map(write, group))
        return time.perf_counter() - start

    try:
        group, held = [], 0
        for i, f in enumerate(files):
            table = pq.read_table(f)
            rows += table.num_rows
            cells += table.num_rows * table.num_columns
            group.append((i, table))
            held += table.nbytes
            if held >= a.memory_gib * (1 << 30):
                elapsed += flush(group)
                group, held = [], 0
        if group:
            elapsed += flush(group)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{len(files)} files, {rows} rows, {cells} cells, {a.threads} threads")
    print(f"ELAPSED_WRITE {elapsed:.2f}")


if __name__ == "__main__":
    main()
