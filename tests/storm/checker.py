"""The checker: pure, deterministic functions proving the limiter's promises from a history alone.

Times are the driver's ``time.time()`` seconds; the store's reported times (``started_at``,
``expires_at``) come from the same machine's clock, so they are compared with send/receive
times within ``EPS`` (ms rounding, order of clock reads). A request with no answer, a 5xx, a
degraded or an unexpected answer has an unknown outcome: it may take effect any time after send.

Leases. Every admission (v1 start answered 201, compat start answered 200, a heartbeat answered
200 with ``readmitted: true``) is one lease, named by (stream id, reported started_at), so a
stream id admitted again is a new lease; a 200 to a start (a renewal) or any other heartbeat 200
extends the lease its started_at names, and admits nothing. A heartbeat of unknown outcome may have
admitted its stream again, like a start of unknown outcome.

- It was admitted no earlier than ``w_start = max(send, started_at - EPS)`` and certainly by
  ``begin = min(recv, started_at + 1 ms + EPS)`` (compat: ``send`` and ``recv``).
- It is certainly alive from ``begin`` until ``end_certain``: the earliest of its last reported
  ``expires_at - EPS`` (compat: send + legacy TTL) and, for every stop, stop-all or compat stop
  that may have removed it, ``max(send, w_start)``. A stop cannot have removed it if it was
  answered before ``w_start``, or before the send of a later request that still saw the lease.
- It is possibly alive until ``end_possible``: the earliest of its last reported
  ``expires_at + EPS`` (never, if a heartbeat or renewal of it has an unknown outcome) and the
  recv of a request sent after ``begin`` that removed it or saw it gone (stop 204, stop-all,
  heartbeat 404 or 410, a listing or refusal without it, compat 404/count 0, compat 403 for a
  legacy lease (a compat stop without an id removes only legacy leases), a re-admission of its
  id). A start of unknown outcome is a lease possibly alive from its send on, never certainly.

Devices. A v1 start with a device id replaces the device's other active leases (streams per
device: 1) and one naming a stream to replace stops it, in the same step as the admission: the
leases a 201 lists as replaced or evicted are removed within its window (a start of unknown
outcome may have removed the device's leases, or the named one, any time after its send), and a
404 to a start naming a stream says that stream was not active at an instant of its window.

Limits. The default until a PUT/DELETE of the user's limit applies, at an unknown instant of its
window (any time after send if its outcome is unknown). A value is possibly in force during
[s, t] if it is the default and no write certainly completed before s, or a write sent by t set
it and no write sent after that one was answered was itself answered before s.

Violations, by kind:

- over_admission: at each ``begin`` t, K = the leases certainly alive at t. The last of them to
  be admitted was admitted at an instant of [max w_start over K, t] while the other |K|-1 were
  alive; if |K|-1 reaches the largest limit possibly in force over that span, that start was
  admitted into a full user. This covers "a 201 while the leases certainly alive throughout its
  window reach every limit possible then", and concurrent starts that each saw a free slot. A
  limit lowered below the active count flags nothing: the span reaches back to the last
  admission, when the higher limit was possibly in force.
- active_over_limit: a 201 whose ``active`` exceeds its ``limit``, a compat admission whose
  ``activeStreams`` exceeds every limit possible in its window, or any other reported count
  (renewal, listing, refusal, stop-all) above every limit possibly in force up to its recv (after
  a lowering a renewal may legally report ``active`` above ``limit``, never above all of them).
- spurious_refusal: a 409 or compat 403 whose window had fewer possibly-alive leases (counting
  starts in flight or of unknown outcome, and leases whose stop was in flight) than the smallest
  limit possibly in force, i.e. a slot was certainly free, where the leases of the start's own
  device certainly alive throughout do not count (a reclaim frees their slot at once); one that
  reports ``active`` below its own ``limit``; or a 409 for a stream id certainly alive throughout
  (it should have renewed).
- negative_count: ``active``, ``remaining``, ``activeStreams``, ``stopped`` or ``limit`` below 0.
- server_error: every 5xx answer (counted, and an unknown outcome).
- inconsistent_answer: an answer saying a lease was gone (see ``end_possible``) while it was
  certainly alive, e.g. a heartbeat 404 or a 201 for a live id; a lease seen after it was
  certainly gone, or never admitted; a reported count outside [leases certainly alive throughout
  the window, leases possibly alive in it] (the admitted or renewed lease aside; a stop-all only
  against the upper bound); a limit not possibly in force; reported times outside the window.
- unexpected_response: a status or body the API does not give for that request.

Degraded answers are counted apart (``Report.degraded``, expected zero), not as violations.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

from tests.storm import Config, History, Op

EPS = 0.005
MS = 0.001
INF = math.inf
LEASE = ("stream_id", "started_at", "expires_at")
START = (*LEASE, "active", "limit")
SHAPES: dict[str, dict[int, tuple[str, ...]]] = {  # kind -> status -> members the body must have
    "start": {201: START, 200: START, 409: ("active", "limit", "streams"), 404: ("stream_id",)},
    "heartbeat": {200: LEASE, 404: (), 410: ()},
    "stop": {204: ()},
    "stop_all": {200: ("stopped",)},
    "list": {200: ("active", "limit", "remaining", "streams")},
    "set_limit": {200: ("limit",)},
    "clear_limit": {200: ("limit",)},
    "compat_start": {200: ("activeStreams", "streamId"), 403: ("activeStreams", "limit")},
    "compat_stop": {200: ("activeStreams", "streamId"), 403: (), 404: ("activeStreams",)},
    "compat_count": {200: ("activeStreams", "limit")},
}
COUNTS = ("active", "remaining", "activeStreams", "stopped", "limit")
LEGACY = "\0legacy"  # the key of answers about every legacy (compat-started) lease


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    user: str
    op: int  # index of the request at fault in ``History.ops``
    detail: str


@dataclass(slots=True)
class Report:
    ops: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, status|"error") -> n
    exercised: Counter[str] = field(default_factory=Counter)
    latency_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # kind -> (p50, p99)
    server_errors: int = 0
    transport_errors: int = 0
    degraded: int = 0
    unknown_outcomes: int = 0
    violations: list[Violation] = field(default_factory=list)

    def by_kind(self) -> Counter[str]:
        return Counter(v.kind for v in self.violations)


@dataclass(slots=True, eq=False)
class Lease:
    op: Op  # the start that admitted it, or whose outcome is unknown
    sid: str | None  # None: a compat start of unknown outcome (the server picks the id)
    started_ms: int | None  # the reported started_at (v1), part of its name
    w_start: float
    begin: float = INF  # INF: outcome unknown, never certainly admitted
    lo: float = -INF  # its expiry is certainly at least this (store clock)
    hi: float = INF  # and at most this
    last_seen: float = -INF  # latest send of a request that saw it alive
    end_certain: float = -INF
    end_possible: float = INF
    device: str | None = None  # the device id its start carried

    def __str__(self) -> str:
        return f"{self.sid}@op{self.op.index}[{self.w_start:.3f} {self.begin:.3f}..{self.end_certain:.3f}]"


def ts(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _key(entry: dict[str, Any]) -> tuple[str, int]:
    return entry["stream_id"], round(ts(entry["started_at"]) * 1000)


Window = tuple[float, float, int]  # (send, recv, op index); recv INF when the outcome is unknown


class _User:
    """One user's leases, removals and limit writes, indexed for the window queries."""

    def __init__(self, default: int) -> None:
        self.default = default
        self.ops: list[tuple[Op, bool]] = []  # (request, outcome known)
        self.leases: list[Lease] = []
        self.by_key: dict[tuple[str | None, int | None], Lease] = {}
        self.by_sid: defaultdict[str | None, list[Lease]] = defaultdict(list)
        self.admitted: dict[int, Lease] = {}  # op index -> the lease it admitted
        self.unknown: set[str | None] = set()  # stream ids of starts with unknown outcome
        self.writes: list[tuple[float, float, int]] = []  # limit writes: send, recv, value
        self.removers: defaultdict[str | None, list[Window]] = defaultdict(list)  # None: all
        self.deaths: defaultdict[str | None, list[Window]] = defaultdict(list)  # None: all
        self.listings: list[tuple[Op, set[str], set[tuple[str, int]]]] = []
        self.device_sids: defaultdict[str, set[str]] = defaultdict(set)  # device id -> stream ids

    def add(self, lease: Lease) -> None:
        self.leases.append(lease)
        self.by_sid[lease.sid].append(lease)
        if lease.begin == INF:
            self.unknown.add(lease.sid)
        else:
            self.by_key[(lease.sid, lease.started_ms)] = lease
            self.admitted[lease.op.index] = lease

    def find(self, entry: dict[str, Any]) -> Lease | None:
        return self.by_key.get(_key(entry)) or self.by_key.get((entry["stream_id"], None))

    def index(self) -> None:
        self.leases.sort(key=lambda x: x.w_start)
        self.finite = [x for x in self.leases if x.end_possible < INF]
        self.unbounded = [x for x in self.leases if x.end_possible == INF]
        self.starts = [x.w_start for x in self.finite]
        self.max_life = max((x.end_possible - x.w_start for x in self.finite), default=0.0)
        done = [w for w in self.writes if w[1] < INF]
        self.initial_until = min((w[1] for w in done), default=INF)
        self.replaced = [min((d[1] for d in done if d[0] > w[1]), default=INF) for w in self.writes]

    def around(self, s: float, t: float) -> Iterator[Lease]:
        i, j = bisect_left(self.starts, s - self.max_life), bisect_right(self.starts, t)
        return chain(self.finite[i:j], self.unbounded)

    def certain(self, s: float, t: float, skip: Lease | None = None) -> list[Lease]:
        """Leases certainly alive throughout [s, t]."""
        return [x for x in self.around(s, t) if x is not skip and x.begin <= s and x.end_certain > t]

    def possible(self, s: float, t: float, skip: Lease | None = None) -> list[Lease]:
        """Leases possibly alive at some instant of [s, t]."""
        return [x for x in self.around(s, t) if x is not skip and x.w_start <= t and x.end_possible >= s]

    def limits(self, s: float, t: float) -> list[int]:
        """Every limit possibly in force at some instant of [s, t]."""
        values = [self.default] if self.initial_until >= s else []
        pairs = zip(self.writes, self.replaced, strict=True)
        return values + [w[2] for w, until in pairs if w[0] <= t and until >= s]


