"""The fsmc runtime: what generated machines import, and the drivers that run them.

It never imports the compiler. The core (machine.py) is sans-IO; codec, envelopes,
transports and clocks are plugged in around it.
"""

from runtime.codec import Codec, CodecError, DecodeError, EncodeError
from runtime.machine import (
    END,
    INIT,
    TIMEOUT,
    BufferError,
    Debug,
    Effect,
    Ignored,
    Machine,
    MachineError,
    Notify,
    Send,
    Transition,
    missing,
)
from runtime.records import Message, MessageType, Record, Security, Wire

__all__ = [
    "END",
    "INIT",
    "TIMEOUT",
    "BufferError",
    "Codec",
    "CodecError",
    "Debug",
    "DecodeError",
    "Effect",
    "EncodeError",
    "Ignored",
    "Machine",
    "MachineError",
    "Message",
    "MessageType",
    "Notify",
    "Record",
    "Security",
    "Send",
    "Transition",
    "Wire",
    "missing",
]
