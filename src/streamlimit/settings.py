"""Validated settings. Built explicitly (``Settings()``); nothing is read at import time."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamlimit.grants.options import DEFAULT_AUDIENCE, DEFAULT_ISSUER
from streamlimit.webhooks.signing import secret_key
from streamlimit.webhooks.targets import parse_urls

ENV_PREFIX = "STREAMLIMIT_"
# read by the remote commands (remote.py), not settings of the service
CLIENT_VARIABLES = frozenset({"STREAMLIMIT_URL", "STREAMLIMIT_TOKEN", "STREAMLIMIT_API_KEY"})


_PLAN = re.compile(r"[A-Za-z0-9_]{1,64}")


def is_plan_name(value: object) -> bool:
    return isinstance(value, str) and _PLAN.fullmatch(value) is not None


def parse_plans(text: str) -> tuple[tuple[str, int], ...]:
    """``basic=1,standard=2`` -> (("basic", 1), ("standard", 2)); names [A-Za-z0-9_], 0-1000."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, limit = part.partition("=")
        name, limit = name.strip(), limit.strip()
        if not sep or not is_plan_name(name) or not limit.isdigit() or int(limit) > 1000:
            raise ValueError(
                f"plans are NAME=LIMIT pairs (NAME of A-Z a-z 0-9 _, LIMIT 0-1000), not {part!r}"
            )
        if name in out:
            raise ValueError(f"plan {name!r} is given twice")
        out[name] = int(limit)
    return tuple(out.items())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # "::ffff:127.0.0.1", from a dual-stack socket
    return address.is_loopback


