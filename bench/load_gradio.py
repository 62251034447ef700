"""How does the Gradio demo's API behave under a burst of concurrent clients? Target (issue 18): 50
concurrent `/classify` clients on 127.0.0.1, bounded in count and time; 0 errors other than the
documented queue-full answer (app/demo_queue.py: the queue's limit and "Retry in about N s"; in
gradio_client a `ValidationError` with that text), p50 and p95 latency reported.
Run: `python bench/load_gradio.py [--index indexes/demo] [--clients 50] [--quick]`.

The demo runs as `scenescope demo-ui` in its own process (the clients' threads would otherwise share
its GIL). Every client is a separate `gradio_client.Client` (its own session), made before the burst;
a barrier releases all of them at once, each sends one image and waits for its result. Two rounds:
1. plain: every call once; it is answered or refused with the queue-full answer (docs/UI.md);
2. with the documented back-off: a refused call is retried after the seconds its answer names;
   every client should then get its answer.
The texts of the queue-full answers are printed (each distinct one once, with its count).
Latency is from the call to its result (round 2: including the waits of its refusals).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
from _quick import parse_args

ROOT = Path(__file__).resolve().parents[1]
SCENESCOPE = Path(sys.executable).with_name("scenescope")
# The demo's queue-full answer as gradio_client raises it (app.demo_queue.queue_full_message; docs/UI.md)
QUEUE_FULL = re.compile(r"queue is full \((\d+) requests waiting.* Retry in about (\d+) s\.", re.IGNORECASE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_demo(index: Path, port: int, start_s: float, log: Path) -> subprocess.Popen:
    """`scenescope demo-ui` on 127.0.0.1:port serving ``index``; returns once /config answers."""
    env = {**os.environ, "SCENESCOPE_INDEX": str(index)}
    proc = subprocess.Popen([str(SCENESCOPE), "demo-ui", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + start_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise SystemExit(f"the demo did not start on port {port}:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def burst(url: str, image: Path, clients: int, k: int, deadline_s: float, retry: bool) -> tuple[list[dict], float]:
    """One call per client, all released together; each outcome: kind (result, queue_full, error),
    latency in seconds, refusals before the answer. Also the seconds from the release to the last answer."""
    from gradio_client import Client, handle_file

    made: list = [None] * clients

    def make(i: int) -> None:
        made[i] = Client(url, verbose=False, download_files=False, analytics_enabled=False,
                         httpx_kwargs={"timeout": deadline_s})

    threads = [threading.Thread(target=make, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    barrier = threading.Barrier(clients)
    out: list[dict] = [{} for _ in range(clients)]
    stop_at = time.monotonic() + deadline_s
    released = time.perf_counter()

    def call(i: int) -> None:
        barrier.wait()
        t0, refused, texts = time.perf_counter(), 0, []
        while True:
            try:
                r = made[i].predict(handle_file(str(image)), k, api_name="/classify")
                ok = isinstance(r, dict) and r.get("kind") == "image" and len(r.get("neighbors", [])) == k
                out[i] = {"kind": "result" if ok else "error", "detail": "" if ok else repr(r)[:200]}
            except Exception as e:  # noqa: BLE001 (every failure is counted and named)
                full = QUEUE_FULL.search(str(e))
                if full:
                    texts.append(str(e))
                if full and retry and time.monotonic() + int(full[2]) < stop_at:
                    refused += 1
                    time.sleep(int(full[2]))  # the wait the answer names
                    continue
                out[i] = {"kind": "queue_full" if full else "error", "detail": f"{type(e).__name__}: {e}"[:300]}
            out[i].update(latency=time.perf_counter() - t0, refused=refused, texts=texts)
            return

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, stop_at - time.monotonic()) + 5)
    wall = time.perf_counter() - released
    for o in out:
        if not o:  # still waiting past the deadline
            o.update(kind="error", detail="no answer within the deadline", latency=deadline_s, refused=0, texts=[])
    for c in made:
        c.close()
    return out, wall


def report(name: str, outcomes: list[dict], wall: float) -> None:
    kinds = Counter(o["kind"] for o in outcomes)
    answered = np.array([o["latency"] for o in outcomes if o["kind"] == "result"])
    refused = np.array([o["latency"] for o in outcomes if o["kind"] == "queue_full"])
    print(f"\n{name}: {len(outcomes)} clients, {wall:.1f} s from the release to the last answer")
    print(f"  answered {kinds['result']}, queue full {kinds['queue_full']}, other errors {kinds['error']}, "
          f"refusals retried {sum(o['refused'] for o in outcomes)}")
    if len(answered):
        print(f"  answer latency s: p50 {np.percentile(answered, 50):.2f}, p95 {np.percentile(answered, 95):.2f}, "
              f"max {answered.max():.2f}")
    if len(refused):
        print(f"  queue-full answer latency s: p50 {np.percentile(refused, 50):.2f}, "
              f"p95 {np.percentile(refused, 95):.2f}")
    waits = [int(QUEUE_FULL.search(t)[2]) for o in outcomes for t in o["texts"]]
    if waits:
        print(f"  queue-full answers: {len(waits)}, retry time named {min(waits)}-{max(waits)} s")
    for text, n in Counter(t for o in outcomes for t in o["texts"]).most_common(5):
        print(f"  {n} x {text!r}")
    for o in outcomes:
        if o["kind"] == "error":
            print("  error:", o["detail"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="indexes/demo", help="the index the demo serves")
    ap.add_argument("--image", default=None, help="the image every client sends (default: the index's first frame)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds a round may take in all")
    ap.add_argument("--start-s", type=float, default=180.0, help="seconds the demo may take to start")
    a = parse_args(ap, {"clients": 20, "deadline": 120.0}, argv)

    from app import demo, handlers
    from core.index import IndexStore

    index = Path(a.index).resolve()
    if not (index / "manifest.json").is_file():
        raise SystemExit(f"{index} is not an index (make one with `scenescope demo --prepare-only`)")
    image = Path(a.image) if a.image else handlers.frame_file(IndexStore.load(index), row=0)
    if image is None or not Path(image).is_file():
        raise SystemExit(f"no image to send: pass --image (looked for the first frame of {index})")
    print(f"demo queue: {demo.QUEUE_MAX} waiting, {demo.CONCURRENCY} computed at a time; image {image}")
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"load_gradio-{port}.log"
    proc = start_demo(index, port, a.start_s, log)
    failed = 0
    try:
        url = f"http://127.0.0.1:{port}/"
        warm, _ = burst(url, Path(image), 1, a.k, a.deadline, retry=False)  # model and index loaded
        one, _ = burst(url, Path(image), 1, a.k, a.deadline, retry=False)
        print(f"one client alone: {one[0]['kind']} in {one[0]['latency']:.2f} s (first call {warm[0]['latency']:.2f} s)")
        for name, retry in (("1. one call each", False), ("2. with the documented back-off", True)):
            outcomes, wall = burst(url, Path(image), a.clients, a.k, a.deadline, retry)
            report(name, outcomes, wall)
            failed += sum(o["kind"] == "error" for o in outcomes)
            failed += retry and sum(o["kind"] != "result" for o in outcomes)
    finally:
        stop(proc)
    if failed:
        raise SystemExit(f"{failed} calls ended otherwise than documented (server log: {log})")


if __name__ == "__main__":
    main()
