"""Step 4 of the request path: build the receipt, settle what the request held, and hand it to the one writer.

Each request is recorded once. Settling happens before the ledger write so budgets and rate limits see the
real cost at once; a non-stream answer (and a stream's final events) waits for the commit, a stream ended by
its client does not.
"""

from __future__ import annotations

import asyncio
import logging

from nextmodel_proxy.accounting import priced_receipt
from nextmodel_proxy.config import Config
from nextmodel_proxy.ledger.prices import PriceRecorder
from nextmodel_proxy.ledger.writer import LedgerUnavailable
from nextmodel_proxy.pricing import to_pusd
from nextmodel_proxy.request_log import log_receipt
from nextmodel_proxy.request_state import RequestState
from nextmodel_proxy.services import Services

log = logging.getLogger(__name__)


class Recorder:
    """One per app, beside the pipeline."""

    def __init__(self, config: Config, services: Services) -> None:
        self.config = config
        self.services = services
        self._prices = PriceRecorder()  # each resolved price stored once in the ledger's prices table

    async def finish(
        self, state: RequestState, *, wait: bool, raise_on_ledger: bool = True, served: bool = True
    ) -> None:
        """Build the receipt, settle budget and rate limit, queue cache writes, and record it (once)."""
        if state.receipt is not None:
            return
        state.finish()
        receipt, price = priced_receipt(state, self.config)
        state.receipt = receipt
        log_receipt(receipt)
        s, holds = self.services, state.holds
        billed = to_pusd(receipt.billed_cost_usd) if receipt.billed_cost_usd is not None else None
        if holds.reservation is not None:
            s.budgets.settle(holds.reservation, billed)
        if holds.admission is not None:
            s.limiter.correct(
                holds.admission, (receipt.prompt_tokens or 0) + (receipt.completion_tokens or 0)
            )
        s.queue_cache_writes(state, receipt, self.config.cache)
        s.metrics.observe(receipt, state.before_upstream_s)
        if s.ledger is None:
            return
        self._prices.record(s.ledger, price, state.created)
        future = s.ledger.submit(receipt, served=served)
        if not wait:
            future.add_done_callback(_log_ledger_failure)
            return
        try:
            # Not asyncio.shield: its extra future and callbacks cost every answer one more trip through the
            # event loop (issue 16). Cancelling this request cancels only its notification: the receipt stays
            # queued and commits, and the writer skips a future that is already done (writer._settle).
            await future
        except LedgerUnavailable as exc:
            if raise_on_ledger:
                raise exc.proxy_error() from None


def _log_ledger_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a receipt could not be committed yet (kept for retry): %s", future.exception())
