"""What generated message and record classes carry, for the runtime to act on.

Generated code describes each message with ClassVars (its id, type, rate limit, security
context, the fields loaded from the I/O buffer and the auto fields) and each record with
its wire layout. These enums mirror the DSL's attribute values (draft A.1.6.2, A.1.6.3);
they live here because the runtime never imports the compiler.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

__all__ = ["Message", "MessageType", "Record", "Security", "Wire"]


class MessageType(enum.Enum):
    BROADCAST = "broadcast"  # copied on all transports
    ANYCAST = "anycast"  # on the active transport only


class Security(enum.Enum):
    UNENCRYPTED = "unencrypted"  # signed, not encrypted
    UNTRUSTED = "untrusted"  # accepted only when encrypted and signed
    TRUSTED = "trusted"  # only over a trusted channel, from the device group
    ATTACH_OWN_KEYS_FOR_NEW_MEMBER = "attach_own_keys_for_new_member"
    ATTACH_OWN_KEYS_FOR_GROUP = "attach_own_keys_for_group"
    # The pEp engine's security=ignore (codegen/gen_statemachine.ysl2): a send of such a
    # message returns at once, and one received is freed before any check; the driver does
    # the same (runtime.party), and traces both.
    IGNORE = "ignore"

    @property
    def encrypted(self) -> bool:
        return self is not Security.UNENCRYPTED

    @property
    def trusted(self) -> bool:
        return self not in (Security.UNENCRYPTED, Security.UNTRUSTED)

    @property
    def attaches_keys(self) -> bool:
        return self in (Security.ATTACH_OWN_KEYS_FOR_NEW_MEMBER, Security.ATTACH_OWN_KEYS_FOR_GROUP)


@dataclass(frozen=True, slots=True)
class Wire:
    """One field of a record on the wire: its Python and ASN.1 names, and its shape."""

    name: str
    wire: str
    record: type[Any] | None = None  # a nested record class, or None for a plain value
    many: bool = False  # SEQUENCE OF
    # An embedded fsm (the pEp engine's `embed`): the value is one of these message classes,
    # on the wire the CHOICE of that fsm's messages, (its CHOICE name, its record).
    choices: tuple[type[Any], ...] = ()


class Record(Protocol):
    WIRE: ClassVar[tuple[Wire, ...]]


class Message(Record, Protocol):
    ID: ClassVar[int]
    NAME: ClassVar[str]
    FSM: ClassVar[str]
    CHOICE: ClassVar[str]
    TYPE: ClassVar[MessageType]
    RATELIMIT: ClassVar[int]
    SECURITY: ClassVar[Security]
    FIELDS: ClassVar[tuple[str, ...]]  # loaded from the I/O buffer when sending
    AUTO: ClassVar[tuple[tuple[str, str], ...]]  # (field, type) computed when sending
