"""The fencing rule's memory: per user, the highest epochs a verifier has seen, in bounded space."""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Seen:
    lim: int  # the user's limit, as the most recently issued grant seen says
    lim_issued_at: int
    epochs: list[int] = field(default_factory=list)  # the highest seen, ascending


class EpochFence:
    """Remembers, for up to ``max_users`` users (the least recently seen forgotten first), the
    user's limit as its most recently issued grant says (``lim`` at ``iat``) and the ``lim``
    highest distinct epochs of its grants (at most ``max_epochs``); refuses an epoch below the
    ``lim``-th highest. While the limit is not lowered, only a user's ``lim`` most recent
    admissions can still be active (README, "Fencing"): a lower epoch belongs to a stream that
    was evicted, stopped or expired.

    The limit is the newest grant's, not each grant's own, so that a device holding a grant from
    before the limit was lowered is fenced by the lower limit. A forgotten user starts again from
    nothing (its next grants are accepted and remembered); a ``lim`` over ``max_epochs`` is fenced
    by the ``max_epochs`` highest only. Thread-safe."""

    def __init__(self, max_users: int = 100_000, max_epochs: int = 64) -> None:
        if max_users < 1 or max_epochs < 1:
            raise ValueError("max_users and max_epochs must be at least 1")
        self.max_users, self.max_epochs = max_users, max_epochs
        self._users: OrderedDict[str, _Seen] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, user: str, epoch: int, lim: int, issued_at: int) -> bool:
        """Note a valid grant of ``user`` (its ``epoch``, ``lim`` and ``iat``); whether its epoch
        is among the ``lim`` highest seen, ``lim`` being the most recently issued grant's."""
        with self._lock:
            seen = self._users.get(user)
            if seen is None:
                seen = self._users[user] = _Seen(lim, issued_at)
                if len(self._users) > self.max_users:
                    self._users.popitem(last=False)
            else:
                self._users.move_to_end(user)
                if issued_at >= seen.lim_issued_at:
                    seen.lim, seen.lim_issued_at = lim, issued_at
            epochs = seen.epochs
            at = bisect.bisect_left(epochs, epoch)
            if at == len(epochs) or epochs[at] != epoch:
                epochs.insert(at, epoch)
            del epochs[: max(0, len(epochs) - max(1, min(seen.lim, self.max_epochs)))]
            return epoch >= epochs[0]  # still remembered: among the `lim` highest

    def highest(self, user: str) -> tuple[int, ...]:
        """The epochs remembered for ``user``, highest first (for tests and diagnostics)."""
        with self._lock:
            seen = self._users.get(user)
            return tuple(reversed(seen.epochs)) if seen else ()

    def __len__(self) -> int:
        return len(self._users)
