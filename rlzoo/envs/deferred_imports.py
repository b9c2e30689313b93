"""Defer a suite's plotting imports until something draws.

gymnax imports ``matplotlib.pyplot`` and ``seaborn`` at module level (for ``render``), and
seaborn pulls in scipy and pandas: about 2 s of every launch on a 2-core CPU, for modules a
training run never touches. :func:`defer_imports` puts a stand-in module in ``sys.modules``
for each name, so the suite's ``import`` statements succeed at once; the first attribute
looked up on the stand-in imports the real module, and every lookup after that is
forwarded to it. A user who renders gets the real module, just later; a module that is
already imported is left as it is.

The standard library's ``importlib.util.LazyLoader`` is not enough on Python 3.11: a second
``import`` of the same name reads the module's ``__spec__``, which makes it load right away.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


class _DeferredModule(types.ModuleType):
    """Stands in for a module until one of its attributes is needed."""

    def __getattr__(self, attr: str) -> object:  # only for names the stand-in lacks
        return getattr(_load(self.__name__), attr)


def _load(name: str) -> types.ModuleType:
    module = sys.modules.get(name)
    if isinstance(module, _DeferredModule):
        del sys.modules[name]  # let the import system run the real module
        module = importlib.import_module(name)
    return module


def defer_imports(*names: str) -> None:
    """Make each (possibly dotted) module name import on first use, unless already imported.

    The parent of a dotted name is imported now (``importlib.util.find_spec`` needs it);
    only the named module itself is deferred. Names that are not installed are skipped, so
    the import that needs them fails where it would have anyway.
    """
    for name in names:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # the parent package is missing
            continue
        if spec is None:
            continue
        stand_in = _DeferredModule(name)
        stand_in.__spec__ = spec  # read by the import system; must not trigger loading
        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, stand_in)
