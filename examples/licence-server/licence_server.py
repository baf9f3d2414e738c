"""A licence (content key) server that serves a key only for a valid playback grant: a sketch.

    python examples/licence-server/licence_server.py --port 8090 \\
        --jwks http://127.0.0.1:3000/.well-known/jwks.json

``POST /licence/{content_id}`` with ``Authorization: Bearer <grant>`` (the ``grant`` of the
player's latest start or heartbeat answer): 200 with the content key for a valid grant, 401
without one, 403 with the reason for a refused one: expired, signed by an unknown key, or
``fenced``, a device that "watch here instead" evicted, as soon as this server has seen the newer
device's grant. Verified offline: the only call to streamlimit is the (cached) JWKS fetch.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from streamlimit.grants import GrantRefused, GrantVerifier
from streamlimit.grants.options import add_verifier_options, verifier_from


def create_app(verifier: GrantVerifier, master_key: bytes) -> Starlette:
    def licence(request: Request) -> JSONResponse:  # sync: Starlette runs it in its thread pool
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return JSONResponse(
                {"error": "a playback grant is required"}, 401, {"WWW-Authenticate": "Bearer"}
            )
        try:
            grant = verifier.verify(token)
        except GrantRefused as refused:
            return JSONResponse({"refused": refused.reason, "detail": refused.detail}, 403)
        content_id = request.path_params["content_id"]
        # a real licence server asks its key store; the sketch derives a key per content id
        key = hmac.new(master_key, content_id.encode(), hashlib.sha256).hexdigest()[:32]
        body = {
            "content_id": content_id,
            "key": key,
            "user_id": grant.user_id,
            "expires_at": grant.expires_at,
        }
        return JSONResponse(body)

    return Starlette(routes=[Route("/licence/{content_id}", licence, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    add_verifier_options(parser)  # --jwks URL|FILE, --issuer, --audience, --leeway
    args = parser.parse_args()
    verifier = verifier_from(args)  # with the fencing memory (an EpochFence)
    master = os.environ.get("LICENCE_MASTER_KEY", "").encode() or secrets.token_bytes(32)
    uvicorn.run(create_app(verifier, master), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
