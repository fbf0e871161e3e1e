"""Receipts committed per second through Ledger.submit under concurrency (target: >= 20,000/s).

    python bench/ledger_bench.py [--n 100000] [--concurrency 512]

Each of `concurrency` tasks submits a receipt and awaits its commit, like requests in flight; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_ledger import receipts  # noqa: E402

from nextmodel_proxy import db  # noqa: E402
from nextmodel_proxy.chain import verify  # noqa: E402
from nextmodel_proxy.ledger import Ledger  # noqa: E402


async def run(path: Path, n: int, concurrency: int) -> dict:
    todo = list(receipts(n, days=1))  # built up front: the bench measures the ledger, not receipt building
    ledger = Ledger(str(path))
    await ledger.start()
    it = iter(todo)

    async def client() -> None:
        for receipt in it:
            await ledger.submit(receipt)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await ledger.close()
    ok = verify(db.connect(path, readonly=True)).ok
    return {"bench": "ledger", "receipts": n, "concurrency": concurrency, "seconds": round(elapsed, 3),
            "receipts_per_s": round(n / elapsed), "transactions": ledger.commits,
            "receipts_per_transaction": round(n / max(ledger.commits, 1), 1), "verify_ok": ok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(Path(tmp) / "bench.db", args.n, args.concurrency))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
