"""The S3 window object: a windowed restore in 3 requests, and never a stale window.

Each test compares what a restore returns with what the message objects themselves hold (a
repository with ``window_messages=0`` reads only those), after the writes that could make a
window object disagree with them: other writers' turns, redaction, undo, Strands writes,
a corrupt window object.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from mooring import Agent
from mooring.agent.conversation import SlidingWindowConversationManager
from mooring.errors import ConfigurationError
from mooring.models import ScriptedModel
from mooring.session import open_repository
from mooring.session.backends.s3.repository import S3SessionRepository
from mooring.session.manager import RepositorySessionManager
from mooring.session.ops import undo_last_turn
from mooring.session.records import ADVISORY_LAG, MessageRecord

from helpers.s3server import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, start_moto_server

pytestmark = pytest.mark.s3

WINDOW_KEY = "app/session_s1/.windows/agent_agent.json"


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3]:
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_s3: MotoS3) -> str:
    return moto_s3.new_bucket()


def _repo(moto_s3: MotoS3, bucket: str, **options: Any) -> S3SessionRepository:
    return S3SessionRepository(
        bucket, "app", boto_session=moto_s3.boto_session(), endpoint_url=moto_s3.endpoint_url, **options
    )


def _agent(repo: S3SessionRepository, replies: list[str], window: int = 6) -> Agent:
    return Agent(
        model=ScriptedModel(replies),
        agent_id="agent",
        conversation_manager=SlidingWindowConversationManager(window_size=window),
        session_manager=RepositorySessionManager("s1", repo),
        callback_handler=None,
    )


def _texts(messages: list[Any]) -> list[str]:
    return [m["content"][0]["text"] for m in messages]


def _truth(moto_s3: MotoS3, bucket: str) -> list[str]:
    """The restored window as the message objects alone give it."""
    return _texts(_agent(_repo(moto_s3, bucket, window_messages=0), []).messages)


def _turns(agent: Agent, n: int, tag: str) -> None:
    for i in range(n):
        agent(f"{tag} prompt {i}")


def _restore_counts(moto_s3: MotoS3, bucket: str) -> tuple[list[str], dict[str, int]]:
    repo = _repo(moto_s3, bucket)

    async def restore() -> tuple[list[str], dict[str, int]]:
        record = await repo.read_agent("s1", "agent")
        assert record is not None
        repo.reset_request_counts()
        start = record.conversation_manager_state["removed_message_count"]
        records, _ = await repo.read_window("s1", "agent", start, head_hint=record.next_message_id)
        return [r.to_message()["content"][0]["text"] for r in records], dict(repo.request_counts)

    return asyncio.run(restore())


def test_after_a_turn_the_window_is_one_get_and_one_probe(moto_s3: MotoS3, bucket: str) -> None:
    agent = _agent(_repo(moto_s3, bucket), [f"reply {i}" for i in range(20)])
    _turns(agent, 20, "a")
    assert moto_s3.admin.head_object(Bucket=bucket, Key=WINDOW_KEY)["ContentLength"] > 0

    texts, counts = _restore_counts(moto_s3, bucket)
    assert counts == {"GetObject": 2}  # the window object and the probe that its head is free
    # From the agent record's offset, which may trail by less than ADVISORY_LAG messages: the
    # window object covers those too, and a restore starts where the last message says.
    assert texts[-len(agent.messages) :] == _truth(moto_s3, bucket) == _texts(agent.messages)
    assert len(texts) - len(agent.messages) < ADVISORY_LAG
    assert texts[-1] == "reply 19"


def test_another_writers_turns_are_read_and_the_window_follows(moto_s3: MotoS3, bucket: str) -> None:
    one = _agent(_repo(moto_s3, bucket), [f"one {i}" for i in range(10)])
    two = _agent(_repo(moto_s3, bucket), [f"two {i}" for i in range(10)])
    for i in range(5):  # alternating turns: each catches up on the other's, then writes its window
        one(f"one prompt {i}")
        two(f"two prompt {i}")
    fresh = _agent(_repo(moto_s3, bucket), [])
    assert _texts(fresh.messages) == _truth(moto_s3, bucket) == _texts(two.messages)
    assert _texts(fresh.messages)[-1] == "two 4"
    _, counts = _restore_counts(moto_s3, bucket)
    assert counts == {"GetObject": 2}


def test_messages_appended_after_the_window_are_still_read(moto_s3: MotoS3, bucket: str) -> None:
    agent = _agent(_repo(moto_s3, bucket), [f"reply {i}" for i in range(4)])
    _turns(agent, 3, "a")
    # A writer that keeps no window (here: appends without a lease) stores two more messages.
    bare = _repo(moto_s3, bucket, window_messages=0)
    head = asyncio.run(bare.message_head("s1", "agent"))
    extra = [
        MessageRecord(message_id=head, message={"role": "user", "content": [{"text": "late prompt"}]}),
        MessageRecord(message_id=head + 1, message={"role": "assistant", "content": [{"text": "late reply"}]}),
    ]
    asyncio.run(bare.append_messages("s1", "agent", extra))
    restored = _agent(_repo(moto_s3, bucket), [])
    assert _texts(restored.messages)[-2:] == ["late prompt", "late reply"]
    assert _texts(restored.messages) == _truth(moto_s3, bucket)


def test_a_redaction_never_leaves_the_old_text_in_the_window(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket)
    agent = _agent(repo, ["fine", "fine too"])
    agent("my card is 4111 1111 1111 1111")
    agent("thanks")
    redacted = MessageRecord(
        message_id=0,
        message=agent.messages[0],
        redact_message={"role": "user", "content": [{"text": "[redacted]"}]},
    )
    asyncio.run(repo.update_message("s1", "agent", redacted))
    # The window object went before the message changed: a crash here leaves no stale copy.
    assert "Contents" not in moto_s3.admin.list_objects_v2(Bucket=bucket, Prefix=WINDOW_KEY)
    restored = _agent(_repo(moto_s3, bucket), [])
    assert _texts(restored.messages)[0] == "[redacted]"
    assert "4111" not in str(restored.messages)


def test_undo_then_a_new_turn_restores_the_new_turn(moto_s3: MotoS3, bucket: str) -> None:
    agent = _agent(_repo(moto_s3, bucket), ["first", "second"])
    agent("p1")
    agent("p2")
    repo = _repo(moto_s3, bucket)
    asyncio.run(undo_last_turn(repo, "s1", "agent"))
    assert "Contents" not in moto_s3.admin.list_objects_v2(Bucket=bucket, Prefix=WINDOW_KEY)
    other = _agent(_repo(moto_s3, bucket), ["replacement"])
    other("p2 again")
    # The first process's copy is stale now: its next turn must not write it over the new one.
    agent.model = ScriptedModel(["third"])  # type: ignore[assignment]
    agent("p3")
    fresh = _agent(_repo(moto_s3, bucket), [])
    assert _texts(fresh.messages) == _truth(moto_s3, bucket)
    assert "replacement" in _texts(fresh.messages) and "second" not in _texts(fresh.messages)


def test_a_corrupt_window_object_is_ignored(moto_s3: MotoS3, bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    agent = _agent(_repo(moto_s3, bucket), ["one", "two"])
    agent("p1")
    moto_s3.admin.put_object(Bucket=bucket, Key=WINDOW_KEY, Body=b'{"first": 0, "head": 2, "messa')
    with caplog.at_level(logging.WARNING):
        restored = _agent(_repo(moto_s3, bucket), ["three"])
    assert "unreadable window object" in caplog.text
    assert _texts(restored.messages) == ["p1", "one"]
    restored("p2")  # the next turn writes a good window over it
    texts, counts = _restore_counts(moto_s3, bucket)
    assert texts == ["p1", "one", "p2", "three"] and counts == {"GetObject": 2}


def test_a_window_written_before_agent_json_changed_is_not_trusted(moto_s3: MotoS3, bucket: str) -> None:
    agent = _agent(_repo(moto_s3, bucket), ["one"])
    agent("p1")
    # Another writer (Strands rewrites agent.json on every message) changed agent.json.
    repo = _repo(moto_s3, bucket)
    record = asyncio.run(repo.read_agent("s1", "agent"))
    assert record is not None
    asyncio.run(repo.update_agent("s1", record, expected_version=record.version))
    texts, counts = _restore_counts(moto_s3, bucket)
    assert texts == ["p1", "one"]
    assert counts["GetObject"] > 2  # the window object was read, then the messages themselves


def test_window_messages_option(moto_s3: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with pytest.raises(ConfigurationError, match="window_messages"):
        _repo(moto_s3, bucket, window_messages=-1)
    url = f"s3://{bucket}/app?endpoint_url={moto_s3.endpoint_url}&window_messages=0"
    repo = open_repository(url)
    assert isinstance(repo, S3SessionRepository)
    agent = _agent(repo, ["one"])
    agent("p1")
    assert "Contents" not in moto_s3.admin.list_objects_v2(Bucket=bucket, Prefix="app/session_s1/.windows/")


def test_a_redaction_by_another_writer_is_not_undone_by_a_stale_copy(moto_s3: MotoS3, bucket: str) -> None:
    agent = _agent(_repo(moto_s3, bucket), ["fine", "fine too"])
    agent("my card is 4111 1111 1111 1111")
    # Another process (no turn, no lease: say `mooring sessions` tooling) redacts message 0.
    other = _repo(moto_s3, bucket)
    redacted = MessageRecord(
        message_id=0,
        message=agent.messages[0],
        redact_message={"role": "user", "content": [{"text": "[redacted]"}]},
    )
    asyncio.run(other.update_message("s1", "agent", redacted))
    agent("thanks")  # this process still holds the old text in memory; its window must not
    fresh = _agent(_repo(moto_s3, bucket), [])
    assert _texts(fresh.messages)[0] == "[redacted]"
    assert _texts(fresh.messages) == _truth(moto_s3, bucket)
