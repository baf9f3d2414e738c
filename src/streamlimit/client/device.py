"""Device ids: the stable id of one player installation, sent with its starts as ``device_id``.

A start whose device id already holds an active stream of the same user replaces that stream
(a player that crashed and started again takes its own slot back at once, instead of being
refused until the old lease expires). So an id must be stable for the installation and never
shared by two installations: :func:`new_device_id` makes one, :func:`stored_device_id` keeps one
in a small file so that it survives restarts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from pathlib import Path

from streamlimit.ids import ID_RULE, is_valid_id

log = logging.getLogger("streamlimit.client")

FILE_NAME = "device_id"


def new_device_id() -> str:
    """A new random device id (a UUID 4: 122 random bits, so no two installations share one)."""
    return str(uuid.uuid4())


def check_device_id(value: str) -> str:
    """``value`` if it is a valid device id (an id: ``ID_RULE``), else ``ValueError``."""
    if not is_valid_id(value):
        raise ValueError(f"invalid device id {value!r}: a device id is {ID_RULE}")
    return value


def default_device_id_path() -> Path:
    """Where :func:`stored_device_id` keeps the id by default: ``$XDG_STATE_HOME/streamlimit/device_id``
    (``~/.local/state/streamlimit/device_id`` without it); ``%LOCALAPPDATA%\\streamlimit\\device_id``
    on Windows."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    else:
        base = os.environ.get("XDG_STATE_HOME") or ""
        if not os.path.isabs(base):  # the XDG spec: a relative path is invalid and is ignored
            base = str(Path.home() / ".local" / "state")
    return Path(base) / "streamlimit" / FILE_NAME


def _read(path: Path) -> str | None:
    """The id in ``path``; None when there is no file; ``""`` when it holds no valid id."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ""
    return text if is_valid_id(text) else ""


def _write_temp(folder: Path, value: str) -> Path:
    """A new file in ``folder`` (mode 0600) holding ``value``, flushed to disk."""
    temp = folder / f".{FILE_NAME}.{uuid.uuid4().hex}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, f"{value}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return temp


def stored_device_id(path: str | os.PathLike[str] | None = None) -> str:
    """This installation's device id, kept in ``path`` (default :func:`default_device_id_path`).

    The first call creates the file (and its folder, mode 0700) with a :func:`new_device_id`
    (mode 0600); later calls, in this process or after a restart, read the same id back. The file
    appears whole or not at all (written to a temporary file, then linked into place), and when
    two processes create it at once both get the id that was linked first. A file holding no
    valid id (emptied, edited by hand) is replaced with a new id, with a warning in the log.
    Raises ``OSError`` when the file can be neither read nor created.
    """
    target = Path(path) if path is not None else default_device_id_path()
    found = _read(target)
    if found:
        return found
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = _write_temp(target.parent, new_device_id())
    try:
        if found is None:
            try:
                os.link(temp, target)  # fails if another process created it meanwhile: theirs wins
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links (FAT, some network mounts)
                if _read(target) is None:
                    os.replace(temp, target)
        else:
            log.warning("device id file %s holds no valid device id; writing a new one", target)
            os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    stored = _read(target)
    if not stored:  # pragma: no cover - someone emptied it between our write and this read
        raise OSError(f"device id file {target} holds no valid device id")
    return stored
