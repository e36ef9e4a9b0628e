"""The S3 backend: the same agent code as ``backend_by_url.py``, on a S3 store.

Shows: a session stored in S3 by URL, restored by a second Agent built from a fresh
repository. Needs the ``s3`` extra (``pip install 'mooring-agents[s3]'``) and a
reachable store; the URL comes from the environment variable ``MOORING_EXAMPLE_S3_URL``.

Run (offline model, no model credentials)::

    MOORING_EXAMPLE_S3_URL='s3://my-bucket/sessions?region_name=us-east-1' python examples/s3_backend.py

``--session ID`` picks the session id; ``--cleanup`` deletes the session at the end.
"""

from __future__ import annotations

import argparse
import os
import sys

from backend_by_url import run

ENV = "MOORING_EXAMPLE_S3_URL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default="example-session")
    parser.add_argument("--cleanup", action="store_true")
    args = parser.parse_args()
    url = os.environ.get(ENV)
    if not url:
        sys.exit(f"set {ENV} to a S3 store URL, for example {ENV}='s3://my-bucket/sessions?region_name=us-east-1'")
    run(url, args.session, args.cleanup)


if __name__ == "__main__":
    main()
