"""`mooring sessions verify [--repair]` on damaged file stores."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from cli_helpers import Cli, message_files, stored_messages, tool_turn, write_session

from mooring import Agent
from mooring.models import ScriptedModel
from mooring.session import FileSessionManager
from mooring.types import text_of


def messages_dir(store: Path, session_id: str, agent_id: str = "default") -> Path:
    return store / f"session_{session_id}" / "agents" / f"agent_{agent_id}" / "messages"


def truncate(path: Path) -> bytes:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return data[: len(data) // 2]


def problems(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in result["problems"] if p["kind"] == kind]


def three_turns(session_id: str, store: Path) -> None:
    write_session(store, session_id, [("one", ["1"]), ("two", ["2"]), ("three", ["3"])])


def test_a_healthy_store_verifies_clean(store: Path, cli: Cli) -> None:
    three_turns("ok", store)
    write_session(store, "tools", [tool_turn()])
    code, out, _ = cli("sessions", "verify", "--store", str(store), "--json")
    result = json.loads(out)
    assert code == 0
    assert result["ok"] is True and result["problems"] == [] and result["remaining"] is None
    assert (result["sessions"], result["agents"], result["messages"]) == (2, 2, 10)
    code, out, _ = cli("sessions", "verify", "--store", str(store))
    assert code == 0 and "problems found: none" in out


def test_verify_finds_a_truncated_file_a_gap_and_a_dangling_tool_use(store: Path, cli: Cli) -> None:
    three_turns("truncated", store)
    truncate(messages_dir(store, "truncated") / "message_3.json")
    three_turns("gap", store)
    (messages_dir(store, "gap") / "message_2.json").unlink()
    write_session(store, "dangling", [("hello", ["hi"]), tool_turn()])
    answer = messages_dir(store, "dangling") / "message_4.json"
    record = json.loads(answer.read_text())
    record["message"]["content"][0]["toolResult"]["toolUseId"] = "someone-else"
    answer.write_text(json.dumps(record))

    code, out, _ = cli("sessions", "verify", "--store", str(store), "--json")
    result = json.loads(out)
    assert code == 1 and result["ok"] is False

    [corrupt] = problems(result, "corrupt-record")
    assert corrupt["session_id"] == "truncated" and corrupt["agent_id"] == "default"
    assert corrupt["message_id"] == 3
    assert corrupt["location"] == str(messages_dir(store, "truncated") / "message_3.json")
    assert "truncated" in corrupt["detail"]

    [gap] = problems(result, "id-gap")
    assert (gap["session_id"], gap["message_id"]) == ("gap", 2)
    assert gap["location"].endswith("session_gap/agents/agent_default/messages/message_2.json")
    assert "message 2 missing" in gap["detail"]

    [dangling] = problems(result, "dangling-tool-use")
    assert (dangling["session_id"], dangling["message_id"], dangling["severity"]) == ("dangling", 3, "error")
    assert "word_count [tu-1]" in dangling["detail"]
    [orphan] = problems(result, "orphan-tool-result")
    assert (orphan["session_id"], orphan["message_id"]) == ("dangling", 4)

    code, out, _ = cli("sessions", "verify", "--store", str(store))
    assert code == 1
    for text in (
        "corrupt-record",
        "message_3.json",
        "id-gap",
        "dangling-tool-use",
        "word_count [tu-1]",
        "errors remain",
    ):
        assert text in out


def test_each_corrupt_message_is_reported_by_itself(store: Path, cli: Cli) -> None:
    three_turns("s1", store)
    truncate(messages_dir(store, "s1") / "message_1.json")
    (messages_dir(store, "s1") / "message_4.json").write_text("")
    result = json.loads(cli("sessions", "verify", "--store", str(store), "--json")[1])
    assert sorted(p["message_id"] for p in problems(result, "corrupt-record")) == [1, 4]
    assert result["messages"] == 4  # the readable ones were still checked


def test_a_tool_use_left_at_the_end_is_a_warning(store: Path, cli: Cli) -> None:
    write_session(store, "s1", [tool_turn()])
    # the agent record points at the head of 4 (a plain turn may leave it trailing, not ahead)
    record_path = messages_dir(store, "s1").parent / "agent.json"
    record = json.loads(record_path.read_text())
    record["_mooring"]["next_message_id"] = 4
    record_path.write_text(json.dumps(record))
    for name in ("message_2.json", "message_3.json"):
        (messages_dir(store, "s1") / name).unlink()
    result = json.loads(cli("sessions", "verify", "--store", str(store), "--json")[1])
    [dangling] = problems(result, "dangling-tool-use")
    assert dangling["severity"] == "warning" and dangling["message_id"] == 1
    # the agent record still points at the old head
    [mismatch] = problems(result, "head-mismatch")
    assert mismatch["severity"] == "error" and "is 4 but the store's head is 2" in mismatch["detail"]


def test_repair_quarantines_the_truncated_file_and_the_store_loads(store: Path, cli: Cli) -> None:
    three_turns("truncated", store)
    kept = truncate(messages_dir(store, "truncated") / "message_5.json")  # the last write, torn
    three_turns("gap", store)
    (messages_dir(store, "gap") / "message_2.json").unlink()

    code, out, _ = cli("sessions", "verify", "--store", str(store), "--repair", "--json")
    result = json.loads(out)
    assert code == 0, result
    assert result["ok"] is True
    assert all(p["severity"] == "warning" for p in result["remaining"])

    quarantined = {
        Path(r["location"]).relative_to(store).as_posix(): Path(r["to"])
        for r in result["repairs"]
        if r["action"] == "quarantined"
    }
    # The torn file is kept aside; the gap had no file to keep. Both get a placeholder.
    assert set(quarantined) == {"session_truncated/agents/agent_default/messages/message_5.json"}
    moved = quarantined["session_truncated/agents/agent_default/messages/message_5.json"]
    assert moved.read_bytes() == kept  # moved aside, not deleted
    assert moved.is_relative_to(store / ".quarantine")
    placed = sorted(
        (Path(r["location"]).relative_to(store).parts[0], r["message_id"])
        for r in result["repairs"]
        if r["action"] == "placeholder"
    )
    assert placed == [("session_gap", 2), ("session_truncated", 5)]
    assert message_files(store, "truncated") == [f"message_{i}.json" for i in range(6)]
    assert message_files(store, "gap") == [f"message_{i}.json" for i in range(6)]
    assert [text_of(m) for m in stored_messages(store, "gap")][3:] == ["2", "three", "3"]  # kept

    # The store loads again, every intact message in place.
    agent = Agent(
        agent_id="default",
        model=ScriptedModel(["fine"]),
        session_manager=FileSessionManager(session_id="truncated", storage_dir=store),
        callback_handler=None,
    )
    assert [text_of(m) for m in agent.messages][:5] == ["one", "1", "two", "2", "three"]
    assert "message 5 could not be read" in text_of(agent.messages[5])
    agent("four")
    assert [text_of(m) for m in stored_messages(store, "truncated")][-2:] == ["four", "fine"]

    code, out, _ = cli("sessions", "verify", "--store", str(store), "--json")
    assert code == 0 and json.loads(out)["problems"] == []
    assert [s["session_id"] for s in cli.json("sessions", "list", "--store", str(store))["sessions"]] == [
        "gap",
        "truncated",
    ]


def test_repair_of_a_corrupt_session_record(store: Path, cli: Cli) -> None:
    three_turns("s1", store)
    session_json = store / "session_s1" / "session.json"
    truncate(session_json)
    assert cli.json("sessions", "list", "--store", str(store))["sessions"] == []  # the listing cannot read it

    result = json.loads(cli("sessions", "verify", "--store", str(store), "--json")[1])
    [corrupt] = problems(result, "corrupt-record")
    assert corrupt["location"] == str(session_json) and corrupt["agent_id"] is None

    code, out, _ = cli("sessions", "verify", "--store", str(store), "--repair", "--json")
    assert code == 0
    actions = [r["action"] for r in json.loads(out)["repairs"]]
    assert actions == ["quarantined", "recreated"]
    assert [s["session_id"] for s in cli.json("sessions", "list", "--store", str(store))["sessions"]] == ["s1"]
    assert len(stored_messages(store, "s1")) == 6


def test_verify_and_repair_on_a_backend_without_files(store: Path, tmp_path: Path, cli: Cli) -> None:
    from mooring.session import open_repository

    three_turns("s1", store)
    database = f"sqlite:///{tmp_path / 'sessions.db'}"
    assert cli("sessions", "copy", "--from", str(store), "--to", database)[0] == 0
    assert json.loads(cli("sessions", "verify", "--store", database, "--json")[1])["problems"] == []

    async def break_the_hint() -> None:
        repository = open_repository(database)
        try:
            record = await repository.read_agent("s1", "default")
            assert record is not None
            record.next_message_id = 9
            await repository.update_agent("s1", record, expected_version=record.version)
        finally:
            await repository.close()

    asyncio.run(break_the_hint())
    code, out, _ = cli("sessions", "verify", "--store", database, "--json")
    [mismatch] = json.loads(out)["problems"]
    assert code == 1 and mismatch["kind"] == "head-mismatch" and mismatch["location"].startswith("session 's1'")

    code, out, _ = cli("sessions", "verify", "--store", database, "--repair", "--json")
    result = json.loads(out)
    assert code == 0 and result["remaining"] == []
    assert [r["action"] for r in result["repairs"]] == ["updated-head"]


def test_temp_files_left_by_a_crash_are_reported_and_moved_aside(store: Path, cli: Cli) -> None:
    three_turns("crashed", store)
    directory = messages_dir(store, "crashed")
    stale = directory / ".mooring-0123abcd.tmp"
    stale.write_text('{"message": {"role": "user", "content": [{"te')
    old = stale.stat().st_mtime - 3600
    os.utime(stale, (old, old))
    fresh = directory / ".mooring-fedc3210.tmp"  # a write in progress right now: left alone
    fresh.write_text("{")

    result = cli.json("sessions", "verify", "--store", str(store))
    [found] = problems(result, "temp-file")
    assert found["severity"] == "warning" and found["location"] == str(stale)

    code, out, _ = cli("sessions", "verify", "--store", str(store), "--repair", "--json")
    repaired = json.loads(out)
    assert code == 0
    [moved] = [r for r in repaired["repairs"] if r["location"] == str(stale)]
    assert moved["action"] == "quarantined" and Path(moved["to"]).read_text().startswith('{"message"')
    assert not stale.exists() and fresh.exists()
    assert message_files(store, "crashed") == [f"message_{i}.json" for i in range(6)]


# -- symlinks and hard links: reported by path, the rest of the store checked, nothing followed --


def test_verify_reports_each_symlink_and_hard_link_and_checks_the_rest(store: Path, tmp_path: Path, cli: Cli) -> None:
    three_turns("healthy", store)
    three_turns("links", store)
    elsewhere = tmp_path / "elsewhere"
    write_session(elsewhere, "real", [("x", ["y"])])
    (store / "session_evil").symlink_to(elsewhere / "session_real", target_is_directory=True)
    agents = store / "session_links" / "agents"
    (agents / "agent_other").symlink_to(elsewhere / "session_real" / "agents" / "agent_default")
    secret = tmp_path / "secret.json"
    symlinked = messages_dir(store, "links") / "message_1.json"
    secret.write_bytes(symlinked.read_bytes())
    symlinked.unlink()
    symlinked.symlink_to(secret)
    hard = messages_dir(store, "links") / "message_3.json"
    os.link(hard, tmp_path / "outside.json")

    code, out, _ = cli("sessions", "verify", "--store", str(store), "--json")
    result = json.loads(out)
    assert code == 1
    found = sorted((p["kind"], Path(p["location"]).relative_to(store).as_posix()) for p in result["problems"])
    assert found == [
        ("hard-link", "session_links/agents/agent_default/messages/message_3.json"),
        ("symlink", "session_evil"),
        ("symlink", "session_links/agents/agent_default/messages/message_1.json"),
        ("symlink", "session_links/agents/agent_other"),
    ]
    assert result["messages"] == 6 + 4  # healthy, and what is readable of links

    code, out, _ = cli("sessions", "verify", "--store", str(store))
    assert code == 1 and "repair would: move the file to quarantine and put a placeholder" in out

    code, out, _ = cli("sessions", "verify", "--store", str(store), "--repair", "--json")
    repaired = json.loads(out)
    placed = sorted(r["message_id"] for r in repaired["repairs"] if r["action"] == "placeholder")
    assert placed == [1, 3]
    left = sorted(p["kind"] for p in repaired["remaining"] if p["severity"] == "error")
    assert left == ["symlink", "symlink"]  # the directories: left for the user to resolve
    assert json.loads(secret.read_text())["message_id"] == 1  # never written through
    assert (tmp_path / "outside.json").read_bytes() != b"" and (store / "session_evil").is_symlink()
    assert len(stored_messages(store, "links")) == 6


def test_repair_refuses_a_symlinked_quarantine(store: Path, tmp_path: Path, cli: Cli) -> None:
    three_turns("s1", store)
    outside = tmp_path / "outside"
    outside.mkdir()
    (store / ".quarantine").symlink_to(outside)
    torn = messages_dir(store, "s1") / "message_2.json"
    kept = truncate(torn)

    code, out, _ = cli("sessions", "verify", "--store", str(store), "--repair", "--json")
    result = json.loads(out)
    assert code == 1
    assert [(p["kind"], p["location"]) for p in result["remaining"] if p["kind"] == "symlink"] == [
        ("symlink", str(store / ".quarantine"))
    ]
    [skipped] = [r for r in result["repairs"] if r["message_id"] == 2]
    assert skipped["action"] == "skipped" and "symlink" in skipped["detail"]
    assert list(outside.iterdir()) == [] and torn.read_bytes() == kept


def test_a_store_opened_with_allow_hard_links_reports_them_as_warnings(store: Path, tmp_path: Path, cli: Cli) -> None:
    three_turns("s1", store)
    os.link(messages_dir(store, "s1") / "message_0.json", tmp_path / "backup.json")
    code, out, _ = cli("sessions", "verify", "--store", f"file://{store}?allow_hard_links=true", "--json")
    result = json.loads(out)
    assert code == 0 and [(p["kind"], p["severity"]) for p in result["problems"]] == [("hard-link", "warning")]
    code, out, _ = cli("sessions", "verify", "--store", f"file://{store}?allow_hard_links=true", "--repair", "--json")
    assert code == 0 and json.loads(out)["repairs"] == []
