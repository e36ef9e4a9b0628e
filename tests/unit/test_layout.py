"""The import graph follows the layout: a backend never imports another, the agent and the
models never import a backend.

Every module is parsed, not imported, so imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mooring

SRC = Path(mooring.__file__).resolve().parent
BACKENDS_DIR = SRC / "session" / "backends"
BACKENDS_PACKAGE = "mooring.session.backends"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source`` (the code of ``module``), at any depth.

    ``from x import y`` yields both ``x`` and ``x.y`` (``y`` may be a submodule).
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
    return found


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    source = path.read_text(encoding="utf-8")
    return _imports(source, _module_name(path), is_package=path.name == "__init__.py")


def _backend_of(module: str) -> str | None:
    """``x`` for ``mooring.session.backends.x[.anything]``, else None."""
    if not module.startswith(BACKENDS_PACKAGE + "."):
        return None
    return module[len(BACKENDS_PACKAGE) + 1 :].split(".")[0]


BACKENDS = sorted(
    p.stem if p.is_file() else p.name
    for p in BACKENDS_DIR.iterdir()
    if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")
)


def _backend_files(backend: str) -> list[Path]:
    single = BACKENDS_DIR / f"{backend}.py"
    return [single] if single.exists() else sorted((BACKENDS_DIR / backend).rglob("*.py"))


def test_every_backend_is_found() -> None:
    assert {"memory", "file", "sql", "redis", "s3"} <= set(BACKENDS)


def test_the_import_walk_sees_every_form_of_import() -> None:
    # The walk itself must see relative imports and imports inside functions, or the tests
    # below would pass blind.
    source = (
        "import mooring.session.backends.redis._client\n"
        "from mooring.session.backends import s3\n"
        "def later():\n"
        "    from ..file import _fs\n"
        "    from ..memory import InMemorySessionRepository\n"
        "    from . import base\n"
    )
    found = [(line, _backend_of(name)) for line, name in _imports(source, "mooring.session.backends.sql.sqlite")]
    assert {(line, backend) for line, backend in found if backend} == {
        (1, "redis"),
        (2, "s3"),
        (4, "file"),
        (5, "memory"),
        (6, "sql"),
    }
    package_relative = _imports("from .repository import X\n", "mooring.session.backends.redis", is_package=True)
    assert _backend_of(package_relative[0][1]) == "redis"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_backend_never_imports_another(backend: str) -> None:
    files = _backend_files(backend)
    assert files
    crossings = [
        f"{path.relative_to(SRC.parent)}:{line} imports {name}"
        for path in files
        for line, name in _imported_modules(path)
        if _backend_of(name) not in (None, backend)
    ]
    assert crossings == []


@pytest.mark.parametrize("layer", ["agent", "models"])
def test_agent_and_models_never_import_a_backend(layer: str) -> None:
    files = sorted((SRC / layer).rglob("*.py"))
    assert files
    crossings = [
        f"{path.relative_to(SRC.parent)}:{line} imports {name}"
        for path in files
        for line, name in _imported_modules(path)
        if name == BACKENDS_PACKAGE or name.startswith(BACKENDS_PACKAGE + ".")
    ]
    assert crossings == []
