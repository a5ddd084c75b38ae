"""Builds the simulated fleet deterministically from the seed: systems, ids, serials."""

from __future__ import annotations

import random
from collections.abc import Sequence

from enphase_battery.simulator.battery import INTERVAL_S, BatterySystem, Encharge
from enphase_battery.simulator.catalog import SITE_TEMPLATES, BatteryModel, model_for_capacity

__all__ = ["Fleet"]


class Fleet:
    """Every simulated system, indexed by id, plus the id and serial allocators."""

    def __init__(
        self,
        *,
        seed: int,
        systems: int,
        encharges: int | Sequence[int],
        first_end_at: int,
        late_probability: float,
    ) -> None:
        if systems < 0:
            raise ValueError("systems must be >= 0")
        counts = [encharges] * systems if isinstance(encharges, int) else list(encharges)
        if len(counts) != systems:
            raise ValueError("encharges must be an int or one count per system")
        if any(c < 0 for c in counts):
            raise ValueError("encharge counts must be >= 0")
        self.seed = seed
        self._late_probability = late_probability
        rng = random.Random(f"ids:{seed}")
        # Real system ids are 6-7 digit integers, listed in ascending order.
        ids = sorted(rng.sample(range(2_000_000, 5_000_000), systems))
        self.systems: dict[int, BatterySystem] = {}
        self._next_device_id = 100_000 + seed % 1000 * 1000
        self._serial_counter: dict[int, int] = {}
        self._index: dict[int, int] = {}
        self._rng = random.Random(f"added:{seed}")
        self._taken = set(ids)
        for system_id, count in zip(ids, counts, strict=True):
            self._create(system_id, count, first_end_at)

    def _create(self, system_id: int, count: int, first_end_at: int) -> BatterySystem:
        index = len(self._index)
        template = SITE_TEMPLATES[index % len(SITE_TEMPLATES)]
        name = template.name
        if index >= len(SITE_TEMPLATES):
            name = f"{name} {index // len(SITE_TEMPLATES) + 1}"
        system = BatterySystem(
            system_id=system_id,
            template=template,
            first_end_at=first_end_at,
            seed=self.seed,
            late_probability=self._late_probability,
            name=name,
        )
        self._index[system_id] = index
        self._serial_counter[system_id] = 0
        self.systems[system_id] = system
        for _ in range(count):
            self.add_encharge(system, template.battery_model, first_end_at)
        return system

    def add_system(self, encharges: int, first_end_at: int) -> int:
        """Commission one more system (a fresh id); returns its id."""
        if encharges < 0:
            raise ValueError("encharges must be >= 0")
        while True:
            system_id = self._rng.randrange(5_000_000, 9_000_000)
            if system_id not in self._taken:
                break
        self._taken.add(system_id)
        self._create(system_id, encharges, first_end_at)
        return system_id

    def system_index(self, system_id: int) -> int:
        """Position of the system in the fleet (stable, used in serial numbers)."""
        return self._index[system_id]

    def add_encharge(
        self, system: BatterySystem, model: BatteryModel | int, first_end_at: int
    ) -> Encharge:
        """Install a new Encharge reporting from the interval ending at ``first_end_at``."""
        if isinstance(model, int):
            model = model_for_capacity(model)
        n = self._serial_counter[system.system_id] + 1
        self._serial_counter[system.system_id] = n
        # 12-digit serials like the real ones ("1221xxxxxxxx"), unique per fleet.
        index = self.system_index(system.system_id)
        # Fleets past 100 systems widen the index (and the serial) rather than collide.
        serial = f"12{self.seed % 100:02d}{index:02d}{n:06d}"
        self._next_device_id += 1
        device = Encharge(
            serial=serial,
            device_id=self._next_device_id,
            model=model,
            first_end_at=max(first_end_at, system.first_end_at),
            seed=self.seed,
        )
        system.encharges.append(device)
        return device

    @staticmethod
    def first_end_at_after(epoch: float) -> int:
        """The end of the interval in progress at ``epoch`` (the next one to be computed)."""
        return (int(epoch) // INTERVAL_S + 1) * INTERVAL_S
