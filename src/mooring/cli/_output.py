"""Output helpers for the CLI: rich tables for people, stable JSON for machines, one-line errors.

Every command that prints a result accepts ``--json``; its shape is stable (fields are only
ever added) and documented here. Timestamps are ISO-8601 strings as stored; ``null`` marks an
absent value.

``mooring sessions list --json``::

    {"store": "file:/path",
     "sessions": [{"session_id": "s1", "created_at": "...", "updated_at": "...",
                   "agents": ["default"], "messages": 4, "error": null}],
     "more": false}

  Newest session first (the store's order). ``updated_at`` is the latest of the agent records'
  ``updated_at`` (the session record's when there is no agent). ``messages`` counts stored
  messages over all agents. ``error`` is a one-line description when the session could not be
  read (run ``mooring sessions verify``). ``more`` is true when ``--limit`` cut the list.

``mooring sessions show ID --json``::

    {"store": "...", "session_id": "s1", "created_at": "...", "updated_at": "...",
     "agents": [{"agent_id": "default", "created_at": "...", "updated_at": "...",
                 "state": {...}, "conversation_manager_state": {...}, "message_head": 4,
                 "messages": [{"message_id": 0, "role": "user", "content": [<content block>, ...],
                               "redacted": false, "created_at": "..."}]}]}

  ``content`` holds Bedrock Converse content blocks (``text``, ``toolUse``, ``toolResult``, ...)
  as the model sees them (the redacted form when ``redacted``); bytes are
  ``{"__bytes_encoded__": true, "data": "<base64>"}``. With ``--tail N`` / ``--limit N``
  ``messages`` holds only the last / first N; ``message_head`` still counts them all.

``mooring sessions export ID -o FILE --json`` (the export itself is JSON Lines, see
:mod:`mooring.session.ops`)::

    {"session_id": "s1", "agents": 1, "messages": 4, "multi_agents": 0, "output": "FILE"}

``mooring sessions import FILE --json`` and ``mooring sessions fork ID NEW_ID --json``
(a *copy report*)::

    {"session_id": "s1", "target_id": "s1", "created": true, "agents": 1,
     "messages_copied": 4, "messages_present": 0, "agent_records_written": 1,
     "multi_agents_written": 0}

  ``messages_present`` counts messages that were already at the destination (skipped).

``mooring sessions copy --from URL --to URL --json``::

    {"from": "file:/a", "to": "sqlite:/b.db",
     "sessions": [<copy report> + {"error": null | "one line"}],
     "messages_copied": 4, "messages_present": 0, "failed": 0}

``mooring sessions delete ID --yes --json``::

    {"session_id": "s1", "deleted": true}

``mooring sessions verify --json``::

    {"store": "...", "sessions": 3, "agents": 3, "messages": 40,
     "problems": [<problem>], "repairs": [<repair>], "remaining": [<problem>] | null, "ok": true}

  problem: ``{"severity": "error" | "warning", "kind": "...", "session_id": "s1" | "" (the
  store itself), "agent_id": "default" | null, "message_id": 3 | null, "location": "<file
  path or description>", "detail": "...", "fix": "<what --repair would do>" | null}``;
  kinds: ``corrupt-record``, ``missing-record``, ``id-gap``, ``dangling-tool-use``,
  ``orphan-tool-result``, ``unanswered-prompt``, ``head-mismatch``, ``window-mismatch``; on a
  file store also ``symlink`` and ``hard-link`` (errors; a hard link is a warning with
  ``?allow_hard_links=true``), ``temp-file`` and ``stray-name`` (warnings). This is
  :meth:`mooring.session.verify.VerifyReport.to_dict`.
  repair: ``{"action": "quarantined" | "placeholder" | "recreated" | "updated-head" |
  "skipped", "location": "...", "to": "<quarantine path>" | null, "message_id": 3 | null,
  "detail": "..."}``.
  ``remaining`` is the re-check after ``--repair`` (``null`` without it); ``ok`` is true
  when no error-severity problem is left. The exit code is 0 when ``ok``, else 1.

Exit codes of every command: 0 success, 1 failure (one line ``mooring: error: ...`` on
stderr), 2 usage error (including ``sessions delete`` without ``--yes`` when stdin is not a
terminal), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from mooring._json import encode_bytes
from mooring.types import ContentBlock, Message

_PIPE_WIDTH = 160


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


def console(stream: TextIO | None = None, *, stderr: bool = False) -> Console:
    """A rich Console on ``stream`` (default: the current ``sys.stdout``/``sys.stderr``).

    Built per call so that output follows whatever ``sys.stdout`` is at that moment (tests
    capture it); a pipe gets a wide fixed width so tables do not wrap ids.
    """
    file = stream if stream is not None else (sys.stderr if stderr else sys.stdout)
    probe = Console(file=file)
    width = None if probe.is_terminal else _PIPE_WIDTH
    return Console(file=file, width=width, highlight=False, soft_wrap=False)


def is_tty(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (False for anything that cannot tell)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def emit_json(data: Any, stream: TextIO | None = None) -> None:
    """Print ``data`` as indented JSON (the ``--json`` output of every command)."""
    out = stream if stream is not None else sys.stdout
    out.write(json.dumps(encode_bytes(data), indent=2, ensure_ascii=False) + "\n")
    out.flush()


def error_line(message: object, stream: TextIO | None = None) -> None:
    """The one-line error every failure prints: ``mooring: error: ...``."""
    text = " ".join(str(message).split())  # a multi-line driver message stays on one line
    (stream if stream is not None else sys.stderr).write(f"mooring: error: {text}\n")


# -- conversations ----------------------------------------------------------------------------


def _compact(value: Any, limit: int = 300) -> str:
    text = json.dumps(encode_bytes(value), ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def block_lines(block: ContentBlock | dict[str, Any]) -> list[Text]:
    """Readable lines for one content block; tool calls and results are always shown."""
    if "text" in block:
        return [Text(str(block["text"]))]
    if "toolUse" in block:
        use = block["toolUse"]
        line = Text("→ tool call ", style="cyan")
        line.append(str(use.get("name")), style="bold cyan")
        line.append(f" [{use.get('toolUseId')}] ", style="dim")
        line.append(_compact(use.get("input")))
        return [line]
    if "toolResult" in block:
        result = block["toolResult"]
        status = str(result.get("status", "success"))
        line = Text("← tool result ", style="green" if status == "success" else "red")
        line.append(f"[{result.get('toolUseId')}] {status}", style="dim")
        parts = []
        for item in result.get("content", []):
            if "text" in item:
                parts.append(str(item["text"]))
            elif "json" in item:
                parts.append(_compact(item["json"]))
            else:
                parts.append(f"[{next(iter(item), 'content')}]")
        line.append(": " + " ".join(parts) if parts else "")
        return [line]
    if "reasoningContent" in block:
        reasoning = block["reasoningContent"].get("reasoningText", {})
        return [Text(f"(reasoning) {reasoning.get('text', '')}", style="dim italic")]
    kind = next(iter(block), "unknown")
    detail = block.get(kind)
    name = detail.get("name") or detail.get("format") if isinstance(detail, dict) else None
    return [Text(f"[{kind}{' ' + str(name) if name else ''}]", style="dim")]


def conversation_text(items: Iterable[tuple[int | None, Message, bool]]) -> Text:
    """Render ``(message_id, message, redacted)`` triples as one readable block."""
    out = Text()
    for message_id, message, redacted in items:
        role = message.get("role", "?")
        header = Text(f"#{message_id} " if message_id is not None else "", style="dim")
        header.append(role, style="bold magenta" if role == "user" else "bold blue")
        if redacted:
            header.append(" (redacted)", style="yellow")
        out.append_text(header)
        out.append("\n")
        for block in message.get("content", []):
            for line in block_lines(block):
                out.append("  ")
                out.append_text(line)
                out.append("\n")
    return out


def message_json(message_id: int, message: Message, *, redacted: bool, created_at: str) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "role": message.get("role"),
        "content": encode_bytes(message.get("content", [])),
        "redacted": redacted,
        "created_at": created_at,
    }
