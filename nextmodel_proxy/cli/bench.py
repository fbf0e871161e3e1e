"""`nmproxy bench cachesafety`: measure whether cache reuse is safe before trusting a cache."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import orjson

from nextmodel_proxy.cachesafety import dataset, ledger_scan, live, metrics, report, semantic, strategies
from nextmodel_proxy.cli.common import config_option, db_option, existing_db, load_cli_config, resolve_db
from nextmodel_proxy.config import Config

_HELP = "\b\nMetrics, one line each:\n" + "\n".join(f"  {k}: {v}" for k, v in metrics.METRIC_HELP.items())


@click.group("bench")
def bench_group() -> None:
    """Benchmarks you run on your own data."""


def _thresholds(values: tuple[float, ...], default: tuple[float, ...], flag: str) -> tuple[float, ...]:
    for v in values:
        if not 0 <= v <= 1:
            raise click.BadParameter(f"{v} is not between 0 and 1", param_hint=flag)
    return tuple(dict.fromkeys(values or default))


async def _embeddings(
    pairs: list[dataset.Pair], model: str | None, url: str | None, api_key: str | None, config: Config | None
) -> tuple[dict[str, list[float]] | None, str | None]:
    if not model:
        return None, "no --embed-model given"
    texts = [strategies.prompt_text(b) for p in pairs for b in (p.a, p.b)]
    if url:
        return await semantic.fetch(url, model, texts, api_key)
    if config is None:
        return None, "no config to find --embed-model in (pass --config, or --url of a running proxy)"
    return await semantic.fetch_in_process(config, model, texts)


def _emit(
    result: dict[str, Any], as_json: bool, report_path: str | None, text: str, json_obj: Any = None
) -> None:
    if report_path:
        try:
            Path(report_path).write_text(report.html_page(result), encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {report_path!r}: {exc.strerror or exc}") from None
    if as_json:
        click.echo(
            orjson.dumps(result if json_obj is None else json_obj, option=orjson.OPT_INDENT_2).decode()
        )
    else:
        click.echo(text)
        if report_path:
            click.echo(f"\nreport written to {report_path}")


def _live_text(section: dict[str, Any]) -> str:
    keys = [
        "pairs",
        "a_stored",
        "b_replayed",
        "safe_replays",
        "bad_replays",
        "replay_checked_nonstream",
        "replay_mismatch_nonstream",
        "stream_checked",
        "replay_mismatch_stream",
        "scope_checked",
        "scope_crossings",
        "key_scope_checked",
        "key_scope_crossings",
        "failures_replayed",
        "errors_stored",
        "cut_streams_stored",
        "failure_checks",
        "header_disagreements",
        "request_errors",
        "first_error",
        "seconds",
    ]
    lines = [f"End to end on the real cache ({section.get('mode')}):"]
    lines += [f"  {k:<26} {section[k]}" for k in keys if k in section and section[k] is not None]
    if section.get("bad_replay_ids"):
        lines.append(f"  bad replays: {', '.join(section['bad_replay_ids'])}")
    return "\n".join(lines)


def _ledger_text(section: dict[str, Any]) -> str:
    rate = section["realised_hit_rate"]
    lines = [
        f"Your traffic: {section['receipts']} receipts in {section['ledger']} (cache file {section['cache']})",
        f"  exact cache: {section['exact_hits']} hits of {section['cache_lookups']} lookups "
        f"({'n/a' if rate is None else f'{rate * 100:.1f}%'}), USD {section['usd_saved']} saved; "
        f"{section['not_cacheable']} requests not cacheable",
        f"  looser strategies replayed over {section['misses_with_known_request']} fresh answers whose request "
        f"is in the cache file ({section['misses_without_request']} misses have no readable request)",
        "",
    ]
    lines.append(report.table(report.ledger_rows(section)))
    lines += ["", "Not readable from a ledger: " + "; ".join(section["cannot_read"]) + "."]
    lines.append("exact-body and semantic are not run on ledger traffic (see --help).")
    for sample in section.get("sample", []):
        lines.append("")
        lines.append(orjson.dumps(sample, option=orjson.OPT_INDENT_2).decode())
    return "\n".join(lines)


@bench_group.command("cachesafety", epilog=_HELP)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="PATH",
    help="JSONL trap file (repeatable); default: the shipped trap set.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--report", "report_path", metavar="PATH", help="Also write a self-contained HTML report here.")
@click.option(
    "--lexical-threshold",
    "lexical",
    type=float,
    multiple=True,
    metavar="T",
    help="lexical@T thresholds (repeatable; default 0.7, 0.8, 0.9).",
)
@click.option(
    "--semantic-threshold",
    "semantic_t",
    type=float,
    multiple=True,
    metavar="T",
    help="semantic@T thresholds (repeatable; default 0.8, 0.9, 0.95).",
)
@click.option(
    "--embed-model",
    metavar="MODEL",
    help="Embeddings model (asked through the proxy) for semantic@T; without it semantic is skipped.",
)
@click.option(
    "--default-model",
    default=dataset.DEFAULT_MODEL,
    show_default=True,
    help="Model of requests in the trap file that name none.",
)
@click.option(
    "--live",
    "run_live",
    is_flag=True,
    help="Also send every pair through the real proxy and cache (in-process, demo provider, temp files).",
)
@click.option(
    "--url", metavar="URL", help="With --live (or for embeddings): a running proxy's /v1 base URL instead."
)
@click.option(
    "--api-key", envvar="NMPROXY_API_KEY", metavar="KEY", help="Proxy key for --url (env NMPROXY_API_KEY)."
)
@click.option(
    "--ledger",
    "use_ledger",
    is_flag=True,
    help="Run on your own traffic: the ledger (--db) and its cache file instead of a trap file.",
)
@click.option("--cache-db", metavar="PATH", help="With --ledger: the cache file when it is not the ledger.")
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="With --ledger: print the N riskiest unverified hits, message text included.",
)
@config_option
@db_option
def cachesafety_cmd(
    datasets: tuple[str, ...],
    as_json: bool,
    report_path: str | None,
    lexical: tuple[float, ...],
    semantic_t: tuple[float, ...],
    embed_model: str | None,
    default_model: str,
    run_live: bool,
    url: str | None,
    api_key: str | None,
    use_ledger: bool,
    cache_db: str | None,
    show: int,
    config_path: str | None,
    db_path: str | None,
) -> None:
    """Measure safe and bad hit rates, trap failures and savings of caching strategies.

    Compares exact (this proxy's key), exact-body, normalized, last-message, lexical@T and semantic@T on
    labelled pairs (a = cached request, b = new request; each pair scored on its own), on the shipped trap set
    or your --dataset files, optionally end to end through the real cache (--live), or on your own ledger.
    """
    config = load_cli_config(config_path)
    lex = _thresholds(lexical, (0.7, 0.8, 0.9), "--lexical-threshold")
    sem = _thresholds(semantic_t, (0.8, 0.9, 0.95), "--semantic-threshold")
    if not use_ledger and (show or cache_db):
        raise click.UsageError("--show and --cache-db go with --ledger")
    if use_ledger and (datasets or run_live or embed_model):
        raise click.UsageError(
            "--ledger runs on your traffic alone: drop --dataset, --live and --embed-model"
        )
    if use_ledger:
        ledger = existing_db(resolve_db(db_path, config))
        cache_path = cache_db or (config.cache.path if config is not None and config.cache.path else ledger)
        ratio = config.cache.replay_price_ratio if config is not None else metrics.DEFAULT_REPLAY_RATIO
        section = ledger_scan.scan(
            ledger, existing_db(cache_path), lexical=lex, replay_ratio=ratio, show=show
        )
        result = {
            "ledger": section,
            "pairs": 0,
            "must_miss": 0,
            "same_answer": 0,
            "families": {},
            "replay_price_ratio": str(ratio),
            "strategies": [],
        }
        _emit(result, as_json, report_path, _ledger_text(section), json_obj=section)
        return
    paths = list(datasets) or [str(dataset.shipped_path())]
    pairs, problems = dataset.load(paths, default_model)
    for problem in problems:
        click.echo(f"skipped {problem}", err=True)
    if not pairs:
        click.echo(f"error: no valid pair in {', '.join(paths)} ({len(problems)} bad lines)", err=True)
        raise SystemExit(2)
    embeddings, skip_reason = asyncio.run(_embeddings(pairs, embed_model, url, api_key, config))
    result = metrics.score(
        strategies.build(config, lex, sem), pairs, config, embeddings=embeddings, semantic_skipped=skip_reason
    )
    result["datasets"] = paths
    result["bad_lines"] = [str(p) for p in problems]
    text = report.terminal(result)
    if run_live:
        if url:
            section = asyncio.run(live.run_pairs(pairs, url, api_key=api_key))
            section["mode"] = f"running proxy at {url}"
        else:
            section = asyncio.run(live.run_in_process(pairs, config))
        result["live"] = section
        text += "\n\n" + _live_text(section)
    _emit(result, as_json, report_path, text)
