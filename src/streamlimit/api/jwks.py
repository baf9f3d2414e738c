"""``GET /.well-known/jwks.json``: the public keys that verify this service's playback grants.

No credentials: verifiers downstream (a CDN edge, a licence server) fetch it and cache it for
``MAX_AGE_S``. Without a grant key configured the route answers 404 ``not_found``, as any
unknown path does."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from streamlimit.api.headers import JWKS_PATH
from streamlimit.api.problems import problem_response
from streamlimit.api.routing import grants_of, resource

# how long verifiers may cache the keys: a new key must be published (as a second key) at
# least this long before it signs (README "Enforcing it downstream", key rotation)
MAX_AGE_S = 300
_HEADERS = {"Cache-Control": f"public, max-age={MAX_AGE_S}"}


async def jwks(request: Request) -> Response:
    grants = grants_of(request)
    if grants is None:  # the security headers leave Cache-Control to this route: say it here
        detail = "this service signs no grants (STREAMLIMIT_GRANT_KEY_FILE is not set)"
        return problem_response(request, 404, "not_found", detail, headers={"Cache-Control": "no-store"})
    return Response(grants.jwks_body, headers=_HEADERS, media_type="application/json")


ROUTES = [resource(JWKS_PATH, get=("jwks", jwks))]
