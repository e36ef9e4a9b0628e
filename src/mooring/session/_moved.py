"""The module paths of mooring 0.1's flat session package, kept importable for one release.

``import mooring.session.sqlite`` (and ``.file``, ``.memory``, ``.postgres``, ``.redis``,
``.s3``) warns with a DeprecationWarning and hands back the backend module at its new place
under :mod:`mooring.session.backends`. Names imported from ``mooring.session`` itself never
moved and never warn.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED = {
    "mooring.session.file": "mooring.session.backends.file",
    "mooring.session.memory": "mooring.session.backends.memory",
    "mooring.session.sqlite": "mooring.session.backends.sql.sqlite",
    "mooring.session.postgres": "mooring.session.backends.sql.postgres",
    "mooring.session.redis": "mooring.session.backends.redis.repository",
    "mooring.session.s3": "mooring.session.backends.s3.repository",
    "mooring.session.util": "mooring.session.records",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a plain new module, filled by exec_module

    def exec_module(self, module: ModuleType) -> None:
        new = MOVED[module.__name__]
        # The import machinery skips its own frames, so level 2 names the importing line.
        warnings.warn(
            f"{module.__name__} moved to {new}; import from mooring.session instead", DeprecationWarning, stacklevel=2
        )
        target = importlib.import_module(new)
        module.__dict__.update({k: v for k, v in vars(target).items() if not (k.startswith("__") and k.endswith("__"))})
        module.__doc__ = target.__doc__


def install() -> None:
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
