"""File descriptors for the live channels: each open channel holds a socket for as long as it is
open, so a worker holding STREAMLIMIT_LIVE_MAX_CHANNELS needs about that many descriptors more
than a worker answering requests; the soft limit is raised at start-up (up to the hard limit,
which only an administrator raises: ulimit -Hn, systemd's LimitNOFILE, a container's nofile)."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("streamlimit.live")

SPARE = 1024  # descriptors besides the channels: other requests, store connections, files


def raise_fd_limit(channels: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to fit ``channels`` (children, the workers,
    inherit it); returns how many channels fit under the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = channels + SPARE
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    fit = max(0, soft - SPARE)
    if fit < channels:
        log.warning(
            "the file-descriptor limit (%d, hard limit %d) fits about %d live channels per worker, "
            "not STREAMLIMIT_LIVE_MAX_CHANNELS=%d: raise the hard limit (ulimit -Hn, LimitNOFILE)",
            soft,
            hard,
            fit,
            channels,
        )
    return fit
