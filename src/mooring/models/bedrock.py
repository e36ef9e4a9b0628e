"""``BedrockModel``: Amazon Bedrock through boto3's ``converse_stream``.

mooring's messages and stream events already use the Converse shapes, so this provider mostly
passes them through; its work is the error mapping, the retries and the guardrail redaction.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from mooring.errors import (
    ContextWindowOverflowError,
    ModelError,
    ModelNotAvailableError,
    ModelThrottledError,
    missing_extra,
)
from mooring.models._provider import RetryingProvider, history_tool_specs
from mooring.models._retry import as_bytes
from mooring.types import Message, StreamEvent

logger = logging.getLogger(__name__)

#: The region used when neither the argument, ``AWS_REGION``, ``AWS_DEFAULT_REGION`` nor the
#: AWS config file names one.
DEFAULT_REGION = "us-west-2"

#: The text that replaces a user message a guardrail blocked (see ``guardrail_redact_input``).
DEFAULT_REDACT_INPUT = "[User input redacted.]"

NO_CREDENTIALS_MESSAGE = (
    "no AWS credentials found: run `aws configure` or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
)

# Bedrock has no error code for "the conversation is too long"; it is a ValidationException
# whose wording depends on the model behind it.
_OVERFLOW_PHRASES = (
    "input is too long",
    "too many tokens",
    "too many input tokens",
    "too many total text bytes",
    "prompt is too long",
    "input length and `max_tokens` exceed context limit",
    "maximum context length",
    "exceeds the maximum number of tokens",
    "context window",
)

# Compared lower-cased: the same error is "ThrottlingException" as an HTTP error and
# "throttlingException" as an event-stream exception.
_THROTTLE_CODES = frozenset({"throttlingexception", "toomanyrequestsexception", "serviceunavailableexception"})
_CREDENTIAL_CODES = frozenset(
    {"unrecognizedclientexception", "invalidsignatureexception", "expiredtokenexception", "expiredtoken"}
)


class BedrockModel(RetryingProvider):
    """A model on Amazon Bedrock, called through the Converse streaming API.

    Example::

        from mooring import Agent
        from mooring.models.bedrock import BedrockModel

        agent = Agent(model=BedrockModel("global.anthropic.claude-haiku-4-5-20251001-v1:0"))
        # or simply Agent(model="global.anthropic.claude-haiku-4-5-20251001-v1:0")

    The region is ``region_name``, else the region of an explicit ``boto_session``, else
    ``AWS_REGION``, else ``AWS_DEFAULT_REGION`` or the AWS config file, else ``us-west-2``.
    ``client`` (a ready ``bedrock-runtime`` client) overrides all of the connection settings.

    ``guardrail_config`` is passed as Converse ``guardrailConfig`` (for example
    ``{"guardrailIdentifier": "...", "guardrailVersion": "1", "trace": "enabled"}``). When a
    guardrail blocks a turn the stream carries a ``redactContent`` event: the user's message is
    replaced by ``guardrail_redact_input`` and, when ``guardrail_redact_output`` is set, the
    assistant's answer by that text (``None`` turns either off). The guardrail trace stays in the
    ``metadata`` event.

    Throttling is retried ``max_retries`` times with exponential backoff and jitter (starting at
    ``retry_base_delay`` seconds, capped at ``retry_max_delay``), then raised as
    :class:`~mooring.errors.ModelThrottledError`; botocore's own retries are turned off.
    """

    provider_name = "Bedrock"

    def __init__(
        self,
        model_id: str,
        *,
        region_name: str | None = None,
        boto_session: Any = None,
        client: Any = None,
        endpoint_url: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        additional_request_fields: Mapping[str, Any] | None = None,
        guardrail_config: Mapping[str, Any] | None = None,
        guardrail_redact_input: str | None = DEFAULT_REDACT_INPUT,
        guardrail_redact_output: str | None = None,
        max_retries: int = 4,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise missing_extra("bedrock", "boto3 (the AWS SDK for Python)") from exc
        self._configure(
            model_id,
            "bedrock:<model id>",
            max_tokens=max_tokens,
            temperature=temperature,
            additional_request_fields=additional_request_fields,
            max_retries=max_retries,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
        )
        self.guardrail_config = dict(guardrail_config) if guardrail_config else None
        self.guardrail_redact_input = guardrail_redact_input
        self.guardrail_redact_output = guardrail_redact_output
        if client is None:
            explicit_session = boto_session is not None
            session = boto_session if explicit_session else boto3.Session()
            self.region_name: str = (
                region_name
                or (session.region_name if explicit_session else None)
                or os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION")
                or session.region_name
                or DEFAULT_REGION
            )
            # botocore would retry throttles on its own, invisibly and with its own schedule;
            # one attempt per call keeps the backoff in RetryPolicy, where it is bounded and testable.
            config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, user_agent_extra="mooring")
            client = session.client(
                "bedrock-runtime", region_name=self.region_name, endpoint_url=endpoint_url, config=config
            )
        else:
            self.region_name = str(client.meta.region_name or region_name or DEFAULT_REGION)
        self.client: Any = client
        self.endpoint_url: str = str(client.meta.endpoint_url)

    def __repr__(self) -> str:
        return f"BedrockModel({self.model_id!r}, region_name={self.region_name!r})"

    # -- the Model protocol ---------------------------------------------------------------------

    def format_request(
        self,
        messages: Sequence[Message],
        tool_specs: Sequence[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments for ``converse_stream``.

        Fields Converse does not know (mooring's message ``metadata``, extension keys) are
        dropped, and stored byte payloads are turned back into bytes, by walking the request
        against botocore's own model of the API, so it stays right as the API grows.
        """
        request: dict[str, Any] = {"modelId": self.model_id, "messages": list(messages)}
        if system_prompt:
            request["system"] = [{"text": system_prompt}]
        tool_specs = tool_specs or history_tool_specs(messages)
        if tool_specs:
            request["toolConfig"] = {"tools": [{"toolSpec": spec} for spec in tool_specs]}
            if tool_choice and _claude_thinking(self.additional_request_fields):
                # Claude refuses a forced tool choice with extended thinking on; the agent's
                # instruction to call the tool (and its retries) still apply.
                logger.debug("tool_choice=<%s> | not sent: extended thinking is enabled", tool_choice)
            elif tool_choice:
                # Converse's own shape: {"tool": {"name": ...}}, {"any": {}} or {"auto": {}}.
                request["toolConfig"]["toolChoice"] = dict(tool_choice)
        inference: dict[str, Any] = {}
        if self.max_tokens is not None:
            inference["maxTokens"] = self.max_tokens
        if self.temperature is not None:
            inference["temperature"] = self.temperature
        if inference:
            request["inferenceConfig"] = inference
        if self.additional_request_fields:
            request["additionalModelRequestFields"] = self.additional_request_fields
        if self.guardrail_config:
            request["guardrailConfig"] = self.guardrail_config
        shape = self.client.meta.service_model.operation_model("ConverseStream").input_shape
        conformed: dict[str, Any] = _conform(request, shape, "request")
        return conformed

    # -- one attempt ----------------------------------------------------------------------------

    async def _stream_once(self, request: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        inbox = _start_reader(self.client, request)
        stop_reason: str | None = None
        saw_trace = False
        redacted = False
        try:
            while True:
                kind, value = await inbox.get()
                if kind == "error":
                    mapped = self._translate(value)
                    if mapped is None:
                        raise value
                    raise mapped from value
                if kind == "end":
                    break
                event: StreamEvent = value
                if "messageStop" in event:
                    stop_reason = event["messageStop"].get("stopReason")
                    if stop_reason == "model_context_window_exceeded":
                        raise ContextWindowOverflowError(
                            f"Bedrock model {self.model_id} stopped: the conversation fills its context window"
                        )
                if "metadata" in event and not redacted:
                    guardrail = event["metadata"].get("trace", {}).get("guardrail")
                    saw_trace = saw_trace or guardrail is not None
                    if _guardrail_blocked(guardrail, stop_reason):
                        for redaction in self._redaction_events():
                            yield redaction
                        redacted = True
                yield event
            # With the trace disabled the stop reason is all there is to go on.
            if not redacted and not saw_trace and stop_reason == "guardrail_intervened":
                for redaction in self._redaction_events():
                    yield redaction
        finally:
            inbox.stop.set()

    def _redaction_events(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self.guardrail_redact_input is not None:
            events.append({"redactContent": {"redactUserContentMessage": self.guardrail_redact_input}})
        if self.guardrail_redact_output is not None:
            events.append({"redactContent": {"redactAssistantContentMessage": self.guardrail_redact_output}})
        return events

    def _translate(self, exc: Exception) -> ModelError | None:
        """The mooring error for a botocore failure (``None`` for anything else)."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            ParamValidationError,
            PartialCredentialsError,
        )

        where = f"model {self.model_id} in region {self.region_name}"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return ModelNotAvailableError(NO_CREDENTIALS_MESSAGE)
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
            return ModelError(
                f"could not connect to the Bedrock endpoint {self.endpoint_url} ({where}): {exc}; "
                "check the network, the region and endpoint_url"
            )
        if isinstance(exc, NoRegionError):
            return ModelNotAvailableError(f"no AWS region for Bedrock: set AWS_REGION or pass region_name ({exc})")
        if isinstance(exc, ParamValidationError):
            return ModelError(f"the Bedrock request for {where} is invalid: {exc}")
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", "")) or str(exc)
            lowered_code, lowered = code.lower(), message.lower()
            if lowered_code in _THROTTLE_CODES:
                return ModelThrottledError(f"Bedrock throttled the request ({code}): {message}")
            if lowered_code == "validationexception" and any(p in lowered for p in _OVERFLOW_PHRASES):
                return ContextWindowOverflowError(f"the conversation is too long for {where}: {message}")
            if lowered_code in _CREDENTIAL_CODES:
                return ModelNotAvailableError(
                    f"AWS rejected the credentials ({code}): {message}; refresh them with `aws configure` "
                    "(or `aws sso login`) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                )
            if lowered_code == "accessdeniedexception":
                return ModelNotAvailableError(
                    f"Bedrock denied access to {where}: {message}; enable the model in the Bedrock console "
                    "and allow bedrock:InvokeModelWithResponseStream in IAM"
                )
            if lowered_code == "resourcenotfoundexception" or "model identifier is invalid" in lowered:
                return ModelNotAvailableError(f"Bedrock does not know {where}: {message}")
            return ModelError(f"Bedrock failed for {where} ({code}): {message}")
        if isinstance(exc, BotoCoreError):
            return ModelError(f"Bedrock request for {where} failed: {exc}")
        return None


class _Inbox(asyncio.Queue[tuple[str, Any]]):
    """Events handed from the reader thread to the event loop; ``stop`` asks the reader to quit."""

    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()


def _start_reader(client: Any, request: dict[str, Any]) -> _Inbox:
    """Call ``converse_stream`` and read its events on a thread of their own.

    boto3 is synchronous, so the blocking reads stay off the event loop. One thread does the
    request, every read and the close, because botocore's stream is not safe to close while
    another thread is reading it; a consumer that goes away only sets ``stop``.
    """
    loop = asyncio.get_running_loop()
    inbox = _Inbox()

    def post(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(inbox.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            inbox.stop.set()

    def read() -> None:
        try:
            event_stream = client.converse_stream(**request)["stream"]
        except Exception as exc:
            post("error", exc)
            return
        try:
            for event in event_stream:
                if inbox.stop.is_set():
                    return
                post("event", event)
            post("end", None)
        except Exception as exc:
            post("error", exc)
        finally:
            event_stream.close()

    threading.Thread(target=read, name="mooring-bedrock-stream", daemon=True).start()
    return inbox


def _claude_thinking(fields: Mapping[str, Any]) -> bool:
    thinking = fields.get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("type") not in (None, "disabled")


def _guardrail_blocked(guardrail: Mapping[str, Any] | None, stop_reason: str | None) -> bool:
    """Whether a guardrail blocked (rather than masked) content.

    Bedrock reports ``guardrail_intervened`` both for blocking and for masking (anonymizing);
    only the trace tells them apart, and masked text was already replaced by Bedrock.
    """
    if guardrail is None:
        return stop_reason == "guardrail_intervened"
    assessments = [*dict(guardrail.get("inputAssessment", {})).values()]
    outputs = guardrail.get("outputAssessments", {})
    assessments.extend(outputs.values() if isinstance(outputs, Mapping) else outputs)
    return any(_has_blocked_policy(a) for a in assessments)


def _has_blocked_policy(value: Any) -> bool:
    if isinstance(value, Mapping):
        if value.get("action") == "BLOCKED" and value.get("detected") is True:
            return True
        return any(_has_blocked_policy(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_blocked_policy(v) for v in value)
    return False


def _conform(value: Any, shape: Any, path: str) -> Any:
    """``value`` reduced to what botocore's ``shape`` accepts: unknown keys dropped, blobs as bytes."""
    type_name = shape.type_name
    if type_name == "structure":
        if getattr(shape, "is_document_type", False) or not isinstance(value, Mapping):
            return value
        conformed: dict[str, Any] = {}
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                # Not an error: mooring keeps extra fields (message metadata, extensions) that
                # are meaningful to mooring but would fail botocore's parameter validation.
                logger.debug("path=<%s.%s> | field unknown to Converse, not sent", path, key)
                continue
            conformed[key] = _conform(item, member, f"{path}.{key}")
        return conformed
    if type_name == "list" and isinstance(value, (list, tuple)):
        return [_conform(item, shape.member, f"{path}[{i}]") for i, item in enumerate(value)]
    if type_name == "map" and isinstance(value, Mapping):
        return {k: _conform(v, shape.value, f"{path}.{k}") for k, v in value.items()}
    if type_name == "blob" and isinstance(value, Mapping):
        # Bytes as stored on disk ({"__bytes_encoded__": true, "data": base64}).
        return as_bytes(value)
    return value
