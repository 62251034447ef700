"""A light load test of the Gradio API (issue 18; the 50-client measurement is bench/load_gradio.py):
10 clients, each its own gradio_client session, call /classify at once on the demo served on
127.0.0.1. Every call must end, within a time limit, in a result or the documented queue-full
answer (docs/UI.md: HTTP 503, gradio_client's "Queue is full! Please try again."), nothing else.
"""

from __future__ import annotations

import threading
import time

from conftest import SmallIndex

CLIENTS = 10
LIMIT_S = 120  # for the whole burst on a busy 2-core machine; a hang fails instead of blocking
QUEUE_FULL = "Queue is full! Please try again."


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
            outcomes[i] = "queue full" if str(e) == QUEUE_FULL else f"{type(e).__name__}: {e}"

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
