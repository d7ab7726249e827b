"""The package's public surface is small and pinned: a change to it is a decision."""

from __future__ import annotations

import engine


def test_all_is_pinned() -> None:
    assert engine.__all__ == ["IngestionError", "Quote", "__version__"]


def test_exported_members_exist_and_come_from_the_engine() -> None:
    for name in engine.__all__:
        member = getattr(engine, name)
        if name != "__version__":
            assert member.__module__.startswith("engine."), (name, member.__module__)


def test_version_is_a_string() -> None:
    assert isinstance(engine.__version__, str) and engine.__version__.count(".") == 2
