"""The Redis wire layout: key names, the session index, and the Lua scripts built on them.

Key names and scripts live together because the scripts derive keys themselves (the TTL
refresh and the delete walk the ``agents`` and ``multis`` sets and append ``agent:<id>``,
``messages:<id>``, ``multi:<id>`` to the session's base); both sides must agree exactly.

Script conventions:

- ``ARGV[1]`` is the session's key base ``<prefix>:{<session>}:`` and ``ARGV[2]`` the session
  TTL in milliseconds (0: no TTL). When a TTL is set, every write refreshes it on all of the
  session's keys (:data:`_REFRESH`). Those keys share the session's hash tag, so on Redis
  Cluster they live in the declared keys' slot.
- Results are ``{status, number}`` pairs: ``ok``, ``nosession``, ``noagent``, ``conflict``
  (number: the stored head or version) or ``missing``.
- Writes that a client retry could replay after they already landed (redis-py resends a
  command when the connection drops before its reply) record a per-call token, so the replay
  reports success instead of a conflict with itself.
"""

from __future__ import annotations

from dataclasses import dataclass

# The index is ordered by "<created_at>\0<session_id>" (lexicographically, all scores 0): the
# same order as the reference's (created_at, session_id) tuples, since ids never hold NUL.
INDEX_SEPARATOR = "\x00"


def encode_id(value: str) -> str:
    """Percent-encode the characters that would make a key ambiguous or break its hash tag."""
    return value.replace("%", "%25").replace("{", "%7B").replace("}", "%7D").replace(":", "%3A")


def glob_escape(value: str) -> str:
    """Escape SCAN MATCH metacharacters so a pattern matches ``value`` literally."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in value)


def index_member(created_at: str, session_id: str) -> str:
    return f"{created_at}{INDEX_SEPARATOR}{session_id}"


def parse_member(member: str) -> tuple[str, str]:
    """``(created_at, session_id)`` of an index member."""
    created_at, session_id = member.rsplit(INDEX_SEPARATOR, 1)
    return created_at, session_id


@dataclass(frozen=True)
class SessionKeys:
    """The names of one session's keys; all share the hash tag ``{<encoded session id>}``."""

    base: str

    @classmethod
    def of(cls, prefix: str, session_id: str) -> SessionKeys:
        return cls(f"{prefix}:{{{encode_id(session_id)}}}:")

    @property
    def session(self) -> str:
        return f"{self.base}session"

    @property
    def agents(self) -> str:
        return f"{self.base}agents"

    @property
    def multis(self) -> str:
        return f"{self.base}multis"

    def agent(self, agent_id: str) -> str:
        return f"{self.base}agent:{encode_id(agent_id)}"

    def messages(self, agent_id: str) -> str:
        return f"{self.base}messages:{encode_id(agent_id)}"

    def multi(self, multi_agent_id: str) -> str:
        return f"{self.base}multi:{encode_id(multi_agent_id)}"

    def lease(self, agent_id: str) -> str:
        return f"{self.base}lease:{encode_id(agent_id)}"


_REFRESH = """
local function refresh(base, ttl)
  if ttl <= 0 then return end
  redis.call('PEXPIRE', base .. 'session', ttl)
  for _, id in ipairs(redis.call('SMEMBERS', base .. 'agents')) do
    redis.call('PEXPIRE', base .. 'agent:' .. id, ttl)
    redis.call('PEXPIRE', base .. 'messages:' .. id, ttl)
  end
  for _, id in ipairs(redis.call('SMEMBERS', base .. 'multis')) do
    redis.call('PEXPIRE', base .. 'multi:' .. id, ttl)
  end
  redis.call('PEXPIRE', base .. 'agents', ttl)
  redis.call('PEXPIRE', base .. 'multis', ttl)
end
local ttl = tonumber(ARGV[2])
"""

# KEYS: session, members set (agents or multis), record hash, [messages list]
# ARGV: base, ttl, encoded id, record JSON, token
CREATE_RECORD = (
    _REFRESH
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'nosession', 0} end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local version = tonumber(redis.call('HGET', KEYS[3], 'version')) or 0
  if version == 1 and redis.call('HGET', KEYS[3], 'token') == ARGV[5] then return {'ok', 1} end
  return {'conflict', version}
