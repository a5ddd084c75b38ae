"""The flat layout's import paths still work for one release, each with one
DeprecationWarning naming the new path, and give the very objects of the new one."""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Iterator

import pytest

import enphase_battery
from enphase_battery.util import moved


@pytest.fixture(autouse=True)
def fresh_old_paths() -> Iterator[None]:
    """Each test imports the old paths as a new process would: not yet warned, not loaded."""

    def forget() -> None:
        moved._warned.clear()
        for name in list(sys.modules):
            if name in moved.MOVED_MODULES:
                del sys.modules[name]

    forget()
    yield
    forget()


def _import(name: str) -> tuple[object, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(name)
    return module, [w for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("old", sorted(moved.MOVED_MODULES))
def test_every_old_module_path_imports_with_a_warning_naming_the_new_one(old: str) -> None:
    module, caught = _import(old)
    new = importlib.import_module(moved.MOVED_MODULES[old])
    messages = [str(w.message) for w in caught]
    assert f"{old} is deprecated and goes away in the next release; use {new.__name__}" in messages
    # one warning per old path: this one, and its old parent's (enphase_battery.endpoints)
    assert len(messages) == len({m.split()[0] for m in messages})
    for name in getattr(new, "__all__", []):
        assert getattr(module, name) is getattr(new, name)


def test_the_warning_points_at_the_users_import_line() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from enphase_battery.poller import TelemetryPoller  # noqa: F401
    assert caught[0].filename == __file__


def test_an_old_path_warns_once_per_process() -> None:
    _, first = _import("enphase_battery.governor")
    del sys.modules["enphase_battery.governor"]
    _, second = _import("enphase_battery.governor")
    assert len(first) == 1
    assert second == []


def test_old_classes_are_the_new_ones() -> None:
    from enphase_battery.poll.poller import TelemetryPoller
    from enphase_battery.store.checkpoint import StreamState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from enphase_battery.checkpoint import StreamState as OldState
        from enphase_battery.poller import TelemetryPoller as OldPoller
    assert OldPoller is TelemetryPoller
    assert OldState is StreamState


@pytest.mark.parametrize(("module", "name"), sorted(moved.MOVED_NAMES))
def test_every_name_that_left_a_module_still_imports_from_it(module: str, name: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(importlib.import_module(module), name)
    new = moved.MOVED_NAMES[(module, name)]
    assert value is getattr(importlib.import_module(new), name)
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert (
        f"{module}.{name} is deprecated and goes away in the next release; use {new}.{name}"
        in messages
    )


def test_a_name_that_never_was_there_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = enphase_battery.Nope  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = importlib.import_module("enphase_battery.poller")
    with pytest.raises(AttributeError):
        _ = old.Nope
