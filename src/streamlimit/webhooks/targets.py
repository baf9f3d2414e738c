"""The webhook URLs: ``STREAMLIMIT_WEBHOOK_URL``, comma-separated, each http(s) with a host."""

from __future__ import annotations

from urllib.parse import urlsplit


def parse_urls(text: str) -> tuple[str, ...]:
    """``https://a/x, https://b/y`` -> the URLs, in order, each once; anything else is a
    ``ValueError`` naming it (as shown: without credentials, path or query)."""
    out: dict[str, None] = {}
    for url in (part.strip() for part in text.split(",")):
        if not url:
            continue
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (raises on a port that is no number or out of range)
        except ValueError:
            raise ValueError(f"{shown(url)!r} is not a URL") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"webhook URLs are http:// or https://, not {parts.scheme or 'schemeless'}")
        if not parts.hostname:
            raise ValueError(f"webhook URL {shown(url)!r} has no host")
        out[url] = None
    return tuple(out)


def shown(url: str) -> str:
    """A URL as logs name it: scheme, host and port only. A receiver's path or query often holds
    a token of its own, and its user info a password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}" if parts.scheme else "(an unreadable URL)"
