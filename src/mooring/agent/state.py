"""``agent.state``: a JSON key-value store that remembers which keys changed."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mooring._json import find_unstorable
from mooring.errors import UnstorableContentError

_MISSING = object()


@dataclass(frozen=True, kw_only=True)
class StateSnapshot:
    """The state's contents at one moment, taken by :meth:`AgentState.snapshot`.

    ``data`` is a private copy, ready to be stored. ``version`` is the state's
    :attr:`AgentState.version` at that moment; :meth:`AgentState.mark_synced` uses it to tell
    the changes the snapshot holds from the ones made after it.
    """

    data: dict[str, Any]
    version: int


class AgentState:
    """A JSON-serializable key-value store.

    Values are validated on ``set`` (the error names the key) and copied on the way in and
    out, so mutating what ``get`` returned never changes the stored value.

    The store also remembers which keys were set or deleted since they were last stored, so
    that several processes sharing one stored record can each write only their own changes.
    A persister (the session manager) drives it through five methods:

    - :meth:`load` when it restores the state from the store: the stored record replaces the
      contents and nothing is pending;
    - :meth:`merge_from` whenever it reads a newer stored record (catching up before a turn,
      or after losing a compare-and-set): the stored record replaces the contents, then the
      keys changed here and not yet stored are applied on top, deletions included. They stay
      pending, since the store does not hold them yet;
    - :meth:`dirty_keys` to decide whether there is anything to write;
    - :meth:`snapshot` to take what it writes, then :meth:`mark_synced` with that snapshot
      once the write succeeded. Keys changed after the snapshot was taken (by a tool thread,
      say, while the write was in flight) stay pending for the next write.

    So two processes that change different keys never lose each other's updates, and a key
    both change ends with the value of whichever wrote last.

    Example::

        state = AgentState({"a": 1})
        state.set("b", 2)
        state.merge_from({"a": 1, "c": 3})  # another process added "c"
        assert state.get() == {"a": 1, "b": 2, "c": 3}
        written = state.snapshot()
        ...  # store written.data
        state.mark_synced(written)
        assert not state.dirty_keys()
    """

    def __init__(self, initial: dict[str, Any] | AgentState | None = None) -> None:
        self._lock = threading.RLock()
        self._data: dict[str, Any] = {}
        # key -> the version at which it was last set or deleted, for keys not stored since
        self._dirty: dict[str, int] = {}
        self._version = 0
        self._on_change: Callable[[], None] | None = None
        self._nul_refused_by: str | None = None
        if isinstance(initial, AgentState):
            initial = initial.get()
        if initial is not None:
            if not isinstance(initial, dict):
                raise TypeError(f"state must be a dict, got {type(initial).__name__}")
            for key, value in initial.items():
                self.set(key, value)

    def set(self, key: str, value: Any) -> None:
        """Store a copy of ``value`` under ``key``; it must survive a JSON round trip.

        A value no backend can store (not JSON, nested deeper than 100 levels, a string with a
        lone surrogate) raises :class:`~mooring.errors.UnstorableContentError` naming the key.
        """
        self._check_key(key)
        # Checked before json.dumps, which a deep enough value would make raise RecursionError.
        problem = find_unstorable(value, allow_nul=self._nul_refused_by is None)
        if problem is not None:
            raise UnstorableContentError(f"agent.state value for key {key!r} cannot be stored{self._in()}: {problem}")
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise UnstorableContentError(f"agent.state value for key {key!r} is not JSON-serializable: {exc}") from exc
        with self._lock:
            self._data[key] = json.loads(encoded)
            self._version += 1
            self._dirty[key] = self._version
        self._changed()

    def get(self, key: str | None = None, default: Any = None) -> Any:
        """A copy of one value (``default`` when missing), or of the whole dict when no key is given."""
        with self._lock:
            if key is None:
                return copy.deepcopy(self._data)
            value = self._data.get(key, _MISSING)
            return default if value is _MISSING else copy.deepcopy(value)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present.

        Either way the deletion is pending until synced, so a merge removes the key from a
        stored record that still has it.
        """
        self._check_key(key)
        with self._lock:
            self._data.pop(key, None)
            self._version += 1
            self._dirty[key] = self._version
        self._changed()

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

    # -- the persistence protocol (see the class docstring) -----------------------------------

    def set_change_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` after every ``set`` and ``delete`` (``None`` stops it).

        The persister uses it to write a change made outside an invocation at once. The listener
        runs in the caller's thread after the change is made; an exception it raises reaches
        the caller of ``set``/``delete``, and the change stays pending for the next write.
        """
        self._on_change = listener

    def _changed(self) -> None:
        listener = self._on_change
        if listener is not None:
            listener()

    def dirty_keys(self) -> frozenset[str]:
        """The keys set or deleted since they were last marked synced."""
        with self._lock:
            return frozenset(self._dirty)

    def snapshot(self) -> StateSnapshot:
        """A copy of the whole contents to write, to hand back to :meth:`mark_synced` afterwards."""
        with self._lock:
            return StateSnapshot(data=copy.deepcopy(self._data), version=self._version)

    def mark_synced(self, written: StateSnapshot) -> None:
        """Record that ``written`` is now stored.

        Call it only after the write succeeded. The keys the snapshot held are no longer
        pending; a key set or deleted after the snapshot was taken still is.
        """
        with self._lock:
            self._dirty = {k: v for k, v in self._dirty.items() if v > written.version}

    def load(self, stored: Mapping[str, Any]) -> None:
        """Replace the contents with the stored record and forget every pending change.

        For restoring: what the store holds wins, changes made here and not stored are dropped.
        """
        with self._lock:
            self._data = copy.deepcopy(dict(stored))
            self._dirty.clear()
            self._version += 1

    def merge_from(self, stored: Mapping[str, Any]) -> None:
        """Replace the contents with a newer stored record, keeping this process's pending changes.

        Every pending key is applied on top of ``stored``: its local value, or its absence when
        it was deleted here. Keys only the stored record changed (another writer's) are taken as
        stored. Pending keys stay pending, so the next write carries them.
        """
        with self._lock:
            merged = copy.deepcopy(dict(stored))
            for key in self._dirty:
                value = self._data.get(key, _MISSING)
                if value is _MISSING:
                    merged.pop(key, None)
                else:
                    merged[key] = value  # already a private copy: self._data is replaced below
            self._data = merged
            self._version += 1

    def refuse_nul(self, store: str) -> None:
        """Refuse strings holding U+0000 from now on too, as ``store`` (which cannot hold them) must."""
        with self._lock:
            self._nul_refused_by = store

    def _in(self) -> str:
        return "" if self._nul_refused_by is None else f" in {self._nul_refused_by}"

    def _check_key(self, key: object) -> None:
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"agent.state keys must be non-blank strings, got {key!r}")
        problem = find_unstorable(key, allow_nul=self._nul_refused_by is None)
        if problem is not None:
            raise UnstorableContentError(f"agent.state key {key!r} cannot be stored{self._in()}: {problem}")
