"""The OpenAPI 3.0 contract, and /docs served from the installed swagger-ui-bundle (no CDN)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from streamlimit import __version__
from streamlimit.api.bodies import MAX_BODY_BYTES
from streamlimit.api.render import json
from streamlimit.api.schemas import ID, SCHEMAS, ref


def _json(schema: dict[str, Any], description: str, ctype: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {ctype: {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return _json(ref("Problem"), description, "application/problem+json")


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _retry_after(problem: dict[str, Any]) -> dict[str, Any]:
    return {**problem, "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}}


def _param(name: str, where: str = "path") -> dict[str, Any]:
    return {"name": name, "in": where, "required": True, "schema": ID}


_UNAVAILABLE = _retry_after(_problem("store unavailable (`store_unavailable`)"))
_SLOW = _problem("the request was not received whole within `REQUEST_TIMEOUT_S` (`request_timeout`)")
_TOO_LARGE = _problem(f"body over {MAX_BODY_BYTES} bytes (`body_too_large`)")
# every v1 operation: an id in the path may hold an encoded "/" (or be a "." or ".." segment, which
# clients remove), so the URL can name no route (404 `not_found`) or another route (405)
_AUTH = {
    "401": {
        **_problem("missing or invalid credentials (`unauthenticated`), when auth is on"),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": _problem("these credentials may not act on this user, or not change limits (`forbidden`)"),
}
_BAD = {
    **_AUTH,
    "400": _problem("malformed JSON (`malformed_json`)"),
    "404": _problem("no such route (`not_found`), e.g. an id with an encoded `/`"),
    "405": {
        **_problem("an id with an encoded `/` names another route (`method_not_allowed`)"),
        "headers": {"Allow": {"schema": {"type": "string"}, "description": "the methods of that route"}},
    },
    "408": _SLOW,
    "413": _TOO_LARGE,
    "422": _problem("invalid id (`invalid_id`), body (`invalid_body`) or query (`invalid_query`)"),
    "503": _UNAVAILABLE,
}
_DEGRADED_HEADER = {
    "X-StreamLimit-Degraded": {
        "schema": {"type": "string", "enum": ["1"]},
        "description": "present when the answer comes from the outage policy, not the store",
    }
}
_STATUS = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
_USER = [_param("user_id")]
_STREAM = [_param("user_id"), _param("stream_id")]


def _compat_body() -> dict[str, Any]:
    schema = ref("CompatBody")
    return {
        "required": True,
        "content": {
            "application/json": {"schema": schema},
            "application/x-www-form-urlencoded": {"schema": schema},
        },
    }


def _compat_403(description: str) -> dict[str, Any]:
    """The original's JSON 403, or, under auth, the problem of a caller acting for another user."""
    return {
        "description": description,
        "content": {
            "application/json": {"schema": ref("CompatReply")},
            "application/problem+json": {"schema": ref("Problem")},
        },
    }


_COMPAT_UNAVAILABLE = {
    **_json(
        {"allOf": [ref("Problem"), {"type": "object", "properties": {"message": {"type": "string"}}}]},
        "store unavailable (`store_unavailable`, with `message`)",
        "application/problem+json",
    ),
    "headers": _UNAVAILABLE["headers"],
}
_COMPAT_BAD = {
    **_AUTH,
    "400": _problem("missing body, malformed JSON, or a missing, repeated or invalid id (`invalid_request`)"),
    "408": _SLOW,
    "413": _TOO_LARGE,
    "503": _COMPAT_UNAVAILABLE,
}

