"""`mooring sessions copy`: between any two stores, from a Strands-written directory, resumable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Cli, message_files, stored_messages, tool_turn, write_session
from strands import Agent as StrandsAgent
from strands import tool as strands_tool
from strands.session.file_session_manager import FileSessionManager as StrandsFileSessionManager

from mooring.cli.sessions import _sessions_to_copy
from mooring.errors import ConflictError
from mooring.session import FileSessionRepository, InMemorySessionRepository, MultiAgentRecord, SessionRecord
from mooring.session.ops import copy_session

from helpers.strands_model import OfflineStrandsModel


class CountingStrandsModel(OfflineStrandsModel):
    """A tiny offline model for the real strands package: calls its tool when asked to count."""

    async def stream(
        self, messages: Any, tool_specs: Any = None, system_prompt: Any = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        last = messages[-1]
        results = [b["toolResult"] for b in last["content"] if "toolResult" in b]
        text = "".join(b.get("text", "") for b in last["content"])
        yield {"messageStart": {"role": "assistant"}}
        if not results and text.startswith("count "):
            use_id = f"tool-{len(messages)}"
            yield {"contentBlockStart": {"start": {"toolUse": {"toolUseId": use_id, "name": "count_words"}}}}
            yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps({"text": text[6:]})}}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "tool_use"}}
        else:
            answer = f"the tool said {results[0]['content'][0]['text']}" if results else f"echo: {text}"
            yield {"contentBlockStart": {"start": {}}}
            yield {"contentBlockDelta": {"delta": {"text": answer}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "end_turn"}}
        yield {
            "metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}
        }


@strands_tool
def count_words(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text
    """
    return len(text.split())


def strands_directory(root: Path) -> Path:
    """Sessions written by the real strands-agents FileSessionManager (a tool call included)."""
    for session_id, prompts in (("alpha", ["hello", "count one two three", "bye"]), ("beta", ["just one"])):
        agent = StrandsAgent(
            model=CountingStrandsModel(),
            agent_id="assistant",
            tools=[count_words],
            session_manager=StrandsFileSessionManager(session_id=session_id, storage_dir=str(root)),
            callback_handler=None,
        )
        for prompt in prompts:
            agent(prompt)
        agent.state.set("seen", len(prompts))
        agent("one more")  # persists the state change
    return root


def stored_agent(root: Path, session_id: str, agent_id: str = "assistant") -> dict[str, Any]:
    data = json.loads((root / f"session_{session_id}" / "agents" / f"agent_{agent_id}" / "agent.json").read_text())
    return data  # type: ignore[no-any-return]


def test_strands_directory_to_sqlite_and_back_is_identical(tmp_path: Path, cli: Cli) -> None:
    strands_dir = strands_directory(tmp_path / "strands")
    database = f"sqlite:///{tmp_path / 'sessions.db'}"
    back = tmp_path / "back"

    there = cli.json("sessions", "copy", "--from", str(strands_dir), "--to", database)
    assert there["failed"] == 0
    assert {s["session_id"]: s["messages_copied"] for s in there["sessions"]} == {"alpha": 10, "beta": 4}
    again = cli.json("sessions", "copy", "--from", str(strands_dir), "--to", database)
    assert again["messages_copied"] == 0 and again["messages_present"] == 14  # idempotent

    home = cli.json("sessions", "copy", "--from", database, "--to", str(back))
    assert home["messages_copied"] == 14

    for session_id in ("alpha", "beta"):
        original = stored_messages(strands_dir, session_id, "assistant")
        assert stored_messages(back, session_id, "assistant") == original  # tracking ids, metadata and all
        assert stored_agent(back, session_id)["state"] == stored_agent(strands_dir, session_id)["state"]
    alpha = stored_messages(back, "alpha", "assistant")
    assert any("toolUse" in b for m in alpha for b in m["content"])
    assert any("toolResult" in b for m in alpha for b in m["content"])

    # Strands itself reads the round-tripped directory.
    theirs = StrandsAgent(
        model=CountingStrandsModel(),
        agent_id="assistant",
        tools=[count_words],
        session_manager=StrandsFileSessionManager(session_id="alpha", storage_dir=str(back)),
        callback_handler=None,
    )
    assert [m["content"] for m in theirs.messages] == [m["content"] for m in alpha]
    assert theirs.state.get("seen") == 3


def test_strands_directory_to_a_file_store_and_back(tmp_path: Path, cli: Cli) -> None:
    strands_dir = strands_directory(tmp_path / "strands")
    middle, back = tmp_path / "middle", tmp_path / "back"
    assert cli.json("sessions", "copy", "--from", str(strands_dir), "--to", str(middle))["messages_copied"] == 14
    assert cli.json("sessions", "copy", "--from", str(middle), "--to", str(back))["messages_copied"] == 14
    for session_id in ("alpha", "beta"):
        assert stored_messages(back, session_id, "assistant") == stored_messages(strands_dir, session_id, "assistant")
    code, out, err = cli("sessions", "copy", "--from", str(middle), "--to", str(back))
    assert code == 0 and "up to date" in out
    assert err == ""  # no progress bar when stderr is not a terminal


