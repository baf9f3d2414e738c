"""``streamlimit grant verify TOKEN... --jwks URL|FILE``: a grant checked as a verifier downstream
would check it, for people. Exit 0 when every grant is valid, 1 when one is refused (the reason
on stderr), 2 for a JWKS file that cannot be read, 3 when the JWKS URL cannot be fetched."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

from streamlimit.grants.options import add_verifier_options, verifier_from
from streamlimit.grants.verify import Grant, GrantRefused, jwks_from
from streamlimit.text import escaped

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def describe(grant: Grant, now: float) -> str:
    until = datetime.fromtimestamp(grant.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    epoch = "none (degraded: issued while the store was down)" if grant.degraded else str(grant.epoch)
    return escaped(
        f"ok: grant of user {grant.user_id}, stream {grant.stream_id}, epoch {epoch}, limit {grant.limit}; "
        f"expires {until} (in {max(0, round(grant.expires_at - now))} s), key {grant.kid}"
    )


def verify(args: argparse.Namespace) -> int:
    try:
        args.jwks = jwks_from(args.jwks)  # a file is read now: an unreadable one is a usage error
    except (OSError, ValueError) as exc:
        print(f"streamlimit: cannot read the JWKS {args.jwks}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # one fence for the grants given: a later grant of the same user can fence an earlier one
    verifier = verifier_from(args)
    code = EXIT_OK
    for n, token in enumerate(args.tokens, 1):
        which = f"grant {n}: " if len(args.tokens) > 1 else ""
        try:
            grant = verifier.verify(token.strip())
        except GrantRefused as refused:
            print(escaped(f"streamlimit: {which}refused: {refused}"), file=sys.stderr)
            if refused.reason == "keys_unavailable":
                return EXIT_UNREACHABLE
            code = EXIT_REFUSED
            continue
        if args.json:
            print(json.dumps(dict(grant.claims), sort_keys=False))
        else:
            print(which + describe(grant, time.time()))
    return code


def add_grant_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    grant = sub.add_parser("grant", help="playback grants").add_subparsers(dest="action", required=True)
    p = grant.add_parser(
        "verify",
        help="verify grants as a downstream verifier would (exit 1 when one is refused)",
        description="Verify each grant: signature (by kid) against the JWKS, exp/nbf/iat with the "
        "leeway, iss and aud, and the fencing rule across the grants given, in order.",
    )
    p.add_argument("tokens", nargs="+", metavar="TOKEN", help="a grant (compact JWS)")
    add_verifier_options(p)
    p.add_argument("--json", action="store_true", help="print each valid grant's claims as JSON")
    p.set_defaults(func=verify)
