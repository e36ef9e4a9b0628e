"""The ``mooring`` command line: ``main(argv) -> int``.

Commands (one module per noun): ``mooring chat`` (:mod:`mooring.cli.chat`),
``mooring sessions <verb>`` (:mod:`mooring.cli.sessions`) and ``mooring demo``.
Output conventions and the ``--json`` shapes are documented in :mod:`mooring.cli._output`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from mooring.cli._output import UsageError, error_line
from mooring.errors import MooringError

__all__ = ["UsageError", "build_parser", "entrypoint", "main", "version"]


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line (``mooring: error: ...``) with exit code 2, like every error."""

    def error(self, message: str) -> NoReturn:
        error_line(f"{message} (see: {self.prog} --help)")
        raise SystemExit(2)


def _common() -> _Parser:
    common = _Parser(add_help=False)
    # SUPPRESS keeps a subcommand from resetting a --debug given before it.
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    return common


def version() -> str:
    """mooring's version: ``mooring.__version__``, else the installed distribution's metadata."""
    import mooring

    found = getattr(mooring, "__version__", None)
    if isinstance(found, str) and found:
        return found
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    for name in ("mooring-agents", "mooring"):
        try:
            return distribution_version(name)
        except PackageNotFoundError:
            continue
    return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from mooring.cli import chat, sessions
    from mooring.demo import DEFAULT_STORAGE_DIR

    parser = _Parser(
        prog="mooring",
        description="mooring: agents whose conversations never get lost.",
        epilog="examples:\n  mooring chat --session user-42\n  mooring sessions list\n  mooring demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"mooring {version()}")
    common = _common()
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chat.add_parser(commands, common)
    sessions.add_parser(commands, common, _Parser)
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run the offline two-process session demo",
        description="Two separate processes continue one conversation through the file store (offline model).",
        epilog=f"example: mooring demo --storage-dir {DEFAULT_STORAGE_DIR}",
    )
    demo.add_argument(
        "--storage-dir",
        default=DEFAULT_STORAGE_DIR,
        help=f"where the demo session is stored (default {DEFAULT_STORAGE_DIR}, apart from your own sessions)",
    )
    demo.add_argument(
        "--keep", action="store_true", help="continue the existing demo session instead of starting fresh"
    )
    demo.set_defaults(handler=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from mooring.demo import run_demo

    return run_demo(args.storage_dir, fresh=not args.keep)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failure, 2 usage error, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    debug = bool(getattr(args, "debug", False))
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        if debug:
            raise
        error_line("interrupted")
        return 130
    except UsageError as exc:
        if debug:
            raise
        error_line(exc)
        return 2
    except (MooringError, OSError, ValueError, LookupError, ImportError) as exc:
        if debug:
            raise
        error_line(exc)
        return 1
    except Exception as exc:
        if debug:
            raise
        error_line(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1


def entrypoint() -> None:
    sys.exit(main())
