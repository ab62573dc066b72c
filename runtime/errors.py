"""The runtime's errors: one hierarchy, each error with a machine-readable `code`.

Two kinds, told apart by who is at fault (h11's LocalProtocolError and
RemoteProtocolError, h2's exceptions):

- `RemoteError`: what came from the network cannot be used: bytes that do not decode, an
  envelope that does not open, a signature or MAC that does not verify. A driver never
  lets one escape: it drops the message, traces the drop with the error's code, and
  changes nothing (the machine stays in its state, with its I/O buffer and its keys).
- `LocalError`: this side is wrong: the API used against its contract, a scenario or
  manifest that cannot be run, a protocol text or bindings that make the machine fail,
  a value the wire type does not admit. These are raised to the caller.

    FsmcError
    ├── RemoteError            remote       dropped and traced, nothing changes
    │   ├── DecodeError        decode       bytes that are not the protocol type
    │   └── EnvelopeError      envelope     an envelope that cannot be opened
    │       └── VerificationError  verification  a signature, MAC or decryption failed
    └── LocalError             local
        ├── UsageError         usage        the API used against its contract
        │   ├── ScenarioError  scenario     a scenario file that cannot be run
        │   └── RegistryError  registry     no such protocol, or a manifest that is wrong
        ├── EncodeError        encode       a message value the wire type does not admit
        ├── StoreError         store        a party's store file that cannot be used as it is
        └── MachineError       machine      the protocol text or its bindings are wrong
            └── UnsetFieldError  unset-field  `send` with a field the I/O buffer lacks
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "DecodeError",
    "EncodeError",
    "EnvelopeError",
    "FsmcError",
    "LocalError",
    "MachineError",
    "RegistryError",
    "RemoteError",
    "ScenarioError",
    "StoreError",
    "UnsetFieldError",
    "UsageError",
    "VerificationError",
]


class FsmcError(Exception):
    """Base of every error the runtime raises."""

    code: ClassVar[str] = "fsmc"


class RemoteError(FsmcError):
    """A peer's message cannot be used. Drivers drop it and trace the drop."""

    code = "remote"


class DecodeError(RemoteError):
    """Bytes that are not a valid encoding of the protocol type; the message names the
    message and field where decoding stopped."""

    code = "decode"


class EnvelopeError(RemoteError):
    """An envelope that cannot be opened: bad magic, truncated, not for us."""

    code = "envelope"


class VerificationError(EnvelopeError):
    """A signature, MAC or decryption that does not verify."""

    code = "verification"


class LocalError(FsmcError):
    """This side is at fault."""

    code = "local"


class UsageError(LocalError):
    """The API used against its contract."""

    code = "usage"


class ScenarioError(UsageError):
    """A scenario file that cannot be run; names the file and the key."""

    code = "scenario"


class RegistryError(UsageError):
    """No protocol of that name, or a protocol folder whose manifest is wrong."""

    code = "registry"


class EncodeError(LocalError):
    """A message value the ASN.1 type does not admit (a TID of 15 bytes)."""

    code = "encode"


class StoreError(LocalError):
    """A store file that is corrupt, truncated, of a newer schema or sealed under another
    key: the message names the file and the problem, and nothing was written to it."""

    code = "store"

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class MachineError(LocalError):
    """The protocol text or its bindings are wrong."""

    code = "machine"


class UnsetFieldError(MachineError):
    """A message was sent with a field the I/O buffer does not hold."""

    code = "unset-field"
