"""Text from callers that is shown to people: control characters are refused where it comes in
(a ``device`` label) and escaped wherever it goes out (CLI tables, text-format log lines), so a
value can neither clear a terminal, forge a line, nor reorder what is printed around it."""

from __future__ import annotations

import re

# C0 controls (newlines, ESC, BEL, NUL), DEL, C1 controls, the line and paragraph separators, and
# the bidi controls (marks, embeddings, overrides, isolates): Unicode TR 36 and CVE-2021-42574
UNSAFE_CLASS = r"\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
SAFE_TEXT_PATTERN = rf"^[^{UNSAFE_CLASS}]*$"  # for the OpenAPI document
UNSAFE_RULE = "control characters, line separators or bidi controls"

_UNSAFE = re.compile(f"[{UNSAFE_CLASS}]")
_PLAIN = re.compile(r'[^\s"\\=]+')  # a log field value printed as it is


def has_unsafe(text: str) -> bool:
    return _UNSAFE.search(text) is not None


def _escape_one(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escaped(text: str) -> str:
    """``text`` with every unsafe character written as ``\\xNN`` or ``\\uNNNN``."""
    return _UNSAFE.sub(_escape_one, text)


def field_value(value: object) -> str:
    """A ``key=value`` log field's value: as it is when plain, else quoted and escaped, so that
    no value can look like another field or another line."""
    text = str(value)
    if _PLAIN.fullmatch(text) and not has_unsafe(text):
        return text
    return '"' + escaped(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
