"""What a protocol's device gives the driver, and the base its devices are built on.

A device is the protocol's side of a party that the generated machine does not hold:
keys, negotiation state, what the conditions read and the actions change (the fsm's
`...Bindings` interface), and what the driver asks around every message (`Device`).

Its state is a frozen record (`snapshot`), from which an equal device can be rebuilt
(`restore`). The one record serves every tool that needs a device's state as a value:
the explorer compares worlds by it (fields declared with `compare=False` are kept but do
not tell states apart) and copies worlds with it; a persistent store writes it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

__all__ = ["RECORDS", "Device", "DeviceBase"]

S = TypeVar("S")
# Where a copier may leave, in a deepcopy memo, the records it took of the devices it
# copies (id(device) -> record): the copies restore from them instead of taking them again.
RECORDS = "runtime.device.records"


class Device(Protocol):
    """What the driver (runtime.party) calls on a protocol's device."""

    machine: Any
    # The party's clock (seconds), set by the driver: simulated time in the harness. For
    # what the protocol computes from the time (Berty's rendezvous points); a device's
    # timers are the machine's states' timeouts, which the driver runs.
    clock: Callable[[], float]

    def capture(self, message: Any, to: str | None = None) -> Any:
        """What sealing `message` needs of the moment it is sent (keys to sign with and
        to attach; for a message `to` one party, that party's session); the machine calls
        this from `send`. A value, never changed after:
        the Send effect carries it, and copies of a world share their past effects."""
        ...

    def seal(self, message: Any, data: bytes, captured: Any) -> bytes:
        """The bytes to post for the encoded `data` of `message`."""
        ...

    def describe(self, captured: Any) -> Any:
        """A canonical, hashable description of what `capture` returned (signer, keys
        attached): with the message it identifies a sealed message whatever its nonces."""
        ...

    def open(self, data: bytes) -> tuple[bytes, Any]:
        """The encoded message and an opaque context (sender, attachments); raises a
        RemoteError (runtime.errors) when the bytes cannot be opened or verified."""
        ...

    def admit(self, message: Any, context: Any) -> str | None:
        """None to accept the decoded message, else why its security context is not met."""
        ...

    def receiving(self, message: Any, context: Any) -> None:
        """The message is about to be handled: remember its sender and attachments.
        (None, None) before a user or signaled event."""
        ...

    def material_digest(self) -> str:
        """A digest of the device's key material: equal exactly when the material is."""
        ...

    def timed_out(self, state: str) -> None:
        """Tell the application a state timed out (the pEp engine's SYNC_NOTIFY_TIMEOUT)."""
        ...

    def listening(self) -> frozenset[str]:
        """The addresses (rendezvous points) the device receives on now, besides its own
        name: after every input the driver makes the transport deliver what is posted to
        these, and no other address, to the party. A function of the device's state
        record (the explorer tells worlds apart by the records, not by the transport)."""
        ...

    def snapshot(self) -> Any:
        """The device's state as a frozen record."""
        ...

    def restore(self, state: Any) -> None:
        """Make this device's state `state` (a record `snapshot` returned)."""
        ...


class DeviceBase(Generic[S]):
    """A base for devices whose state is a record of type S: a copy (`copy.deepcopy`,
    the explorer's) shares the device's configuration (name, identity, directories: set
    once, never changed), copies what `COPIED` names through the memo (the machine, so
    that the copy of a device and of its machine point at each other; the random
    source, the clock), and takes its state from `snapshot` through `restore`, so that nothing
    mutable is shared and no per-class copy table is needed."""

    COPIED: ClassVar[tuple[str, ...]] = ("machine", "rng", "clock")
    NOWHERE: ClassVar[frozenset[str]] = frozenset()

    def listening(self) -> frozenset[str]:
        return self.NOWHERE  # most protocols address parties by name only

    @staticmethod
    def clock() -> float:
        return 0.0  # until a driver sets the party's

    def snapshot(self) -> S:
        raise NotImplementedError

    def restore(self, state: S) -> None:
        raise NotImplementedError

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        cls = type(self)
        twin = cls.__new__(cls)
        memo[id(self)] = twin  # before the machine: it refers back to its device
        twin.__dict__.update(self.__dict__)
        for name in self.COPIED:
            setattr(twin, name, copy.deepcopy(getattr(self, name), memo))
        records = memo.get(RECORDS)  # type: ignore[call-overload]
        record = records.get(id(self)) if records is not None else None
        twin.restore(record if record is not None else self.snapshot())
        return twin
