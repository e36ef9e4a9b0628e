"""read_export: every malformed export is refused with the line at fault, a good one reads back whole."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from mooring.errors import CorruptRecordError
from mooring.session import export
from mooring.session.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionRecord


def snapshot() -> export.SessionSnapshot:
    """One session: agent "a" with two messages, agent "b" with none, one multi-agent record."""
    messages = [
        MessageRecord(message_id=i, message={"role": role, "content": [{"text": f"message {i}"}]})
        for i, role in enumerate(("user", "assistant"))
    ]
    return export.SessionSnapshot(
        session=SessionRecord(session_id="s1"),
        agents={
            "a": export._SnapshotAgent(
                record=AgentRecord(agent_id="a", next_message_id=2), declared=2, messages=messages
            ),
            "b": export._SnapshotAgent(record=AgentRecord(agent_id="b"), declared=0),
        },
        multi_agents={"graph": MultiAgentRecord(multi_agent_id="graph", state={"status": "done"})},
    )


def export_lines() -> list[dict[str, Any]]:
    lines: list[str] = []
    asyncio.run(export.export_session(snapshot(), "s1", lines.append))
    return [json.loads(line) for line in lines]


def text(items: list[Any]) -> list[str]:
    return [(item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items]


def test_an_export_reads_back_whole_and_blank_lines_are_skipped() -> None:
    items = export_lines()
    assert [item["type"] for item in items] == [
        "mooring-export",
        "session",
        "agent",
        "message",
        "message",
        "agent",
        "multi_agent",
        "end",
    ]
    read = export.read_export(["\n", *text(items[:3]), "   \n", *text(items[3:])])
    assert read.session_id == "s1"
    assert sorted(read.agents) == ["a", "b"]
    assert [m.message["content"] for m in read.agents["a"].messages] == [
        [{"text": "message 0"}],
        [{"text": "message 1"}],
    ]
    assert read.agents["b"].messages == []
    assert read.multi_agents["graph"].state == {"status": "done"}


def header(**changes: Any) -> dict[str, Any]:
    return {**export_lines()[0], **changes}


def replace(index: int, item: Any) -> list[Any]:
    items: list[Any] = export_lines()
    items[index] = item
    return items


def without(index: int) -> list[Any]:
    items: list[Any] = export_lines()
    del items[index]
    return items


def with_record(index: int, **changes: Any) -> list[Any]:
    items: list[Any] = export_lines()
    items[index] = {**items[index], "record": {**items[index]["record"], **changes}}
    return items


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([], "export: empty file"),
        (["{not json"], "export:1: not valid JSON"),
        ([["a", "list"]], "export:1: expected a JSON object with a 'type'"),
        ([{"type": 3}], "export:1: expected a JSON object with a 'type'"),
        ([{"type": "something-else"}], "export:1: not a mooring export"),
        ([header(version=99)], "export:1: export format version 99 is not supported"),
        ([header()], "export: no session record"),
        (without(1), "export:2: 'agent' record before the session record"),
        (replace(2, export_lines()[1]), "export:3: a second session record"),
        (replace(5, export_lines()[2]), "export:6: agent 'a' appears twice"),
        (replace(2, {**export_lines()[2], "messages": -1}), "export:3: 'messages' must be a non-negative integer"),
        (replace(2, {**export_lines()[2], "messages": "2"}), "export:3: 'messages' must be a non-negative integer"),
        (replace(3, {**export_lines()[3], "agent_id": "ghost"}), "export:4: message for agent 'ghost' before"),
        (with_record(4, message_id=5), "export:5: holds message_id 5, expected 1"),
        (replace(6, {"type": "surprise"}), "export:7: unknown record type 'surprise'"),
        ([*export_lines(), {"type": "end"}], "export:9: data after the end record"),
        (without(7), "export: no end record; the export is truncated"),
        (without(4), "export: agent 'a' declares 2 messages but the file holds 1"),
        (replace(7, {**export_lines()[7], "multi_agents": 0}), "export: the end record's counts do not match"),
    ],
)
def test_a_malformed_export_names_the_line_at_fault(items: list[Any], error: str) -> None:
    with pytest.raises(CorruptRecordError, match=error):
        export.read_export(text(items))
