"""The app factory: routes, error handlers, and a lifespan that owns the store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from streamlimit import logs
from streamlimit.api import accounts, compat, headers, health, openapi, v1
from streamlimit.api.problems import HANDLERS
from streamlimit.auth import authenticator_from
from streamlimit.service import Policy, StreamService
from streamlimit.settings import Settings
from streamlimit.store.base import Store
from streamlimit.store.connect import open_store

log = logging.getLogger("streamlimit.api")


def create_app(settings: Settings, *, store: Store | None = None) -> Starlette:
    """Build the app; the store is opened at start-up (unless given) and closed at shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = store is None
        s = await open_store(settings) if store is None else store
        app.state.service = StreamService(s, Policy.from_settings(settings))
        try:
            yield
        finally:
            if owned:
                await s.close()

    routes = [*v1.ROUTES, *accounts.ROUTES, *compat.ROUTES, *health.ROUTES, *openapi.ROUTES]
    app = Starlette(
        routes=routes, exception_handlers=HANDLERS, lifespan=lifespan, middleware=headers.middleware(settings)
    )
    app.state.auth = authenticator_from(settings)  # a bad key file stops start-up here
    if settings.auth == "none":
        log.warning(
            "STREAMLIMIT_AUTH=none: anyone who can reach %s:%d may start and stop anyone's streams "
            "(development only; see README 'Securing it')",
            settings.host,
            settings.port,
        )
    return app


def create_app_from_env() -> Starlette:
    """Factory for uvicorn workers: settings come from ``STREAMLIMIT_*`` variables."""
    settings = Settings()
    logs.configure(settings.log_level)
    return create_app(settings)
