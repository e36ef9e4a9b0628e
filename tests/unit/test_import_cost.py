"""`import mooring` leaves pydantic unimported until a tool is defined, and asyncio (and
orjson) until the first call that needs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = """
import sys
import mooring
assert not [m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core')], 'pydantic imported'
assert 'asyncio' not in sys.modules, 'asyncio imported'
assert 'orjson' not in sys.modules, 'orjson imported'

@mooring.tool
def add(a: int, b: int) -> int:
    '''Add two numbers.'''
    return a + b

assert 'pydantic' in sys.modules
assert add.spec['inputSchema']['json']['properties']['a']['type'] == 'integer'
agent = mooring.Agent(model=mooring.models.ScriptedModel(['hi']), callback_handler=None)
assert str(agent('hello')) == 'hi' and 'asyncio' in sys.modules
print('ok')
"""


def test_import_mooring_does_not_import_pydantic_until_a_tool_is_defined() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
