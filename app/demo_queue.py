"""The demo's answer to a call that finds its queue full (issue 18): the limit, and when to retry.

Gradio refuses such a call with HTTP 503, which its clients replace with fixed text ("Queue is
full! Please try again." in gradio_client, "This application is currently busy." in the page).
``QueueFullAnswer`` is an ASGI middleware (passed through ``launch(app_kwargs={"middleware": ...})``,
Gradio's public hook for the FastAPI app) that rewrites that one response: a ``Retry-After`` header
and a message naming the limit and the seconds to wait, in the shape each client shows:
- gradio_client (its User-Agent says so): 422 with a validation-shaped ``detail``, the only
  non-200 answer whose text it puts into its exception (``ValidationError``); it raises its fixed
  ``QueueError`` on a 503 and a bare ``HTTPStatusError`` on a 429;
- anything else (the page, curl, other HTTP clients): 429 Too Many Requests with ``detail`` (the
  message), ``queue_max`` and ``retry_after_s``; the page shows ``detail`` for any status but 503.
The wait is the time for the queue as it stands to drain: the waiting and running calls times
the measured mean service time (``CLOCK``, timed by ``timed`` around each queued API function).
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

DEFAULT_SERVICE_S = 1.0  # the estimate's service time before any call has been timed (about one image classify)
MAX_RETRY_S = 300  # a wait past this is no estimate worth giving
GRADIO_QUEUE_FULL = "Queue is full"  # how Gradio's own 503 detail starts (gradio/queueing.py Queue.push)


class ServiceClock:
    """Mean wall time of the queued calls (exponentially weighted) and how many are running."""

    def __init__(self, default_s: float = DEFAULT_SERVICE_S, weight: float = 0.3) -> None:
        self.mean_s, self.weight, self.running = default_s, weight, 0
        self._lock = threading.Lock()  # Gradio runs the functions on worker threads

    def start(self) -> None:
        with self._lock:
            self.running += 1

    def finish(self, seconds: float) -> None:
        with self._lock:
            self.running -= 1
            self.mean_s += self.weight * (seconds - self.mean_s)

    def retry_s(self, waiting: int, workers: int) -> int:
        """Whole seconds until ``waiting`` queued calls and those running now are served."""
        return min(MAX_RETRY_S, max(1, math.ceil(self.mean_s * (waiting + self.running) / max(1, workers))))


CLOCK = ServiceClock()


def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its wall time recorded in ``CLOCK`` (signature kept: Gradio reads it for the API)."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        CLOCK.start()
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            CLOCK.finish(time.perf_counter() - t0)
    return run


def queue_full_message(limit: int, retry_s: int) -> str:
    return (f"The demo's queue is full ({limit} requests waiting, its limit); nothing was computed for "
            f"this call. Retry in about {retry_s} s.")


def answer(limit: int, retry_s: int, user_agent: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of the queue-full answer for a client with this User-Agent."""
    message = queue_full_message(limit, retry_s)
    if "gradio_client/" in user_agent:  # see the module docstring: its one way to show server text
        return 422, {"detail": [{"__type__": "validate", "is_valid": False, "parameter_name": "queue",
                                 "message": message}]}
    return 429, {"detail": message, "queue_max": limit, "retry_after_s": retry_s}


class QueueFullAnswer:
    """ASGI middleware: Gradio's 503 queue-full refusal becomes ``answer``'s, with ``Retry-After``.
    Only 503 responses are held back (to read their short JSON body); everything else streams through."""

    def __init__(self, app: Any, limit: int, workers: int, clock: ServiceClock = CLOCK) -> None:
        self.app, self.limit, self.workers, self.clock = app, limit, workers, clock

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}

        async def relay(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                held.update(start=message, body=b"")
                return
            if "start" not in held:
                await send(message)
                return
            held["body"] += message.get("body", b"")
            if not message.get("more_body"):
                await self._answer(held, scope, send)

        await self.app(scope, receive, relay)

    async def _answer(self, held: dict[str, Any], scope: dict, send: Callable) -> None:
        try:
            detail = json.loads(held["body"] or b"{}").get("detail", "")
        except (ValueError, AttributeError):
            detail = ""
        if not (isinstance(detail, str) and detail.startswith(GRADIO_QUEUE_FULL)):  # e.g. "Queue is stopped."
            await send(held["start"])
            await send({"type": "http.response.body", "body": held["body"]})
            return
        agent = dict(scope.get("headers") or []).get(b"user-agent", b"").decode("latin-1")
        wait = self.clock.retry_s(self.limit, self.workers)
        status, body = answer(self.limit, wait, agent)
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                (b"retry-after", str(wait).encode())]})
        await send({"type": "http.response.body", "body": data})
