"""A plain envelope that names its sender: for protocols whose security is in their
messages (Berty's handshake boxes) or that have none (two-phase commit).

One length octet, the sender's name (UTF-8, 1 to 255 octets), the encoded message. It
stands for what a stream or a broker tells a receiver about the other end; it proves
nothing, and a protocol that must know who sent a message proves it in the message.
Bytes that do not open are an EnvelopeError (a RemoteError: the driver drops them)."""

from __future__ import annotations

from typing import Any

from runtime.errors import EnvelopeError

__all__ = ["NamedEnvelope", "open_named", "seal_named"]


def seal_named(sender: str, data: bytes) -> bytes:
    name = sender.encode("utf-8")
    if not 0 < len(name) < 256:
        raise ValueError(f"a sender's name is 1 to 255 octets of UTF-8, not {len(name)}")
    return bytes([len(name)]) + name + data


def open_named(data: bytes) -> tuple[bytes, str]:
    """(the encoded message, the sender's name)."""
    if not data:
        raise EnvelopeError("empty envelope")
    n = data[0]
    if n == 0 or len(data) <= 1 + n:
        raise EnvelopeError("envelope truncated")
    try:
        sender = data[1:1 + n].decode("utf-8")
    except UnicodeDecodeError as e:
        raise EnvelopeError(f"sender is not UTF-8: {e}") from e
    return data[1 + n:], sender


class NamedEnvelope:
    """The driver's sealing methods (runtime.device.Device) for a device whose messages go
    in this envelope under its own `name`: nothing to capture but the name, which is also
    what tells two sealed messages apart."""

    name: str

    def capture(self, message: Any, to: str | None = None) -> str:
        return self.name

    def describe(self, captured: str) -> str:
        return captured

    def seal(self, message: Any, data: bytes, captured: str) -> bytes:
        return seal_named(captured, data)

    def open(self, data: bytes) -> tuple[bytes, Any]:
        """(the encoded message, the sender's name); a device that learns more from the
        envelope overrides this and returns its own context (the driver passes it on)."""
        return open_named(data)