def _response_ok(op: Op, report: Report) -> bool:
    """Tally the answer; True when it is one the API gives for the request (a known outcome)."""
    report.ops[(op.kind, "error" if op.status is None else str(op.status))] += 1
    body = op.body or {}
    fail = report.violations.append
    for name in COUNTS:
        if isinstance(body.get(name), int) and body[name] < 0:
            fail(Violation("negative_count", op.user, op.index, f"{op.kind} {op.status}: {body}"))
    if op.status is None:
        report.transport_errors += 1
    elif op.status >= 500:
        report.server_errors += 1
        fail(Violation("server_error", op.user, op.index, f"{op.kind} answered {op.status}: {body}"))
    elif op.degraded:
        report.degraded += 1
    elif not all(f in body for f in SHAPES[op.kind].get(op.status, ("<no such status>",))):
        fail(Violation("unexpected_response", op.user, op.index, f"{op.kind} {op.status}: {body}"))
    else:
        return True
    report.unknown_outcomes += 1
    return False


def _admissions(u: _User, op: Op, ok: bool, cfg: Config, out: list[Violation]) -> None:
    """Leases (admitted, or starts of unknown outcome) and limit writes."""
    body, recv = op.body or {}, op.recv if ok and op.recv is not None else INF
    readmitted = op.kind == "heartbeat" and op.status == 200 and ok and body.get("readmitted") is True
    if op.kind == "start" and op.device_id is not None and op.stream_id is not None:
        u.device_sids[op.device_id].add(op.stream_id)
    if op.kind in ("start", "compat_start", "heartbeat") and not ok:
        device = op.device_id if op.kind == "start" else None
        u.add(Lease(op, op.stream_id, None, op.send, device=device))  # a heartbeat may admit it again
    elif (op.kind == "start" and op.status == 201) or readmitted:
        started, expires = ts(body["started_at"]), ts(body["expires_at"])
        device = op.device_id if op.kind == "start" else None
        lease = Lease(
            op, body["stream_id"], round(started * 1000), max(op.send, started - EPS), device=device
        )
        lease.begin, lease.lo, lease.hi = min(recv, started + MS + EPS), expires, expires
        bad_ttl = abs(expires - started - cfg.lease_ttl_s) > 2 * MS
        if lease.w_start > lease.begin or bad_ttl or body["stream_id"] != op.stream_id:
            out.append(Violation("inconsistent_answer", op.user, op.index, f"times outside window: {body}"))
            lease.w_start, lease.begin = op.send, recv
        u.add(lease)
    elif op.kind == "compat_start" and op.status == 200:
        ttl = cfg.legacy_lease_ttl_s
        u.add(Lease(op, body["streamId"], None, op.send, recv, op.send + ttl, recv + ttl))
    elif op.kind in ("set_limit", "clear_limit"):
        value = op.arg if op.kind == "set_limit" else u.default
        assert value is not None
        if ok and (body["limit"] != value or body.get("default") is not (op.kind == "clear_limit")):
            out.append(Violation("inconsistent_answer", op.user, op.index, f"limit write answered {body}"))
        u.writes.append((op.send, recv, value))


