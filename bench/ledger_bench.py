"""Receipts committed per second through Ledger.submit under concurrency (issue 16 target: >= 20,000/s).

    python bench/ledger_bench.py [--n 100000] [--concurrency 512]

Closed loop: `concurrency` tasks each submit a receipt and await its commit before submitting the next, like
requests in flight whose answers wait for their receipts (the headline figure); also at 64 in flight, the
HTTP bench's c=64. Burst: all submitted at once, then awaited (the writer's ceiling). Durability is the proxy's
own: the same Ledger class and connection settings, and a receipt counts only once its commit resolved its
future (after which it survives SIGKILL: tests/test_ledger.py kills a writer under load to hold that). After
each run the file must hold every receipt and its hash chain must verify. Prints a summary line, then one JSON
line (the last line; `make bench` reads it).
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

TARGET = 20_000  # receipts/s, issue 16


async def run(path: Path, n: int, concurrency: int, *, closed_loop: bool) -> dict:
    todo = list(receipts(n, days=1))  # built up front: the bench measures the ledger, not receipt building
    ledger = Ledger(str(path))
    await ledger.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    if closed_loop:  # `concurrency` requests in flight, each waiting for its commit before the next
        it = iter(todo)

        async def client() -> None:
            for receipt in it:
                await ledger.submit(receipt)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    else:  # everything submitted at once, then awaited: the writer's own ceiling
        await asyncio.gather(*(ledger.submit(r) for r in todo))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await ledger.close()
    conn = db.connect(path, readonly=True)
    try:
        ok = verify(conn).ok
        stored = conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0]
    finally:
        conn.close()
    if not ok or stored != n:  # a figure for a ledger that lost or broke receipts means nothing
        raise SystemExit(f"ledger bench: {stored} of {n} receipts in the file, chain verifies: {ok}")
    return {
        "receipts_per_s": round(n / elapsed),
        "seconds": round(elapsed, 3),
        # CPU of the whole process (all threads) per receipt: an A/B measure that a busy machine moves far less
        "cpu_us_per_receipt": round(cpu * 1e6 / n, 1),
        "transactions": ledger.commits,
        "receipts_per_transaction": round(n / max(ledger.commits, 1), 1),
        "verify_ok": ok,
        "receipts_in_file": stored,
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
        closed_64 = asyncio.run(run(Path(tmp) / "closed-64.db", args.n, 64, closed_loop=True))
        burst = asyncio.run(run(Path(tmp) / "burst.db", args.n, args.concurrency, closed_loop=False))
    rate = closed["receipts_per_s"]
    print(
        f"ledger: {rate:,} receipts/s committed, {args.concurrency} in flight each awaiting its commit "
        f"({closed['receipts_per_transaction']} per transaction, {closed['cpu_us_per_receipt']} us CPU each; "
        f"target >= {TARGET:,}: "
        f"{'met' if rate >= TARGET else 'MISSED'}); 64 in flight: {closed_64['receipts_per_s']:,}/s "
        f"({closed_64['receipts_per_transaction']} per transaction); burst: {burst['receipts_per_s']:,}/s; "
        f"{args.n:,} receipts each, all in the file, chains verified",
        flush=True,
    )
    print(
        orjson.dumps(
            {
                "bench": "ledger",
                "receipts": args.n,
                "concurrency": args.concurrency,
                "loop": loop,
                "receipts_per_s": closed["receipts_per_s"],
                "target_receipts_per_s": TARGET,
                "closed_loop": closed,
                "closed_loop_64": closed_64,
                "burst": burst,
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
