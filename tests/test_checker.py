"""The storm checker (``tests/storm/checker.py``), three ways.

- Small hand-made histories (times in seconds after ``T0``, one user ``u``): each violation
  kind has one that must be flagged, next to legal ones that look alike and must not be: a
  limit lowered below the active count, a stop or a start in flight, an expired lease, a renewal.
- Random histories answered by a correct store, at a random instant of each request's window,
  with lost answers: nothing may be flagged. The same with stores that break one rule now and
  then: that rule's violation must be.
- The real app served in-process with a read-then-write store, driven by the storm's driver:
  the checker must report over-admission.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import uvicorn

from streamlimit.api import create_app
from streamlimit.api.render import rfc3339, stream_body
from streamlimit.models import Beat, EndReason, Limits, Start, StartResult, StartStatus
from streamlimit.settings import Settings
from streamlimit.store.memory import FakeClock, MemoryStore
from tests.servers import free_port
from tests.storm import Config, History, Op
from tests.storm.checker import check
from tests.storm.driver import SERVICE_SETTINGS, Plan, config_of, run_storm

T0 = 1_800_000_000.0
TTL = 10.0
LEGACY_TTL = 20.0


def stamp(t: float) -> str:
    ms = round((T0 + t) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class Story:
    """A hand-made history of user ``u``; leases are remembered to fill listings."""

    def __init__(self, default_limit: int = 2) -> None:
        self.history = History(Config(default_limit, TTL, 1.0, LEGACY_TTL), started=T0, ended=T0 + 1000)
        self.leases: dict[str, dict[str, Any]] = {}

    def add(self, kind: Any, send: float, recv: float | None, status: int | None, **kw: Any) -> Op:
        op = Op(len(self.history.ops), 0, "u", kind, kw.pop("sid", None), T0 + send, **kw)
        op.recv, op.status = (None, None) if recv is None else (T0 + recv, status)
        self.history.ops.append(op)
        return op

    def lease(self, sid: str, started: float, expires: float) -> dict[str, Any]:
        body = {"user_id": "u", "stream_id": sid, "device": None}
        return body | {"started_at": stamp(started), "expires_at": stamp(expires)}

    def start(self, sid: str, send: float, recv: float, active: int = 1, limit: int = 2, **kw: Any) -> Op:
        """A 201 run at ``at`` (default: mid-window)."""
        at = kw.pop("at", round((send + recv) / 2, 3))
        self.leases[sid] = self.lease(sid, at, at + TTL)
        body = self.leases[sid] | {"active": active, "limit": limit}
        return self.add("start", send, recv, kw.pop("status", 201), sid=sid, body=body, **kw)

    def renew(self, kind: Any, sid: str, send: float, recv: float, **extra: Any) -> Op:
        """A heartbeat or start answered 200: the lease now expires at ``recv + TTL``."""
        self.leases[sid] = self.leases[sid] | {"expires_at": stamp(round(recv, 3) + TTL)}
        return self.add(kind, send, recv, 200, sid=sid, body=self.leases[sid] | extra)

    def refuse(self, sid: str, send: float, recv: float, alive: list[str], limit: int = 2) -> Op:
        body = {"code": "stream_limit_reached", "active": len(alive), "limit": limit}
        return self.add("start", send, recv, 409, sid=sid, body=body | {"streams": self.entries(alive)})

    def entries(self, sids: list[str]) -> list[dict[str, Any]]:
        return [self.leases[s] for s in sids]

    def kinds(self) -> Counter[str]:
        return check(self.history).by_kind()


def test_a_correct_history_has_no_violation() -> None:
    s = Story()
    s.start("a", 0, 0.01)
    s.start("b", 1, 1.01, active=2)
    s.refuse("c", 2, 2.01, ["a", "b"])
    s.renew("heartbeat", "a", 3, 3.01)
    s.add("stop", 4, 4.01, 204, sid="b")
    s.start("c", 5, 5.01, active=2)
    s.add(
        "list", 6, 6.01, 200, body={"active": 2, "limit": 2, "remaining": 0, "streams": s.entries(["a", "c"])}
    )
    s.add("stop_all", 7, 7.01, 200, body={"stopped": 2})
    s.add("heartbeat", 8, 8.01, 404, sid="a", body={"code": "stream_not_active"})
    report = check(s.history)
    assert report.violations == []
    assert report.exercised["admissions"] == 3
    assert report.exercised["refusals"] == 1


def test_a_reclaim_frees_its_devices_slot_at_once() -> None:
    s = Story()
    s.start("a", 0, 0.01, device_id="tv")
    s.start("b", 1, 1.01, active=2, device_id="phone")
    c = s.start("c", 2, 2.01, active=2, device_id="tv")  # the TV restarted: "a" gives way
    assert c.body is not None
    c.body["replaced_streams"] = s.entries(["a"])
    s.add("heartbeat", 3, 3.01, 410, sid="a", body={"code": "stream_replaced", "replaced_by": "c"})
    s.add(
        "list", 4, 4.01, 200, body={"active": 2, "limit": 2, "remaining": 0, "streams": s.entries(["b", "c"])}
    )
    report = check(s.history)
    assert report.violations == []
    assert report.exercised["reclaims"] == 1


def test_a_reclaim_that_keeps_the_old_lease_is_over_admission() -> None:
    s = Story()
    s.start("a", 0, 0.01, device_id="tv")
    s.start("b", 1, 1.01, active=2, device_id="phone")
    s.start("c", 2, 2.01, active=2, device_id="tv")  # lists no replaced stream: "a" still holds
    s.add(
        "list",
        4,
        4.01,
        200,
        body={"active": 3, "limit": 2, "remaining": 0, "streams": s.entries(["a", "b", "c"])},
    )
    assert s.kinds()["over_admission"] > 0


def test_refusing_a_restarted_device_is_spurious() -> None:
    s = Story()
    s.start("a", 0, 0.01, device_id="tv")
    s.start("b", 1, 1.01, active=2, device_id="phone")
    s.add(
        "start", 2, 2.01, 409, sid="c", device_id="tv",
        body={"active": 2, "limit": 2, "streams": s.entries(["a", "b"])},
    )  # fmt: skip
    assert s.kinds()["spurious_refusal"] == 1


def test_a_stream_replaced_by_choice_is_gone_at_once() -> None:
    s = Story()
    s.start("a", 0, 0.01)
    s.start("b", 1, 1.01, active=2)
    c = s.start("c", 2, 2.01, active=2, replace="a")
    assert c.body is not None
    c.body["evicted_streams"] = s.entries(["a"])
    s.add("start", 3, 3.01, 404, sid="d", replace="a", body={"code": "stream_not_active", "stream_id": "a"})
    assert check(s.history).violations == []
    s.renew("heartbeat", "a", 4, 4.01)  # but it is gone: a heartbeat cannot renew it
    assert s.kinds()["inconsistent_answer"] > 0


def test_sequential_admissions_beyond_the_limit_are_over_admission() -> None:
    s = Story()
    s.start("a", 0, 0.01)
    s.start("b", 1, 1.01, active=2)
    s.start("c", 2, 2.01, active=2)  # the store even claims only 2 are active
    assert s.kinds()["over_admission"] == 1


def test_concurrent_admissions_beyond_the_limit_are_over_admission() -> None:
    """Three starts in flight together, all admitted: once all answered, three are alive."""
    s = Story()
    for i, sid in enumerate("abc"):
        s.start(sid, 0, 0.2, active=1, at=0.05 + i * 0.01)
    assert s.kinds()["over_admission"] == 1


def test_a_201_reporting_more_active_than_its_limit_is_flagged() -> None:
    s = Story()
    s.start("a", 0, 0.01, active=3)
    assert s.kinds()["active_over_limit"] == 1


def test_lowering_the_limit_below_the_active_count_is_legal() -> None:
    s = Story()
    s.start("a", 0, 0.01)
    s.start("b", 1, 1.01, active=2)
    s.add("set_limit", 2, 2.01, 200, arg=1, body={"user_id": "u", "limit": 1, "default": False})
    s.renew("start", "a", 3, 3.01, active=2, limit=1)  # 2 alive over a limit of 1: legal
    s.renew("heartbeat", "b", 3.5, 3.51)
    s.refuse("c", 4, 4.01, ["a", "b"], limit=1)
    s.add("stop_all", 5, 5.01, 200, body={"stopped": 2})
    assert s.kinds() == Counter()


def test_an_admission_into_a_lowered_limit_is_over_admission() -> None:
    s = Story()
    s.start("a", 0, 0.01)
    s.add("set_limit", 1, 1.01, 200, arg=1, body={"user_id": "u", "limit": 1, "default": False})
    s.start("b", 2, 2.01, active=2, limit=2)  # pretends the old limit held
    kinds = s.kinds()
    assert kinds["over_admission"] == 1
    assert kinds["inconsistent_answer"] == 1


def test_a_limit_raise_in_flight_may_admit() -> None:
    s = Story(default_limit=1)
    s.start("a", 0, 0.01, limit=1)
    s.add("set_limit", 5, 6, 200, arg=2, body={"user_id": "u", "limit": 2, "default": False})
    s.start("b", 5.2, 5.3, active=2, limit=2)
    assert s.kinds() == Counter()


def test_a_start_admitted_while_a_stop_is_in_flight_is_legal() -> None:
    s = Story(default_limit=1)
    s.start("a", 0, 0.01, limit=1)
    s.add("stop", 5, 6, 204, sid="a")
    s.start("b", 5.1, 5.2, limit=1)
    assert s.kinds() == Counter()
    s.add("stop", 7, 7.01, 204, sid="b")
    s.start("c", 8, 8.01, limit=1)
    s.start("d", 9.1, 9.2, limit=1)
    s.add("stop", 9.3, 9.5, 204, sid="c")  # sent after d was answered: c was certainly alive
    assert s.kinds()["over_admission"] == 1


@pytest.mark.parametrize(("at", "legal"), [(10.1, True), (9.9, False)])
def test_an_expired_lease_frees_its_slot(at: float, legal: bool) -> None:
    s = Story(default_limit=1)
    s.start("a", 0, 0.01, at=0.005, limit=1)  # expires at 10.005
    s.start("b", at, at + 0.01, limit=1)
    assert s.kinds()["over_admission"] == (0 if legal else 1)
    assert legal == (s.kinds() == Counter())


def test_a_heartbeat_extends_the_lease_it_names() -> None:
    s = Story(default_limit=1)
    s.start("a", 0, 0.01, limit=1)
    s.renew("heartbeat", "a", 9, 9.01)  # now expires at 19.01
    s.start("b", 12, 12.01, limit=1)
    assert s.kinds()["over_admission"] == 1


def test_a_renewal_is_not_an_admission() -> None:
    s = Story(default_limit=1)
    s.start("a", 0, 0.01, limit=1)
    s.renew("start", "a", 1, 1.01, active=1, limit=1)
    s.renew("start", "a", 1.005, 1.02, active=1, limit=1)
    assert s.kinds() == Counter()


def test_a_refusal_with_a_certainly_free_slot_is_spurious() -> None:
    s = Story()
    s.start("a", 0, 0.01)
    s.refuse("b", 1, 1.01, ["a", "a"])  # claims two alive, but only a exists
    assert s.kinds()["spurious_refusal"] == 1


def test_a_refusal_of_an_active_stream_id_is_spurious() -> None:
    s = Story(default_limit=1)
    s.start("a", 0, 0.01, limit=1)
    s.refuse("a", 1, 1.01, ["a"], limit=1)  # starting an active id renews it
    assert s.kinds()["spurious_refusal"] == 1


def test_refusals_while_a_start_or_a_stop_is_in_flight_are_legal() -> None:
    s = Story(default_limit=1)
    s.add("start", 0, None, None, sid="x", error="ReadTimeout")  # outcome unknown
    s.add("start", 0.5, 0.51, 409, sid="y", body={"active": 1, "limit": 1, "streams": []})
    assert s.kinds()["spurious_refusal"] == 0
    s = Story(default_limit=1)
    s.start("a", 0, 0.01, limit=1)
    s.add("stop", 5, 6, 204, sid="a")
    s.refuse("b", 5.1, 5.2, ["a"], limit=1)
    assert s.kinds() == Counter()


def test_negative_counts_are_flagged() -> None:
    s = Story()
    s.add("list", 0, 0.01, 200, body={"active": 0, "limit": 2, "remaining": -1, "streams": []})
    s.add("compat_count", 1, 1.01, 200, body={"activeStreams": -1, "limit": 2, "message": "?"})
    assert s.kinds()["negative_count"] == 2


def test_every_5xx_is_a_violation_and_an_unknown_outcome() -> None:
    s = Story(default_limit=1)
    s.add("start", 0, 0.01, 500, sid="x", body={"code": "internal"})
    s.add("start", 0.5, 0.51, 409, sid="y", body={"active": 1, "limit": 1, "streams": []})
    report = check(s.history)
    assert report.by_kind() == Counter({"server_error": 1})
    assert report.server_errors == 1


def test_degraded_answers_are_counted_apart_and_not_trusted() -> None:
    s = Story(default_limit=1)
    s.start("a", 0, 0.01, limit=1, status=200, degraded=True)
    s.start("b", 1, 1.01, limit=1)  # the degraded "a" may not exist: no over-admission
    report = check(s.history)
    assert (report.degraded, report.violations) == (1, [])


CONTRADICTIONS: dict[str, Callable[[Story], object]] = {
    "heartbeat 404 while alive": lambda s: s.add("heartbeat", 1, 1.01, 404, sid="a", body={}),
    "listing without it": lambda s: s.add(
        "list", 1, 1.01, 200, body={"active": 0, "limit": 2, "remaining": 2, "streams": []}
    ),
    "count below the alive": lambda s: s.add(
        "compat_count", 1, 1.01, 200, body={"activeStreams": 0, "limit": 2}
    ),
    "201 for an alive id": lambda s: s.start("a", 1, 1.01, active=1),
    "alive after its stop": lambda s: (
        s.add("stop", 1, 1.01, 204, sid="a"),
        s.renew("heartbeat", "a", 2, 2.01),
    ),
    "never admitted": lambda s: s.add("heartbeat", 1, 1.01, 200, sid="z", body=s.lease("z", 0.5, 11.01)),
    "time outside its request": lambda s: s.start("b", 1, 1.01, active=2, at=5),
    "limit never set": lambda s: s.renew("start", "a", 1, 1.01, active=1, limit=3),
}


@pytest.mark.parametrize("case", CONTRADICTIONS)
def test_answers_that_contradict_the_history_are_inconsistent(case: str) -> None:
    s = Story()
    s.start("a", 0, 0.01)
    CONTRADICTIONS[case](s)
    assert s.kinds()["inconsistent_answer"] >= 1, case


def test_unexpected_statuses_and_bodies_are_flagged() -> None:
    s = Story()
    s.add("start", 0, 0.01, 404, sid="a", body={"code": "not_found"})
    s.add("list", 1, 1.01, 200, body={"active": 0})
    assert s.kinds()["unexpected_response"] == 2


def test_compat_streams_are_leases_with_the_legacy_ttl() -> None:
    s = Story(default_limit=1)
    s.add("compat_start", 0, 0.01, 200, body={"activeStreams": 1, "streamId": "k1"})
    s.add("compat_start", 1, 1.01, 403, body={"activeStreams": 1, "limit": 1})
    s.add("compat_start", 15, 15.01, 200, body={"activeStreams": 2, "streamId": "k2"})  # k1 alive
    kinds = s.kinds()
    assert kinds["over_admission"] == 1
    assert kinds["spurious_refusal"] == 0
    s = Story(default_limit=1)
    s.add("compat_start", 0, 0.01, 200, body={"activeStreams": 1, "streamId": "k1"})
    s.add("compat_stop", 2, 2.01, 200, body={"activeStreams": 0, "streamId": "k1"})
    s.add("compat_start", 3, 3.01, 200, body={"activeStreams": 1, "streamId": "k2"})
    s.add("compat_start", 30, 30.01, 200, body={"activeStreams": 1, "streamId": "k3"})  # k2 expired
    assert s.kinds() == Counter()


class ReadThenWriteStore(MemoryStore):
    """The original design's bug: start reads the count, yields, then writes without a check."""

    async def start(
        self, user_id: str, stream_id: str, device: str | None, ttl_ms: int, limits: Limits, how: Start
    ) -> StartResult:
        seen = await self.list(user_id, limits)
        if len(seen.streams) >= seen.limit or stream_id in {s.stream_id for s in seen.streams}:
            return await super().start(user_id, stream_id, device, ttl_ms, limits, how)
        await asyncio.sleep(0)  # the round trip between the read and the write
        now = self._clock()
        user = self._user(user_id, now)
        stream = self._admit(user, user_id, stream_id, device, now + ttl_ms, now, how.legacy)
        return StartResult(StartStatus.ADMITTED, stream, len(user.leases), seen.limit)