_PATHS: dict[str, Any] = {
    "/v1/users/{user_id}/streams": {
        "parameters": _USER,
        "post": {
            "summary": "Start a stream, or renew it if this stream_id is already active",
            "parameters": [
                {
                    "name": "on_limit",
                    "in": "query",
                    "required": False,
                    "description": "at the limit: refuse (409), or evict the oldest stream ('watch here "
                    "instead'); default from STREAMLIMIT_ON_LIMIT",
                    "schema": {"type": "string", "enum": ["reject", "evict_oldest"]},
                },
                {
                    "name": "replace",
                    "in": "query",
                    "required": False,
                    "description": "a stream of this user to stop in this one's favour ('watch here "
                    "instead of there'), whether or not the user is at the limit; 404 "
                    "`stream_not_active` (nothing started) if it is not active",
                    "schema": ID,
                },
            ],
            "requestBody": _body(ref("StartRequest"), required=False),
            "responses": {
                "201": {
                    **_json(ref("Lease"), "admitted"),
                    "headers": {"Location": {"schema": {"type": "string"}, "description": "the stream"}},
                },
                "200": {
                    **_json(ref("Lease"), "already active: renewed (or degraded)"),
                    "headers": _DEGRADED_HEADER,
                },
                "409": _problem("limit reached (`stream_limit_reached`), with the active streams"),
                **_BAD,
                "404": _problem("the stream to `replace` is not active (`stream_not_active`), or no route"),
                "429": _retry_after(_problem("too many starts in the last minute (`too_many_starts`)")),
            },
        },
        "get": {
            "summary": "List the user's active streams",
            "responses": {"200": _json(ref("StreamList"), "active streams"), **_BAD},
        },
        "delete": {
            "summary": "Stop all of the user's streams",
            "responses": {
                "200": _json({"type": "object", "properties": {"stopped": {"type": "integer"}}}, "stopped"),
                **_BAD,
                "429": _retry_after(_problem("too many stop-alls in the last minute (`too_many_stop_alls`)")),
            },
        },
    },
    "/v1/users/{user_id}/streams/{stream_id}/heartbeat": {
        "parameters": _STREAM,
        "post": {
            "summary": "Extend the stream's lease",
            "responses": {
                "200": {**_json(ref("Lease"), "renewed"), "headers": _DEGRADED_HEADER},
                **_BAD,
                "404": _problem("not active (`stream_not_active`): stop playback; or no such route"),
                "410": _problem(
                    "evicted by another start (`stream_evicted`, with `replaced_by`), replaced by a newer "
                    "stream of the same device (`stream_replaced`, with `replaced_by`) or stopped "
                    "(`stream_stopped`, with `reason`: stopped, stopped_all, stopped_by_admin): stop playback"
                ),
            },
        },
    },
    "/v1/users/{user_id}/streams/{stream_id}": {
        "parameters": _STREAM,
        "get": {
            "summary": "One active stream",
            "responses": {
                "200": _json(ref("Stream"), "the stream"),
                **_BAD,
                "404": _problem("not active (`stream_not_active`), or no such route (`not_found`)"),
            },
        },
        "delete": {
            "summary": "Stop a stream (also when already gone)",
            "responses": {"204": {"description": "stopped", "headers": _DEGRADED_HEADER}, **_BAD},
        },
    },
    "/v1/users/{user_id}/limit": {
        "parameters": _USER,
        "get": {
            "summary": "Read the user's limit",
            "responses": {"200": _json(ref("Limit"), "limit"), **_BAD},
        },
        "put": {
            "summary": "Set a per-user limit",
            "requestBody": _body(ref("LimitRequest")),
            "responses": {"200": _json(ref("Limit"), "limit"), **_BAD},
        },
        "delete": {
            "summary": "Clear the per-user limit (back to the default)",
            "responses": {"200": _json(ref("Limit"), "limit"), **_BAD},
        },
    },
    "/v1/users/{user_id}/plan": {
        "parameters": _USER,
        "put": {
            "summary": "Put the user on a configured plan (admin); 422 `unknown_plan` for another name",
            "requestBody": _body(ref("PlanRequest")),
            "responses": {"200": _json(ref("Limit"), "limit"), **_BAD},
        },
        "delete": {
            "summary": "Take the user off their plan (admin)",
            "responses": {"200": _json(ref("Limit"), "limit"), **_BAD},
        },
    },
    "/v1/users/{user_id}/events": {
        "parameters": _USER,
        "get": {
            "summary": "The user's audit trail: evictions, stop-alls, admin stops, limit changes",
            "responses": {"200": _json(ref("Events"), "events, newest first"), **_BAD},
        },
    },
    "/user/stream": {
        "get": {
            "summary": "Compat: count the user's streams",
            "parameters": [_param("userId", "query")],
            "responses": {
                "200": _json(ref("CompatReply"), "count"),
                **_AUTH,
                "400": _problem("missing, repeated or invalid userId (`invalid_request`, with `message`)"),
                "408": _SLOW,
                "503": _COMPAT_UNAVAILABLE,
            },
        },
        "post": {
            "summary": "Compat: add a stream (legacy lease TTL)",
            "requestBody": _compat_body(),
            "responses": {
                "200": {**_json(ref("CompatReply"), "added (or degraded)"), "headers": _DEGRADED_HEADER},
                **_COMPAT_BAD,
                "403": _compat_403("quota exceeded; or (problem+json) `forbidden`"),
                "429": _retry_after(
                    _problem("too many starts in the last minute (`too_many_starts`, with `message`)")
                ),
            },
        },
        "delete": {
            "summary": "Compat: remove the given stream, or the oldest",
            "requestBody": _compat_body(),
            "responses": {
                "200": {**_json(ref("CompatReply"), "removed (or degraded)"), "headers": _DEGRADED_HEADER},
                **_COMPAT_BAD,
                "403": _compat_403("no stream active; or (problem+json) `forbidden`"),
                "404": _json(ref("CompatReply"), "stream not found"),
            },
        },
    },
    "/.well-known/jwks.json": {
        "get": {
            "summary": "The public keys that verify playback grants (no credentials; cacheable)",
            "security": [],
            "responses": {
                "200": {
                    **_json(ref("JWKS"), "every configured grant key, the signing one first"),
                    "headers": {
                        "Cache-Control": {
                            "schema": {"type": "string"},
                            "description": "public, max-age=300: how long verifiers may keep the keys",
                        }
                    },
                },
                "404": _problem("this service signs no grants (`not_found`)"),
                "408": _SLOW,
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Process alive",
            "responses": {"200": _json(_STATUS, "ok"), "408": _SLOW},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Store reachable",
            "responses": {"200": _json(_STATUS, "ready"), "408": _SLOW, "503": _UNAVAILABLE},
        }
    },
}

TAGS = {
    "streams": "Players' leases: start, heartbeat, stop, list",
    "accounts": "Per-user limits, plans and the audit trail",
    "compat": "The original service's /user/stream API, on the same rules",
    "health": "Liveness and readiness",
    "grants": "Public keys of the playback grants, for verifiers downstream",
}


def _tag(path: str) -> str:
    if path.startswith("/user/"):
        return "compat"
    if path.endswith(("/limit", "/plan", "/events")):
        return "accounts"
    if path.startswith("/.well-known/"):
        return "grants"
    return "streams" if path.startswith("/v1/") else "health"


def _tagged(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation with its tag, so /docs groups them."""
    return {
        path: {m: op if m == "parameters" else {**op, "tags": [_tag(path)]} for m, op in item.items()}
        for path, item in paths.items()
    }


SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "streamlimit",
        "version": __version__,
        "description": "Concurrent stream limiter: leases with heartbeats. Errors are "
        "RFC 9457 problem+json with a stable `code` member.",
    },
    "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
    "paths": _tagged(_PATHS),
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
    },
    "security": [{"bearer": []}, {"apiKey": []}, {}],
}

_DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>streamlimit API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null});</script>
</body></html>"""


def document(plans: Sequence[str] = ()) -> dict[str, Any]:
    """The document of a service with these plans: a plan set by PUT is one of their names (any
    other is a 422 ``unknown_plan``, as the schema then says)."""
    if not plans:
        return SPEC
    doc = copy.deepcopy(SPEC)
    doc["components"]["schemas"]["PlanRequest"]["properties"]["plan"]["enum"] = list(plans)
    return doc


async def openapi(request: Request) -> Response:
    found: dict[str, Any] = request.app.state.openapi
    return json(found)


async def docs(request: Request) -> Response:
    return HTMLResponse(_DOCS_HTML)


ROUTES = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Mount("/docs/static", StaticFiles(directory=str(swagger_ui_path)), name="docs-static"),
]
