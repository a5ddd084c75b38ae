"""Every write (PUT) the client sends: its body, and what its GET shows once applied.

One function per write checks the arguments (raising :class:`InvalidRequestError` before
anything is sent) and returns a :class:`PreparedWrite`: the JSON body, whether it sets
the operation's whole state (so that sending it twice is the same as once, and a lost
answer may be resent), the GET that reads the state back, and the fields that GET must
show.  The update methods send it; a confirmation (``confirm=True``,
:meth:`~enphase_battery.EnphaseClient.wait_applied`) compares the reads with it.
:data:`WRITES` names them by the write's operationId.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.models import BatteryMode, LoadControlMode, validation

__all__ = [
    "WRITES",
    "PreparedWrite",
    "battery_mode_write",
    "battery_settings_write",
    "load_control_write",
    "storm_guard_write",
]


@attrs.frozen
class PreparedWrite:
    """A checked write, ready to send.

    Attributes:
        operation_id: the PUT (route table key).
        read_operation_id: the GET that shows its state (also the client method's name).
        body: the JSON body, in the API's spelling.
        expected: what the GET's model must show once applied, by field.
        full_state: the body sets every field of the operation.
        circuit: for load control, the circuit (``NC1``...) whose fields are expected.
    """

    operation_id: str
    read_operation_id: str
    body: Mapping[str, Any]
    expected: Mapping[str, Any]
    full_state: bool
    circuit: str | None = None

    def mismatched(self, state: Any) -> tuple[str, ...]:
        """The expected fields ``state`` (the GET's model) does not show as asked."""
        holder = state
        if self.circuit is not None:
            circuits = getattr(state, "load_control_data", ())
            holder = next((c for c in circuits if c.name == self.circuit), None)
            if holder is None:
                return tuple(self.expected)
        return tuple(
            name for name, value in self.expected.items() if getattr(holder, name, None) != value
        )


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{name} must be a bool, got {value!r}")
    return value


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(mapping)


def battery_settings_write(
    *,
    battery_mode: BatteryMode | str | None = None,
    reserve_soc: int | None = None,
    energy_independence: bool | None = None,
) -> PreparedWrite:
    """``PUT .../battery_settings``: only the fields given, at least one."""
    body: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    if battery_mode is not None:
        mode = validation.battery_mode(battery_mode)
        body["battery_mode"], expected["battery_mode"] = mode.value, mode
    if reserve_soc is not None:
        body["reserve_soc"] = expected["reserve_soc"] = validation.percent(
            "reserve_soc", reserve_soc
        )
    if energy_independence is not None:
        flag = _bool("energy_independence", energy_independence)
        body["energy_independence"] = "enabled" if flag else "disabled"
        expected["energy_independence"] = flag
    if not body:
        raise InvalidRequestError(
            "nothing to update: give battery_mode, reserve_soc or energy_independence"
        )
    return PreparedWrite(
        "update_system_battery_settings",
        "get_system_battery_settings",
        _frozen(body),
        _frozen(expected),
        full_state=len(body) == 3,
    )


def storm_guard_write(*, enabled: bool) -> PreparedWrite:
    """``PUT .../storm_guard``: on or off (the whole state)."""
    flag = _bool("enabled", enabled)
    return PreparedWrite(
        "update_system_storm_guard",
        "get_system_storm_guard",
        _frozen({"storm_guard_status": "enabled" if flag else "disabled"}),
        _frozen({"storm_guard_status": flag}),
        full_state=True,
    )


def load_control_write(
    *,
    name: str,
    load_name: str | None = None,
    mode: LoadControlMode | str | None = None,
    soc_low: int | None = None,
    essential_start_time: int | Any | None = None,
    essential_end_time: int | Any | None = None,
) -> PreparedWrite:
    """``PUT .../load_control``: one circuit, named by ``name``; only the fields given."""
    circuit = validation.circuit_name(name)
    body: dict[str, Any] = {"name": circuit}
    expected: dict[str, Any] = {}
    if load_name is not None:
        if not isinstance(load_name, str):
            raise InvalidRequestError("load_name must be a str")
        body["load_name"] = expected["load_name"] = load_name
    if mode is not None:
        checked_mode = validation.load_control_mode(mode)
        body["mode"], expected["mode"] = checked_mode.value, checked_mode
    if soc_low is not None:
        body["soc_low"] = expected["soc_low"] = validation.percent("soc_low", soc_low, 10, 90)
    for field, value in (
        ("essential_start_time", essential_start_time),
        ("essential_end_time", essential_end_time),
    ):
        if value is not None:
            body[field] = expected[field] = validation.seconds_after_midnight(field, value)
    return PreparedWrite(
        "update_system_load_control",
        "get_system_load_control",
        _frozen(body),
        _frozen(expected),
        # Every field of the circuit given: sending it twice sets the same state.
        full_state=len(body) == 6,
        circuit=circuit,
    )


def battery_mode_write(*, cfg_allowed: bool, dtg_allowed: bool) -> PreparedWrite:
    """``PUT /activations/{id}/battery_mode``: both flags, as the spec requires."""
    cfg = _bool("cfg_allowed", cfg_allowed)
    dtg = _bool("dtg_allowed", dtg_allowed)
    return PreparedWrite(
        "update_battery_mode",
        "get_battery_mode",
        _frozen({"CFG_allowed": cfg, "DTG_allowed": dtg}),
        _frozen({"cfg_allowed": cfg, "dtg_allowed": dtg}),
        full_state=True,
    )


#: The write's operationId -> the function that checks its arguments (the update method's
#: keyword arguments) and prepares it.
WRITES: dict[str, Callable[..., PreparedWrite]] = {
    "update_system_battery_settings": battery_settings_write,
    "update_system_storm_guard": storm_guard_write,
    "update_system_load_control": load_control_write,
    "update_battery_mode": battery_mode_write,
}
