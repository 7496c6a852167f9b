"""Request bodies are bounded before anything reads them whole.

Starlette and FastAPI read a body into memory as it comes, however long it is, so one client sending
gigabytes (or a declared length it never sends) could take the cloud's memory. This ASGI middleware
refuses a body over its path's limit with 413, from its declared ``Content-Length`` before a byte is read,
or, for a chunked body that declares none, as soon as the bytes received pass it. A hub's batch path has a
larger limit than the rest (see ``cloud.routers.hubs.MAX_BATCH_BYTES``); forms and JSON calls stay small.

Where the route has already begun reading (FastAPI turns any error while it parses a body into a 400), the
response the app sends is replaced by the 413, so the client is told what was wrong, not a parsing error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.problems import problem_response

#: Any body but a hub's batch: the largest form or JSON call (a social mention, a push subscription) is a few KB.
DEFAULT_MAX_BYTES = 1 * 2**20


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a body passes its limit; the middleware answers 413."""


class BodyLimit:
    def __init__(self, app: ASGIApp, limits: Mapping[str, int], default: int = DEFAULT_MAX_BYTES,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.app, self.limits, self.default = app, dict(limits), default
        self.on_refused = on_refused  # called with the path of each body refused (a metric)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.limits.get(path, self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit, started=False)
            return
        received, over, started = 0, False, False

        async def limited_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge(path)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # the app is answering a body it was not given whole: the 413 goes instead
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        if over:
            await self._refuse(scope, receive, send, limit, started)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int, started: bool) -> None:
        if self.on_refused is not None:
            self.on_refused(scope["path"])
        if started:  # a response already went out (a streaming route): nothing more can be said
            return
        response = problem_response(413, "Body too large", f"the request body is over {limit:,} bytes, the most "
                                    f"this path takes", scope["path"])
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None