async def storm_against_broken_store(seconds: float) -> History:
    config = config_of(SERVICE_SETTINGS)
    settings = Settings(
        store_url="memory://",
        default_limit=config.default_limit,
        lease_ttl_s=config.lease_ttl_s,
        heartbeat_interval_s=config.heartbeat_interval_s,
        legacy_lease_ttl_s=config.legacy_lease_ttl_s,
    )
    port = free_port()
    app = create_app(settings, store=ReadThenWriteStore())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "the server did not start"
        await asyncio.sleep(0.01)
    try:  # few users, quick retries: many starts for one user in flight at once
        plan = Plan(seconds=seconds, clients=200, users=10, pools=8, retry_s=(0.2, 1.0))
        return await run_storm([f"http://127.0.0.1:{port}"], plan, config)
    finally:
        server.should_exit = True
        await serving


@pytest.mark.slow
def test_the_checker_catches_a_read_then_write_store() -> None:
    history = asyncio.run(storm_against_broken_store(4.0))
    report = check(history)
    seen = (report.exercised, report.by_kind(), [str(v) for v in report.violations[:5]])
    assert report.exercised["admissions"] > 0, seen
    assert report.server_errors == 0, seen
    assert report.by_kind()["over_admission"] > 0, seen


async def simulate(seed: int, ops: int = 400, store_type: type[MemoryStore] = MemoryStore) -> History:
    """Random requests of 3 users, run one at a time at a random instant of their window on a
    correct store (the memory store, on a clock set to that instant), answered as the API
    answers; now and then the answer is lost. The checker must find nothing to flag."""
    rng = random.Random(seed)
    config = Config(2, 3.0, 1.0, 5.0)
    clock = FakeClock()
    store = store_type(clock)
    planned: list[tuple[float, Op]] = []
    for i in range(ops):
        send = rng.uniform(0, 40)
        run, recv = send + rng.expovariate(4), send + rng.expovariate(4)
        kind = rng.choice(KINDS)
        sid = f"s{rng.randrange(6)}" if kind in ("start", "heartbeat", "stop") else None
        op = Op(i, 0, f"u{rng.randrange(3)}", kind, sid, T0 + send, arg=rng.randrange(5))
        if kind == "start":  # a player's device, and now and then a stream to replace
            op.device_id = rng.choice((None, "d0", "d1", "d2"))
            op.replace = f"s{rng.randrange(6)}" if rng.random() < 0.15 else None
        op.recv = None if rng.random() < 0.03 else T0 + max(run, recv)
        planned.append((T0 + min(run, recv), op))
    for at, op in sorted(planned, key=lambda p: p[0]):
        clock.now_ms = int(at * 1000)
        op.status, op.body = await answer(store, config, op)
        if op.recv is None:
            op.status = op.body = None
    return History(config, [op for _, op in planned], started=T0, ended=T0 + 50)


