"""``RepositorySessionManager`` under the import path Strands Agents uses.

Code ported from Strands (``strands.session.repository_session_manager``) changes only its import
lines. The class is the same object as ``mooring.session.RepositorySessionManager``; this path is
kept for as long as mooring keeps Strands compatibility.
"""

from mooring.session.manager import RepositorySessionManager

__all__ = ["RepositorySessionManager"]
