"""Who is calling: JWT bearer tokens, hashed API keys, or nobody (development only)."""

from __future__ import annotations

from streamlimit.auth.principal import ANONYMOUS, Authenticator, Principal, authenticator_from

__all__ = ["ANONYMOUS", "Authenticator", "Principal", "authenticator_from"]
