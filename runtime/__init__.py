"""The fsmc runtime: what generated machines import, and the drivers that run them.

It never imports the compiler and names no protocol. The core (machine.py) is sans-IO;
codec, devices, transports and clocks are plugged in around it (party.py). The harness
(runtime.harness: in-memory network, simulation, exploration, sequence charts) is apart
from it; protocols are found by name through runtime.registry.
"""

from runtime.codec import Codec
from runtime.device import Device, DeviceBase
from runtime.errors import (
    DecodeError,
    EncodeError,
    EnvelopeError,
    FsmcError,
    LocalError,
    MachineError,
    RegistryError,
    RemoteError,
    ScenarioError,
    UnsetFieldError,
    UsageError,
    VerificationError,
)
from runtime.machine import (
    END,
    INIT,
    TIMEOUT,
    Debug,
    Effect,
    Ignored,
    Machine,
    Notify,
    Send,
    Transition,
    missing,
)
from runtime.manifest import Invariants, Manifest
from runtime.records import Message, MessageType, Record, Security, Wire
from runtime.transport import Delivery, Transport

__all__ = [
    "END",
    "INIT",
    "TIMEOUT",
    "Codec",
    "Debug",
    "DecodeError",
    "Delivery",
    "Device",
    "DeviceBase",
    "Effect",
    "EncodeError",
    "EnvelopeError",
    "FsmcError",
    "Ignored",
    "Invariants",
    "LocalError",
    "Machine",
    "MachineError",
    "Manifest",
    "Message",
    "MessageType",
    "Notify",
    "Record",
    "RegistryError",
    "RemoteError",
    "ScenarioError",
    "Security",
    "Send",
    "Transition",
    "Transport",
    "UnsetFieldError",
    "UsageError",
    "VerificationError",
    "Wire",
    "missing",
]