def _evidence(u: _User, op: Op, ok: bool, cfg: Config, out: list[Violation]) -> None:
    """What the answer says about leases: seen alive (expiry, sighting), removed, or gone."""
    body, sid, window = op.body or {}, op.stream_id, (op.send, op.recv if ok and op.recv else INF, op.index)
    entries: list[dict[str, Any]] = []
    if op.kind in ("stop", "compat_stop") and (not ok or op.status == 200 or sid is not None):
        removed = body["streamId"] if ok and op.status == 200 else sid
        if not (ok and op.status == 404):
            u.removers[removed].append(window)
        if ok and op.status != 403:
            u.deaths[removed].append(window)  # removed by the stop, or not active at it
    if op.kind == "stop_all":
        u.removers[None].append(window)
    if op.kind == "start":
        _replacements(u, op, ok, window)
    if ok and (op.kind, op.status) in (("stop_all", 200), ("heartbeat", 404), ("heartbeat", 410)):
        u.deaths[None if op.kind != "heartbeat" else sid].append(window)
    if ok and (op.kind, op.status) == ("compat_stop", 403):
        u.deaths[LEGACY].append(window)  # no legacy lease was active; v1 ones may be
    if ok and op.kind == "compat_count" and body["activeStreams"] == 0:
        u.deaths[None].append(window)
    if not ok and op.kind in ("start", "heartbeat"):
        for lease in u.by_sid.get(sid, []):
            lease.hi = INF  # it may have been renewed at any time
    elif ok and op.kind in ("start", "heartbeat") and op.status == 200:
        entries = [body]
        assert op.recv is not None
        expires, ttl = ts(body["expires_at"]), cfg.lease_ttl_s
        if not op.send + ttl - EPS <= expires <= op.recv + ttl + EPS or body["stream_id"] != sid:
            out.append(Violation("inconsistent_answer", op.user, op.index, f"expiry outside window: {body}"))
    elif ok and (op.kind, op.status) in (("start", 409), ("list", 200)):
        entries = body["streams"]
        u.listings.append((op, {e["stream_id"] for e in entries}, {_key(e) for e in entries}))
    for entry in entries:
        seen = u.find(entry)
        if seen is None:
            if entry["stream_id"] not in u.unknown and None not in u.unknown:
                out.append(Violation("inconsistent_answer", op.user, op.index, f"never admitted: {entry}"))
            continue
        expires = ts(entry["expires_at"])
        seen.lo, seen.hi = max(seen.lo, expires), max(seen.hi, expires)
        seen.last_seen = max(seen.last_seen, op.send)


