"""The hub's own small web server: the in-home display page and the hub's status.

It runs inside the hub process, so the display keeps working with the cloud down.
The page itself lives with the other pages in ``dashboards/``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from importlib import resources

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from edge.face import STALE_S, silent_state
from protocols.display import DisplayState, Face


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our own loop: the agent owns the signals and the shutdown order.

    uvicorn's housekeeping ticks ten times a second, a third of a percent of a hub's core
    while idle (measured by bench.hub); once a second is plenty for a display page.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the owner handles the signals
        yield

    async def main_loop(self) -> None:
        counter = 0  # on_tick refreshes the Date header whenever counter % 10 == 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            await asyncio.sleep(1.0)


def display_app(state: Callable[[], DisplayState | None], status: Callable[[], dict],
                face_log: Callable[[int], list[dict]], silent_s: Callable[[], float | None] = lambda: None
                ) -> Starlette:
    """The in-home display's page and its JSON; ``silent_s``: seconds since the last reading arrived (None before
    the first)."""
    page = resources.files("dashboards").joinpath("templates/display.html").read_text()
    face_js = resources.files("dashboards").joinpath("static/face.js").read_text()

    async def display_page(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def face_script(request: Request) -> Response:
        return Response(face_js, media_type="text/javascript")

    async def display_json(request: Request) -> JSONResponse:
        current = state() or DisplayState(ts=0, face=Face.NEUTRAL, power_w=0,
                                          reason="Waiting for the first meter reading")
        silent = silent_s()
        if silent is not None and silent > STALE_S:  # the cable out, the meter off: not a face for now
            return JSONResponse(silent_state(current, silent).model_dump(mode="json") | {"stale_s": round(silent)})
        return JSONResponse(current.model_dump(mode="json"))

    async def status_json(request: Request) -> JSONResponse:
        return JSONResponse(status())

    async def face_log_json(request: Request) -> JSONResponse:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return JSONResponse({"error": "since must be Unix seconds"}, status_code=400)
        return JSONResponse(face_log(since))

    return Starlette(routes=[
        Route("/display", display_page),
        Route("/static/face.js", face_script),
        Route("/api/display", display_json),
        Route("/api/status", status_json),
        Route("/api/face-log", face_log_json),
    ])
