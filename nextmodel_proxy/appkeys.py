"""Typed application keys shared by app.py and handlers.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import aiohttp
from aiohttp import web

from nextmodel_proxy.config import Config
from nextmodel_proxy.pipeline import Pipeline
from nextmodel_proxy.services import Services

CONFIG = web.AppKey("config", Config)
SESSION = web.AppKey("session", aiohttp.ClientSession)
PIPELINE = web.AppKey("pipeline", Pipeline)
SERVICES = web.AppKey("services", Services)
# () -> the aware UTC time a request starts (its receipt's created_utc and the price it is billed at).
CLOCK = web.AppKey("clock", Callable[[], dt.datetime])
