"""Budgets: exact limits in any currency, atomic reservations under concurrency, periods, spend from receipts."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from decimal import Decimal
from pathlib import Path

import pytest
from test_keys_support import add_receipt, in_transaction, ledger

from nextmodel_proxy.access.auth import Attribution, run_refresher
from nextmodel_proxy.access.budget_store import Budget, period_bounds, set_budget, spend_against_budgets
from nextmodel_proxy.access.budgets import BudgetBook, budget_headers
from nextmodel_proxy.access.keys import KeySettings, create_key, rotate_key
from nextmodel_proxy.config import parse_config
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger import schema as db

NOW = dt.datetime(2026, 11, 22, 8, 30, tzinfo=dt.UTC)  # a Sunday
USD = {"USD": Decimal(1)}
WEB = Attribution(None, "web", "growth")
PUSD = 10**12


def _book(
    amount: str,
    period: str = "month",
    currency: str = "USD",
    rates=None,
    scope: str = "project",
    scope_id: str = "web",
) -> BudgetBook:  # noqa: ANN001
    budget = Budget("bud_t", scope, scope_id, Decimal(amount), currency, period)
    return BudgetBook(rates or USD, [budget])


def _spend(book: BudgetBook, usd: str, now: dt.datetime = NOW, who: Attribution = WEB) -> None:
    book.settle(book.reserve(who, Decimal(usd), now), int(Decimal(usd) * PUSD))


def _refusal(book: BudgetBook, usd: str, now: dt.datetime = NOW) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        book.reserve(WEB, Decimal(usd), now)
    assert (info.value.status, info.value.code, info.value.type) == (
        429,
        "budget_exceeded",
        "budget_exceeded",
    )
    assert info.value.headers == {"x-should-retry": "false"}  # the SDKs would otherwise retry a 429
    return info.value


@pytest.mark.parametrize(
    ("period", "start", "reset"),
    [
        ("day", dt.datetime(2026, 11, 22), dt.datetime(2026, 11, 23)),
        ("week", dt.datetime(2026, 11, 16), dt.datetime(2026, 11, 23)),
        ("month", dt.datetime(2026, 11, 1), dt.datetime(2026, 12, 1)),
    ],
)
def test_periods_are_utc_calendar_day_monday_week_and_month(
    period: str, start: dt.datetime, reset: dt.datetime
) -> None:
    assert period_bounds(period, NOW) == (start.replace(tzinfo=dt.UTC), reset.replace(tzinfo=dt.UTC))


def test_december_resets_in_january_and_total_never_resets() -> None:
    eve = dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)
    assert period_bounds("month", eve)[1] == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert period_bounds("total", eve) == (None, None)
    tokyo = dt.timezone(dt.timedelta(hours=9))
    assert period_bounds("day", dt.datetime(2026, 11, 23, 5, 0, tzinfo=tokyo))[0] == dt.datetime(
        2026, 11, 22, tzinfo=dt.UTC
    )


def test_a_budget_can_be_reached_exactly_and_then_refuses() -> None:
    book = _book("1.00")
    _spend(book, "0.6")
    _spend(book, "0.4")  # spent + worst case == limit: allowed
    assert book.status(WEB, NOW).remaining == 0
    _refusal(book, "0.000001")
    _refusal(book, "0")  # exhausted: even a request with no estimate is refused


def test_a_worst_case_past_the_limit_is_refused_before_spending() -> None:
    book = _book("1.00")
    _spend(book, "0.7")
    err = _refusal(book, "0.31")
    assert "monthly budget of project 'web' is 1.00 USD" in err.message
    assert "spent 0.70 USD" in err.message and "up to 0.31 USD" in err.message
    assert "resets at 2026-12-01T00:00:00" in err.message
    _spend(book, "0.3")


async def test_concurrent_requests_racing_a_nearly_spent_budget_cannot_overshoot() -> None:
    book = _book("1.00")
    _spend(book, "0.85")
    admitted, refused = [], []

    async def request(worst: Decimal) -> None:
        try:
            reservation = book.reserve(WEB, worst, NOW)
        except ProxyError:
            refused.append(worst)
            return
        admitted.append(worst)
        await asyncio.sleep(random.uniform(0, 0.01))  # the upstream call; others run meanwhile
        book.settle(reservation, int(worst * PUSD))  # actual cost = worst case, the most it can be

    worst_cases = [Decimal("0.04")] * 30
    await asyncio.gather(*(request(w) for w in worst_cases))
    assert admitted == [Decimal("0.04")] * 3 and len(refused) == 27
    assert book.status(WEB, NOW).spent == Decimal("0.97")


async def test_overspend_is_bounded_by_one_reservation_even_when_actual_exceeds_the_estimate() -> None:
    book = _book("1.00")

    async def request() -> None:
        try:
            reservation = book.reserve(WEB, Decimal("0.1"), NOW)
        except ProxyError:
            return
        await asyncio.sleep(random.uniform(0, 0.005))
        book.settle(reservation, int(Decimal("0.1") * PUSD))

    for _ in range(5):
        await asyncio.gather(*(request() for _ in range(8)))
    assert book.status(WEB, NOW).spent == Decimal("1.0")


def test_release_and_double_settle_do_not_count_twice() -> None:
    book = _book("1.00")
    held = book.reserve(WEB, Decimal("0.9"), NOW)
    _refusal(book, "0.2")
    book.release(held)
    book.release(held)
    settled = book.reserve(WEB, Decimal("0.9"), NOW)
    book.settle(settled, 5 * 10**11)
    book.settle(settled, 5 * 10**11)
    assert book.status(WEB, NOW).spent == Decimal("0.5")


def test_a_cache_replay_spends_its_discounted_cost() -> None:
    book = _book("1.00")
    reservation = book.reserve(WEB, Decimal("0.50"), NOW)  # worst case of the fresh call
    book.settle(reservation, 5 * 10**10)  # the replay billed 10%: 0.05 USD
    assert book.status(WEB, NOW).spent == Decimal("0.05")


def test_a_new_period_starts_from_zero() -> None:
    book = _book("1.00", period="day")
    _spend(book, "1.00")
    _refusal(book, "0.01", now=NOW.replace(hour=23, minute=59))
    midnight = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    assert book.status(WEB, midnight).spent == 0
    _spend(book, "1.00", now=midnight)
    _refusal(book, "0.01", now=midnight)


def test_limits_in_other_currencies_are_compared_exactly_through_the_rate() -> None:
    rates = {"USD": Decimal(1), "XTS": Decimal(3)}  # 3 units per USD: 1 unit is 0.333... USD
    book = _book("1", currency="XTS", rates=rates)
    book.settle(book.reserve(WEB, Decimal("0.333333333333"), NOW), 333_333_333_333)
    # 0.999999999999 units spent: not exhausted, but one more picodollar (3e-12 units) would pass the limit.
    book.release(book.reserve(WEB, Decimal(0), NOW))
    with pytest.raises(ProxyError):
        book.reserve(WEB, Decimal("0.000000000001"), NOW)

    gbp = _book("8", currency="GBP", rates={"USD": Decimal(1), "GBP": Decimal("0.8")})
    _spend(gbp, "9.5")  # 7.60 GBP
    with pytest.raises(ProxyError) as info:
        gbp.reserve(WEB, Decimal("0.6"), NOW)  # 0.48 GBP more would be 8.08 GBP
    err = info.value
    assert (
        "is 8.00 GBP" in err.message and "spent 7.60 GBP" in err.message and "up to 0.48 GBP" in err.message
    )
    _spend(gbp, "0.5")  # exactly 8 GBP


def test_key_project_and_team_budgets_all_apply() -> None:
    team = Budget("bud_team", "team", "growth", Decimal("1"), "USD", "month")
    key = Budget("bud_key", "key", "key_a", Decimal("5"), "USD", "month")
    book = BudgetBook(USD, [team, key])
    a, b = Attribution("key_a", "web", "growth"), Attribution("key_b", "app", "growth")
    _spend(book, "0.8", who=a)
    with pytest.raises(ProxyError, match="team 'growth'"):
        book.reserve(b, Decimal("0.3"), NOW)  # a different key, same team
    assert book.status(b, NOW).spent == Decimal("0.8")


def test_headers_show_remaining_and_warn_from_80_percent() -> None:
    book = _book("10", currency="GBP", rates={"USD": Decimal(1), "GBP": Decimal("0.5")})
    _spend(book, "15")  # 7.50 GBP
    assert budget_headers(book.status(WEB, NOW)) == {"x-nextmodel-budget-remaining": "2.50 GBP"}
    _spend(book, "1")  # 8.00 GBP
    headers = budget_headers(book.status(WEB, NOW))
    assert headers["x-nextmodel-budget-warning"] == "80% of the monthly budget of project 'web' is spent"
    assert budget_headers(book.status(Attribution(None, "other", None), NOW)) == {}


def test_spent_is_loaded_from_existing_receipts_at_startup(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    in_transaction(conn, lambda c: set_budget(c, "project", "web", Decimal("1"), "USD", "month"))
    add_receipt(conn, dt.datetime(2026, 11, 3, tzinfo=dt.UTC), 4 * 10**11, project="web")
    add_receipt(conn, dt.datetime(2026, 11, 20, tzinfo=dt.UTC), 3 * 10**11, project="web")
    add_receipt(conn, dt.datetime(2026, 11, 20, tzinfo=dt.UTC), None, project="web")  # cost unknown
    add_receipt(
        conn, dt.datetime(2026, 10, 31, 23, 59, tzinfo=dt.UTC), 9 * 10**11, project="web"
    )  # last month
    add_receipt(conn, dt.datetime(2026, 11, 20, tzinfo=dt.UTC), 9 * 10**11, project="app")
    book = BudgetBook.load(conn, None, now=NOW)
    assert book.status(WEB, NOW).spent == Decimal("0.7")
    _refusal(book, "0.31")
    book.reserve(WEB, Decimal("0.3"), NOW)


def test_config_budgets_are_enforced_with_their_currency(tmp_path: Path) -> None:
    config = parse_config(
        {
            "currency": {"rates": {"GBP": 0.5}},
            "projects": {
                "web": {"team": "growth", "budget": {"amount": 1, "currency": "GBP", "period": "day"}}
            },
            "teams": {"growth": {"budget": {"amount": 100, "period": "total"}}},
        }
    )
    conn = ledger(tmp_path / "l.db")
    add_receipt(conn, NOW.replace(hour=1), int(Decimal("1.5") * PUSD), project="web", team="growth")
    book = BudgetBook.load(conn, config, now=NOW)
    err = _refusal(book, "0.51")
    assert "daily budget of project 'web' is 1.00 GBP" in err.message and "spent 0.75 GBP" in err.message
    usages = spend_against_budgets(conn, "team", config, NOW)
    assert [(u.budget.budget_id, u.spent, u.reset_at) for u in usages] == [
        ("config:team:growth", Decimal("1.5"), None)
    ]


def test_a_budget_added_while_running_is_enforced_after_refresh(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    book = BudgetBook.load(conn, None, now=NOW)
    add_receipt(conn, NOW, 9 * 10**11, project="web")
    book.reserve(WEB, Decimal("5"), NOW)
    in_transaction(conn, lambda c: set_budget(c, "project", "web", Decimal("1"), "USD", "month"))
    assert book.refresh_if_changed(conn, now=NOW)
    assert not book.refresh_if_changed(conn, now=NOW)
    _refusal(book, "0.2")


def test_a_rotated_key_keeps_the_spend_of_its_period(tmp_path: Path) -> None:
    conn = ledger(tmp_path / "l.db")
    old, record = in_transaction(conn, lambda c: create_key(c, KeySettings(project="web")))
    in_transaction(conn, lambda c: set_budget(c, "key", record.key_id, Decimal("1"), "USD", "month"))
    add_receipt(conn, NOW, 8 * 10**11, key_id=record.key_id, project="web")
    _, new = in_transaction(conn, lambda c: rotate_key(c, record.key_id))
    book = BudgetBook.load(conn, None, now=NOW)
    who = Attribution(new.key_id, "web", None)
    assert book.status(who, NOW).spent == Decimal("0.8")
    with pytest.raises(ProxyError, match=f"key '{new.key_id}'"):
        book.reserve(who, Decimal("0.3"), NOW)


async def test_a_running_book_enforces_a_budget_set_by_another_process_within_a_second(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    cli_conn = ledger(path)  # stands for `nmproxy budgets set` in another process
    now = dt.datetime.now(dt.UTC)  # the refresher uses the real clock
    add_receipt(cli_conn, now, 9 * 10**11, project="web")
    book = BudgetBook.load(db.connect(path, readonly=True), None, now=now)
    task = asyncio.create_task(run_refresher(path, [book], interval_s=0.1))
    try:
        book.release(book.reserve(WEB, Decimal("0.5"), now))
        in_transaction(cli_conn, lambda c: set_budget(c, "project", "web", Decimal("1"), "USD", "month"))
        deadline = asyncio.get_running_loop().time() + 1.0
        while not book.applicable(WEB) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        _refusal(book, "0.5", now)  # 0.9 already spent this month, loaded from the receipts
    finally:
        task.cancel()
