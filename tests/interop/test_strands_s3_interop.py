"""mooring's S3 backend and strands-agents' S3SessionManager on the same moto server, both ways."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import pytest

from mooring import Agent
from mooring.models import ScriptedModel
from mooring.session.backends.s3.repository import S3SessionManager

from helpers.s3server import MotoS3, start_moto_server

strands = pytest.importorskip("strands")
from strands.models import Model as StrandsModel  # noqa: E402
from strands.session import S3SessionManager as StrandsS3SessionManager  # noqa: E402

pytestmark = [pytest.mark.s3, pytest.mark.interop]


class EchoModel(StrandsModel):
    """An offline Strands model: answers ``echo: <last text>``."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    def update_config(self, **model_config: Any) -> None:
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        return self.config

    async def structured_output(self, *args: Any, **kwargs: Any) -> AsyncGenerator[dict[str, Any], None]:
        raise NotImplementedError("EchoModel has no structured output")
        yield {}  # pragma: no cover - makes this an async generator

    async def stream(  # type: ignore[override]  # accepts Strands' keyword options via **kwargs
        self, messages: Any, tool_specs: Any = None, system_prompt: Any = None, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        text = next((b["text"] for b in messages[-1]["content"] if "text" in b), "")
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": f"echo: {text}"}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3]:
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_s3: MotoS3) -> str:
    return moto_s3.new_bucket()


def _strands_agent(moto_s3: MotoS3, bucket: str, session_id: str) -> Any:
    manager = StrandsS3SessionManager(
        session_id=session_id,
        bucket=bucket,
        prefix="shared/",
        boto_session=moto_s3.boto_session(),
        endpoint_url=moto_s3.endpoint_url,
    )
    return strands.Agent(model=EchoModel(), agent_id="assistant", session_manager=manager, callback_handler=None)


def _mooring_agent(moto_s3: MotoS3, bucket: str, session_id: str, responses: list[str]) -> Agent:
    manager = S3SessionManager(
        session_id,
        bucket,
        "/shared",
        boto_session=moto_s3.boto_session(),
        endpoint_url=moto_s3.endpoint_url,
        fail_fast=True,
    )
    return Agent(model=ScriptedModel(responses), agent_id="assistant", session_manager=manager, callback_handler=None)


def _conversation(messages: list[Any]) -> list[tuple[str, list[Any]]]:
    # Strands adds tracking ids and usage metadata to its messages; the conversation is role + content.
    return [(m["role"], m["content"]) for m in messages]


def test_a_session_strands_wrote_restores_in_mooring(moto_s3: MotoS3, bucket: str) -> None:
    theirs = _strands_agent(moto_s3, bucket, "from-strands")
    theirs("hello")
    theirs.state.set("profile", {"name": "Ada", "langs": ["en", "fr"]})
    theirs("again")

    ours = _mooring_agent(moto_s3, bucket, "from-strands", ["mooring here"])
    assert _conversation(ours.messages) == _conversation(theirs.messages)
    assert [m["content"][0]["text"] for m in ours.messages] == ["hello", "echo: hello", "again", "echo: again"]
    assert ours.state.get("profile") == {"name": "Ada", "langs": ["en", "fr"]}

    # mooring carries on at the store's head, and Strands still reads the whole session.
    ours("and now?")
    later = _strands_agent(moto_s3, bucket, "from-strands")
    assert _conversation(later.messages) == _conversation(ours.messages)
    assert later.messages[-1]["content"] == [{"text": "mooring here"}]
    assert later.state.get("profile") == {"name": "Ada", "langs": ["en", "fr"]}


def test_a_session_mooring_wrote_restores_in_strands(moto_s3: MotoS3, bucket: str) -> None:
    ours = _mooring_agent(moto_s3, bucket, "from-mooring", ["Hi, I am mooring.", "Still here."])
    ours("hello")
    ours.state.set("counter", 2)
    ours.state.set("nested", {"a": [1, 2, {"b": None}]})
    ours("again")

    theirs = _strands_agent(moto_s3, bucket, "from-mooring")
    assert _conversation(theirs.messages) == _conversation(ours.messages)
    assert [m["content"][0]["text"] for m in theirs.messages] == ["hello", "Hi, I am mooring.", "again", "Still here."]
    assert theirs.state.get("counter") == 2
    assert theirs.state.get("nested") == {"a": [1, 2, {"b": None}]}

    # Strands appends after our messages, and mooring restores its turn too.
    theirs("one more")
    back = _mooring_agent(moto_s3, bucket, "from-mooring", [])
    assert _conversation(back.messages) == _conversation(theirs.messages)
    assert back.messages[-1]["content"] == [{"text": "echo: one more"}]
    assert back.state.get("counter") == 2
