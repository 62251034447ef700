"""A light load test of the Gradio API (issue 18; the 50-client measurement is bench/load_gradio.py):
10 clients, each its own gradio_client session, call /classify at once on the demo served on
127.0.0.1. Every call must end, within a time limit, in a result or the documented queue-full
answer (docs/UI.md, app/demo_queue.py: the queue's limit and the seconds to wait before a retry),
nothing else. A second test fills the queue for real and checks that answer: its text in
gradio_client's exception, and over raw HTTP its status, JSON body and Retry-After header.
"""

from __future__ import annotations

import re
import threading
import time

from conftest import SmallIndex

CLIENTS = 10
LIMIT_S = 120  # for the whole burst on a busy 2-core machine; a hang fails instead of blocking
# gradio_client's exception text for the demo's queue-full answer (app.demo_queue.queue_full_message)
QUEUE_FULL = re.compile(r"- queue: The demo's queue is full \((\d+) requests waiting, its limit\); nothing was "
                        r"computed for this call\. Retry in about (\d+) s\.$")


def test_concurrent_classify_calls_get_a_result_or_the_queue_full_answer(demo_url: str,
                                                                          small_index: SmallIndex) -> None:
    from gradio_client import Client, handle_file

    from core.index import IndexStore

    assert demo_url.startswith("http://127.0.0.1:")
    image = str(IndexStore.load(small_index.index).abspath(0))
    clients = [Client(demo_url, verbose=False, download_files=False, analytics_enabled=False,
                      httpx_kwargs={"timeout": LIMIT_S}) for _ in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS)
    outcomes: list[str | None] = [None] * CLIENTS

    def call(i: int) -> None:
        barrier.wait()
        try:
            r = clients[i].predict(handle_file(image), 3, api_name="/classify")
            outcomes[i] = "result" if r["kind"] == "image" and len(r["neighbors"]) == 3 else f"bad result {r!r:.200}"
        except Exception as e:  # noqa: BLE001 (every other failure is named in the assertion)
            outcomes[i] = "queue full" if QUEUE_FULL.search(str(e)) else f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, LIMIT_S - (time.monotonic() - t0)))
    for c in clients:
        c.close()
    assert all(o in ("result", "queue full") for o in outcomes), outcomes  # None: no answer in time
    assert "result" in outcomes


def _queue_full_text(limit: int, retry_s: int) -> str:
    from app.demo_queue import queue_full_message

    return queue_full_message(limit, retry_s)


