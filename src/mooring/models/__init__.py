"""Models: the protocol, the model-string registry, and the test doubles."""

from __future__ import annotations

import os
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


def _split(spec: str) -> tuple[str, str]:
    if spec.lower() == "offline":
        return "offline", ""
    if spec.startswith("arn:"):
        return "bedrock", spec  # a bare Bedrock ARN (inference profile, provisioned model)
    if ":" in spec:
        provider, _, model_id = spec.partition(":")
        # Bedrock model ids always carry a vendor dot ("global.anthropic.claude-haiku-4-5-20251001-v1:0"),
        # so the text before their version colon never looks like a provider name; a misspelt
        # provider ("antropic:...") is reported instead of being sent to Bedrock.
        looks_like_provider = provider[:1].isalpha() and provider.replace("-", "").replace("_", "").isalnum()
        if provider.lower() in _PROVIDERS or looks_like_provider:
            return provider.lower(), model_id
    # A bare model id (for example "global.anthropic.claude-haiku-4-5-20251001-v1:0") means Bedrock.
    return "bedrock", spec


def resolve_model(spec: Model | str | None = None, **options: Any) -> Model:
    """Turn ``None``, a model string or a Model into a Model.

    ``None`` means ``$MOORING_MODEL`` or, when unset, ``"offline"``. Strings are
    ``provider:model_id`` (``offline``, ``bedrock:...``, ``anthropic:...``, ``openai:...``,
    ``ollama:...``); a bare id without a known provider is a Bedrock model id.
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
