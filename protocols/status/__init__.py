"""Status's 1:1 protocol: X3DH from prekey bundles, a Double Ratchet over secp256k1, session
management and multi-device, as status-go runs it (protocol/encryption).

| file | what |
| --- | --- |
| status.fsm | the fsm Chat: Ready, with SendChat, RotateBundle, ApproveInstallation, PairDevices |
| StatusTypes.asn1 | status-go's ProtocolMessage types: Bundle, SignedPreKey, X3DHHeader, DRHeader, EncryptedMessage |
| crypto.py | X3DH and bundles over secp256k1 |
| ratchet.py | the Double Ratchet (status-im/doubleratchet with EthereumCrypto) |
| device.py | an installation: sessions, bundles, installations, fan-out; the bindings of Chat |
| parties.py | scenario parties (identity, installation, has_bundle_of, paired_with), expectations |
| invariants.py | decrypted once, approved only, every chat arrives, sessions converge, forward secrecy |
| scenarios/ | first message, out of order, loss, replay, rotation, pairing, concurrent, partitioned, recovery, expiry |
| README.md | notes: the protocol, the mapping to status-go, choices, findings |
"""

from pathlib import Path

from protocols.status.device import StatusDevice
from protocols.status.invariants import INVARIANTS
from protocols.status.parties import EXPECTATIONS, before_event, check, make_devices
from runtime.manifest import Manifest

__all__ = ["PROTOCOL", "StatusDevice"]

PROTOCOL = Manifest(
    name="status",
    title="Status 1:1 (X3DH, Double Ratchet, multi-device)",
    folder=Path(__file__).resolve().parent,
    fsm="Chat",
    make_devices=make_devices,
    before_event=before_event,
    check=check,
    expectations=EXPECTATIONS,
    invariants=INVARIANTS,
    user_events=("SendChat", "RotateBundle", "ApproveInstallation", "PairDevices"),
    consents=("SendChat", "ApproveInstallation", "PairDevices"),
)
