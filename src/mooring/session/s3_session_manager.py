"""``S3SessionManager`` under the import path Strands Agents uses (``strands.session.s3_session_manager``).

Code ported from Strands changes only its import lines: ``from mooring.session.s3_session_manager import
S3SessionManager``. The class is the same object as ``mooring.session.S3SessionManager``; this path is kept
for as long as mooring keeps Strands compatibility.
"""

from mooring.session.backends.s3 import S3SessionManager

__all__ = ["S3SessionManager"]
