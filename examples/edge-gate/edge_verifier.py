"""The grant check behind an edge's ``auth_request``: nginx asks it about every media request.

    python examples/edge-gate/edge_verifier.py --port 8091 \\
        --jwks http://127.0.0.1:3000/.well-known/jwks.json

``GET /auth`` (nginx's subrequest; see nginx.conf.template) finds the grant in the
``X-Playback-Grant`` header, the ``grant`` cookie, or the ``grant`` query parameter of the
original request (nginx sends its URI as ``X-Original-URI``), and answers 204 for a valid grant,
401 without one and 403 for a refused one (reason in ``X-Grant-Refused``): nginx serves the file
on 2xx and passes 401 and 403 on. One process holds the fencing memory for every nginx worker.
"""

from __future__ import annotations

import argparse
from urllib.parse import parse_qs, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamlimit.grants import GrantRefused, GrantVerifier
from streamlimit.grants.options import add_verifier_options, verifier_from


def grant_of(request: Request) -> str | None:
    """The grant a media request carries: header, cookie, or the original URI's query."""
    if token := request.headers.get("x-playback-grant") or request.cookies.get("grant"):
        return token
    found = parse_qs(urlsplit(request.headers.get("x-original-uri", "")).query).get("grant")
    return found[0] if found else None


def create_app(verifier: GrantVerifier) -> Starlette:
    def auth(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        token = grant_of(request)
        if not token:
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        try:
            grant = verifier.verify(token)
        except GrantRefused as refused:
            return Response(status_code=403, headers={"X-Grant-Refused": refused.reason})
        return Response(status_code=204, headers={"X-Grant-User": grant.user_id})

    return Starlette(routes=[Route("/auth", auth, methods=["GET"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    add_verifier_options(parser)  # --jwks URL|FILE, --issuer, --audience, --leeway
    args = parser.parse_args()
    verifier = verifier_from(args)  # with the fencing memory (an EpochFence)
    uvicorn.run(create_app(verifier), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
