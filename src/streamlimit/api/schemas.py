"""Component schemas of the OpenAPI document (``api/openapi.py`` holds the paths)."""

from __future__ import annotations

from typing import Any

from streamlimit.ids import ID_PATTERN, MAX_DEVICE_LEN, MAX_LIMIT
from streamlimit.text import SAFE_TEXT_PATTERN, UNSAFE_RULE

ID = {"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": 128}
TIME = {"type": "string", "format": "date-time", "example": "2026-11-28T10:00:00.000Z"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


LIMIT_FIELDS: dict[str, Any] = {
    "limit": {"type": "integer"},
    "limit_source": {
        "type": "string",
        "enum": ["user", "plan", "default"],
        "description": "where the limit comes from: per-user override > plan > default",
    },
    "plan": {"type": "string", "nullable": True},
}


COUNTS = {
    "type": "string",
    "enum": ["streams", "devices"],
    "description": "what the limit counts (STREAMLIMIT_LIMIT_COUNTS)",
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "instance": {"type": "string"},
        },
    },
    "Stream": {
        "type": "object",
        "required": ["user_id", "stream_id", "device", "started_at", "expires_at"],
        "properties": {
            "user_id": ID,
            "stream_id": ID,
            "device": {"type": "string", "nullable": True, "maxLength": MAX_DEVICE_LEN},
            "device_id": {
                "type": "string",
                "nullable": True,
                "description": "the player installation's stable id; shown to players that may not "
                "evict (STREAMLIMIT_ALLOW_CLIENT_EVICT=false) as an opaque alias, `~` and 16 hex "
                "digits, the same for the same device",
                "maxLength": ID["maxLength"],
            },
            "started_at": TIME,
            "expires_at": TIME,
            "epoch": {
                "type": "integer",
                "nullable": True,
                "description": "this lease's own admission epoch: every admission of the user gets a "
                "higher one (fencing); null when degraded",
            },
            "legacy": {"type": "boolean", "description": "started through the compat API"},
        },
    },
    "Lease": {
        "allOf": [
            ref("Stream"),
            {
                "type": "object",
                "properties": {
                    "heartbeat_interval_s": {"type": "number"},
                    "lease_ttl_s": {"type": "number"},
                    "degraded": {"type": "boolean"},
                    "active": {"type": "integer", "nullable": True, "description": "start only"},
                    **LIMIT_FIELDS,
                    "evicted": {
                        "allOf": [ref("Stream")],
                        "nullable": True,
                        "description": "start only: the first of evicted_streams (the oldest "
                        "evicted, or the one named by ?replace=)",
                    },
                    "evicted_streams": {
                        "type": "array",
                        "items": ref("Stream"),
                        "description": "start only: every stream this start evicted, oldest first "
                        "(several when the limit was lowered below the active count, or a device's "
                        "streams when devices are counted)",
                    },
                    "replaced_streams": {
                        "type": "array",
                        "items": ref("Stream"),
                        "description": "start only: the same device's older streams this start "
                        "replaced (beyond STREAMLIMIT_STREAMS_PER_DEVICE), oldest first",
                    },
                    "counts": COUNTS,
                    "readmitted": {
                        "type": "boolean",
                        "description": "heartbeat only: the stream was not active (an outage, a long "
                        "sleep), was neither evicted nor stopped, and took a free slot again",
                    },
                    "grant": {
                        "type": "string",
                        "nullable": True,
                        "description": "only when the service signs grants (STREAMLIMIT_GRANT_KEY_FILE): "
                        "a compact JWS bound to this lease (claims iss, aud, sub, sid, epoch, lim, iat, "
                        "exp, jti), verified offline downstream against /.well-known/jwks.json; null "
                        "when the answer is degraded (unless STREAMLIMIT_GRANT_WHEN_DEGRADED)",
                    },
                },
            },
        ]
    },
    "StartRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "stream_id": {**ID, "nullable": True},
            "device": {
                "type": "string",
                "nullable": True,
                "maxLength": MAX_DEVICE_LEN,
                "pattern": SAFE_TEXT_PATTERN,
                "description": f"a label shown in lists; no {UNSAFE_RULE}",
            },
            "device_id": {
                **ID,
                "nullable": True,
                "description": "the player installation's stable id: a start replaces the same "
                "device's older streams (beyond STREAMLIMIT_STREAMS_PER_DEVICE) instead of taking "
                "another slot",
            },
        },
    },
    "LimitRequest": {
        "type": "object",
        "required": ["limit"],
        "additionalProperties": False,
        "properties": {"limit": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT}},
    },
    "PlanRequest": {
        "type": "object",
        "required": ["plan"],
        "additionalProperties": False,
        "properties": {"plan": {"type": "string"}},
    },
    "StreamList": {
        "type": "object",
        "properties": {
            "user_id": ID,
            "active": {"type": "integer", "description": "what the limit counts: streams or devices"},
            **LIMIT_FIELDS,
            "counts": COUNTS,
            "remaining": {"type": "integer"},
            "quota_exhausted": {"type": "boolean"},
            "streams": {"type": "array", "items": ref("Stream")},
        },
    },
    "Limit": {
        "type": "object",
        "properties": {
            "user_id": ID,
            **LIMIT_FIELDS,
            "default": {"type": "boolean", "description": "true when no override is set"},
        },
    },
    "Events": {
        "type": "object",
        "properties": {
            "user_id": ID,
            "events": {
                "type": "array",
                "description": "newest first; the last 100, kept 30 days",
                "items": {
                    "type": "object",
                    "properties": {
                        "at": TIME,
                        "action": {
                            "type": "string",
                            "enum": [
                                "evicted",
                                "replaced",
                                "stopped_all",
                                "stopped_by_admin",
                                "limit_set",
                                "limit_cleared",
                                "plan_set",
                                "plan_cleared",
                            ],
                        },
                        "actor": {
                            "type": "string",
                            "description": "token subject or API key name; 'admin' for an operator's "
                            "action read by the account's own player",
                        },
                        "role": {"type": "string", "enum": ["player", "admin"]},
                        "credential": {"type": "string", "description": "a token's jti, an API key's name"},
                        "request_id": {"type": "string"},
                        "client": {"type": "string", "description": "the client's address"},
                        "streams": {"type": "array", "items": {"type": "string"}},
                        "value": {
                            "type": "string",
                            "description": "the new limit or plan; for evicted and replaced, the "
                            "stream that took the slot",
                        },
                        "device_id": {"type": "string", "description": "replaced: the device"},
                    },
                },
            },
        },
    },
    "JWKS": {
        "type": "object",
        "required": ["keys"],
        "description": "RFC 7517 JWK Set: the public keys of every configured grant key",
        "properties": {
            "keys": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kty", "crv", "x", "kid", "alg", "use"],
                    "properties": {
                        "kty": {"type": "string", "enum": ["OKP", "EC"]},
                        "crv": {"type": "string", "enum": ["Ed25519", "P-256"]},
                        "x": {"type": "string"},
                        "y": {"type": "string", "description": "EC keys only"},
                        "kid": {"type": "string", "description": "the RFC 7638 thumbprint of the key"},
                        "alg": {"type": "string", "enum": ["EdDSA", "ES256"]},
                        "use": {"type": "string", "enum": ["sig"]},
                    },
                },
            }
        },
    },
    "CompatBody": {
        "type": "object",
        "required": ["userId"],
        "description": "a JSON integer id is taken as its decimal text; a null streamId as none",
        "properties": {
            "userId": {"oneOf": [ID, {"type": "integer"}]},
            "streamId": {"oneOf": [ID, {"type": "integer"}], "nullable": True},
        },
    },
    "CompatReply": {
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "activeStreams": {"type": "integer", "nullable": True, "description": "null when degraded"},
            "limit": {"type": "integer"},
            "quotaExhausted": {"type": "boolean"},
            "streamId": {"type": "string"},
            "degraded": {"type": "boolean", "description": "present (true) when degraded"},
        },
    },
}