def test_a_full_queue_answers_its_limit_and_when_to_retry(demo_url: str, small_index: SmallIndex,
                                                           monkeypatch) -> None:
    """The queue is filled for real (the computing call held at a gate), then: a raw HTTP call gets
    429 with Retry-After and the message; gradio_client callers get the same message in their
    exception (not the fixed "Queue is full! Please try again."); once the gate opens the
    admitted calls are all answered and a retry is served."""
    import httpx
    from gradio_client import Client, handle_file

    from app import demo, demo_queue
    from core.index import IndexStore

    image = IndexStore.load(small_index.index).abspath(0)
    real, started, gate = demo.handlers.classify_file, threading.Event(), threading.Event()

    done: list = []

    def held(*args, **kwargs):  # the admitted calls wait at the gate, then share one real result (faster)
        started.set()
        assert gate.wait(LIMIT_S), "the test never opened the gate"
        if not done:
            done.append(real(*args, **kwargs))
        return done[0]

    monkeypatch.setattr(demo.handlers, "classify_file", held)
    monkeypatch.setattr(demo_queue.CLOCK, "mean_s", demo_queue.CLOCK.mean_s)  # the held time is undone after
    api = f"{demo_url}gradio_api"
    with httpx.Client(timeout=30) as http:
        try:
            with image.open("rb") as f:
                uploaded = http.post(f"{api}/upload", files={"files": (image.name, f)}).json()[0]
            payload = {"data": [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}, 3, "embedding"]}
            first = http.post(f"{api}/call/classify", json=payload)
            assert first.status_code == 200, first.text
            assert started.wait(30), "the first call never started"
            admitted, refusal = [first.json()["event_id"]], None
            for _ in range(demo.QUEUE_MAX + 5):  # fill the waiting places, then one more
                r = http.post(f"{api}/call/classify", json=payload)
                if r.status_code != 200:
                    refusal = r
                    break
                admitted.append(r.json()["event_id"])
            assert len(admitted) == demo.QUEUE_MAX + demo.CONCURRENCY, len(admitted)
            assert refusal is not None and refusal.status_code == 429, (refusal.status_code, refusal.text)
            wait = int(refusal.headers["Retry-After"])
            assert wait == demo_queue.CLOCK.retry_s(demo.QUEUE_MAX, demo.CONCURRENCY) >= 1
            body = refusal.json()
            assert body == {"detail": _queue_full_text(demo.QUEUE_MAX, wait), "queue_max": demo.QUEUE_MAX,
                            "retry_after_s": wait}
            assert f"({demo.QUEUE_MAX} requests waiting" in body["detail"] and f"about {wait} s" in body["detail"]

            clients: list = [None] * 3
            errors: list[str | None] = [None] * len(clients)

            def call(i: int) -> None:  # each its own session, made in its thread (faster than one by one)
                clients[i] = Client(demo_url, verbose=False, download_files=False, analytics_enabled=False)
                try:
                    clients[i].predict(handle_file(str(image)), 3, api_name="/classify")
                    errors[i] = "answered while the queue was full"
                except Exception as e:  # noqa: BLE001 (the text is the assertion)
                    errors[i] = str(e)

            threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(clients))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(LIMIT_S)
            expected = _queue_full_text(demo.QUEUE_MAX, wait)
            assert all(e is not None and e.endswith(f"- queue: {expected}") for e in errors), errors
        finally:
            gate.set()
        deadline = time.monotonic() + LIMIT_S
        while True:  # a retry after the time the answer names is served once the admitted calls are
            try:
                r = clients[0].predict(handle_file(str(image)), 3, api_name="/classify")
                break
            except Exception as e:  # noqa: BLE001
                retry = QUEUE_FULL.search(str(e))
                assert retry and time.monotonic() < deadline, str(e)
                time.sleep(int(retry[2]))
        assert r["kind"] == "image" and len(r["neighbors"]) == 3
        for c in clients:
            c.close()


def _through_middleware(status: int, detail: str, agent: bytes, running: int = 0) -> tuple[int, dict, dict]:
    """(status, headers, JSON body) that QueueFullAnswer sends for an app answering ``status``/``detail``."""
    import asyncio
    import json

    from app.demo_queue import QueueFullAnswer, ServiceClock

    async def app(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [(b"x-from", b"app")]})
        await send({"type": "http.response.body", "body": json.dumps({"detail": detail}).encode()})

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    clock = ServiceClock(default_s=0.5)
    for _ in range(running):
        clock.start()
    middleware = QueueFullAnswer(app, limit=16, workers=1, clock=clock)
    asyncio.run(middleware({"type": "http", "method": "POST", "headers": [(b"user-agent", agent)]}, None, send))
    return sent[0]["status"], dict(sent[0]["headers"]), json.loads(sent[1]["body"])


def test_only_gradios_queue_full_refusal_is_rewritten_with_the_wait() -> None:
    gradio_full = "Queue is full. Max size is 16 and size is 16."  # gradio/queueing.py Queue.push
    # 16 waiting, none running, 0.5 s a call: 8 s; one running: 17 * 0.5 = 8.5 -> 9 s
    status, headers, body = _through_middleware(503, gradio_full, b"Mozilla/5.0")
    assert (status, headers[b"retry-after"]) == (429, b"8") and body["retry_after_s"] == 8
    assert body["detail"].endswith("(16 requests waiting, its limit); nothing was computed for this call. "
                                   "Retry in about 8 s.")
    status, headers, body = _through_middleware(503, gradio_full, b"gradio_client/2.7.2; python/3.11", running=1)
    assert (status, headers[b"retry-after"]) == (422, b"9")
    assert body["detail"][0]["parameter_name"] == "queue" and QUEUE_FULL.search(f"- queue: {body['detail'][0]['message']}")
    for other in ((503, "Queue is stopped."), (200, "fine"), (422, "bad input")):  # passed on unchanged
        assert _through_middleware(*other, b"Mozilla/5.0") == (other[0], {b"x-from": b"app"}, {"detail": other[1]})
