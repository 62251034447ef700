"""Run an iterator in a background thread, a bounded number of items ahead of its consumer.

The clip path decodes a clip and embeds its frames: FFmpeg releases the GIL while it decodes and
torch while it computes, so on two cores the two overlap when decoding runs in a thread of its own
(bench/RESULTS.md 12d). The source is iterated, and closed, only in that thread: a generator
cannot be closed from another thread while it runs. Its exceptions reach the consumer unchanged.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()  # the source is exhausted (or failed: then the item before it is the exception)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(source: Iterable[T], depth: int, name: str = "scenescope-read-ahead") -> Iterator[T]:
    """Yield ``source``'s items in order while a thread produces up to ``depth`` of them ahead.

    Closing the returned generator (or leaving it early) stops the thread after the item in hand,
    closes ``source`` in that thread and waits for it, so the source's resources (an open file)
    are released before the close returns.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:  # False once the consumer has gone
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(source)
        try:
            for item in it:
                if not put(item):
                    break
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(_Failed(e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            put(_END)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                break
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


__all__ = ["read_ahead"]
