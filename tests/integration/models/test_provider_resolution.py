"""Model strings -> provider instances, and the shared retry policy."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest

from mooring.errors import ModelNotAvailableError, ModelThrottledError
from mooring.models import OfflineModel, available_providers, resolve_model
from mooring.models._retry import RetryPolicy, retry_stream
from mooring.models.anthropic import AnthropicModel
from mooring.models.bedrock import BedrockModel
from mooring.models.openai import OllamaModel, OpenAIModel, ollama_base_url

SEED_MODEL = "global.anthropic.claude-haiku-4-5-20251001-v1:0"


def test_all_providers_are_registered() -> None:
    assert available_providers() == ["anthropic", "bedrock", "offline", "ollama", "openai"]


def test_default_is_offline_and_mooring_model_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(resolve_model(None), OfflineModel)
    monkeypatch.setenv("MOORING_MODEL", "ollama:llama3.2")
    model = resolve_model(None)
    assert isinstance(model, OllamaModel)
    assert model.model_id == "llama3.2"


def test_ollama_string_uses_the_local_default() -> None:
    model = resolve_model("ollama:llama3.2")

    assert isinstance(model, OllamaModel)
    assert model.model_id == "llama3.2"
    assert model.base_url == "http://localhost:11434/v1/"


def test_ollama_model_ids_keep_their_tag() -> None:
    model = resolve_model("ollama:llama3.2:1b")

    assert isinstance(model, OllamaModel)
    assert model.model_id == "llama3.2:1b"


@pytest.mark.parametrize(
    ("ollama_host", "base_url"),
    [
        ("127.0.0.1:11500", "http://127.0.0.1:11500/v1"),
        ("gpu-box", "http://gpu-box:11434/v1"),
        ("http://gpu-box:8080/", "http://gpu-box:8080/v1"),
        ("https://ollama.example.com", "https://ollama.example.com/v1"),
        ("0.0.0.0", "http://localhost:11434/v1"),
    ],
)
def test_ollama_host_overrides_the_default(monkeypatch: pytest.MonkeyPatch, ollama_host: str, base_url: str) -> None:
    monkeypatch.setenv("OLLAMA_HOST", ollama_host)

    assert ollama_base_url() == base_url
    model = resolve_model("ollama:llama3.2")
    assert isinstance(model, OpenAIModel)
    assert model.base_url == base_url + "/"


def test_a_bare_bedrock_id_keeps_its_version_suffix() -> None:
    model = resolve_model(SEED_MODEL)

    assert isinstance(model, BedrockModel)
    assert model.model_id == SEED_MODEL


@pytest.mark.parametrize(
    "spec",
    [
        "amazon.nova-pro-v1:0",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0",
    ],
)
def test_other_bare_bedrock_ids(spec: str) -> None:
    model = resolve_model(spec)

    assert isinstance(model, BedrockModel)
    assert model.model_id == spec


def test_prefixed_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

    bedrock = resolve_model(f"bedrock:{SEED_MODEL}", region_name="eu-west-1")
    anthropic = resolve_model("anthropic:claude-haiku-4-5", max_tokens=2048)
    openai = resolve_model("OpenAI:gpt-4o-mini")

    assert isinstance(bedrock, BedrockModel)
    assert (bedrock.model_id, bedrock.region_name) == (SEED_MODEL, "eu-west-1")
    assert isinstance(anthropic, AnthropicModel)
    assert (anthropic.model_id, anthropic.max_tokens) == ("claude-haiku-4-5", 2048)
    assert isinstance(openai, OpenAIModel)
    assert openai.model_id == "gpt-4o-mini"


def test_unknown_provider_lists_the_available_ones() -> None:
    with pytest.raises(ModelNotAvailableError) as caught:
        resolve_model("antropic:claude-haiku-4-5")

    message = str(caught.value)
    assert "'antropic'" in message
    assert "available providers: anthropic, bedrock, offline, ollama, openai" in message


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("gpt4", 'did you mean "openai:gpt-4o"?'),
        ("gpt-4o", 'did you mean "openai:gpt-4o"?'),
        ("gpt4o-mini", 'did you mean "openai:gpt-4o-mini"?'),
        ("claude-haiku-4-5", 'did you mean "anthropic:claude-haiku-4-5"?'),
        ("llama3.2", 'did you mean "ollama:llama3.2"?'),
        ("my-model", None),
    ],
)
def test_an_unknown_bare_string_is_refused_when_the_agent_is_built(spec: str, hint: str | None) -> None:
    from mooring import Agent
    from mooring.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        Agent(model=spec)

    message = str(caught.value)
    assert repr(spec) in message
    assert '"openai:MODEL"' in message and "Bedrock model id" in message
    if hint is None:
        assert "did you mean" not in message
    else:
        assert hint in message


def test_missing_credentials_through_a_model_string() -> None:
    with pytest.raises(ModelNotAvailableError, match="ANTHROPIC_API_KEY"):
        resolve_model("anthropic:claude-haiku-4-5")
    with pytest.raises(ModelNotAvailableError, match="OPENAI_API_KEY"):
        resolve_model("openai:gpt-4o-mini")


# -- retry policy ---------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(max_retries=10, base_delay=1.0, max_delay=8.0)

    for attempt, cap in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (9, 8.0)]:
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(delays) > 1  # jittered


def test_retry_stream_does_not_replay_a_stream_that_already_yielded() -> None:
    import asyncio

    attempts = 0

    async def flaky() -> AsyncGenerator[dict[str, Any], None]:
        nonlocal attempts
        attempts += 1
        yield {"messageStart": {"role": "assistant"}}
        raise ModelThrottledError("throttled mid-stream")

    async def consume() -> list[object]:
        return [e async for e in retry_stream(flaky, RetryPolicy(base_delay=0), provider="test")]

    with pytest.raises(ModelThrottledError, match="mid-stream"):
        asyncio.run(consume())
    assert attempts == 1


def test_negative_retries_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
