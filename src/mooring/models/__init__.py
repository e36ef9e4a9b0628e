"""Models: the protocol, the model-string registry, and the test doubles."""

from __future__ import annotations

import os
import re
from typing import Any

from mooring.errors import ModelNotAvailableError
from mooring.models.base import Model, StreamAssembler, message_to_events
from mooring.models.offline import OfflineModel
from mooring.models.scripted import ModelCall, ScriptedModel, tool_call

__all__ = [
    "Model",
    "ModelCall",
    "OfflineModel",
    "ScriptedModel",
    "StreamAssembler",
    "available_providers",
    "message_to_events",
    "resolve_model",
    "tool_call",
]

DEFAULT_MODEL = "offline"

# provider name -> "module:Class" built with (model_id, **options). Providers are imported
# only when asked for, so their SDKs stay optional.
_PROVIDERS: dict[str, str] = {
    "offline": "mooring.models.offline:OfflineModel",
    "bedrock": "mooring.models.bedrock:BedrockModel",
    "anthropic": "mooring.models.anthropic:AnthropicModel",
    "openai": "mooring.models.openai:OpenAIModel",
    "ollama": "mooring.models.openai:OllamaModel",
}


def available_providers() -> list[str]:
    return sorted(_PROVIDERS)


# A Bedrock model id has the shape "[region-group.]vendor.model[:version]", for example
# "anthropic.claude-3-5-sonnet-20240620-v1:0" or "global.anthropic.claude-haiku-4-5-20251001-v1:0":
# a lowercase vendor, a dot, then the model name, which starts with a letter (so "llama3.2" and
# "gpt-4.1" are not mistaken for one). Anything else bare ("gpt4", "gpt-4o", "claude")
# is refused with the accepted forms instead of failing later on AWS credentials.
_BEDROCK_ID = re.compile(r"^(?:[a-z]{2,6}(?:-[a-z]+)?\.)?[a-z][a-z0-9-]*\.[A-Za-z][A-Za-z0-9._-]*(?::\d+)?$")

# (prefix of a bare name, provider it most likely belongs to), for the "did you mean" hint.
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("gpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt", "openai"),
    ("claude", "anthropic"),
    ("llama", "ollama"),
    ("qwen", "ollama"),
    ("mistral", "ollama"),
    ("gemma", "ollama"),
    ("phi", "ollama"),
    ("deepseek", "ollama"),
)
_ACCEPTED_FORMS = (
    '"offline", "openai:MODEL", "anthropic:MODEL", "ollama:MODEL", '
    '"bedrock:MODEL_ID", a Bedrock model id such as "anthropic.claude-3-5-haiku-20241022-v1:0", '
    "or a Bedrock ARN"
)


def _suggestion(bare: str) -> str:
    name = bare.lower()
    for prefix, provider in _FAMILIES:
        if name.startswith(prefix):
            if provider == "openai" and re.fullmatch(r"gpt-?4", name):
                name = "gpt-4o"  # "gpt4" almost always means the current GPT-4 family model
            elif provider == "openai" and name.startswith("gpt") and not name.startswith("gpt-"):
                name = "gpt-" + name[3:]
            return f'; did you mean "{provider}:{name}"?'
    return ""


def _split(spec: str) -> tuple[str, str]:
    if spec.lower() == "offline":
        return "offline", ""
    if spec.startswith("arn:"):
        return "bedrock", spec  # a bare Bedrock ARN (inference profile, provisioned model)
    if _BEDROCK_ID.match(spec):
        return "bedrock", spec
    if ":" in spec:
        provider, _, model_id = spec.partition(":")
        # Bedrock model ids always carry a vendor dot, so the text before their version colon never
        # looks like a provider name; a misspelt provider ("antropic:...") is reported instead of
        # being sent to Bedrock.
        looks_like_provider = provider[:1].isalpha() and provider.replace("-", "").replace("_", "").isalnum()
        if provider.lower() in _PROVIDERS or looks_like_provider:
            return provider.lower(), model_id
    raise ModelNotAvailableError(
        f"model {spec!r} is not a model string mooring knows{_suggestion(spec)} (accepted forms: {_ACCEPTED_FORMS})"
    )


def resolve_model(spec: Model | str | None = None, **options: Any) -> Model:
    """Turn ``None``, a model string or a Model into a Model.

    ``None`` means ``$MOORING_MODEL`` or, when unset, ``"offline"``. Strings are
    ``provider:model_id`` (``offline``, ``bedrock:...``, ``anthropic:...``, ``openai:...``,
    ``ollama:...``), a Bedrock model id by its shape (``vendor.model[:version]``, optionally with a
    region-group prefix such as ``us.`` or ``global.``) or a Bedrock ARN. Any other string raises
    :class:`~mooring.errors.ModelNotAvailableError` (a ``ConfigurationError``) listing the accepted
    forms, with a suggestion where the name is recognisable (``"gpt-4o"`` -> ``"openai:gpt-4o"``).
    """
    if spec is None:
        spec = os.environ.get("MOORING_MODEL") or DEFAULT_MODEL
    if not isinstance(spec, str):
        if not hasattr(spec, "stream"):
            raise ModelNotAvailableError(
                f"model must be a model string or an object with a stream() method, got {spec!r}"
            )
        return spec
    provider, model_id = _split(spec.strip())
    target = _PROVIDERS.get(provider)
    if target is None:
        raise ModelNotAvailableError(
            f"model provider {provider!r} (from {spec!r}) is not available; "
            f"available providers: {', '.join(available_providers())}"
        )
    import importlib

    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    factory = getattr(module, class_name)
    if provider == "offline":
        return factory(**options)  # type: ignore[no-any-return]
    return factory(model_id, **options)  # type: ignore[no-any-return]