def _replacements(u: _User, op: Op, ok: bool, window: Window) -> None:
    """A start's removals: the leases its 201 lists as replaced or evicted (certainly gone by its
    answer), whatever it may have removed when its outcome is unknown, and a 404's named stream."""
    body = op.body or {}
    if ok and op.status == 201:
        for entry in [*body.get("replaced_streams", []), *body.get("evicted_streams", [])]:
            u.removers[entry["stream_id"]].append(window)
            u.deaths[entry["stream_id"]].append(window)
    elif ok and op.status == 404 and op.replace is not None:
        u.deaths[op.replace].append(window)  # not active at an instant of the window
    elif not ok:
        named = {op.replace} if op.replace is not None else set()
        mine = u.device_sids[op.device_id] if op.device_id is not None else set()
        for sid in (named | mine) - {op.stream_id}:
            u.removers[sid].append((op.send, INF, op.index))


def _suffix_min(values: list[tuple[float, int]]) -> list[tuple[float, int]]:
    out = [*values, (INF, -1)]
    for i in range(len(values) - 1, -1, -1):
        out[i] = min(out[i], out[i + 1])
    return out


def _ends(u: _User, name: str, out: list[Violation]) -> None:
    """Each admitted lease's certain and possible ends; flags answers that contradict them."""
    wide_r = sorted(u.removers[None], key=lambda w: w[1])
    wide_r_recv, wide_r_send = [w[1] for w in wide_r], _suffix_min([(w[0], w[2]) for w in wide_r])
    wide_d = sorted(u.deaths[None])
    wide_d_send, wide_d_recv = [w[0] for w in wide_d], _suffix_min([(w[1], w[2]) for w in wide_d])
    legacy_d = sorted(u.deaths[None] + u.deaths[LEGACY])
    legacy_d_send, legacy_d_recv = [w[0] for w in legacy_d], _suffix_min([(w[1], w[2]) for w in legacy_d])
    u.listings.sort(key=lambda x: x[0].send)
    listing_send = [x[0].send for x in u.listings]
    for lease in u.leases:
        if lease.begin == INF:
            continue
        if lease.op.kind == "compat_start":
            any_d = legacy_d_recv[bisect_left(legacy_d_send, lease.begin)]
        else:
            any_d = wide_d_recv[bisect_left(wide_d_send, lease.begin)]
        gone = min(  # certainly gone by then, and which answer says so
            [
                (lease.hi + EPS, -1),
                any_d,
                *((r, i) for s, r, i in u.deaths.get(lease.sid, []) if s >= lease.begin),
                *(
                    (x.begin, x.op.index)
                    for x in u.by_sid[lease.sid]
                    if x.w_start >= lease.begin and x is not lease
                ),
            ]
        )
        for op, sids, keys in u.listings[bisect_left(listing_send, lease.begin) :]:
            if op.send >= gone[0]:
                break
            if not (lease.sid in sids if lease.started_ms is None else (lease.sid, lease.started_ms) in keys):
                gone = min(gone, (op.recv or INF, op.index))
                break
        r0 = max(lease.w_start, lease.last_seen)  # a stop that finished by then removed nothing
        cut = min([lease.lo - EPS, *(s for s, r, _ in u.removers.get(lease.sid, []) if r > r0)])
        alive_until = max(lease.w_start, min(cut, wide_r_send[bisect_right(wide_r_recv, r0)][0]))
        if gone[0] < alive_until:
            why = f"says {lease} was gone while certainly alive until {alive_until:.3f}"
            out.append(Violation("inconsistent_answer", name, gone[1], why))
        if lease.last_seen > gone[0]:
            out.append(Violation("inconsistent_answer", name, lease.op.index, f"seen after gone: {lease}"))
        lease.end_certain, lease.end_possible = min(alive_until, gone[0]), gone[0]


