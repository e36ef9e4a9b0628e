"""`mooring sessions list/show/export/import/delete/fork` through main(argv) on a temporary file store."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import Cli, message_files, stored_messages, tool_turn, write_session

from mooring.cli import main


def test_list_shows_sessions_newest_first_with_agents_and_message_counts(store: Path, cli: Cli, make_session) -> None:
    make_session("older", [("hello", ["hi"])])
    make_session("newer", [("one", ["1"]), ("two", ["2"])])
    make_session("newer", [("helper turn", ["ok"])], agent_id="helper")

    data = cli.json("sessions", "list", "--store", str(store))

    assert [s["session_id"] for s in data["sessions"]] == ["newer", "older"]
    newer = data["sessions"][0]
    assert newer["agents"] == ["default", "helper"]
    assert newer["messages"] == 6
    assert newer["error"] is None
    assert data["more"] is False
    # last update is the latest agent record's updated_at
    agent_json = json.loads((store / "session_newer" / "agents" / "agent_helper" / "agent.json").read_text())
    assert newer["updated_at"] == agent_json["updated_at"]

    code, out, _ = cli("sessions", "list", "--store", str(store))
    assert code == 0
    assert out.index("newer") < out.index("older")
    assert "default, helper" in out


def test_list_limit_and_env_default_store(store: Path, cli: Cli, make_session, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b", "c"):
        make_session(name)
    monkeypatch.setenv("MOORING_STORE", str(store))
    data = cli.json("sessions", "list", "--limit", "2")
    assert len(data["sessions"]) == 2
    assert data["more"] is True
    code, out, _ = cli("sessions", "list", "--limit", "2")
    assert code == 0 and "raise --limit" in out


def test_list_on_an_empty_store(store: Path, cli: Cli) -> None:
    assert cli.json("sessions", "list", "--store", str(store))["sessions"] == []
    code, out, _ = cli("sessions", "list", "--store", str(store))
    assert code == 0 and "no sessions" in out


def test_show_renders_the_conversation_with_tool_calls(store: Path, cli: Cli, make_session) -> None:
    make_session("s1", [("hello", ["hi there"]), tool_turn()], state={"topic": "counting"})

    code, out, _ = cli("sessions", "show", "s1", "--store", str(store))
    assert code == 0
    assert "hello" in out and "hi there" in out
    assert "tool call word_count" in out and '"the quick brown fox"' in out
    assert "tool result [tu-1] success: 4" in out
    assert "It has 4 words." in out
    assert "counting" in out

    data = cli.json("sessions", "show", "s1", "--store", str(store))
    assert data["session_id"] == "s1"
    [agent] = data["agents"]
    assert agent["agent_id"] == "default"
    assert agent["state"] == {"topic": "counting"}
    assert agent["message_head"] == 6
    assert [m["message_id"] for m in agent["messages"]] == list(range(6))
    assert [m["role"] for m in agent["messages"]] == ["user", "assistant"] * 3
    assert agent["messages"][3]["content"][1]["toolUse"]["name"] == "word_count"
    assert agent["messages"][4]["content"][0]["toolResult"]["toolUseId"] == "tu-1"
    assert [m["content"] for m in agent["messages"]] == [m["content"] for m in stored_messages(store, "s1")]


def test_show_one_agent_and_missing_things(store: Path, cli: Cli, make_session) -> None:
    make_session("s1", [("main turn", ["main reply"])])
    make_session("s1", [("helper turn", ["helper reply"])], agent_id="helper")
    data = cli.json("sessions", "show", "s1", "--agent", "helper", "--store", str(store))
    assert [a["agent_id"] for a in data["agents"]] == ["helper"]

    code, _, err = cli("sessions", "show", "nope", "--store", str(store))
    assert code == 1
    assert err.startswith("mooring: error: ") and "nope" in err and err.count("\n") == 1
    code, _, err = cli("sessions", "show", "s1", "--agent", "ghost", "--store", str(store))
    assert code == 1 and "ghost" in err


def test_export_import_round_trip_is_identical(store: Path, tmp_path: Path, cli: Cli, make_session) -> None:
    make_session("s1", [("hello", ["hi"]), tool_turn()], state={"k": [1, 2]})
    make_session("s1", [("helper", ["ok"])], agent_id="helper")
    export = tmp_path / "s1.jsonl"

    summary = cli.json("sessions", "export", "s1", "-o", str(export), "--store", str(store))
    assert summary == {"session_id": "s1", "agents": 2, "messages": 8, "multi_agents": 0, "output": str(export)}
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert lines[0]["type"] == "mooring-export" and lines[0]["version"] == 1
    assert [line["type"] for line in lines[1:3]] == ["session", "agent"]
    assert lines[-1] == {"type": "end", "agents": 2, "messages": 8, "multi_agents": 0}
    assert sum(1 for line in lines if line["type"] == "message") == 8

    other = tmp_path / "other"
    report = cli.json("sessions", "import", str(export), "--store", str(other))
    assert report["created"] is True and report["messages_copied"] == 8 and report["agents"] == 2

    before = cli.json("sessions", "show", "s1", "--store", str(store))
    after = cli.json("sessions", "show", "s1", "--store", str(other))
    for data in (before, after):
        data.pop("store")
        for agent in data["agents"]:
            agent.pop("updated_at")
    assert after == before
    assert stored_messages(other, "s1") == stored_messages(store, "s1")

    # exporting the imported copy gives the same records (apart from the header's time and source)
    again = tmp_path / "again.jsonl"
    assert main(["sessions", "export", "s1", "-o", str(again), "--store", str(other)]) == 0
    first = [json.loads(x) for x in export.read_text().splitlines()]
    second = [json.loads(x) for x in again.read_text().splitlines()]
    assert [x for x in first if x["type"] == "message"] == [x for x in second if x["type"] == "message"]


def test_import_refuses_to_overwrite_unless_replace(store: Path, tmp_path: Path, cli: Cli, make_session) -> None:
    make_session("s1", [("original", ["reply"])])
    export = tmp_path / "s1.jsonl"
    assert cli("sessions", "export", "s1", "-o", str(export), "--store", str(store))[0] == 0
    write_session(store, "s1", [("more", ["added"])])  # the stored session moves on

    code, _, err = cli("sessions", "import", str(export), "--store", str(store))
    assert code == 1 and "already exists" in err and "--replace" in err
    assert len(message_files(store, "s1")) == 4

    report = cli.json("sessions", "import", str(export), "--replace", "--store", str(store))
    assert report["messages_copied"] == 2
    assert [m["content"][0]["text"] for m in stored_messages(store, "s1")] == ["original", "reply"]

    report = cli.json("sessions", "import", str(export), "--as", "copy", "--store", str(store))
    assert report["target_id"] == "copy"
    assert stored_messages(store, "copy") == stored_messages(store, "s1")


def test_export_to_stdout_and_import_from_stdin(
    store: Path, tmp_path: Path, cli: Cli, make_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_session("s1")
    code, out, _ = cli("sessions", "export", "s1", "--store", str(store))
    assert code == 0 and json.loads(out.splitlines()[0])["type"] == "mooring-export"
    monkeypatch.setattr(sys, "stdin", io.StringIO(out))
    assert cli.json("sessions", "import", "-", "--store", str(tmp_path / "b"))["messages_copied"] == 2


def test_import_rejects_a_truncated_or_foreign_file(store: Path, tmp_path: Path, cli: Cli, make_session) -> None:
    make_session("s1", [("a", ["b"]), ("c", ["d"])])
    export = tmp_path / "s1.jsonl"
    assert cli("sessions", "export", "s1", "-o", str(export), "--store", str(store))[0] == 0
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("".join(export.read_text().splitlines(keepends=True)[:-2]))
    target = tmp_path / "target"
    code, _, err = cli("sessions", "import", str(truncated), "--store", str(target))
    assert code == 1 and "truncated" in err
    assert not target.exists()  # a rejected file creates no store

    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"hello": 1}\n')
    code, _, err = cli("sessions", "import", str(foreign), "--store", str(target))
    assert code == 1 and "foreign.jsonl:1" in err

    newer = tmp_path / "newer.jsonl"
    newer.write_text(export.read_text().replace('"version":1', '"version":99', 1))
    code, _, err = cli("sessions", "import", str(newer), "--store", str(target))
    assert code == 1 and "version 99" in err


def test_import_refuses_an_export_whose_header_and_session_record_disagree(
    store: Path, tmp_path: Path, cli: Cli, make_session
) -> None:
    make_session("s1", [("a", ["b"])])
    export = tmp_path / "s1.jsonl"
    assert cli("sessions", "export", "s1", "-o", str(export), "--store", str(store))[0] == 0
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    lines[0]["session_id"] = "renamed"  # the header was edited, the session record was not
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(line) + "\n" for line in lines))
    target = tmp_path / "target"

    code, _, err = cli("sessions", "import", str(edited), "--store", str(target))
    assert code == 1
    assert "'renamed'" in err and "'s1'" in err and "--as" in err and "edited.jsonl" in err
    assert cli.json("sessions", "list", "--store", str(target))["sessions"] == []
    code, _, err = cli("sessions", "import", str(edited), "--replace", "--store", str(target))
    assert code == 1 and "'renamed'" in err

    report = cli.json("sessions", "import", str(edited), "--as", "renamed", "--store", str(target))
    assert report["target_id"] == "renamed" and report["messages_copied"] == 2
    assert [s["session_id"] for s in cli.json("sessions", "list", "--store", str(target))["sessions"]] == ["renamed"]
    shown = cli.json("sessions", "show", "renamed", "--store", str(target))
    assert shown["session_id"] == "renamed"
    assert [m["content"][0]["text"] for m in shown["agents"][0]["messages"]] == ["a", "b"]


def test_export_json_needs_an_output_file(store: Path, cli: Cli, make_session) -> None:
    make_session("s1")
    code, _, err = cli("sessions", "export", "s1", "--json", "--store", str(store))
    assert code == 2 and "-o FILE" in err


def test_delete_refuses_without_yes_when_stdin_is_not_a_tty(
    store: Path, cli: Cli, make_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_session("s1")
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, _, err = cli("sessions", "delete", "s1", "--store", str(store))
    assert code == 2
    assert "--yes" in err and "not a terminal" in err
    assert (store / "session_s1" / "session.json").exists()

    assert cli.json("sessions", "delete", "s1", "--yes", "--store", str(store)) == {"session_id": "s1", "deleted": True}
    assert not (store / "session_s1").exists()
    code, _, err = cli("sessions", "delete", "s1", "--yes", "--store", str(store))
    assert code == 1 and "does not exist" in err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_delete_asks_on_a_terminal(store: Path, cli: Cli, make_session, monkeypatch: pytest.MonkeyPatch) -> None:
    make_session("keep")
    make_session("drop")
    monkeypatch.setattr(sys, "stdin", _Tty("n\n"))
    code, _, err = cli("sessions", "delete", "keep", "--store", str(store))
    assert code == 1 and "[y/N]" in err and "not deleted" in err
    assert (store / "session_keep").exists()

    monkeypatch.setattr(sys, "stdin", _Tty("y\n"))
    code, out, _ = cli("sessions", "delete", "drop", "--store", str(store))
    assert code == 0 and "deleted session drop" in out
    assert not (store / "session_drop").exists()


def test_fork_copies_everything_to_a_new_id(store: Path, cli: Cli, make_session) -> None:
    make_session("s1", [("hello", ["hi"]), tool_turn()], state={"k": "v"})
    report = cli.json("sessions", "fork", "s1", "s1-copy", "--store", str(store))
    assert report["created"] is True and report["messages_copied"] == 6

    assert stored_messages(store, "s1-copy") == stored_messages(store, "s1")
    shown = cli.json("sessions", "show", "s1-copy", "--store", str(store))
    assert shown["agents"][0]["state"] == {"k": "v"}
    # the fork is a new session: it lists first
    assert cli.json("sessions", "list", "--store", str(store))["sessions"][0]["session_id"] == "s1-copy"
    # and the original is untouched by later writes to the fork
    write_session(store, "s1-copy", [("only in the fork", ["yes"])])
    assert len(message_files(store, "s1")) == 6 and len(message_files(store, "s1-copy")) == 8

    code, _, err = cli("sessions", "fork", "s1", "s1-copy", "--store", str(store))
    assert code == 1 and "already exists" in err
    code, _, err = cli("sessions", "fork", "ghost", "g2", "--store", str(store))
    assert code == 1 and "ghost" in err
    assert not (store / "session_g2").exists()


def test_help_everywhere_has_an_example(cli: Cli) -> None:
    commands = [
        [],
        ["chat"],
        ["demo"],
        ["sessions"],
        *[["sessions", verb] for verb in ("list", "show", "export", "import", "delete", "fork", "copy", "verify")],
    ]
    for command in commands:
        code, out, _ = cli(*command, "--help")
        assert code == 0, command
        assert "example" in out, command
        assert "mooring " in out.split("example", 1)[1], command


def test_usage_errors_are_one_line_with_exit_code_2(cli: Cli) -> None:
    code, out, err = cli("sessions", "show")
    assert code == 2 and out == ""
    assert err.startswith("mooring: error: ") and err.count("\n") == 1
    code, _, err = cli("sessions", "list", "--limit", "0")
    assert code == 2 and "--limit" in err
    code, _, err = cli("sessions", "nosuchverb")
    assert code == 2
    assert cli("sessions")[0] == 2
    assert cli()[0] == 2


def test_errors_have_no_traceback_unless_debug(tmp_path: Path, cli: Cli) -> None:
    code, _, err = cli("sessions", "list", "--store", "nosuchscheme://x")
    assert code == 1
    assert err.startswith("mooring: error: unknown store URL scheme") and "Traceback" not in err
    with pytest.raises(Exception, match="unknown store URL scheme"):
        main(["--debug", "sessions", "list", "--store", "nosuchscheme://x"])
    with pytest.raises(Exception, match="unknown store URL scheme"):
        main(["sessions", "list", "--store", "nosuchscheme://x", "--debug"])


def test_python_dash_m_mooring_runs_the_cli(store: Path, make_session) -> None:
    make_session("s1")
    env = {**os.environ, "MOORING_STORE": str(store)}
    done = subprocess.run(
        [sys.executable, "-m", "mooring", "sessions", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [s["session_id"] for s in json.loads(done.stdout)["sessions"]] == ["s1"]
