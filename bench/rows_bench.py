"""Writer CPU per receipt: process time of one batch's write (chain + insert_rows + COMMIT) on a real file.

    python bench/rows_bench.py [--n 20000] [--batch 1 --batch 32]

What the single writer spends per receipt, without the event loop or threads around it: the receipts' stored
values are built first (Ledger.submit does that on the request path; reported separately as `content_values_us`),
then for each batch BEGIN IMMEDIATE, hash chain, insert_rows (INSERT + rollups), COMMIT. CPU time
(time.process_time), so a busy shared machine inflates it far less than wall time. Like the writer, the timed
connection never checkpoints (wal_autocheckpoint=0); the WAL is checkpointed untimed every 256 commits. Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_ledger import receipts  # noqa: E402

from nextmodel_proxy.ledger import schema as db  # noqa: E402
from nextmodel_proxy.ledger.chain import GENESIS, verify  # noqa: E402
from nextmodel_proxy.ledger.receipts import content_values  # noqa: E402
from nextmodel_proxy.ledger.rows import chain, insert_rows  # noqa: E402


def run(path: Path, n: int, batch: int) -> dict:
    todo = list(receipts(n, days=1))
    t0 = time.process_time()
    values = [content_values(r) for r in todo]
    content_s = time.process_time() - t0
    conn = db.open_db(path)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    head = GENESIS
    chain_s = insert_s = commit_s = 0.0
    for start in range(0, n, batch):
        t0 = time.process_time()
        conn.execute("BEGIN IMMEDIATE")
        rows, head = chain(values[start : start + batch], head)
        t1 = time.process_time()
        insert_rows(conn, rows)
        t2 = time.process_time()
        conn.execute("COMMIT")
        t3 = time.process_time()
        chain_s, insert_s, commit_s = chain_s + t1 - t0, insert_s + t2 - t1, commit_s + t3 - t2
        if (start // batch) % 256 == 255:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    ok = verify(conn).ok
    conn.close()
    us = 1e6 / n
    return {
        "batch": batch,
        "writer_us_per_receipt": round((chain_s + insert_s + commit_s) * us, 1),
        "chain_us": round(chain_s * us, 1),
        "insert_rows_us": round(insert_s * us, 1),
        "commit_us": round(commit_s * us, 1),
        "content_values_us": round(content_s * us, 1),
        "verify_ok": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument(
        "--batch", type=int, action="append", help="batch size (repeatable; default 1 and 32)"
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batch or [1, 32]:
            results.append(run(Path(tmp) / f"rows-{batch}.db", args.n, batch))
    print(orjson.dumps({"bench": "ledger_rows_cpu", "receipts": args.n, "runs": results}).decode())


if __name__ == "__main__":
    main()
