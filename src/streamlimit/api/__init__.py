"""HTTP layer: app factory, routes and problem+json errors."""

from streamlimit.api.app import create_app

__all__ = ["create_app"]
