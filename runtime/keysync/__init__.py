"""KeySync's conditions and actions, for real: keys, trust, TIDs, trustwords (A.1.2, A.1.3)."""

from runtime.keysync.device import KeySyncDevice, Notification
from runtime.keysync.keys import KeyRing, OwnIdentity
from runtime.keysync.trustwords import trustwords

__all__ = ["KeyRing", "KeySyncDevice", "Notification", "OwnIdentity", "trustwords"]
