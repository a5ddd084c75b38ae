"""The configuration models' quick structure hook agrees with cattrs' generated one.

The configuration answers (battery settings, Storm Guard, grid status) go through a
hand-built hook for speed; whatever the answer holds (ints, "97%", floats, booleans,
nulls, unknown words, missing or extra keys, not an object at all), it must give the
same model, or fail with the same error, as the hook cattrs generates from the model.
"""

from __future__ import annotations

from typing import Any

import pytest
from cattrs.gen import make_dict_structure_fn
from hypothesis import given, settings
from hypothesis import strategies as st

from enphase_battery.models import BatterySettings, GridStatus, StormGuard, converter
from enphase_battery.models.vocabulary import BatteryMode, Flag

MODELS = (BatterySettings, StormGuard, GridStatus)

WORDS = (
    "enabled",
    "disabled",
    "Enabled (Inactive)",
    "true",
    "on",
    "maybe",
    "Self - Consumption",
    "Savings Mode",
    "backup",
    "Full Backup",
    "no such mode",
    "On Grid",
    "off grid",
    "2024-05-23T10:00:00Z",
    "97%",
    "30",
    "n/a",
    "",
)
VALUES = st.one_of(
    st.integers(-5, 200),
    st.sampled_from(WORDS),
    st.floats(-1, 101, allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.just({"nested": 1}),
)


def answers(model: type[Any]) -> st.SearchStrategy[Any]:
    names = [field.name for field in model.__attrs_attrs__]
    objects = st.dictionaries(st.sampled_from([*names, "extra"]), VALUES, max_size=len(names) + 1)
    return st.one_of(objects, st.none(), st.just([1, 2]), st.just("text"))


def outcome(hook: Any, value: Any, model: type[Any]) -> tuple[str, Any]:
    try:
        return "ok", hook(value, model)
    except Exception as err:
        return "error", (type(err), str(err))


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_quick_hook_gives_what_the_generated_hook_gives(model: type[Any]) -> None:
    generated = make_dict_structure_fn(model, converter)

    @settings(max_examples=400, deadline=None)
    @given(answers(model))
    def check(value: Any) -> None:
        # Twice: the second time the words are remembered.
        for _ in range(2):
            assert outcome(converter.structure, value, model) == outcome(generated, value, model)

    check()


def test_a_typical_battery_settings_answer() -> None:
    answer = {
        "system_id": 698905955,
        "battery_mode": "Self - Consumption",
        "reserve_soc": 30,
        "energy_independence": "enabled",
        "charge_from_grid": "disabled",
        "battery_shutdown_level": 10,
        "future_field": {"ignored": True},
    }
    for _ in range(2):
        settings_ = converter.structure(answer, BatterySettings)
        assert settings_ == BatterySettings(
            system_id=698905955,
            battery_mode=BatteryMode.SELF_CONSUMPTION,
            reserve_soc=30,
            energy_independence=Flag(True),
            charge_from_grid=Flag(False),
            battery_shutdown_level=10,
        )
