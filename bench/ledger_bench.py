"""Receipts committed per second through Ledger.submit under concurrency (target: >= 20,000/s).

    python bench/ledger_bench.py [--n 100000] [--concurrency 512]

Closed loop: `concurrency` tasks each submit a receipt and await its commit, like requests in flight (the headline
figure). Burst: all submitted at once, then awaited (the writer's ceiling). Prints one JSON line.
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

from nextmodel_proxy.ledger import schema as db  # noqa: E402
from nextmodel_proxy.ledger.chain import verify  # noqa: E402
from nextmodel_proxy.ledger.writer import Ledger  # noqa: E402


async def run(path: Path, n: int, concurrency: int, *, closed_loop: bool) -> dict:
    todo = list(receipts(n, days=1))  # built up front: the bench measures the ledger, not receipt building
    ledger = Ledger(str(path))
    await ledger.start()
    t0 = time.perf_counter()
    if closed_loop:  # `concurrency` requests in flight, each waiting for its commit before the next
        it = iter(todo)

        async def client() -> None:
            for receipt in it:
                await ledger.submit(receipt)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    else:  # everything submitted at once, then awaited: the writer's own ceiling
        await asyncio.gather(*(ledger.submit(r) for r in todo))
    elapsed = time.perf_counter() - t0
    await ledger.close()
    ok = verify(db.connect(path, readonly=True)).ok
    return {
        "receipts_per_s": round(n / elapsed),
        "seconds": round(elapsed, 3),
        "transactions": ledger.commits,
        "receipts_per_transaction": round(n / max(ledger.commits, 1), 1),
        "verify_ok": ok,
    }


def _use_uvloop() -> str:
    """The proxy serves on uvloop when it is installed; measure the same way."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio even when uvloop is installed")
    args = parser.parse_args()
    loop = "asyncio" if args.asyncio else _use_uvloop()
    with tempfile.TemporaryDirectory() as tmp:
        closed = asyncio.run(run(Path(tmp) / "closed.db", args.n, args.concurrency, closed_loop=True))
        burst = asyncio.run(run(Path(tmp) / "burst.db", args.n, args.concurrency, closed_loop=False))
    print(
        orjson.dumps(
            {
                "bench": "ledger",
                "receipts": args.n,
                "concurrency": args.concurrency,
                "loop": loop,
                "receipts_per_s": closed["receipts_per_s"],
                "closed_loop": closed,
                "burst": burst,
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
