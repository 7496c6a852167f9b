"""RFC 7807 problem details: every error names what was wrong, in one JSON shape."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("ohmni.cloud")


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.headers = headers or {}


def problem_response(status: int, title: str, detail: str, instance: str = "", **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    if instance:
        body["instance"] = instance
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    response = problem_response(exc.status, exc.title, exc.detail, request.url.path, **exc.extra)
    response.headers.update(exc.headers)
    return response


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    return problem_response(422, "Invalid request", "the request did not match the schema",
                            request.url.path, errors=errors)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(exc.status_code, str(exc.detail), str(exc.detail), request.url.path)


#: Seconds a client is asked to wait when the store is unavailable (the hub retries on its own backoff anyway).
RETRY_AFTER_S = 5


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The store is down, restarting or full (its backend's ``UNAVAILABLE`` errors): 503 with Retry-After, which a
    hub retries and a page can say, rather than a 500 and a traceback in the log for every request meanwhile."""
    state = request.app.state  # when this app's log last said so: a line a minute, not a traceback a request
    if time.monotonic() - getattr(state, "unavailable_said", -math.inf) >= 60:
        state.unavailable_said = time.monotonic()
        log.error("the store is unavailable (%s: %s); answering 503 until it is back", exc.__class__.__name__, exc)
    response = problem_response(503, "Store unavailable", "the cloud cannot reach its store just now; try again "
                                f"in {RETRY_AFTER_S} s", request.url.path)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def install(app: Any, unavailable: tuple[type[Exception], ...] = ()) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    for kind in unavailable:
        app.add_exception_handler(kind, _on_unavailable)
