"""Long output through a pager, as git does: only when stdout is a terminal.

The pager is ``$PAGER`` (``PAGER=`` or ``PAGER=cat`` turn it off), else ``less -R``; when it
cannot be found the text is printed as it is. ``less`` gets ``LESS=FRX`` unless ``$LESS`` is
set, so output that fits on one screen is printed without waiting for a key.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable

from rich.console import Console

from mooring.cli._output import console, is_tty

DEFAULT_PAGER = "less -R"


def pager_command() -> list[str] | None:
    """The pager to run (``$PAGER``, else ``less -R``), or None for none (unset, or not found)."""
    raw = os.environ.get("PAGER", DEFAULT_PAGER)
    try:
        words = shlex.split(raw)
    except ValueError:
        return None
    if not words or words[0] == "cat":
        return None
    found = shutil.which(words[0])
    return [found, *words[1:]] if found is not None else None


def paged(render: Callable[[Console], None]) -> None:
    """Call ``render(console)``; on a terminal its output goes through the pager."""
    command = pager_command() if is_tty(sys.stdout) else None
    if command is None:
        render(console())
        return
    screen = console()
    buffer = io.StringIO()
    render(
        Console(
            file=buffer,
            width=screen.width,
            force_terminal=True,
            color_system="auto" if screen.color_system else None,
            highlight=False,
            soft_wrap=False,
        )
    )
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    sys.stdout.flush()
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
    except OSError:
        sys.stdout.write(buffer.getvalue())
        return
    assert process.stdin is not None
    try:
        with io.TextIOWrapper(process.stdin, encoding="utf-8", errors="replace") as pipe:
            pipe.write(buffer.getvalue())
    except BrokenPipeError:
        pass  # the reader quit the pager before the end
    while True:
        try:
            process.wait()
            return
        except KeyboardInterrupt:
            continue  # Ctrl-C belongs to the pager (less uses it to stop a search)
