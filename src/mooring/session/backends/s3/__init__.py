"""The S3 backend (extra ``s3``): the Strands key layout, written with conditional requests."""

from mooring.session.backends.s3.repository import S3SessionManager, S3SessionRepository

__all__ = ["S3SessionManager", "S3SessionRepository"]
