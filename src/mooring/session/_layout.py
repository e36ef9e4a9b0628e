"""The Strands Agents session tree: record names and the stored JSON form.

The file backend lays these names out as directories, the S3 backend as key prefixes, and
the verifier walks them; so a session written by either can be read by Strands and by the
other::

    session_<session_id>/session.json
    session_<session_id>/agents/agent_<agent_id>/agent.json
    session_<session_id>/agents/agent_<agent_id>/messages/message_<N>.json
    session_<session_id>/multi_agents/multi_agent_<id>/multi_agent.json

Every name is built from a validated id, so no id can climb out of its session.
"""

from __future__ import annotations

import json
from typing import Any

from mooring._ids import validate_id

SESSION_FILE = "session.json"
AGENT_FILE = "agent.json"
MULTI_AGENT_FILE = "multi_agent.json"
AGENTS = "agents"
MESSAGES = "messages"
MULTI_AGENTS = "multi_agents"
SESSION_PREFIX = "session_"
AGENT_PREFIX = "agent_"
MULTI_AGENT_PREFIX = "multi_agent_"


def session_name(session_id: str) -> str:
    return SESSION_PREFIX + validate_id(session_id, "session_id")


def agent_name(agent_id: str) -> str:
    return AGENT_PREFIX + validate_id(agent_id, "agent_id")


def multi_agent_name(multi_agent_id: str) -> str:
    return MULTI_AGENT_PREFIX + validate_id(multi_agent_id, "multi_agent_id")


def message_name(message_id: int) -> str:
    return f"message_{message_id}.json"


def session_parts(session_id: str) -> list[str]:
    return [session_name(session_id)]


def agent_parts(session_id: str, agent_id: str) -> list[str]:
    return [session_name(session_id), AGENTS, agent_name(agent_id)]


def messages_parts(session_id: str, agent_id: str) -> list[str]:
    return [*agent_parts(session_id, agent_id), MESSAGES]


def multi_agent_parts(session_id: str, multi_agent_id: str) -> list[str]:
    return [session_name(session_id), MULTI_AGENTS, multi_agent_name(multi_agent_id)]


def id_from(name: str, prefix: str) -> str | None:
    """The id in a directory name such as ``agent_<id>``, or None for any other name."""
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None


def encode(data: Any) -> bytes:
    """A record as stored: indented UTF-8 JSON, as Strands writes it."""
    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")
