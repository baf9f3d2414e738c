"""A verifier's command-line options (``--jwks``, ``--issuer``, ``--audience``, ``--leeway``),
shared by ``streamlimit grant verify`` and the verifiers of examples/."""

from __future__ import annotations

import argparse
import os

from streamlimit.grants.fence import EpochFence
from streamlimit.grants.verify import GrantVerifier

DEFAULT_ISSUER = "streamlimit"  # STREAMLIMIT_GRANT_ISSUER's default
DEFAULT_AUDIENCE = "streamlimit-playback"  # STREAMLIMIT_GRANT_AUDIENCE's default
DEFAULT_LEEWAY_S = 10.0


def add_verifier_options(parser: argparse.ArgumentParser) -> None:
    """The options; ``--issuer`` and ``--audience`` default to the service's own settings."""
    parser.add_argument(
        "--jwks", required=True, metavar="URL|FILE", help="the service's /.well-known/jwks.json, or a file"
    )
    issuer = os.environ.get("STREAMLIMIT_GRANT_ISSUER", DEFAULT_ISSUER)
    audience = os.environ.get("STREAMLIMIT_GRANT_AUDIENCE", DEFAULT_AUDIENCE)
    parser.add_argument("--issuer", default=issuer, help="the expected iss (env STREAMLIMIT_GRANT_ISSUER)")
    parser.add_argument(
        "--audience", default=audience, help="the expected aud (env STREAMLIMIT_GRANT_AUDIENCE)"
    )
    parser.add_argument(
        "--leeway", type=float, default=DEFAULT_LEEWAY_S, help="clock skew allowed, in seconds (default 10)"
    )


def verifier_from(args: argparse.Namespace) -> GrantVerifier:
    """A fencing verifier of the parsed options (the JWKS is fetched, or read, on first use)."""
    return GrantVerifier(args.jwks, args.issuer, args.audience, leeway_s=args.leeway, fence=EpochFence())
