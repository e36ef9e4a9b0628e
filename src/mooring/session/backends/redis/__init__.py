"""The Redis backend (extra ``redis``): Lua scripts make every conditional write atomic."""

from mooring.session.backends.redis.repository import RedisSessionManager, RedisSessionRepository

__all__ = ["RedisSessionManager", "RedisSessionRepository"]
