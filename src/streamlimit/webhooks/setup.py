"""The delivery loop of a process, from the settings and the store the app opened."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING

from streamlimit.settings import Settings
from streamlimit.store.base import Store
from streamlimit.store.hooks import MemoryHookQueue
from streamlimit.store.redis import RedisStore
from streamlimit.webhooks.backoff import Backoff
from streamlimit.webhooks.delivery import Delivery
from streamlimit.webhooks.memory_queue import MemoryQueue
from streamlimit.webhooks.queue import Queue
from streamlimit.webhooks.redis_queue import RedisQueue
from streamlimit.webhooks.sender import Sender
from streamlimit.webhooks.signing import Signer
from streamlimit.webhooks.targets import shown

if TYPE_CHECKING:
    from streamlimit.metrics import Metrics

log = logging.getLogger("streamlimit.webhooks")


def queue_of(store: Store, settings: Settings) -> Queue | None:
    """The store's webhook queue, or None when it queues no events."""
    if isinstance(store, RedisStore):
        if not store.hooks_on:
            return None
        hints = store.hook_hints if store.hooks_per_slot else None
        return RedisQueue(
            store.client, per_slot=store.hooks_per_slot, hints=hints,
            scan_interval_s=settings.webhook_scan_interval_s,
        )  # fmt: skip
    hooks = getattr(store, "hooks", None)  # MemoryStore(hooks=...) keeps its queue as ``hooks``
    return MemoryQueue(hooks) if isinstance(hooks, MemoryHookQueue) else None


def consumer_name() -> str:
    """Unique per process start: a restarted process is a new consumer, and the old one's
    pending entries are taken over like any crashed instance's."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def start_delivery(settings: Settings, store: Store, metrics: Metrics | None) -> Delivery | None:
    """The loop, started; None when no URL is set."""
    urls = settings.webhook_urls
    if not urls:
        return None
    queue = queue_of(store, settings)
    if queue is None:
        log.warning("webhooks: this store queues no events; nothing will be sent to %s", shown(urls[0]))
        return None
    assert settings.webhook_secret is not None  # settings.py: a URL needs a secret
    sender = Sender(Signer(settings.webhook_secret.get_secret_value()), settings.webhook_timeout_s)
    backoff = Backoff(
        round(settings.webhook_retry_base_s * 1000),
        round(settings.webhook_retry_max_s * 1000),
        round(settings.webhook_max_age_s * 1000),
    )
    delivery = Delivery(
        queue, urls, sender, backoff, consumer=consumer_name(),
        concurrency=settings.webhook_concurrency, poll_interval_s=settings.webhook_poll_interval_s,
        metrics=metrics,
    )  # fmt: skip
    delivery.start()
    log.info(
        "webhooks: delivering to %s as consumer %s", ", ".join(shown(u) for u in urls), delivery.consumer
    )
    return delivery
