"""The figures issue 16 sets targets for, derived from one `make bench` run, and a Markdown table of every row."""

from __future__ import annotations


def _get(results: list[dict], target: str, scenario: str, conns: int) -> dict | None:
    return next(
        (
            r
            for r in results
            if r["target"] == target and r["scenario"] == scenario and r["concurrency"] == conns
        ),
        None,
    )


def derive(results: list[dict]) -> dict:
    def val(target: str, scenario: str, conns: int, key: str) -> float | None:
        row = _get(results, target, scenario, conns)
        return None if row is None else row.get(key)

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else round(a / b, 3)

    def minus(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(a - b, 3)

    out: dict = {}
    for target in ("floor", "nmproxy", "nmproxy-open"):
        if _get(results, target, "non-stream", 1) is None:
            continue
        fig = {
            "added_p50_ms_c1": minus(
                val(target, "non-stream", 1, "p50_ms"), val("direct", "non-stream", 1, "p50_ms")
            ),
            "rps_c64": val(target, "non-stream", 64, "rps"),
            "rps_c64_vs_floor": ratio(
                val(target, "non-stream", 64, "rps"), val("floor", "non-stream", 64, "rps")
            ),
            "streams_c64": val(target, "stream", 64, "rps"),
            "streams_c64_vs_direct": ratio(
                val(target, "stream", 64, "rps"), val("direct", "stream", 64, "rps")
            ),
            "stream_first_event_added_p50_ms_c64": minus(
                val(target, "stream", 64, "ttfb_p50_ms"), val("direct", "stream", 64, "ttfb_p50_ms")
            ),
            "slow_rps_c256": val(target, "upstream 100 ms", 256, "rps"),
            "slow_rps_c256_vs_direct": ratio(
                val(target, "upstream 100 ms", 256, "rps"), val("direct", "upstream 100 ms", 256, "rps")
            ),
        }
        for ep in ("responses", "messages"):
            name = f"{ep} passthrough"
            fig[f"{ep}_rps_c64"] = val(target, name, 64, "rps")
            fig[f"{ep}_rps_c64_vs_floor"] = ratio(val(target, name, 64, "rps"), val("floor", name, 64, "rps"))
        out[target] = {k: v for k, v in fig.items() if v is not None}
    ours = out.get("nmproxy", {})
    floor = out.get("floor", {})
    hits = {
        "cache_hit_rps_c64": val("nmproxy", "cache hit", 64, "rps"),
        "cache_hit_added_p50_ms_c1": minus(
            val("nmproxy", "cache hit", 1, "p50_ms"), val("direct", "non-stream", 1, "p50_ms")
        ),
        "cache_hit_stream_rps_c64": val("nmproxy", "cache hit stream", 64, "rps"),
    }
    out["cache"] = {k: v for k, v in hits.items() if v is not None}
    out["keys_vs_open"] = {
        "added_p50_ms_c1_keys_minus_open": minus(
            val("nmproxy", "non-stream", 1, "p50_ms"), val("nmproxy-open", "non-stream", 1, "p50_ms")
        ),
        "rps_c64_keys_vs_open": ratio(
            val("nmproxy", "non-stream", 64, "rps"), val("nmproxy-open", "non-stream", 64, "rps")
        ),
    }

    def check(label: str, figure: float | None, ok) -> dict:
        return {"target": label, "figure": figure, "met": None if figure is None else bool(ok(figure))}

    fa = floor.get("added_p50_ms_c1")
    out["targets"] = [
        check("added p50 at c=1 <= 0.5 ms", ours.get("added_p50_ms_c1"), lambda f: f <= 0.5),
        check(
            "added p50 at c=1 within 0.1 ms of the floor's",
            minus(ours.get("added_p50_ms_c1"), fa),
            lambda f: f <= 0.1,
        ),
        check("non-stream req/s at c=64 >= 70% of floor", ours.get("rps_c64_vs_floor"), lambda f: f >= 0.70),
        check("streams/s at c=64 >= 95% of direct", ours.get("streams_c64_vs_direct"), lambda f: f >= 0.95),
        check(
            "added first-event p50 (streams, c=64) <= 5 ms",
            ours.get("stream_first_event_added_p50_ms_c64"),
            lambda f: f <= 5,
        ),
        check(
            "c=256, 100 ms upstream >= 75% of direct",
            ours.get("slow_rps_c256_vs_direct"),
            lambda f: f >= 0.75,
        ),
        check("cache hits/s non-stream >= 5,000", out["cache"].get("cache_hit_rps_c64"), lambda f: f >= 5000),
        check(
            "cache hits/s stream >= 5,000", out["cache"].get("cache_hit_stream_rps_c64"), lambda f: f >= 5000
        ),
    ]
    return out


def table(results: list[dict]) -> str:
    lines = [
        "| target | scenario | conns | load generator | req/s | p50 ms | p99 ms | first event p50 ms "
        "| server CPU µs/req | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ttfb = f"{r['ttfb_p50_ms']:.2f}" if "ttfb_p50_ms" in r else "–"
        cpu = f"{r['cpu_us_per_req']:.0f}" if "cpu_us_per_req" in r else "–"
        lines.append(
            f"| {r['target']} | {r['scenario']} | {r['concurrency']} | {r['loadgen']} | {r['rps']:,.0f} | "
            f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {ttfb} | {cpu} | {r['errors']} |"
        )
    return "\n".join(lines)
