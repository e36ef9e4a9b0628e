"""``SessionRepository`` under the import path Strands Agents uses (``strands.session.session_repository``).

Code ported from Strands changes only its import lines: ``from mooring.session.session_repository import
SessionRepository``. The class is the same object as ``mooring.session.SessionRepository``; this path is kept
for as long as mooring keeps Strands compatibility.
"""

from mooring.session.repository import SessionRepository

__all__ = ["SessionRepository"]
