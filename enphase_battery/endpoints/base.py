"""The hand-off every endpoint method makes to the transport (the single choke point)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from .. import validation
from ..routes import ROUTES, Route
from ..transport import Transport

__all__ = ["EndpointBase"]

_T = TypeVar("_T")


class EndpointBase:
    """What the endpoint mixins share: the client's :class:`Transport`."""

    _transport: Transport

    async def _call(
        self,
        operation_id: str,
        model: type[_T],
        system_id: int,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        full_state: bool = False,
        **path_params: str,
    ) -> _T:
        route = ROUTES[operation_id]
        path = route.path(system_id=validation.system_id(system_id), **path_params)
        return await self._transport.request(
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
