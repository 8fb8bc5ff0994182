"""The writing floor of a run's Parquet exports, measured with a writer nobody on the project wrote.

Loads every Parquet file under FOLDER into memory with pyarrow (not timed), then writes them again
with Arrow C++ under the settings billxfer's export writer uses (zstd level 1, dictionary
encoding, 128K-row groups, no statistics), files spread over THREADS threads, into a temporary
folder on /dev/shm (or the system temporary folder). Prints the files, rows and cells and
`ELAPSED_WRITE <seconds>`: what encoding those rows costs at all, against which a whole run with
exports (reading, rating, building the rows, encoding, publishing) can be judged.

Usage: python3 benches/write_floor.py FOLDER [--threads N]     (needs `pip install pyarrow`)
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
    a = ap.parse_args()
    pa.set_cpu_count(a.threads)
    pa.set_io_thread_count(a.threads)
    files = sorted(glob.glob(os.path.join(a.folder, "**", "*.parquet"), recursive=True))
    if not files:
        raise SystemExit(f"write_floor: no Parquet file under {a.folder}")
    tables = [pq.read_table(f) for f in files]
    scratch = tempfile.mkdtemp(prefix="billxfer-write-floor-",
                               dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        def write(item):
            i, table = item
            pq.write_table(table, os.path.join(scratch, f"{i}.parquet"), compression="zstd",
                           compression_level=1, row_group_size=131072, write_statistics=False,
                           use_dictionary=True)
        start = time.perf_counter()
        with ThreadPoolExecutor(a.threads) as pool:
            list(pool.map(write, enumerate(tables)))
        elapsed = time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = sum(t.num_rows for t in tables)
    cells = sum(t.num_rows * t.num_columns for t in tables)
    print(f"{len(files)} files, {rows} rows, {cells} cells, {a.threads} threads")
    print(f"ELAPSED_WRITE {elapsed:.2f}")


if __name__ == "__main__":
    main()
