"""The app factory: routes, error handlers, and a lifespan that owns the store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from streamlimit import logs
from streamlimit.api import accounts, compat, console, headers, health, jwks, lifecycle, live, openapi, v1
from streamlimit.api.client_address import trusted_networks
from streamlimit.api.loopback import LoopbackOnly
from streamlimit.api.observe import Observe
from streamlimit.api.problems import HANDLERS
from streamlimit.auth import authenticator_from
from streamlimit.grants.issuer import GrantIssuer
from streamlimit.live.hub import Hub, LiveSettings
from streamlimit.metrics import Metrics
from streamlimit.outage import OutageLog
from streamlimit.service import Policy, StreamService
from streamlimit.settings import Settings
from streamlimit.store.base import Store
from streamlimit.store.connect import open_store
from streamlimit.webhooks.setup import start_delivery

log = logging.getLogger("streamlimit.api")


def create_app(settings: Settings, *, store: Store | None = None) -> Starlette:
    """Build the app; the store is opened at start-up (unless given) and closed at shutdown."""

    metrics = Metrics() if settings.metrics else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = store is None
        outage_log = OutageLog()  # one warning per interval, from start-up on
        s = await open_store(settings, metrics=metrics, outage_log=outage_log) if store is None else store
        app.state.service = service = StreamService(s, Policy.from_settings(settings), outage_log)
        app.state.live = hub = Hub(service, LiveSettings.from_settings(settings), app.state.grants)
        lifecycle.drain_on_sigterm(app, hub.drain)
        sampler = lifecycle.sample_active_streams(s, metrics) if metrics else None
        webhooks = start_delivery(settings, s, metrics)
        try:
            yield
        finally:
            app.state.draining = True
            hub.drain()
            await hub.aclose()
            if sampler is not None:
                sampler.cancel()
            if webhooks is not None:  # attempts in flight finish, or stay pending for others
                await webhooks.stop(grace_s=settings.webhook_timeout_s)
            if owned:
                await s.close()

    routes = [
        *v1.ROUTES,
        *live.ROUTES,
        *accounts.ROUTES,
        *compat.ROUTES,
        *health.ROUTES,
        *openapi.ROUTES,
        *console.ROUTES,
    ]
    routes += jwks.ROUTES
    if metrics is not None:
        routes.append(health.metrics_route(metrics))
    middleware = [Middleware(Observe, metrics, settings.access_log, settings.access_log_sample)]
    if settings.auth == "none" and not settings.insecure_no_auth:
        middleware.append(Middleware(LoopbackOnly))
    middleware += headers.middleware(settings)
    app = Starlette(routes=routes, exception_handlers=HANDLERS, lifespan=lifespan, middleware=middleware)
    app.state.auth = authenticator_from(settings)  # a bad key file stops start-up here
    app.state.grants = GrantIssuer.from_settings(settings)  # so does a bad grant key file
    app.state.trusted_proxies = trusted_networks(settings.trusted_proxies)
    app.state.openapi = openapi.document([name for name, _ in settings.plan_limits])
    app.state.draining = False
    app.state.ready_without_store = settings.ready_without_store
    if settings.auth == "none":  # the address is the server's to say: uvicorn --host bypasses HOST
        log.warning(
            "STREAMLIMIT_AUTH=none: anyone who can reach this service may start and stop anyone's "
            "streams; %s (development only; see README 'Securing it')",
            "INSECURE_NO_AUTH: requests to any address are served"
            if settings.insecure_no_auth
            else "only requests to a loopback address, naming a loopback Host, are served",
        )
    return app


def create_app_from_env() -> Starlette:
    """Factory for uvicorn workers: settings come from ``STREAMLIMIT_*`` variables."""
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return create_app(settings)
