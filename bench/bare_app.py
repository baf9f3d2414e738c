"""A bare Starlette JSON endpoint, as in the issue's calibration figures (about 17,000/s there
under uvicorn with 1 worker): measured here, it says how fast this machine is next to that one."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/healthz", healthz)])
