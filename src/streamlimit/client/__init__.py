"""A Python client of the streamlimit v1 API.

``AsyncStreamLimitClient`` (asyncio, on httpx) and ``StreamLimitClient`` (blocking, the same
methods run on a background event loop). ``client.stream(...)`` holds a stream for a ``with``
block: start, heartbeats in the background, stop; ``on_lost`` and ``LeaseLost`` when the
service ends it. A player passes its installation's ``device_id`` (kept across restarts by
``stored_device_id()``), so that a restarted player takes its own slot back at once::

    async with AsyncStreamLimitClient(
        "http://127.0.0.1:3000", token=token, device_id=stored_device_id()
    ) as client:
        async with client.stream("alice", device="tv", on_lost=print) as lease:
            await play(lease.stream_id)
"""

from streamlimit.client.aio import AsyncStreamLimitClient, OnLimit
from streamlimit.client.device import default_device_id_path, new_device_id, stored_device_id
from streamlimit.client.errors import (
    Forbidden,
    InvalidInput,
    LeaseLost,
    LimitReached,
    ReplaceTargetNotActive,
    StreamEvicted,
    StreamLimitError,
    StreamNotActive,
    StreamReplaced,
    StreamStopped,
    TooManyStarts,
    Unauthenticated,
    Unavailable,
)
from streamlimit.client.lease import Lease, OnGrant, OnLost
from streamlimit.client.sync import StreamLimitClient
from streamlimit.client.types import Event, LeaseInfo, LimitInfo, StartInfo, StreamInfo, StreamList

__all__ = [
    "AsyncStreamLimitClient",
    "Event",
    "Forbidden",
    "InvalidInput",
    "Lease",
    "LeaseInfo",
    "LeaseLost",
    "LimitInfo",
    "LimitReached",
    "OnGrant",
    "OnLimit",
    "OnLost",
    "ReplaceTargetNotActive",
    "StartInfo",
    "StreamEvicted",
    "StreamInfo",
    "StreamLimitClient",
    "StreamLimitError",
    "StreamList",
    "StreamNotActive",
    "StreamReplaced",
    "StreamStopped",
    "TooManyStarts",
    "Unauthenticated",
    "Unavailable",
    "default_device_id_path",
    "new_device_id",
    "stored_device_id",
]