def _over_admission(u: _User, name: str, out: list[Violation]) -> None:
    alive: list[Lease] = []
    for lease in sorted((x for x in u.leases if x.begin < x.end_certain), key=lambda x: x.begin):
        t = lease.begin
        alive = [x for x in alive if x.end_certain > t] + [lease]
        last = max(alive, key=lambda x: x.w_start)  # the latest of them to be admitted
        cap = max(u.limits(last.w_start, t))
        if len(alive) - 1 >= cap:
            held = ", ".join(map(str, alive))
            detail = (
                f"{len(alive)} certainly alive at {t:.3f}, limit <= {cap} from {last.w_start:.3f}: {held}"
            )
            out.append(Violation("over_admission", name, last.op.index, detail))


COUNT_OF = {  # (kind, status) -> (member, offset): the others alive when the request ran
    ("start", 201): ("active", -1),
    ("start", 200): ("active", -1),
    ("start", 409): ("active", 0),
    ("list", 200): ("active", 0),
    ("stop_all", 200): ("stopped", 0),
    ("compat_start", 200): ("activeStreams", -1),
    ("compat_start", 403): ("activeStreams", 0),
    ("compat_stop", 200): ("activeStreams", 1),
    ("compat_stop", 404): ("activeStreams", 0),
    ("compat_count", 200): ("activeStreams", 0),
}


