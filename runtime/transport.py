"""What carries a party's messages: the `Transport` interface and its `Delivery` records.

A party (runtime.party) is on one or more channels of a transport: the in-memory network
of the harness (runtime.harness.network) in simulations and explorations; TCP and a
broker behind the same interface. A transport keeps, per channel, one order of the
messages posted to it (draft-pep-keysync 1.2: every own device, the sender included,
reads the identity's channel in the same order) and hands each receiver a `Delivery`.

Besides the parties, a transport knows addresses that parties listen on: rendezvous
points (Berty's, BisonRelay's), which whoever knows one may post to. A party listens on
what its device says (`Device.listening`), and the driver keeps the transport in step.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

__all__ = ["Delivery", "Transport"]


class Delivery(NamedTuple):
    """One message on its way to one receiver. A NamedTuple: a broadcast makes one per
    receiver, and a frozen dataclass costs several times as much to build."""

    seq: int  # position in the channel's log: equal for every receiver of one post
    transport: str  # the channel it came on
    sender: str
    receiver: str
    data: bytes
    not_before: float = 0.0  # delayed until the clock reaches this
    copy: int = 0  # 1 for an injected duplicate
    label: Any = None  # a canonical description of the message (see Transport.post)

    def __deepcopy__(self, memo: dict[int, Any]) -> Delivery:
        return self  # immutable: copies of a world (the explorer's) share it


class Transport(Protocol):
    """The channels a party is on."""

    def attach(self, party: str, transports: tuple[str, ...]) -> None:
        """Put `party` on each of these channels."""
        ...

    def subscribe(self, party: str, address: str) -> None:
        """Deliver to `party` what is posted to `address` on any channel (a rendezvous
        point: an address that is no party's name, which anyone who knows it may post to
        and any number of parties may listen on)."""
        ...

    def unsubscribe(self, party: str, address: str) -> None:
        """`party` no longer receives what is posted to `address`."""
        ...

    def post(self, sender: str, transport: str, data: bytes, to: str | None = None,
             label: Any = None) -> int:
        """Send `data` to every member of the channel `transport` (the sender included), to
        the party `to` alone, or, when `to` is an address, to whoever listens on it now
        (nobody, perhaps); returns the message's position in the channel's log. `label` is
        a canonical description of the message for tools that compare states (the
        explorer): (sender, message, what sealing it attached)."""
        ...