class Settings(BaseSettings):
    """Every setting comes from ``STREAMLIMIT_<NAME>`` or the matching ``serve`` flag."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(3000, ge=0, le=65535, description="TCP port to listen on")
    store_url: str = Field(
        "embedded://./.streamlimit",
        description="redis://, rediss://, unix://, memory:// or embedded://PATH",
    )
    default_limit: int = Field(3, ge=0, le=1000, description="streams per user without override")
    lease_ttl_s: float = Field(90, ge=0.01, le=86400, description="lease length after a start or heartbeat")
    heartbeat_interval_s: float = Field(30, gt=0, le=86400, description="players heartbeat this often")
    legacy_lease_ttl_s: float = Field(21600, ge=0.01, le=604800, description="lease of compat-API streams")
    on_store_error: Literal["allow", "deny"] = Field("allow", description="outage policy")
    ready_without_store: bool = Field(
        False, description="with ON_STORE_ERROR=allow: /readyz stays 200 (degraded) while the store is out"
    )
    store_timeout_ms: int = Field(500, ge=10, le=60000, description="store call timeout")
    store_startup_wait_s: float = Field(
        5, ge=0, le=600, description="at start-up, wait this long for the store before serving anyway"
    )
    store_connections: int = Field(
        1, ge=1, le=64, description="pipelined store connections per process (calls share them)"
    )
    replica_ack: int = Field(
        0, ge=0, le=16, description="replicas that must hold each write before it is answered (WAIT); 0: off"
    )
    replica_ack_timeout_ms: int = Field(100, ge=1, le=60000, description="how long a write waits for them")
    workers: int = Field(1, ge=1, le=64, description="worker processes sharing one port")
    request_timeout_s: float = Field(
        10, gt=0, le=3600, description="a client must send a whole request within this long (else 408)"
    )
    embedded_server_bin: str | None = Field(
        None, description="redis-server/valkey-server for embedded:// (default: the bundled one)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="json lines, or text; auto: text on a terminal, json otherwise"
    )
    access_log: bool = Field(False, description="one log line per request (off: the hot path logs nothing)")
    access_log_sample: float = Field(1.0, ge=0, le=1, description="share of requests logged when ACCESS_LOG")
    metrics: bool = Field(True, description="serve Prometheus metrics at /metrics")
    auth: Literal["none", "jwt", "api_key"] = Field(
        "none", description="who may call: none (development), jwt, api_key"
    )
    jwt_secret: SecretStr | None = Field(None, description="HS256 key for auth=jwt")
    jwt_public_key_file: Path | None = Field(None, description="PEM public key (RS256/ES256) for auth=jwt")
    jwks_file: Path | None = Field(None, description="JWKS file (RS256/ES256 keys by kid) for auth=jwt")
    jwt_issuer: str | None = Field(None, description="required iss claim, when set")
    jwt_audience: str | None = Field(None, description="required aud claim, when set")
    jwt_leeway_s: float = Field(30, ge=0, le=300, description="clock skew allowed on exp and nbf")
    api_keys_file: Path | None = Field(None, description="hashed API keys for auth=api_key (see README)")
    insecure_no_auth: bool = Field(False, description="allow auth=none on a non-loopback address")
    plans: str = Field("", description="plan limits, e.g. basic=1,standard=2,premium=4")
    on_limit: Literal["reject", "evict_oldest"] = Field("reject", description="a start at the limit")
    allow_client_evict: bool = Field(
        True, description="players may ask ?on_limit=evict_oldest and ?replace=<stream_id>"
    )
    limit_counts: Literal["streams", "devices"] = Field(
        "streams", description="what the limit counts: streams, or distinct device ids"
    )
    streams_per_device: int = Field(
        1, ge=1, le=100, description="streams one device id may hold before its own oldest is replaced"
    )
    start_rate_per_min: int = Field(30, ge=0, le=100000, description="admissions per user per minute; 0: off")
    stop_all_rate_per_min: int = Field(
        6, ge=0, le=100000, description="stop-alls per user per minute (a burst of that many); 0: off"
    )
    live_max_channels: int = Field(
        10_000, ge=0, le=1_000_000, description="live channels one worker holds at most (then 503); 0: none"
    )
    live_keepalive_s: float = Field(15, gt=0, le=3600, description="a live channel's comment line this often")
    live_retry_ms: int = Field(
        2000, ge=0, le=600_000, description="how soon a player's EventSource reconnects a live channel"
    )
    trusted_proxies: str = Field(
        "", description="comma-separated addresses or CIDRs of proxies whose X-Forwarded-For is believed"
    )
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS, or *; empty: none")
    webhook_url: str = Field(
        "", description="comma-separated http(s) URLs that receive webhook events; empty: off"
    )
    webhook_secret: SecretStr | None = Field(
        None, description="signing secret of the webhooks: whsec_ and base64, or raw text (24+ bytes)"
    )
    webhook_timeout_s: float = Field(5, ge=0.01, le=60, description="a webhook attempt's time limit")
    webhook_retry_base_s: float = Field(
        10, ge=0.01, le=3600, description="wait before a failed webhook's first retry (then doubling)"
    )
    webhook_retry_max_s: float = Field(3600, ge=0.01, le=86400, description="longest wait between retries")
    webhook_max_age_s: float = Field(
        86400, ge=1, le=604800, description="a webhook event not delivered by this age is given up"
    )
    webhook_poll_interval_s: float = Field(
        1, ge=0.01, le=60, description="how often each instance looks for webhook events to send"
    )
    webhook_scan_interval_s: float = Field(
        60, ge=0.1, le=3600, description="Cluster: how often each instance looks at every slot's queue"
    )
    webhook_concurrency: int = Field(16, ge=1, le=1024, description="webhook attempts in flight per process")
    webhook_queue_max_len: int = Field(
        100000, ge=100, le=10_000_000, description="undelivered webhook events kept (per Cluster slot)"
    )
    grant_key_file: str = Field(
        "",
        description="PEM private key file(s), comma-separated, for signed playback grants; the first signs",
    )
    grant_issuer: str = Field(DEFAULT_ISSUER, min_length=1, description="the iss claim of grants")
    grant_audience: str = Field(DEFAULT_AUDIENCE, min_length=1, description="the aud claim of grants")
    grant_when_degraded: bool = Field(
        False, description="grants also while the store is down (short exp, deg: true)"
    )
    grant_degraded_ttl_s: float = Field(
        60, ge=1, le=3600, description="how long a degraded grant lasts (at most the lease TTL)"
    )

    @model_validator(mode="after")
    def _heartbeat_fits_lease(self) -> Settings:
        if self.heartbeat_interval_s >= self.lease_ttl_s:
            raise ValueError(
                f"{ENV_PREFIX}HEARTBEAT_INTERVAL_S must be shorter than {ENV_PREFIX}LEASE_TTL_S "
                f"({self.heartbeat_interval_s} >= {self.lease_ttl_s})"
            )
        if self.replica_ack and self.replica_ack_timeout_ms >= self.store_timeout_ms:
            raise ValueError(
                f"{ENV_PREFIX}REPLICA_ACK_TIMEOUT_MS must be shorter than {ENV_PREFIX}STORE_TIMEOUT_MS "
                f"({self.replica_ack_timeout_ms} >= {self.store_timeout_ms})"
            )
        if self.ready_without_store and self.on_store_error != "allow":
            raise ValueError(
                f"{ENV_PREFIX}READY_WITHOUT_STORE needs {ENV_PREFIX}ON_STORE_ERROR=allow (with deny, an "
                "instance without its store can only answer 503)"
            )
        self._check_auth()
        self._check_webhooks()
        return self

    def _check_webhooks(self) -> None:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError(f"{ENV_PREFIX}WEBHOOK_URL needs {ENV_PREFIX}WEBHOOK_SECRET (events are signed)")
        if self.webhook_retry_base_s <= self.webhook_timeout_s:
            raise ValueError(
                f"{ENV_PREFIX}WEBHOOK_RETRY_BASE_S must be longer than {ENV_PREFIX}WEBHOOK_TIMEOUT_S "
                f"({self.webhook_retry_base_s} <= {self.webhook_timeout_s}): an attempt still running "
                "must not be retried by another instance"
            )
        if self.webhook_retry_max_s < self.webhook_retry_base_s:
            raise ValueError(
                f"{ENV_PREFIX}WEBHOOK_RETRY_MAX_S must be at least {ENV_PREFIX}WEBHOOK_RETRY_BASE_S "
                f"({self.webhook_retry_max_s} < {self.webhook_retry_base_s})"
            )

    def _check_auth(self) -> None:
        if self.auth == "jwt":
            keys = [k for k in (self.jwt_secret, self.jwt_public_key_file, self.jwks_file) if k is not None]
            if len(keys) != 1:
                raise ValueError(
                    f"{ENV_PREFIX}AUTH=jwt needs exactly one of {ENV_PREFIX}JWT_SECRET, "
                    f"{ENV_PREFIX}JWT_PUBLIC_KEY_FILE and {ENV_PREFIX}JWKS_FILE"
                )
            self._check_provider_claims()
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value().encode()) < 32:
            raise ValueError(f"{ENV_PREFIX}JWT_SECRET must be at least 32 bytes (HS256, RFC 7518 3.2)")
        if self.auth == "api_key" and self.api_keys_file is None:
            raise ValueError(f"{ENV_PREFIX}AUTH=api_key needs {ENV_PREFIX}API_KEYS_FILE")
        if self.auth == "none" and not is_loopback(self.host) and not self.insecure_no_auth:
            raise ValueError(
                f"{ENV_PREFIX}AUTH=none on {self.host} would let anyone on the network stop anyone's "
                f"streams: set {ENV_PREFIX}AUTH (jwt, api_key), listen on 127.0.0.1, or set "
                f"{ENV_PREFIX}INSECURE_NO_AUTH=1"
            )

    def _check_provider_claims(self) -> None:
        """An identity provider's keys also sign tokens for its other APIs and tenants: only
        iss and aud tell ours apart (RFC 8725 3.8-3.9). A shared HS256 secret is ours alone."""
        keys = self.jwt_public_key_file or self.jwks_file
        if keys is None:
            return
        missing = [
            f"{ENV_PREFIX}{name.upper()}"
            for name in ("jwt_issuer", "jwt_audience")
            if not getattr(self, name)
        ]
        if missing:
            given = "JWT_PUBLIC_KEY_FILE" if self.jwt_public_key_file else "JWKS_FILE"
            raise ValueError(
                f"{ENV_PREFIX}{given} needs {' and '.join(missing)}: an identity provider's keys sign "
                "tokens for its other APIs too, and only iss and aud tell this service's apart"
            )

    @field_validator("plans")
    @classmethod
    def _plans_parse(cls, value: str) -> str:
        parse_plans(value)
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_urls_parse(cls, value: str) -> str:
        parse_urls(value)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret_parse(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret_key(value.get_secret_value())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
        return value

    @property
    def plan_limits(self) -> tuple[tuple[str, int], ...]:
        return parse_plans(self.plans)

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        return parse_urls(self.webhook_url)

    @property
    def store_timeout_s(self) -> float:
        return self.store_timeout_ms / 1000


def describe_error(exc: ValidationError) -> str:
    """One line per invalid setting, naming its environment variable."""
    lines = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        if loc:
            lines.append(f"invalid setting {ENV_PREFIX}{loc[0].upper()}: {err['msg']}")
        else:  # a rule across settings names them in its message
            lines.append(f"invalid settings: {err['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``STREAMLIMIT_*`` variable that is no setting (a typo is otherwise
    silently ignored), naming the closest real one."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | CLIENT_VARIABLES
    suffixes = sorted(k.removeprefix(ENV_PREFIX) for k in known)
    out = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), suffixes, n=1, cutoff=0.6)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else " (see README 'Settings')"
        out.append(f"{name} is not a streamlimit setting and is ignored{hint}")
    return out
