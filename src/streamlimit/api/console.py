"""The operator console: a static page at /console, its script and style under /console/static."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

DIR = Path(__file__).resolve().parent.parent / "console"


async def page(request: Request) -> Response:
    return FileResponse(DIR / "index.html", media_type="text/html; charset=utf-8")


async def slash(request: Request) -> Response:
    return RedirectResponse("/console", status_code=308)


ROUTES = [
    Route("/console", page, methods=["GET", "HEAD"]),
    Route("/console/", slash, methods=["GET", "HEAD"]),
    Mount("/console/static", app=StaticFiles(directory=DIR), name="console-static"),
]
