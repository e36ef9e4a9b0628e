"""The PostgreSQL backend: the same agent code as ``backend_by_url.py``, on a PostgreSQL store.

Shows: a session stored in PostgreSQL by URL, restored by a second Agent built from a fresh
repository. Needs the ``postgres`` extra (``pip install 'mooring-agents[postgres]'``) and a
reachable store; the URL comes from the environment variable ``MOORING_EXAMPLE_POSTGRES_URL``.

Run (offline model, no model credentials)::

    export MOORING_EXAMPLE_POSTGRES_URL='postgresql://root@127.0.0.1:5432/test?schema=mooring_example'
    python examples/postgres_backend.py

``--session ID`` picks the session id; ``--cleanup`` deletes the session at the end.
"""

from __future__ import annotations

import argparse
import os
import sys

from backend_by_url import run

ENV = "MOORING_EXAMPLE_POSTGRES_URL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default="example-session")
    parser.add_argument("--cleanup", action="store_true")
    args = parser.parse_args()
    url = os.environ.get(ENV)
    if not url:
        sys.exit(
            f"set {ENV} to a PostgreSQL store URL, for example {ENV}='postgresql://root@127.0.0.1:5432/test?schema=mooring_example'"
        )
    run(url, args.session, args.cleanup)


if __name__ == "__main__":
    main()
