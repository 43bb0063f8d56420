"""A package's public names, imported when first used (PEP 562), so that importing a package stays cheap.

``spinfits.fitting.data.dataset`` needs numpy alone; were ``spinfits.fitting``'s ``__init__`` to import
``SMPLify`` eagerly, every import below it would load torch. Each package ``__init__`` instead lists
its names by module::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {".fitter": "SMPLify Progress"})

``from spinfits.fitting import SMPLify`` then imports ``spinfits.fitting.smplify.fitter`` on that line.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, modules: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``.

    modules: relative module name (``".fitter"``, ``".smplify.fitter"``) -> its public names,
    space-separated. A name listed twice is refused (one home per name).
    """
    owner: dict[str, str] = {}
    for module, names in modules.items():
        for name in names.split():
            if name in owner:
                raise ValueError(f"{package}: {name!r} listed for both {owner[name]} and {module}")
            owner[name] = module

    def __getattr__(name: str) -> Any:
        module = owner.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def __dir__() -> list[str]:
        return sorted(owner)

    return __getattr__, __dir__, sorted(owner)
