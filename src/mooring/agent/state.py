"""``agent.state``: a JSON key-value store that remembers which keys changed."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

_MISSING = object()


class AgentState:
    """A JSON-serializable key-value store.

    Values are validated on ``set`` (the error names the key) and copied on the way in and
    out, so mutating what ``get`` returned never changes the stored value. The store tracks
    which keys were set or deleted since the last :meth:`_mark_synced`, so a session manager
    can merge them over a newer stored copy instead of overwriting other processes' keys.
    """

    def __init__(self, initial: dict[str, Any] | AgentState | None = None) -> None:
        self._lock = threading.RLock()
        self._data: dict[str, Any] = {}
        self._dirty: set[str] = set()
        self._version = 0
        if isinstance(initial, AgentState):
            initial = initial.get()
        if initial is not None:
            if not isinstance(initial, dict):
                raise TypeError(f"state must be a dict, got {type(initial).__name__}")
            for key, value in initial.items():
                self.set(key, value)

    def set(self, key: str, value: Any) -> None:
        """Store a copy of ``value`` under ``key``; it must survive a JSON round trip."""
        self._check_key(key)
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"agent.state value for key {key!r} is not JSON-serializable: {exc}") from exc
        with self._lock:
            self._data[key] = json.loads(encoded)
            self._dirty.add(key)
            self._version += 1

    def get(self, key: str | None = None, default: Any = None) -> Any:
        """A copy of one value (``default`` when missing), or of the whole dict when no key is given."""
        with self._lock:
            if key is None:
                return copy.deepcopy(self._data)
            value = self._data.get(key, _MISSING)
            return default if value is _MISSING else copy.deepcopy(value)

    def delete(self, key: str) -> None:
        self._check_key(key)
        with self._lock:
            self._data.pop(key, None)
            self._dirty.add(key)
            self._version += 1

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._data)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __repr__(self) -> str:
        return f"AgentState({self._data!r})"

    @property
    def version(self) -> int:
        """Bumped on every change; lets observers skip work when nothing changed."""
        return self._version

    # -- used by session managers -------------------------------------------------------------

    def _dirty_changes(self) -> dict[str, Any]:
        """The keys changed since the last sync: value, or ``_MISSING`` for deleted keys."""
        with self._lock:
            return {k: copy.deepcopy(self._data.get(k, _MISSING)) for k in self._dirty}

    def _mark_synced(self) -> None:
        with self._lock:
            self._dirty.clear()

    def _replace(self, data: dict[str, Any], keep_dirty: bool = True) -> None:
        """Replace the contents with ``data``, re-applying this process's unsynced changes on top."""
        with self._lock:
            changes = self._dirty_changes() if keep_dirty else {}
            merged = copy.deepcopy(data)
            for key, value in changes.items():
                if value is _MISSING:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            self._data = merged
            if not keep_dirty:
                self._dirty.clear()
            self._version += 1

    @staticmethod
    def _check_key(key: object) -> None:
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"agent.state keys must be non-blank strings, got {key!r}")


def is_missing(value: Any) -> bool:
    return value is _MISSING