def _answer(u: _User, name: str, op: Op, out: list[Violation]) -> None:
    """The count, limit and refusal one known answer reports, against the leases and limits."""
    body, at = op.body or {}, (op.kind, op.status)
    assert op.recv is not None
    mine = u.admitted.get(op.index) or (u.find(body) if at == ("start", 200) else None)
    admitted = mine is not None and mine.op is op
    s, t = (mine.w_start, mine.begin) if mine is not None and admitted else (op.send, op.recv)
    refusal = at in (("start", 409), ("compat_start", 403))

    def flag(kind: str, why: str) -> None:
        lo, hi = [str(x) for x in u.certain(s, t, mine)], [str(x) for x in u.possible(s, t, mine)]
        why += f"; certainly alive {lo}, possibly {hi}, limits {u.limits(s, t)}"
        out.append(Violation(kind, name, op.index, f"{op.kind} {op.status} {body}: {why}"))

    if op.kind == "start" and refusal and any(x.sid == op.stream_id for x in u.certain(s, t)):
        flag("spurious_refusal", "refused the renewal of a stream certainly alive")
    if "limit" in body and body["limit"] not in u.limits(s, t):
        flag("inconsistent_answer", f"limit {body['limit']} not possibly in force")
    if at not in COUNT_OF or (at == ("start", 200) and mine is None):
        return
    member, offset = COUNT_OF[at]
    count = body.get(member, 0) + offset
    lo, hi = len(u.certain(s, t, mine)), len(u.possible(s, t, mine))
    if at in (("stop_all", 200), ("compat_stop", 200)):
        lo = 0  # its own removal cuts the certain lives short: only the upper bound holds
    if not lo <= count <= hi:
        flag("inconsistent_answer", f"{count} others alive, not in [{lo}, {hi}]")
    after = count + (mine is not None)
    if admitted:
        cap = body["limit"] if op.kind == "start" else max(u.limits(s, t))
    else:
        cap = max(u.limits(-INF, t))  # counts above a lowered limit are legal, above every limit not
    if after > cap:
        flag("active_over_limit", f"{after} alive, limit at most {cap}")
    if op.kind == "start" and refusal and op.device_id is not None:  # a reclaim frees their slot
        own = {id(x) for x in u.certain(s, t) if x.device == op.device_id}
        hi = len([x for x in u.possible(s, t, mine) if id(x) not in own])
    if refusal and (hi < min(u.limits(s, t)) or count < body["limit"]):
        flag("spurious_refusal", f"at most {hi} alive, limit at least {min(u.limits(s, t))}")


def _tally(history: History, users: dict[str, _User], report: Report) -> None:
    n, x = report.ops, report.exercised
    x["admissions"] = n["start", "201"] + n["compat_start", "200"]
    x["renewals"] = n["start", "200"]
    x["refusals"] = n["start", "409"] + n["compat_start", "403"]
    x["heartbeats"] = n["heartbeat", "200"]
    x["heartbeats_not_active"] = n["heartbeat", "404"]
    x["heartbeats_ended"] = n["heartbeat", "410"]
    x["readmissions"] = sum(
        1
        for op in history.ops
        if op.kind == "heartbeat" and op.status == 200 and (op.body or {}).get("readmitted")
    )
    x["stops"] = n["stop", "204"] + n["compat_stop", "200"]
    x["replaced_targets_gone"] = n["start", "404"]
    for op in history.ops:
        if op.kind == "start" and op.status == 201 and op.body:
            x["reclaims"] += len(op.body.get("replaced_streams", []))
            x["replaced_by_choice"] += len(op.body.get("evicted_streams", []))
    x["stop_alls"] = n["stop_all", "200"]
    x["limit_changes"] = n["set_limit", "200"] + n["clear_limit", "200"]
    x["compat"] = sum(v for (kind, _), v in n.items() if kind.startswith("compat"))
    for op in history.ops:
        if op.kind == "stop_all" and op.status == 200 and op.body:
            x["stopped_by_stop_all"] += op.body["stopped"]
    for u in users.values():  # leases nothing could have removed, that ran out before the end
        x["expired"] += sum(
            1
            for lease in u.leases
            if lease.begin < INF
            and lease.end_certain == lease.lo - EPS
            and lease.end_possible == lease.hi + EPS < history.ended
        )
    latencies: defaultdict[str, list[float]] = defaultdict(list)
    for op in history.ops:
        if op.latency is not None:
            latencies[op.kind].append(op.latency * 1000)
    for kind, values in latencies.items():
        values.sort()
        report.latency_ms[kind] = (values[len(values) // 2], values[len(values) * 99 // 100])


def check(history: History) -> Report:
    """Every rule of the module docstring over ``history``; deterministic, no I/O."""
    cfg, report = history.config, Report()
    out = report.violations
    users: dict[str, _User] = {}
    for op in history.ops:
        u = users.setdefault(op.user, _User(cfg.default_limit))
        ok = _response_ok(op, report)
        u.ops.append((op, ok))
        _admissions(u, op, ok, cfg, out)
    for name, u in users.items():
        for op, ok in u.ops:
            _evidence(u, op, ok, cfg, out)
        _ends(u, name, out)
        u.index()
        _over_admission(u, name, out)
        for op, ok in u.ops:
            if ok:
                _answer(u, name, op, out)
    _tally(history, users, report)
    return report
