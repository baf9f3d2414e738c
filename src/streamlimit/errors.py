"""The few domain errors. Transport layers map them to responses; nothing here knows HTTP."""


class StreamLimitError(Exception):
    """Base of every streamlimit error."""


class ConfigurationError(StreamLimitError):
    """A setting or store URL that cannot work; raised at start-up."""


STORE_ERROR_KINDS = ("timeout", "connection", "refused")


class StoreUnavailable(StreamLimitError):
    """The store could not answer within its timeout (down, paused, unreachable, overloaded).
    ``kind``: ``timeout``, ``connection`` or ``refused`` (an error reply), for the metrics."""

    def __init__(self, message: str, kind: str = "connection") -> None:
        super().__init__(message)
        self.kind = kind


class StreamNotActive(StreamLimitError):
    """The stream expired, was stopped or never existed: the player must stop playback."""

    def __init__(self, user_id: str, stream_id: str) -> None:
        super().__init__(f"stream {stream_id!r} of user {user_id!r} is not active")
        self.user_id = user_id
        self.stream_id = stream_id


class InvalidInput(StreamLimitError):
    """A value that breaks a domain rule; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidId(InvalidInput):
    """An id outside 1-128 characters of ``[A-Za-z0-9._:@+-]``."""


class Unauthenticated(StreamLimitError):
    """No credentials, or credentials that do not verify. The message never holds a secret."""


class Forbidden(StreamLimitError):
    """Valid credentials that may not do this (another user's streams, an admin action)."""


class StreamEvicted(StreamNotActive):
    """Another start of the same user took this stream's slot ("watch here instead")."""

    def __init__(self, user_id: str, stream_id: str, evicted_at_ms: int, replaced_by: str) -> None:
        super().__init__(user_id, stream_id)
        self.evicted_at_ms = evicted_at_ms
        self.replaced_by = replaced_by


class StreamStopped(StreamNotActive):
    """The stream was stopped (by its player, "sign out of all devices", or an admin) within a
    lease TTL; ``reason`` is ``stopped``, ``stopped_all`` or ``stopped_by_admin``."""

    def __init__(self, user_id: str, stream_id: str, stopped_at_ms: int, reason: str) -> None:
        super().__init__(user_id, stream_id)
        self.stopped_at_ms = stopped_at_ms
        self.reason = reason


class StreamReplaced(StreamNotActive):
    """A newer stream of the same device took this one's slot (the player restarted)."""

    def __init__(self, user_id: str, stream_id: str, replaced_at_ms: int, replaced_by: str) -> None:
        super().__init__(user_id, stream_id)
        self.replaced_at_ms = replaced_at_ms
        self.replaced_by = replaced_by


class ReplaceTargetNotActive(StreamNotActive):
    """A start named a stream to replace that is not active: nothing was started."""


class UnknownPlan(StreamLimitError):
    """A plan name that is not one of the configured plans."""


class TooManyStarts(StreamLimitError):
    """The user's per-minute budget of admissions is spent."""

    def __init__(self, user_id: str, retry_after_ms: int) -> None:
        super().__init__(f"user {user_id!r} started too many streams in the last minute")
        self.user_id = user_id
        self.retry_after_ms = retry_after_ms


class TooManyStopAlls(StreamLimitError):
    """The user's per-minute budget of stop-alls ("sign out of all devices") is spent."""

    def __init__(self, user_id: str, retry_after_ms: int) -> None:
        super().__init__(f"user {user_id!r} signed out of all devices too often in the last minute")
        self.user_id = user_id
        self.retry_after_ms = retry_after_ms


class ChannelsFull(StreamLimitError):
    """This instance holds as many live channels as it may, or is shutting down: retry later,
    perhaps on another instance."""