end
if KEYS[4] then redis.call('DEL', KEYS[4]) end -- a new agent starts at message id 0
redis.call('HSET', KEYS[3], 'record', ARGV[4], 'version', 1, 'token', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[3])
refresh(ARGV[1], ttl)
return {'ok', 1}
"""
)

# KEYS: session, record hash
# ARGV: base, ttl, expected version, record JSON, token
UPDATE_RECORD = (
    _REFRESH
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'nosession', 0} end
local stored = redis.call('HGET', KEYS[2], 'version')
if stored == false then return {'conflict', 0} end
stored = tonumber(stored)
local expected = tonumber(ARGV[3])
if stored == expected + 1 and redis.call('HGET', KEYS[2], 'token') == ARGV[5] then return {'ok', stored} end
if stored ~= expected then return {'conflict', stored} end
redis.call('HSET', KEYS[2], 'record', ARGV[4], 'version', expected + 1, 'token', ARGV[5])
refresh(ARGV[1], ttl)
return {'ok', expected + 1}
"""
)

_AGENT_CHECKS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'nosession', 0} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'noagent', 0} end
local head = redis.call('LLEN', KEYS[3])
"""

# KEYS: session, agent hash, messages list
# ARGV: base, ttl, first id, contiguous (1/0), token, record JSON...
APPEND = (
    _REFRESH
    + _AGENT_CHECKS
    + """
local n = #ARGV - 5
if n == 0 then return {'ok', head} end
local first = tonumber(ARGV[3])
if head == first + n and redis.call('HGET', KEYS[2], 'append') == ARGV[5] then return {'ok', head} end
if head ~= first or ARGV[4] ~= '1' then return {'conflict', head} end
-- unpack() is bounded by the Lua C stack, so push in slices
for i = 6, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[3], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('HSET', KEYS[2], 'append', ARGV[5])
refresh(ARGV[1], ttl)
return {'ok', head + n}
"""
)

# KEYS: session, agent hash, messages list
# ARGV: base, ttl, message id, record JSON
UPDATE_MESSAGE = (
    _REFRESH
    + _AGENT_CHECKS
    + """
local index = tonumber(ARGV[3])
if index < 0 or index >= head then return {'missing', head} end
redis.call('LSET', KEYS[3], index, ARGV[4])
refresh(ARGV[1], ttl)
return {'ok', head}
"""
)

# KEYS: session, agent hash, messages list
# ARGV: base, ttl, new head (>= 0), expected head, token
TRUNCATE = (
    _REFRESH
    + _AGENT_CHECKS
    + """
local new_head = tonumber(ARGV[3])
if head == new_head and redis.call('HGET', KEYS[2], 'truncate') == ARGV[5] then return {'ok', head} end
if head ~= tonumber(ARGV[4]) then return {'conflict', head} end
if new_head == 0 then
  redis.call('DEL', KEYS[3])
elseif new_head < head then
  redis.call('LTRIM', KEYS[3], 0, new_head - 1)
end
redis.call('HSET', KEYS[2], 'truncate', ARGV[5])
refresh(ARGV[1], ttl)
return {'ok', math.min(head, new_head)}
"""
)

# KEYS: session, agents set, multis set, further keys found by SCAN (leases, strays)
# ARGV: base
DELETE_SESSION = """
local base = ARGV[1]
local existed = redis.call('EXISTS', KEYS[1])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('DEL', base .. 'agent:' .. id, base .. 'messages:' .. id)
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('DEL', base .. 'multi:' .. id)
end
for i = 1, #KEYS do redis.call('DEL', KEYS[i]) end
return existed
"""

# KEYS: lease key. ARGV: token, ttl ms. Taking a lease we already hold (a replayed call) succeeds.
LEASE_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease key. ARGV: token, ttl ms.
LEASE_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease key. ARGV: token.
LEASE_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
