"""Exceptions of the PostgreSQL stores."""

from __future__ import annotations

from enphase_battery.exceptions import EnphaseError

__all__ = ["CheckpointConflictError", "LeaseLostError"]


class LeaseLostError(EnphaseError):
    """This worker no longer holds the lease of a system (it expired and another worker
    took it over, or it was never held); nothing was written.

    Stop following the system: its new owner resumes from the last committed checkpoint.
    """

    def __init__(self, system_id: int) -> None:
        super().__init__(f"the lease of system {system_id} is held by another worker")
        self.system_id = system_id


class CheckpointConflictError(EnphaseError):
    """Another writer moved a stream's checkpoint since this process read it; nothing was
    written.  Two processes follow the same stream: give them leases."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"checkpoint of stream {stream} was changed by another writer")
        self.stream = stream
