"""The protocol between ``agent.state`` and whoever persists it (rule 5: state merges by key)."""

from __future__ import annotations

from mooring import AgentState


def synced(data: dict[str, object]) -> AgentState:
    """A state as a persister leaves it after restoring ``data``: nothing pending."""
    state = AgentState()
    state.load(data)
    return state


def test_set_and_delete_are_pending_until_synced() -> None:
    state = synced({"kept": 0, "gone": 1})
    assert state.dirty_keys() == frozenset()
    state.set("new", 2)
    state.delete("gone")
    state.delete("never_there")  # still a change a merge must apply
    assert state.dirty_keys() == {"new", "gone", "never_there"}
    assert state.get() == {"kept": 0, "new": 2}


def test_initial_values_are_pending() -> None:
    assert AgentState({"a": 1}).dirty_keys() == {"a"}


def test_mark_synced_clears_what_the_snapshot_held() -> None:
    state = AgentState({"a": 1})
    state.delete("b")
    written = state.snapshot()
    assert written.data == {"a": 1}
    state.mark_synced(written)
    assert state.dirty_keys() == frozenset()
    assert state.get() == {"a": 1}


def test_a_snapshot_is_a_copy() -> None:
    state = AgentState({"a": [1]})
    written = state.snapshot()
    written.data["a"].append(2)
    assert state.get("a") == [1]


def test_merge_keeps_other_writers_keys_and_applies_local_changes_on_top() -> None:
    state = synced({"shared": "old", "mine": 0, "doomed": True})
    state.set("mine", 1)
    state.delete("doomed")
    # Another process stored a new "theirs", a new "shared", and still has "doomed".
    state.merge_from({"shared": "theirs", "mine": 0, "doomed": True, "theirs": 7})
    assert state.get() == {"shared": "theirs", "mine": 1, "theirs": 7}
    # The local changes are not stored yet: still pending.
    assert state.dirty_keys() == {"mine", "doomed"}


def test_merge_does_not_share_the_stored_dict() -> None:
    stored: dict[str, object] = {"a": {"n": 1}}
    state = AgentState()
    state.merge_from(stored)
    stored["a"] = "changed"
    state.set("b", 2)
    assert state.get() == {"a": {"n": 1}, "b": 2}


def test_a_value_set_between_two_syncs_survives_a_merge() -> None:
    state = AgentState({"a": 1})
    state.mark_synced(state.snapshot())
    state.set("between", "kept")
    state.merge_from({"a": 1, "other": 2})  # the next catch-up
    assert state.get() == {"a": 1, "between": "kept", "other": 2}
    written = state.snapshot()
    assert written.data == {"a": 1, "between": "kept", "other": 2}
    state.mark_synced(written)
    assert state.dirty_keys() == frozenset()


def test_a_change_made_while_a_write_is_in_flight_stays_pending() -> None:
    state = synced({"a": 1})
    state.set("a", 2)
    written = state.snapshot()
    state.set("late", 3)  # for example a tool thread, while the write is awaited
    state.delete("a")
    state.mark_synced(written)
    assert state.dirty_keys() == {"late", "a"}
    state.merge_from(written.data)
    assert state.get() == {"late": 3}


def test_load_drops_pending_changes() -> None:
    state = AgentState({"local": 1})
    state.load({"stored": 2})
    assert state.get() == {"stored": 2}
    assert state.dirty_keys() == frozenset()


def test_merging_and_loading_bump_the_version() -> None:
    state = AgentState()
    before = state.version
    state.merge_from({"a": 1})
    state.load({"a": 2})
    assert state.version == before + 2