def test_an_interrupted_copy_resumes_without_duplicates(store: Path, tmp_path: Path, cli: Cli) -> None:
    write_session(store, "s1", [("one", ["1"]), tool_turn(), ("three", ["3"])], state={"k": 1})
    target = tmp_path / "target"

    class Stop(Exception):
        pass

    def stop_after_first_batch(count: int) -> None:
        raise Stop

    async def interrupted() -> None:
        with pytest.raises(Stop):
            await copy_session(
                FileSessionRepository(store),
                "s1",
                FileSessionRepository(target),
                batch_size=3,
                on_messages=stop_after_first_batch,
            )

    asyncio.run(interrupted())
    assert message_files(target, "s1") == ["message_0.json", "message_1.json", "message_2.json"]

    report = cli.json("sessions", "copy", "--from", str(store), "--to", str(target), "--session", "s1")
    [session] = report["sessions"]
    assert (session["messages_present"], session["messages_copied"], session["created"]) == (3, 5, False)
    assert stored_messages(target, "s1") == stored_messages(store, "s1")
    record = stored_agent(target, "s1", "default")
    assert record["state"] == {"k": 1}
    assert record["_mooring"]["next_message_id"] == 8

    rerun = cli.json("sessions", "copy", "--from", str(store), "--to", str(target), "--session", "s1")
    assert rerun["messages_copied"] == 0 and rerun["sessions"][0]["agent_records_written"] == 0


def test_copy_never_overwrites_a_diverged_destination(store: Path, tmp_path: Path, cli: Cli) -> None:
    write_session(store, "s1", [("one", ["1"]), ("two", ["2"])])
    target = tmp_path / "target"
    write_session(target, "s1", [("one", ["1"]), ("something else", ["x"])])
    write_session(store, "s2", [("fine", ["ok"])])

    code, out, err = cli("sessions", "copy", "--from", str(store), "--to", str(target), "--json")
    assert code == 1
    assert err.startswith("mooring: error: 1 of 2 session(s) could not be copied")
    report = {s["session_id"]: s for s in json.loads(out)["sessions"]}
    assert "diverged" in report["s1"]["error"] and "message 3" in report["s1"]["error"]
    assert report["s2"]["error"] is None and report["s2"]["messages_copied"] == 2
    assert [m["content"][0]["text"] for m in stored_messages(target, "s1")][2] == "something else"


def test_the_table_shows_each_session_s_outcome(store: Path, tmp_path: Path, cli: Cli) -> None:
    write_session(store, "s1", [("one", ["1"]), ("two", ["2"])])
    target = tmp_path / "target"
    write_session(target, "s1", [("one", ["1"]), ("something else", ["x"])])
    write_session(store, "s2", [("fine", ["ok"])])
    assert cli("sessions", "copy", "--from", str(store), "--to", str(target), "--session", "s2")[0] == 0
    write_session(store, "s3", [("new", ["yes"])])

    code, out, err = cli("sessions", "copy", "--from", str(store), "--to", str(target))
    assert code == 1 and "1 of 3 session(s) could not be copied" in err
    rows = {line.split()[1]: line for line in out.splitlines() if line.split()[1:2] in (["s1"], ["s2"], ["s3"])}
    assert "failed:" in rows["s1"] and "up to date" in rows["s2"] and "copied" in rows["s3"]
    assert "3 session(s), 2 message(s) copied" in out


def test_copy_lists_every_session_past_the_first_page() -> None:
    repository = InMemorySessionRepository()
    ids = [f"s{i:04d}" for i in range(1201)]  # three pages of 500

    async def listed() -> list[str]:
        for session_id in ids:
            await repository.create_session(SessionRecord(session_id=session_id))
        return await _sessions_to_copy(repository, None)

    assert sorted(asyncio.run(listed())) == ids


def test_copy_carries_multi_agent_records(store: Path, tmp_path: Path, cli: Cli) -> None:
    write_session(store, "s1", [("one", ["1"])])
    repository = FileSessionRepository(store)
    asyncio.run(
        repository.create_multi_agent("s1", MultiAgentRecord(multi_agent_id="graph", state={"status": "running"}))
    )
    target = tmp_path / "target"
    report = cli.json("sessions", "copy", "--from", str(store), "--to", str(target))
    assert report["sessions"][0]["multi_agents_written"] == 1
    copied = asyncio.run(FileSessionRepository(target).read_multi_agent("s1", "graph"))
    assert copied is not None and copied.state == {"status": "running"}


def test_copy_usage_and_missing_session(store: Path, tmp_path: Path, cli: Cli) -> None:
    code, _, err = cli("sessions", "copy", "--from", str(store), "--to", str(store))
    assert code == 2 and "fork" in err
    code, _, err = cli("sessions", "copy", "--from", str(store), "--to", str(tmp_path / "x"), "--session", "ghost")
    assert code == 1 and "ghost" in err
    code, _, err = cli("sessions", "copy", "--to", str(tmp_path / "x"))
    assert code == 2 and "--from" in err


def test_copy_into_itself_under_another_id_conflicts_cleanly(store: Path) -> None:
    write_session(store, "s1", [("one", ["1"])])
    repository = FileSessionRepository(store)

    async def twice() -> None:
        await copy_session(repository, "s1", repository, "s2", new_only=True)
        with pytest.raises(ConflictError, match="already exists"):
            await copy_session(repository, "s1", repository, "s2", new_only=True)

    asyncio.run(twice())
    assert stored_messages(store, "s2") == stored_messages(store, "s1")