KINDS: list[Any] = ["start"] * 6 + ["heartbeat"] * 4 + ["stop"] * 2 + ["stop_all", "list", "set_limit"]
KINDS += ["clear_limit", "compat_start", "compat_start", "compat_stop", "compat_count"]


async def answer(store: MemoryStore, config: Config, op: Op) -> tuple[int, dict[str, Any] | None]:
    """What the API answers to ``op`` (status, body), from the store's reply."""
    user, sid, d = op.user, op.stream_id or "", config.default_limit
    ttl_ms, legacy_ms = int(config.lease_ttl_s * 1000), int(config.legacy_lease_ttl_s * 1000)
    if op.kind in ("start", "compat_start"):
        new_id = sid if op.kind == "start" else f"k{op.index}"
        legacy = op.kind == "compat_start"
        how = Start(legacy=legacy, device_id=op.device_id, replace=op.replace)
        r = await store.start(user, new_id, None, legacy_ms if legacy else ttl_ms, Limits(d), how)
        if r.status is StartStatus.TARGET_NOT_ACTIVE:
            return 404, {"code": "stream_not_active", "stream_id": op.replace, "field": "replace"}
        if r.status is StartStatus.REFUSED:
            if op.kind == "compat_start":
                return 403, {"activeStreams": r.active, "limit": r.limit}
            return 409, {"active": r.active, "limit": r.limit, "streams": [stream_body(s) for s in r.streams]}
        assert r.stream is not None
        if op.kind == "compat_start":
            return 200, {"activeStreams": r.active, "streamId": new_id}
        return 201 if r.status is StartStatus.ADMITTED else 200, stream_body(r.stream) | {
            "active": r.active,
            "limit": r.limit,
            "evicted_streams": [stream_body(s) for s in r.evicted],
            "replaced_streams": [stream_body(s) for s in r.replaced],
        }
    if op.kind == "heartbeat":
        beat = await store.heartbeat(user, sid, ttl_ms, Limits(d))
        if beat.stream is not None:
            return 200, stream_body(beat.stream) | {"readmitted": beat.readmitted}
        ended = beat.ended
        if ended is None:
            return 404, {"code": "stream_not_active"}
        if ended.reason in (EndReason.EVICTED, EndReason.REPLACED):
            return 410, {
                "code": f"stream_{ended.reason.value}",
                "evicted_at": rfc3339(ended.at_ms),
                "replaced_by": ended.replaced_by,
            }
        return 410, {
            "code": "stream_stopped",
            "stopped_at": rfc3339(ended.at_ms),
            "reason": ended.reason.value,
        }
    if op.kind in ("stop", "compat_stop"):
        if op.kind == "compat_stop" and op.arg == 0:  # the compat stop of one named stream
            op.stream_id = f"k{op.index - 1}"
        stopped = await store.stop(user, op.stream_id, ttl_ms)
        if op.kind == "stop":
            return 204, None
        if stopped.removed is not None:
            return 200, {"activeStreams": stopped.active, "streamId": stopped.removed.stream_id}
        return (403, {}) if op.stream_id is None else (404, {"activeStreams": stopped.active})
    if op.kind == "stop_all":
        return 200, {"stopped": len((await store.stop_all(user, ttl_ms)).stream_ids)}
    if op.kind in ("set_limit", "clear_limit"):
        info = await store.set_limit(user, op.arg if op.kind == "set_limit" else None, Limits(d))
        return 200, {"user_id": user, "limit": info.limit, "default": info.is_default}
    listing = await store.list(user, Limits(d))
    if op.kind == "compat_count":
        return 200, {"activeStreams": listing.active, "limit": listing.limit}
    streams = [stream_body(s) for s in listing.streams]
    return 200, {
        "active": listing.active,
        "limit": listing.limit,
        "remaining": listing.remaining,
        "streams": streams,
    }


