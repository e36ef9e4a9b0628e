"""What verification finds and does: problems, repairs, the report, and the inspector protocol
through which a store shows what the repository contract cannot (see :mod:`mooring.session.verify`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from mooring.session.records import MessageRecord

Severity = Literal["error", "warning"]
RepairAction = Literal["quarantined", "recreated", "updated-head", "placeholder", "skipped"]

# Kinds that mean a record cannot be loaded: repair moves such a message aside and puts a
# placeholder at its id (see mooring.session._placeholder). An inspector reports links
# ("symlink", "hard-link") by kind; the contract read of the same path is then not reported again.
LINK_KINDS = frozenset({"symlink", "hard-link"})
UNREADABLE_KINDS = frozenset({"corrupt-record"}) | LINK_KINDS


@dataclass(kw_only=True)
class Problem:
    """One finding. ``location`` is a file path or key when an inspector knows it, else a
    description such as ``session 's1', agent 'default', message 3``. ``fix`` says what
    ``repair=True`` would do about it (None when repair leaves it as it is)."""

    severity: Severity
    kind: str
    session_id: str
    agent_id: str | None = None
    message_id: int | None = None
    location: str
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True)
class Repair:
    """One repair applied (or, with ``action="skipped"``, one that could not be).

    ``message_id`` names the message a ``placeholder`` (or its quarantine move) was for.
    """

    action: RepairAction
    location: str
    to: str | None = None
    message_id: int | None = None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True)
class VerifyReport:
    """What a verification found, what it repaired, and what the re-check after repair found.

    ``remaining`` is None when no repair ran. ``ok`` holds when no error-severity problem is
    left (warnings, such as a prompt a crash left unanswered, do not count).
    """

    store: str
    sessions: int = 0
    agents: int = 0
    messages: int = 0
    problems: list[Problem] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    remaining: list[Problem] | None = None

    @property
    def errors(self) -> list[Problem]:
        """The error-severity problems still there (after repair, if one ran)."""
        left = self.remaining if self.remaining is not None else self.problems
        return [p for p in left if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``mooring sessions verify --json``, see :mod:`mooring.cli._output`)."""
        return {
            "store": self.store,
            "sessions": self.sessions,
            "agents": self.agents,
            "messages": self.messages,
            "problems": [p.to_dict() for p in self.problems],
            "repairs": [r.to_dict() for r in self.repairs],
            "remaining": [p.to_dict() for p in self.remaining] if self.remaining is not None else None,
            "ok": self.ok,
        }


class StoreInspector(Protocol):
    """What a backend with its own physical layout adds to the checks made through the contract.

    Parts of a name are those of :mod:`mooring.session._layout` (``["session_s1", "agents",
    "agent_a", "agent.json"]``). One inspector serves one verification run, repair included.
    """

    def locate(self, parts: Sequence[str]) -> str:
        """Where the record named by ``parts`` lives (a path, a key), for reports."""

    async def store_problems(self) -> list[Problem]:
        """Problems outside any readable session (for example a stray directory name)."""

    async def session_ids(self) -> list[str]:
        """Every session present, also those whose session record does not parse."""

    async def agent_ids(self, session_id: str) -> list[str]:
        """Every agent present in the session, with or without a readable agent record."""

    async def multi_agent_ids(self, session_id: str) -> list[str]:
        """Every multi-agent record name present in the session."""

    async def message_ids(self, session_id: str, agent_id: str) -> set[int]:
        """The ids of every stored message, readable or not, gaps included."""

    async def session_problems(self, session_id: str) -> list[Problem]:
        """Problems only the layout shows (left-over temp files, stray names)."""

    async def repair_session(self, session_id: str, problems: Sequence[Problem]) -> list[Repair]:
        """Repair the problems of ``problems`` that this inspector reported; ignore the others."""

    async def move_aside(self, location: str, reason: str) -> Repair:
        """Move the record at ``location`` (as :meth:`locate` gave it) out of the store's way."""

    async def put_placeholder(self, location: str, record: MessageRecord, reason: str, summary: str) -> list[Repair]:
        """Put ``record`` (a placeholder, described by ``summary``) durably at the message
        ``location``: the file there, if
        any, is kept in quarantine first, so no moment leaves a gap. Returns what it did; a
        ``skipped`` repair (and nothing changed) when the original could not be kept safely."""
