"""The identifier rule shared by every entry point; store keys are only built from ids it accepts."""

from __future__ import annotations

import re

# what identity providers put in ``sub``: "auth0|5f7c...", "google-oauth2|1093...", Okta's "00u...",
# UUIDs (Cognito, Keycloak), base64url (Entra), e-mail addresses ("o'brien+tv@example.com"), Keycloak's
# "f:<provider>:<user>". Kept out: "{" and "}" (a Cluster hash tag), "/" (a path), "#" (the info
# hash's "#epoch" field), "%" (decoded twice), "*" "?" (patterns), whitespace and control characters.
# "|" also separates the info and evicted values' parts; each is split at its first "|" after
# digits, or in Lua with a greedy match, so an id holding "|" reads back whole.
ID_PATTERN = r"^(?!\.{1,2}$)[A-Za-z0-9._:@+|'\-]{1,128}$"  # "." and ".." are no path segment
ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ : @ + | ' - (not . or ..)"
MAX_DEVICE_LEN = 128
MAX_LIMIT = 1000

_ID = re.compile(ID_PATTERN)


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None
