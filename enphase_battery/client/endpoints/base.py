"""The hand-off every endpoint method makes to the transport (the single choke point)."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from enphase_battery.http.calls import ApiCalls
from enphase_battery.http.routes import ROUTES, Route
from enphase_battery.models import validation

__all__ = ["EndpointBase"]

_T = TypeVar("_T")

#: What comes before and after the system id in the paths that hold nothing else, from
#: the route table (most calls: a concatenation instead of formatting the template).
_AROUND_SYSTEM_ID: dict[str, tuple[str, str]] = {
    operation_id: (head, tail)
    for operation_id, route in ROUTES.items()
    if route.template.count("{") == 1 and "{system_id}" in route.template
    for head, tail in [route.path(system_id="{system_id}").split("{system_id}")]
}


class EndpointBase:
    """What the endpoint mixins share: the client's :class:`ApiCalls`."""

    _transport: ApiCalls

    def _call(
        self,
        operation_id: str,
        model: type[_T],
        system_id: int,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        full_state: bool = False,
        **path_params: str,
    ) -> Coroutine[Any, Any, _T]:
        # Not a coroutine itself: the endpoint method awaits the transport's directly, one
        # frame fewer to pass through at each of the request's waits.
        route = ROUTES[operation_id]
        checked = validation.system_id(system_id)
        split = _AROUND_SYSTEM_ID.get(operation_id)
        if split is not None and not path_params:
            path = f"{split[0]}{checked}{split[1]}"
        else:
            path = route.path(system_id=checked, **path_params)
        return self._transport.request(
            route, path, params=params, body=body, parse=model, full_state=full_state
        )

    async def _request(
        self,
        route: Route,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        parse: type[_T],
    ) -> _T:
        return await self._transport.request(route, path, params=params, body=body, parse=parse)
