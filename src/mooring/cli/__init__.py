"""The ``mooring`` command line: ``main(argv) -> int``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mooring.errors import MooringError


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mooring",
        description="mooring: agents whose conversations never get lost.",
        epilog="example: mooring demo",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the offline two-process session demo",
        description="Two separate processes continue one conversation through the file store (offline model).",
        epilog="example: mooring demo --storage-dir ./sessions",
    )
    demo.add_argument(
        "--storage-dir", default="./sessions", help="where the demo session is stored (default ./sessions)"
    )
    demo.add_argument(
        "--keep", action="store_true", help="continue the existing demo session instead of starting fresh"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "demo":
            from mooring.demo import run_demo

            return run_demo(args.storage_dir, fresh=not args.keep)
    except (MooringError, OSError, ValueError, UsageError) as exc:
        if args.debug:
            raise
        print(f"mooring: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    parser.print_help()
    return 2


def entrypoint() -> None:
    sys.exit(main())