@pytest.mark.parametrize("seed", range(30))
def test_random_histories_of_a_correct_store_have_no_violation(seed: int) -> None:
    report = check(asyncio.run(simulate(seed)))
    assert report.violations == [], report.violations[:3]
    assert report.exercised["refusals"] > 0


class Sloppy(MemoryStore):
    """A store that, one time in ten, breaks one rule: see the subclasses."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.rng = random.Random(0)

    def now_and_then(self) -> bool:
        return self.rng.random() < 0.1


class OverAdmitting(Sloppy):
    async def start(
        self, user_id: str, stream_id: str, device: str | None, ttl: int, limits: Limits, how: Start
    ) -> StartResult:
        no_override = (await self.get_limit(user_id, limits)).source != "user"
        extra = self.now_and_then() and no_override
        return await super().start(user_id, stream_id, device, ttl, Limits(limits.default + extra), how)


class Refusing(Sloppy):
    async def start(
        self, user_id: str, stream_id: str, device: str | None, ttl: int, limits: Limits, how: Start
    ) -> StartResult:
        seen = await self.list(user_id, limits)
        if self.now_and_then() and stream_id not in {s.stream_id for s in seen.streams}:
            return StartResult(StartStatus.REFUSED, None, seen.active, seen.limit, seen.streams)
        return await super().start(user_id, stream_id, device, ttl, limits, how)


class NotReclaiming(Sloppy):
    """Ignores starts' device ids (a version before devices): a restarted player waits for its
    old lease. (Random windows rarely make a lease certainly alive, so it errs every time.)"""

    async def start(
        self, user_id: str, stream_id: str, device: str | None, ttl: int, limits: Limits, how: Start
    ) -> StartResult:
        return await super().start(user_id, stream_id, device, ttl, limits, replace(how, device_id=None))


class Forgetting(Sloppy):
    async def heartbeat(self, user_id: str, stream_id: str, ttl_ms: int, limits: Limits) -> Beat:
        return Beat() if self.now_and_then() else await super().heartbeat(user_id, stream_id, ttl_ms, limits)


@pytest.mark.parametrize(
    ("store_type", "kind"),
    [
        (OverAdmitting, "over_admission"),
        (Refusing, "spurious_refusal"),
        (NotReclaiming, "spurious_refusal"),
        (Forgetting, "inconsistent_answer"),
    ],
)
def test_random_histories_of_sloppy_stores_are_flagged(store_type: type[MemoryStore], kind: str) -> None:
    found: Counter[str] = Counter()
    for seed in range(5):
        found += check(asyncio.run(simulate(seed, store_type=store_type))).by_kind()
    assert found[kind] > 0, found
