"""Values a process computes again and again, kept for reuse: least recently used dropped
first, bounded in bytes (`nbytes` of numpy arrays and torch tensors alike).

A batch job processes image after image of one shape, so it draws the same positional noise
and dither for each, and a gather reads each tile's block several times."""

from __future__ import annotations

from collections import OrderedDict


class Kept:
    """At most `max_bytes` of values by key; a value over `largest` bytes is not kept (None:
    any value is, the latest one even past `max_bytes`)."""

    def __init__(self, max_bytes: int, largest: int | None = None):
        self.max_bytes, self.largest = max_bytes, largest
        self._values: OrderedDict = OrderedDict()
        self._bytes = 0

    def get(self, key):
        """The value kept for `key` (now the most recently used), or None."""
        value = self._values.get(key)
        if value is not None:
            self._values.move_to_end(key)
        return value

    def put(self, key, value) -> bool:
        """Keep `value` for `key`; False where it is too large to keep."""
        if self.largest is not None and value.nbytes > self.largest:
            return False
        old = self._values.pop(key, None)
        self._bytes += value.nbytes - (0 if old is None else old.nbytes)
        self._values[key] = value
        while self._bytes > self.max_bytes and len(self._values) > 1:
            _, dropped = self._values.popitem(last=False)
            self._bytes -= dropped.nbytes
        return True

    def clear(self) -> None:
        self._values.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._values)
