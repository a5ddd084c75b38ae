"""Filling a frozen ``attrs`` class's slots directly, for the hot paths that build many
instances (a week of telemetry, a checkpoint state per interval).

The frozen ``__init__`` writes each field through ``object.__setattr__``; the slot
descriptors' ``__set__``, mapped over a column in C, does the same for a fraction of the
cost.  That is only sound while the fields have nothing to run: :func:`slot_setters`
checks it when the setters are taken.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import attrs

__all__ = ["consume", "slot_setters"]

#: Runs an iterator to its end (a ``map`` of setters over a column), keeping nothing.
consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend


def slot_setters(cls: type[Any], *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of ``cls``'s fields, which must be exactly ``names`` in order and
    have no validator or converter (those the frozen ``__init__`` would run)."""
    fields = attrs.fields(cls)
    assert [f.name for f in fields] == list(names)
    assert all(f.validator is None and f.converter is None for f in fields)
    return tuple(cls.__dict__[name].__set__ for name in names)
