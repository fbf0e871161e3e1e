"""Typed application keys shared by app.py and handlers.py."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from nextmodel_proxy.config import Config
from nextmodel_proxy.pipeline import Pipeline
from nextmodel_proxy.services import Services

CONFIG = web.AppKey("config", Config)
SESSION = web.AppKey("session", aiohttp.ClientSession)
PIPELINE = web.AppKey("pipeline", Pipeline)
SERVICES = web.AppKey("services", Services)
