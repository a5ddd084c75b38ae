"""Which of the API's access controls an entry has: its plan's, less what the
homeowner's grant refuses.

The plan decides statically (:data:`~.const.PLAN_ACCESS`); the grant is found out with
one cheap request per access control at setup (a 403 means refused).  Entities of a
refused access control are not created, and one repair issue per entry says which are
missing and why (the plan, or the grant).
"""

from __future__ import annotations

import attrs
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from enphase_battery import EnphaseClient, Granularity, PermissionDeniedError

from .const import DOMAIN, PLAN_ACCESS, PLAN_FOR_ACCESS, Access
from .runtime import SystemInfo

#: What each access control brings, for the repair issue.
ENTITIES_OF: dict[Access, str] = {
    Access.SITE: "battery state of charge, power and energy",
    Access.DEVICE: "per-Encharge state of charge, power and energy (and their statistics)",
    Access.CONFIG: "grid state, Storm Guard, battery profile and reserve",
}


@attrs.define
class AccessReport:
    """An entry's access: what the plan allows, and what the grant refused of it."""

    plan: str
    by_plan: frozenset[Access]
    #: Access control -> the API's refusal.
    refused: dict[Access, str] = attrs.field(factory=dict)

    @property
    def allowed(self) -> frozenset[Access]:
        """What the entry may use."""
        return self.by_plan - set(self.refused)

    def denied_by_grant(self, access: Access, message: str) -> None:
        """A 403 later on (the grant was withdrawn)."""
        self.refused[access] = message

    def missing(self) -> list[tuple[Access, str]]:
        """Each access control the entry lacks, with why (``plan`` or ``grant``)."""
        out = []
        for access in (Access.SITE, Access.DEVICE, Access.CONFIG):
            if access not in self.by_plan:
                out.append((access, "plan"))
            elif access in self.refused:
                out.append((access, "grant"))
        return out


async def discover_access(
    client: EnphaseClient, plan: str, systems: dict[int, SystemInfo]
) -> AccessReport:
    """The plan's access, each control tried once on the first system (a 403: refused)."""
    report = AccessReport(plan, PLAN_ACCESS[plan])
    first = next(iter(systems.values()), None)
    if first is None:
        return report
    if Access.DEVICE in report.by_plan and first.encharges:
        try:
            await client.get_encharge_telemetry(
                first.system_id, first.encharges[0].serial, granularity=Granularity.FIFTEEN_MINUTES
            )
        except PermissionDeniedError as err:
            report.refused[Access.DEVICE] = str(err)
    if Access.CONFIG in report.by_plan:
        try:
            await client.get_system_storm_guard(first.system_id)
        except PermissionDeniedError as err:
            report.refused[Access.CONFIG] = str(err)
    return report


def issue_id(entry: ConfigEntry) -> str:
    """The entry's repair issue about missing access."""
    return f"missing_access_{entry.entry_id}"


def update_access_issue(hass: HomeAssistant, entry: ConfigEntry, report: AccessReport) -> None:
    """Raise (or clear) the repair issue listing what the plan or the grant refuses."""
    missing = report.missing()
    if not missing:
        ir.async_delete_issue(hass, DOMAIN, issue_id(entry))
        return
    lines = []
    for access, why in missing:
        if why == "plan":
            reason = f"needs the {PLAN_FOR_ACCESS[access].title()} plan or higher"
        else:
            reason = "refused by the homeowner's grant to this app"
        lines.append(f"- {ENTITIES_OF[access]}: {reason}")
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(entry),
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="missing_access",
        translation_placeholders={
            "title": entry.title,
            "plan": report.plan.title(),
            "missing": "\n".join(lines),
        },
    )
