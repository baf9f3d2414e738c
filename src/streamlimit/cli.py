"""streamlimit serve | check | streams | limit | events | token mint | api-key new | grant verify."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any

from pydantic import ValidationError

from streamlimit import __version__, logs, startup
from streamlimit.auth.mint import key_and_line, mint_token
from streamlimit.errors import ConfigurationError
from streamlimit.grants.cli import add_grant_commands
from streamlimit.live.fds import raise_fd_limit
from streamlimit.remote import add_remote_commands
from streamlimit.settings import ENV_PREFIX, Settings, describe_error, unknown_variables
from streamlimit.store.connect import scheme_of

log = logging.getLogger("streamlimit")


def _add_setting_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """One flag per setting (or per one of ``names``): ``--store-url`` for
    ``STREAMLIMIT_STORE_URL`` and so on; a yes/no setting's flag alone means yes."""
    for name in names or Settings.model_fields:
        field = Settings.model_fields[name]
        flag = parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=None,
            metavar=name.upper(),
            help=f"{field.description} (env {ENV_PREFIX}{name.upper()}, default {field.default})",
        )
        if field.annotation is bool:  # --access-log alone, or --access-log false
            flag.nargs, flag.const = "?", "true"


def _settings(args: argparse.Namespace) -> tuple[Settings, dict[str, Any]]:
    given = {n: getattr(args, n, None) for n in Settings.model_fields}
    overrides = {n: v for n, v in given.items() if v is not None}
    settings = Settings(**overrides)
    scheme = scheme_of(settings.store_url)
    if scheme == "memory" and settings.workers > 1:
        raise ConfigurationError(
            "invalid setting STREAMLIMIT_WORKERS: memory:// is per process; use one worker "
            "or a shared store (embedded://, redis://)"
        )
    return settings, overrides


def _exit_with(code: int) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(code)

    return handler


def serve(args: argparse.Namespace) -> int:
    settings, overrides = _settings(args)
    logs.configure(settings.log_level, settings.log_format)
    for warning in unknown_variables(os.environ):
        log.warning(warning)
    startup.ensure_port_free(settings)
    raise_fd_limit(settings.live_max_channels)  # the workers inherit it
    grants = startup.grant_keys(settings)  # a bad key file stops here, in one line
    # workers are separate processes: they rebuild the same settings from the environment
    for name, value in overrides.items():
        os.environ[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    log.info(startup.banner(settings))
    if grants is not None:
        log.info(grants)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again so the
    # process dies of it; these handlers turn that into a clean exit status instead
    signal.signal(signal.SIGTERM, _exit_with(0))
    signal.signal(signal.SIGINT, _exit_with(130))
    with _metrics_folder(settings):
        _run(settings)
    return 0


@contextlib.contextmanager
def _metrics_folder(settings: Settings) -> Iterator[None]:
    """Several workers share their metrics through files in a fresh folder (prometheus_client's
    multiprocess mode); it must be named before any worker imports prometheus_client."""
    if not settings.metrics or settings.workers < 2:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="streamlimit-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        try:
            yield
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def _run(settings: Settings) -> None:
    import uvicorn

    from streamlimit.api import head_limits

    uvicorn.run(
        "streamlimit.api.app:create_app_from_env",
        factory=True,
        http=head_limits.PROTOCOL,  # uvicorn's httptools protocol + request_timeout_s + head caps
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # nothing reads the client address: skip the per-request rewrite
        timeout_graceful_shutdown=10,
    )


def check(args: argparse.Namespace) -> int:
    settings, _ = _settings(args)
    for warning in unknown_variables(os.environ):
        print(f"warning: {warning}", file=sys.stderr)
    given = sorted(f"{ENV_PREFIX}{n.upper()}" for n in settings.model_fields_set)
    passed, lines = asyncio.run(startup.check_report(settings, given))
    print("\n".join(lines), file=sys.stdout if passed else sys.stderr)
    return 0 if passed else 1


def token_mint(args: argparse.Namespace) -> int:
    settings, _ = _settings(args)
    if settings.jwt_secret is None:
        print("streamlimit: token mint signs with STREAMLIMIT_JWT_SECRET (HS256); set it", file=sys.stderr)
        return 2
    secret = settings.jwt_secret.get_secret_value()
    print(
        mint_token(
            secret, args.sub, args.scope, ttl_s=args.ttl, plan=args.plan,
            issuer=settings.jwt_issuer, audience=settings.jwt_audience,
        )
    )  # fmt: skip
    return 0


def api_key_new(args: argparse.Namespace) -> int:
    key, line = key_and_line(args.name, args.admin)
    print(f"key (give it to the backend; it is not stored): {key}")
    print(f"line for STREAMLIMIT_API_KEYS_FILE: {line}")
    return 0


def _auth_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="development tokens").add_subparsers(dest="action", required=True)
    mint = token.add_parser("mint", help="print an HS256 JWT signed with STREAMLIMIT_JWT_SECRET")
    _add_setting_flags(mint, ("jwt_secret", "jwt_issuer", "jwt_audience"))
    mint.add_argument("--sub", required=True, help="the user id the token acts for")
    mint.add_argument("--scope", default="streams", help="streams (own user) or streams:admin")
    mint.add_argument("--plan", default=None, help="plan claim")
    mint.add_argument("--ttl", type=int, default=3600, help="seconds until exp")
    mint.set_defaults(func=token_mint)
    keys = sub.add_parser("api-key", help="API keys").add_subparsers(dest="action", required=True)
    new = keys.add_parser("new", help="print a new API key and its hashed line for the keys file")
    new.add_argument("name", help="the key's name in logs and the audit trail")
    new.add_argument("--admin", action="store_true", help="may change limits (else: any user's streams)")
    new.set_defaults(func=api_key_new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamlimit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streamlimit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in (
        ("serve", serve, "serve the HTTP API"),
        ("check", check, "exit 0 when the settings are valid and the store answers, else 1"),
    ):
        p = sub.add_parser(name, help=help_)
        _add_setting_flags(p)
        p.set_defaults(func=func)
    add_remote_commands(sub)
    _auth_commands(sub)
    add_grant_commands(sub)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ValidationError as exc:
        print(f"streamlimit: {describe_error(exc)}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"streamlimit: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
