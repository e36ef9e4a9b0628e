"""``FileSessionManager`` under the import path Strands Agents uses (``strands.session.file_session_manager``).

Code ported from Strands changes only its import lines: ``from mooring.session.file_session_manager import
FileSessionManager``. The class is the same object as ``mooring.session.FileSessionManager``; this path is kept
for as long as mooring keeps Strands compatibility.
"""

from mooring.session.backends.file import FileSessionManager

__all__ = ["FileSessionManager"]
