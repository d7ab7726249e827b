"""Load one of the repository's scripts (bench/, scripts/, tools/, docs/examples/) as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_script(path: Path, name: str) -> ModuleType:
    """Execute the file at ``path`` as module ``name`` (registered in ``sys.modules`` first, so
    dataclasses and msgspec Structs defined in it resolve their annotations) and return it."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
