"""The S3 backend against moto in server mode on 127.0.0.1, through the real boto3 client.

Beyond the contract suite: the key layout and bodies match the file backend, PutObject extras
reach the server, restore cost depends on the window and not on the history, errors map to
the mooring tree, conditional headers are checked, and 8 processes share one session.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError

from mooring import Agent
from mooring.errors import (
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    LeaseTimeoutError,
    StorageUnavailableError,
)
from mooring.models import ScriptedModel
from mooring.session import FileSessionRepository, open_repository
from mooring.session.backends.s3.repository import S3SessionManager, S3SessionRepository
from mooring.session.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionRecord
from mooring.testing import SameSessionTrialContract

from helpers.s3server import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, start_moto_server

pytestmark = pytest.mark.s3

T0 = "2026-01-02T03:04:05+00:00"


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3]:
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_s3: MotoS3) -> str:
    return moto_s3.new_bucket()


def _repo(moto_s3: MotoS3, bucket: str, prefix: str = "app", **options: Any) -> S3SessionRepository:
    # The repository builds its own client (retries left to mooring, so attempts are exact).
    return S3SessionRepository(
        bucket, prefix, boto_session=moto_s3.boto_session(), endpoint_url=moto_s3.endpoint_url, **options
    )


def _record(i: int, text: str | None = None) -> MessageRecord:
    role = "user" if i % 2 == 0 else "assistant"
    return MessageRecord(
        message_id=i,
        message={"role": role, "content": [{"text": text or f"message {i}"}]},  # type: ignore[typeddict-item]
        created_at=T0,
        updated_at=T0,
    )


def _body(data: dict[str, Any]) -> bytes:
    # The documented stored form: the file backend's and Strands' json.dumps(indent=2).
    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")


async def _session_with_agent(repo: S3SessionRepository, sid: str = "s1", agent_id: str = "agent") -> None:
    await repo.create_session(SessionRecord(session_id=sid, created_at=T0, updated_at=T0))
    await repo.create_agent(sid, AgentRecord(agent_id=agent_id, created_at=T0, updated_at=T0))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _s3_error(request: Any, status: int, code: str, message: str) -> AWSResponse:
    """An S3 error response as the server would send it; the real client still parses it."""
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body.encode()))


# -- layout ---------------------------------------------------------------------------------------


def test_layout_and_bodies_match_the_file_backend(tmp_path: Path, moto_s3: MotoS3, bucket: str) -> None:
    file_repo = FileSessionRepository(tmp_path / "store", durability="none")
    s3_repo = _repo(moto_s3, bucket, prefix="/tenant/one/")
    rich: Any = {
        "role": "user",
        "content": [{"text": "é☃"}, {"image": {"format": "png", "source": {"bytes": b"\x89P"}}}],
    }

    async def write(repo: Any) -> None:
        await _session_with_agent(repo)
        await repo.append_messages(
            "s1", "agent", [MessageRecord(message_id=0, message=rich, created_at=T0, updated_at=T0), _record(1)]
        )
        await repo.create_multi_agent(
            "s1", MultiAgentRecord(multi_agent_id="graph", state={"type": "graph"}, created_at=T0, updated_at=T0)
        )

    asyncio.run(write(file_repo))
    asyncio.run(write(s3_repo))

    root = tmp_path / "store" / "session_s1"
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.json")}
    keys = [
        k
        for k in moto_s3.admin.list_objects_v2(Bucket=bucket, Prefix="tenant/one/session_s1/").get("Contents", [])
        for k in [k["Key"]]
    ]
    objects = {
        k[len("tenant/one/session_s1/") :]: moto_s3.admin.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys
    }
    assert (
        sorted(objects)
        == sorted(files)
        == [
            "agents/agent_agent/agent.json",
            "agents/agent_agent/messages/message_0.json",
            "agents/agent_agent/messages/message_1.json",
            "multi_agents/multi_agent_graph/multi_agent.json",
            "session.json",
        ]
    )
    assert objects == files
    assert json.loads(objects["agents/agent_agent/messages/message_0.json"])["message"]["content"][1]["image"][
        "source"
    ]["bytes"] == {"__bytes_encoded__": True, "data": "iVA="}


def test_put_object_kwargs_reach_the_server(moto_s3: MotoS3, bucket: str) -> None:
    extra = {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/mooring-test",
        "StorageClass": "STANDARD_IA",
        "Tagging": "app=mooring&tier=test",
    }
    repo = _repo(moto_s3, bucket, put_object_kwargs=extra)

    async def write() -> None:
        await _session_with_agent(repo)
        await repo.append_messages("s1", "agent", [_record(0), _record(1)])
        await repo.update_agent("s1", AgentRecord(agent_id="agent", state={"k": 1}), expected_version=1)
        await repo.acquire_lease("s1", "agent", ttl=30, wait=0)  # held: its object is checked below

    asyncio.run(write())
    keys = [o["Key"] for o in moto_s3.admin.list_objects_v2(Bucket=bucket, Prefix="app/session_s1/")["Contents"]]
    assert "app/session_s1/.leases/agent_agent.json" in keys and len(keys) == 5
    for key in keys:
        head = moto_s3.admin.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"] == "alias/mooring-test", key
        assert head["StorageClass"] == "STANDARD_IA", key
        tags = moto_s3.admin.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        assert {t["Key"]: t["Value"] for t in tags} == {"app": "mooring", "tier": "test"}, key


def test_put_object_kwargs_may_not_override_what_mooring_sets(moto_s3: MotoS3, bucket: str) -> None:
    with pytest.raises(ConfigurationError, match="IfNoneMatch"):
        _repo(moto_s3, bucket, put_object_kwargs={"IfNoneMatch": "*"})


# -- request counts -------------------------------------------------------------------------------


def test_restoring_a_40_message_window_of_10000_without_window_object_makes_no_list_and_43_requests(
    moto_s3: MotoS3, bucket: str
) -> None:
    writer = _repo(moto_s3, bucket)
    asyncio.run(_session_with_agent(writer))
    # 9,960 messages go straight into the server's state (10,000 PUTs over HTTP take a minute);
    # the last 40 are appended through the repository, which checks they follow on.
    base = "app/session_s1/agents/agent_agent/messages/"
    seeded = moto_s3.put_directly(
        bucket, ((f"{base}message_{i}.json", _body(_record(i).to_dict())) for i in range(9960))
    )
    assert seeded == 9960
    assert asyncio.run(writer.append_messages("s1", "agent", [_record(i) for i in range(9960, 10_000)])) == 10_000
    cm_state = {"__name__": "SlidingWindowConversationManager", "removed_message_count": 9960}
    asyncio.run(
        writer.update_agent(
            "s1",
            AgentRecord(agent_id="agent", conversation_manager_state=cm_state, next_message_id=10_000),
            expected_version=1,
        )
    )

    reader = _repo(moto_s3, bucket)

    async def restore() -> list[MessageRecord]:
        # What RepositorySessionManager._restore does: the agent record, then the window up to
        # the head its hint names (the hint checked in the same round of requests).
        record = await reader.read_agent("s1", "agent")
        assert record is not None
        start = record.conversation_manager_state["removed_message_count"]
        window, head = await reader.read_window("s1", "agent", start, head_hint=record.next_message_id)
        assert head == 10_000
        return window

    window = asyncio.run(restore())
    counts = reader.request_counts
    print(f"\nrestore of a 40-message window from 10,000 messages: {counts}")
    assert [r.message_id for r in window] == list(range(9960, 10_000))
    assert window[-1].to_message() == {"role": "assistant", "content": [{"text": "message 9999"}]}
    assert "ListObjectsV2" not in counts
    # No turn ran, so there is no window object yet: its GET misses, then 42 requests as before.
    assert sum(counts.values()) <= 43

    # A wrong hint (a Strands-written agent.json has none) gallops, still without listing.
    reader.reset_request_counts()
    assert asyncio.run(reader.message_head("s1", "agent", hint=0)) == 10_000
    assert "ListObjectsV2" not in reader.request_counts
    assert sum(reader.request_counts.values()) <= 2 * 14 + 2

    # The whole Agent restore through the manager (session check, lease for the tail repair...).
    manager = S3SessionManager("s1", bucket, "app", client=moto_s3.client())
    agent = Agent(model=ScriptedModel([]), agent_id="agent", session_manager=manager, callback_handler=None)
    assert len(agent.messages) == 40 and agent.messages[0]["content"][0]["text"] == "message 9960"
    assert isinstance(manager.repository, S3SessionRepository)
    full = manager.repository.request_counts
    print(f"Agent restore through S3SessionManager: {full}")
    assert "ListObjectsV2" not in full


def test_a_correct_hint_costs_two_requests(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket)
    asyncio.run(_session_with_agent(repo))
    asyncio.run(repo.append_messages("s1", "agent", [_record(i) for i in range(5)]))
    repo.reset_request_counts()
    assert asyncio.run(repo.message_head("s1", "agent", hint=5)) == 5
    assert repo.request_counts == {"GetObject": 2}


def test_delete_session_pages_the_listing_and_batches_deletes(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket)
    asyncio.run(_session_with_agent(repo))
    base = "app/session_s1/agents/agent_agent/messages/"
    moto_s3.put_directly(bucket, ((f"{base}message_{i}.json", _body(_record(i).to_dict())) for i in range(2300)))
    asyncio.run(_session_with_agent(repo, sid="neighbour"))
    repo.reset_request_counts()
    assert asyncio.run(repo.delete_session("s1")) is True
    counts = repo.request_counts
    assert counts.get("ListObjectsV2") == 3  # 2,302 keys, 1,000 per page
    assert counts.get("DeleteObjects") == 4  # three batches, then session.json on its own
    assert moto_s3.admin.list_objects_v2(Bucket=bucket, Prefix="app/session_s1/")["KeyCount"] == 0
    assert asyncio.run(repo.read_session("neighbour")) is not None
    assert asyncio.run(repo.delete_session("s1")) is False


def test_list_sessions_uses_one_delimiter_listing(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket)

    async def setup() -> None:
        for i in range(3):
            await repo.create_session(SessionRecord(session_id=f"s{i}", created_at=f"2026-01-0{i + 1}T00:00:00+00:00"))
        await repo.create_agent("s0", AgentRecord(agent_id="agent"))
        await repo.append_messages("s0", "agent", [_record(i) for i in range(30)])

    asyncio.run(setup())
    for junk in (
        "app/notes.txt",
        "app/other/thing.json",
        "app/session_/session.json",
        "elsewhere/session_x/session.json",
    ):
        moto_s3.admin.put_object(Bucket=bucket, Key=junk, Body=b"{}")
    repo.reset_request_counts()
    page = asyncio.run(repo.list_sessions(limit=10))
    assert [s.session_id for s in page.sessions] == ["s2", "s1", "s0"]
    assert repo.request_counts == {"ListObjectsV2": 1, "GetObject": 3}


# -- errors ---------------------------------------------------------------------------------------


def test_missing_bucket_is_a_configuration_error_naming_it(moto_s3: MotoS3) -> None:
    repo = _repo(moto_s3, "mooring-no-such-bucket")
    for operation in (
        repo.read_session("s1"),
        repo.create_session(SessionRecord(session_id="s1")),
        repo.message_head("s1", "agent", hint=3),
        repo.list_sessions(),
    ):
        with pytest.raises(ConfigurationError, match="NoSuchBucket") as info:
            asyncio.run(operation)
        assert "'mooring-no-such-bucket'" in str(info.value)
        assert isinstance(info.value.__cause__, ClientError)


def test_access_denied_is_a_configuration_error_naming_the_key(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket)

    def deny(request: Any, **_: Any) -> AWSResponse:
        return _s3_error(request, 403, "AccessDenied", "Access Denied")

    repo.client.meta.events.register("before-send.s3.GetObject", deny)
    with pytest.raises(ConfigurationError, match="access denied") as info:
        asyncio.run(repo.read_session("s1"))
    assert f"s3://{bucket}/app/session_s1/session.json" in str(info.value)
    assert isinstance(info.value.__cause__, ClientError)
    assert info.value.__cause__.response["Error"]["Code"] == "AccessDenied"
    assert repo.request_counts == {"GetObject": 1}  # not retried: it would not help


def test_unreachable_endpoint_is_storage_unavailable_after_retries(moto_s3: MotoS3, bucket: str) -> None:
    repo = S3SessionRepository(
        bucket, "app", boto_session=moto_s3.boto_session(), endpoint_url="http://127.0.0.1:1", max_attempts=3
    )
    with pytest.raises(StorageUnavailableError, match="cannot reach") as info:
        asyncio.run(repo.read_session("s1"))
    assert f"s3://{bucket}/app/session_s1/session.json" in str(info.value)
    assert isinstance(info.value.__cause__, EndpointConnectionError)
    assert repo.request_counts == {"GetObject": 3}
    asyncio.run(repo.close())


def test_throttling_is_retried_with_backoff(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket, verify_conditional_writes=False)
    refusals = {"left": 2}

    def slow_down(request: Any, **_: Any) -> AWSResponse | None:
        if refusals["left"] > 0:
            refusals["left"] -= 1
            return _s3_error(request, 503, "SlowDown", "Please reduce your request rate.")
        return None

    repo.client.meta.events.register("before-send.s3.PutObject", slow_down)
    asyncio.run(repo.create_session(SessionRecord(session_id="s1")))
    assert repo.request_counts == {"PutObject": 3}
    assert asyncio.run(repo.read_session("s1")) is not None


def test_throttling_that_persists_is_storage_unavailable(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket, max_attempts=4)

    def slow_down(request: Any, **_: Any) -> AWSResponse:
        return _s3_error(request, 503, "SlowDown", "Please reduce your request rate.")

    repo.client.meta.events.register("before-send.s3.GetObject", slow_down)
    with pytest.raises(StorageUnavailableError, match="SlowDown") as info:
        asyncio.run(repo.read_agent("s1", "agent"))
    assert f"s3://{bucket}/app/session_s1/agents/agent_agent/agent.json" in str(info.value)
    assert isinstance(info.value.__cause__, ClientError)
    assert repo.request_counts == {"GetObject": 4}


def test_a_retried_write_that_had_landed_is_not_a_conflict(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket)
    asyncio.run(_session_with_agent(repo))
    record = _record(0)
    key = "app/session_s1/agents/agent_agent/messages/message_0.json"
    lost = {"done": False}

    def apply_then_fail(request: Any, **_: Any) -> AWSResponse | None:
        # The write reaches the store, but its response is lost: the client sees a 500.
        if request.url.endswith("message_0.json") and not lost["done"]:
            lost["done"] = True
            moto_s3.admin.put_object(Bucket=bucket, Key=key, Body=_body(record.to_dict()))
            return _s3_error(request, 500, "InternalError", "We encountered an internal error.")
        return None

    repo.client.meta.events.register("before-send.s3.PutObject", apply_then_fail)
    assert asyncio.run(repo.append_messages("s1", "agent", [record])) == 1
    assert lost["done"]
    assert [r.to_message() for r in asyncio.run(repo.read_messages("s1", "agent"))] == [record.message]


def test_corrupt_objects_raise_naming_the_key(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket)
    asyncio.run(_session_with_agent(repo))
    asyncio.run(repo.append_messages("s1", "agent", [_record(0), _record(1)]))
    moto_s3.admin.put_object(
        Bucket=bucket, Key="app/session_s1/agents/agent_agent/messages/message_1.json", Body=b"{tr"
    )
    with pytest.raises(CorruptRecordError, match=f"s3://{bucket}/app/session_s1/agents/agent_agent/messages/message_1"):
        asyncio.run(repo.read_messages("s1", "agent"))
    moto_s3.admin.put_object(Bucket=bucket, Key="app/session_s1/session.json", Body=b"[1, 2]")
    with pytest.raises(CorruptRecordError, match=r"session\.json"):
        asyncio.run(repo.read_session("s1"))


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "mooring.session.backends.s3.repository",
        "mooring.session.backends.s3._io",
        "mooring.session.backends.s3._lease",
        "mooring.session.backends.s3._keys",
    ):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ImportError, match=r"pip install 'mooring-agents\[s3\]'"):
        importlib.import_module("mooring.session.backends.s3.repository")


# -- conditional headers --------------------------------------------------------------------------


def test_moto_honours_every_conditional_header_mooring_needs(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket)
    assert repo.conditional_support is None
    asyncio.run(repo.create_session(SessionRecord(session_id="s1")))
    support = repo.conditional_support
    assert support is not None
    assert (support.put_if_none_match, support.put_if_match, support.delete_if_match) == (True, True, True)


def test_a_server_ignoring_conditional_headers_is_detected_and_worked_around(
    moto_s3: MotoS3, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    repo = _repo(moto_s3, bucket)

    def strip_conditions(request: Any, **_: Any) -> None:
        # As some S3-compatible servers do: the headers arrive and are ignored.
        for header in ("If-None-Match", "If-Match"):
            if header in request.headers:
                del request.headers[header]

    repo.client.meta.events.register("before-send.s3", strip_conditions)
    with caplog.at_level(logging.WARNING, logger="mooring.session.backends.s3._io"):
        asyncio.run(_session_with_agent(repo))
    assert any("ignores some conditional headers" in r.getMessage() for r in caplog.records)
    support = repo.conditional_support
    assert support is not None
    assert (support.put_if_none_match, support.put_if_match, support.delete_if_match) == (False, False, False)

    async def still_guarded() -> None:
        # Check-then-write keeps sequential callers honest (only races slip through now).
        with pytest.raises(ConflictError):
            await repo.create_session(SessionRecord(session_id="s1"))
        await repo.append_messages("s1", "agent", [_record(0)])
        with pytest.raises(ConflictError) as info:
            await repo.append_messages("s1", "agent", [_record(0, "intruder")])
        assert info.value.head == 1
        await repo.update_agent("s1", AgentRecord(agent_id="agent"), expected_version=1)
        with pytest.raises(ConflictError):
            await repo.update_agent("s1", AgentRecord(agent_id="agent"), expected_version=1)
        lease = await repo.acquire_lease("s1", "agent", ttl=30, wait=0)
        with pytest.raises(LeaseTimeoutError):
            await repo.acquire_lease("s1", "agent", ttl=30, wait=0)
        await repo.release_lease(lease)
        await repo.release_lease(await repo.acquire_lease("s1", "agent", ttl=30, wait=0))

    asyncio.run(still_guarded())
    assert [r.to_message() for r in asyncio.run(repo.read_messages("s1", "agent"))] == [_record(0).message]


# -- concurrency ----------------------------------------------------------------------------------


def test_an_expired_lease_is_taken_over_by_exactly_one_contender(moto_s3: MotoS3, bucket: str) -> None:
    repos = [_repo(moto_s3, bucket) for _ in range(2)]
    asyncio.run(_session_with_agent(repos[0]))
    asyncio.run(repos[0].acquire_lease("s1", "agent", ttl=0.2, wait=0))
    time.sleep(0.4)
    outcomes: list[object] = []
    barrier = threading.Barrier(8)

    def contend(i: int) -> None:
        barrier.wait()
        try:
            outcomes.append(asyncio.run(repos[i % 2].acquire_lease("s1", "agent", ttl=30, wait=0)))
        except LeaseTimeoutError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for o in outcomes if not isinstance(o, LeaseTimeoutError)) == 1


def test_one_repository_serves_many_threads_and_event_loops(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        async def run() -> None:
            await _session_with_agent(repo, sid=f"t{i}")
            for n in range(0, 10, 2):
                await repo.append_messages(f"t{i}", "agent", [_record(n), _record(n + 1)])
            assert [r.message_id for r in await repo.read_messages(f"t{i}", "agent")] == list(range(10))

        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- managers and URLs ----------------------------------------------------------------------------


def test_s3_session_manager_restores_messages_and_state(moto_s3: MotoS3, bucket: str) -> None:
    def agent(responses: list[str]) -> Agent:
        manager = S3SessionManager("chat", bucket, "app", client=moto_s3.client(), fail_fast=True)
        return Agent(
            model=ScriptedModel(responses), agent_id="assistant", session_manager=manager, callback_handler=None
        )

    first = agent(["Hello!", "Noted."])
    first("hi")
    first.state.set("favourite", {"colour": "green"})
    first("remember green")
    second = agent(["Green."])
    assert second.messages == first.messages and len(second.messages) == 4
    assert second.state.get("favourite") == {"colour": "green"}
    second("what was it?")
    assert len(agent([]).messages) == 6


def test_open_repository_builds_it_from_a_url(moto_s3: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    repo = open_repository(
        f"s3://{bucket}/deep/prefix/?endpoint_url={moto_s3.endpoint_url}&region_name={REGION}&max_concurrency=4"
    )
    assert isinstance(repo, S3SessionRepository) and repo.describe() == f"s3://{bucket}/deep/prefix"
    asyncio.run(repo.create_session(SessionRecord(session_id="via-url")))
    assert moto_s3.admin.head_object(Bucket=bucket, Key="deep/prefix/session_via-url/session.json")
    asyncio.run(repo.close())


@pytest.mark.slow
class TestS3SameSession(SameSessionTrialContract):
    @pytest.fixture
    def trial_store(self, moto_s3: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
        # The processes are spawned with this environment, so they find the credentials too.
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        return f"s3://{bucket}/trial?endpoint_url={moto_s3.endpoint_url}&region_name={REGION}"


def test_an_agent_update_over_the_copy_last_seen_is_one_put(moto_s3: MotoS3, bucket: str) -> None:
    repo = _repo(moto_s3, bucket)
    asyncio.run(_session_with_agent(repo))
    repo.reset_request_counts()
    first = asyncio.run(repo.update_agent("s1", AgentRecord(agent_id="agent", state={"n": 1}), expected_version=1))
    assert repo.request_counts == {"PutObject": 1}  # If-Match on the ETag create_agent returned
    # Another writer moves it on: the If-Match fails, the record is read, and a stale version is refused.
    other = _repo(moto_s3, bucket)
    asyncio.run(other.update_agent("s1", AgentRecord(agent_id="agent", state={"n": 2}), expected_version=2))
    with pytest.raises(ConflictError):
        asyncio.run(repo.update_agent("s1", AgentRecord(agent_id="agent", state={"n": 3}), expected_version=2))
    stored = asyncio.run(repo.read_agent("s1", "agent"))
    assert stored is not None and stored.state == {"n": 2} and stored.version == 3
    assert first.created_at == stored.created_at == T0
