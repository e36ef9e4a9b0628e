"""The Redis backend: the same agent code as ``backend_by_url.py``, on a Redis store.

Shows: a session stored in Redis by URL, restored by a second Agent built from a fresh
repository. Needs the ``redis`` extra (``pip install 'mooring-agents[redis]'``) and a
reachable store; the URL comes from the environment variable ``MOORING_EXAMPLE_REDIS_URL``.

Run (offline model, no model credentials)::

    MOORING_EXAMPLE_REDIS_URL='redis://127.0.0.1:6379/0?prefix=mooring-example' python examples/redis_backend.py

``--session ID`` picks the session id; ``--cleanup`` deletes the session at the end.
"""

from __future__ import annotations

import argparse
import os
import sys

from backend_by_url import run

ENV = "MOORING_EXAMPLE_REDIS_URL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default="example-session")
    parser.add_argument("--cleanup", action="store_true")
    args = parser.parse_args()
    url = os.environ.get(ENV)
    if not url:
        sys.exit(f"set {ENV} to a Redis store URL, for example {ENV}='redis://127.0.0.1:6379/0?prefix=mooring-example'")
    run(url, args.session, args.cleanup)


if __name__ == "__main__":
    main()
