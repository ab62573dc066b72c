"""Status's X3DH and prekey bundles (protocols/status/crypto.py) against status-go.

Known answers: tests/vectors/status-upstream-tests.json (copied from status-go's
protocol/encryption/x3dh_test.go) and tests/vectors/status-go-harness.json (computed by
status-go's own x3dh.go and eth-node/crypto, run by the Go harness that file holds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from coincurve import PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.status import crypto as sc
from runtime.errors import VerificationError

VECTORS = Path(__file__).parent / "vectors"
UPSTREAM: dict[str, Any] = json.loads((VECTORS / "status-upstream-tests.json").read_text(encoding="utf-8"))
HARNESS: dict[str, Any] = json.loads((VECTORS / "status-go-harness.json").read_text(encoding="utf-8"))


def _key(label: str) -> bytes:
    return hashlib.sha256(b"status-crypto-test " + label.encode()).digest()


def _fixed(*keys: bytes) -> sc.Random:
    """A `random` handing out the given 32-byte values in order."""
    queue = list(keys)

    def random(n: int) -> bytes:
        assert n == 32
        return queue.pop(0)

    return random


scalars = st.integers(min_value=1, max_value=sc.SECP256K1_ORDER - 1).map(lambda d: d.to_bytes(32, "big"))


def _bundle(case: dict[str, Any]) -> sc.Bundle:
    return sc.Bundle.create(
        bytes.fromhex(case["identity"]),
        [(p["installation_id"], sc.SignedPreKey(signed_pre_key=bytes.fromhex(p["signed_pre_key"]),
                                                version=p["version"], protocol_version=p["protocol_version"]))
         for p in case["signed_pre_keys"]],
        signature=bytes.fromhex(case["signature"]),
        timestamp=case["timestamp"],
    )


# --- primitives --------------------------------------------------------------------------


def test_keccak256_is_ethereum_keccak_not_sha3() -> None:
    # Keccak-256("") as Ethereum knows it (SHA3-256("") is a7ffc6f8...).
    assert sc.keccak256().hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert sc.keccak256(b"ab", b"c") == sc.keccak256(b"abc")


def test_address_of_private_key_one() -> None:
    # The well-known Ethereum address of the private key 1.
    address = sc.pubkey_to_address(sc.public_key((1).to_bytes(32, "big")))
    assert address.hex() == "7e5f4552091a69125d5dfcb7b8c2659029395bdf"


def test_harness_dh_is_the_unhashed_x_coordinate() -> None:
    case = HARNESS["ethereum_crypto"]["dh"]
    shared = sc.perform_dh(bytes.fromhex(case["private"]), bytes.fromhex(case["public"]))
    assert shared.hex() == case["shared"]


@given(scalars, scalars)
@settings(max_examples=30, deadline=None)
def test_dh_is_symmetric(a: bytes, b: bytes) -> None:
    shared = sc.perform_dh(a, sc.public_key(b))
    assert shared == sc.perform_dh(b, sc.public_key(a))
    # ECIES GenerateShared: the x-coordinate of the product, 32 bytes big-endian.
    product = PrivateKey(b).public_key.multiply(a)
    assert shared == product.format(compressed=False)[1:33]


def test_new_key_pair_takes_the_first_valid_draw() -> None:
    good = _key("good")
    pair = sc.new_key_pair(_fixed(bytes(32), sc.SECP256K1_ORDER.to_bytes(32, "big"), good))
    assert pair.private == good
    assert pair.public == PrivateKey(good).public_key.format(compressed=True)
    assert len(pair.public) == sc.PUBLIC_KEY_SIZE and pair.public[0] in (2, 3)
    assert repr(good) not in repr(pair)  # the scalar is not shown


@pytest.mark.parametrize("bad", [b"", bytes(33), b"\x04" + bytes(32), b"\x02" + b"\xff" * 32, b"\x05" + bytes(32)])
def test_bad_public_keys_are_remote_errors(bad: bytes) -> None:
    with pytest.raises(sc.StatusCryptoError) as info:
        sc.perform_dh(_key("a"), bad)
    assert isinstance(info.value, VerificationError) and isinstance(info.value, ValueError)
    assert info.value.code == "status-crypto"


@pytest.mark.parametrize("bad", [bytes(32), sc.SECP256K1_ORDER.to_bytes(32, "big"), bytes(31), b"\x01" * 33])
def test_bad_private_keys_are_local_errors(bad: bytes) -> None:
    with pytest.raises(ValueError) as info:
        sc.public_key(bad)
    assert not isinstance(info.value, VerificationError)


# --- X3DH --------------------------------------------------------------------------------


def test_x3dh_vector_from_x3dh_test_go() -> None:
    """x3dh_test.go TestX3dhActive and TestPerformPassiveX3DH: the ASCII keys and sharedKey."""
    v = UPSTREAM["x3dh"]
    alice = v["alice_identity_private_ascii"].encode()
    alice_ephemeral = v["alice_ephemeral_private_ascii"].encode()
    bob = v["bob_identity_private_ascii"].encode()
    bob_prekey = v["bob_signed_prekey_private_ascii"].encode()
    active = sc.x3dh_shared_key(alice, alice_ephemeral, sc.public_key(bob), sc.public_key(bob_prekey))
    passive = sc.x3dh_shared_key_responder(bob, bob_prekey, sc.public_key(alice), sc.public_key(alice_ephemeral))
    assert active.hex() == passive.hex() == v["shared_key"]


@pytest.mark.parametrize("case", HARNESS["x3dh"], ids=lambda c: c["alice_identity_private"][:8])
def test_x3dh_harness_vectors(case: dict[str, str]) -> None:
    h = {k: bytes.fromhex(v) for k, v in case.items()}
    for name in ("alice_identity", "alice_ephemeral", "bob_identity", "bob_signed_prekey"):
        assert sc.public_key(h[name + "_private"]) == h[name + "_public"]
    assert sc.perform_dh(h["alice_identity_private"], h["bob_signed_prekey_public"]) == h["dh1"]
    active = sc.x3dh_shared_key(h["alice_identity_private"], h["alice_ephemeral_private"],
                                h["bob_identity_public"], h["bob_signed_prekey_public"])
    passive = sc.x3dh_shared_key_responder(h["bob_identity_private"], h["bob_signed_prekey_private"],
                                           h["alice_identity_public"], h["alice_ephemeral_public"])
    assert active == passive == h["shared_key"]


@given(scalars, scalars, scalars, scalars)
@settings(max_examples=25, deadline=None)
def test_x3dh_both_sides_agree(ik_a: bytes, ek_a: bytes, ik_b: bytes, spk_b: bytes) -> None:
    active = sc.x3dh_shared_key(ik_a, ek_a, sc.public_key(ik_b), sc.public_key(spk_b))
    passive = sc.x3dh_shared_key_responder(ik_b, spk_b, sc.public_key(ik_a), sc.public_key(ek_a))
    assert active == passive and len(active) == sc.SHARED_KEY_SIZE
    # Not HKDF: the Keccak-256 of the three DH outputs in status-go's order.
    dh = [sc.perform_dh(ik_a, sc.public_key(spk_b)), sc.perform_dh(ek_a, sc.public_key(ik_b)),
          sc.perform_dh(ek_a, sc.public_key(spk_b))]
    assert active == sc.keccak256(*dh)


def test_x3dh_initiate_draws_the_ephemeral_from_random() -> None:
    bob, bob_prekey, ephemeral = _key("bob"), _key("bob spk"), _key("ephemeral")
    shared, pair = sc.x3dh_initiate(_key("alice"), sc.public_key(bob), sc.public_key(bob_prekey), _fixed(ephemeral))
    assert pair.private == ephemeral
    assert shared == sc.x3dh_shared_key_responder(bob, bob_prekey, sc.public_key(_key("alice")), pair.public)


def test_x3dh_initiate_checks_keys_before_drawing() -> None:
    def never(n: int) -> bytes:
        raise AssertionError("drew randomness")

    with pytest.raises(sc.StatusCryptoError):
        sc.x3dh_initiate(_key("alice"), b"\x02" + b"\xff" * 32, sc.public_key(_key("b")), never)


# --- bundles -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", HARNESS["bundles"], ids=lambda c: c["name"])
def test_bundle_harness_vectors(case: dict[str, Any]) -> None:
    bundle = _bundle(case)
    assert sc.signature_material(bundle).hex() == case["signature_material"]
    # libsecp256k1's RFC 6979 signature, as go-ethereum's crypto.Sign makes it.
    assert sc.sign_bundle(bytes.fromhex(case["identity_private"]), bundle).hex() == case["signature"]
    assert sc.verify_bundle(bundle).hex() == case["identity"]
    later = dataclasses.replace(bundle, timestamp=bundle.timestamp + 1)
    with pytest.raises(sc.BundleError, match=case["tampered"]["timestamp+1"]):
        sc.verify_bundle(later)
    other = dataclasses.replace(bundle, identity=sc.public_key(sc.keccak256(b"fsmc/status-vectors/bundle/other")))
    with pytest.raises(sc.BundleError, match=case["tampered"]["other identity"]):
        sc.verify_bundle(other)


@pytest.mark.parametrize("case", UPSTREAM["signature_material"]["cases"], ids=lambda c: c["test"])
def test_signature_material_layout_of_x3dh_test_go(case: dict[str, Any]) -> None:
    """TestSignBundle / TestNewBundleContainer rebuild the material by hand; so do we, with
    our own prekeys where theirs are random."""
    installation = "bob-installation"
    prekeys: dict[str, sc.SignedPreKey] = {}
    spk: dict[str, bytes] = {}
    for raw_id, entry in case["installations"].items():
        installation_id = installation if raw_id == "<bobInstallationID>" else raw_id
        value = (entry["signed_pre_key_ascii"].encode() if "signed_pre_key_ascii" in entry
                 else sc.public_key(_key(installation_id)))
        spk[installation_id] = value
        prekeys[installation_id] = sc.SignedPreKey(signed_pre_key=value, version=entry["version"])
    timestamp = 1_560_000_000_123_456_789
    expected = b""
    for part in case["parts"]:
        if part == "<timestamp>":
            expected += str(timestamp).encode()
        elif part.startswith("<spk:"):
            expected += spk[installation if "bobInstallationID" in part else part[5:-1]]
        else:
            expected += (installation if part == "<bobInstallationID>" else part).encode()
    identity = _key("identity")
    bundle = sc.Bundle.create(sc.public_key(identity), prekeys, timestamp=timestamp)
    assert sc.signature_material(bundle) == expected
    signed = dataclasses.replace(bundle, signature=sc.sign_bundle(identity, bundle))
    assert sc.verify_bundle(signed) == sc.public_key(identity)


def _signed(identity: bytes, prekeys: dict[str, sc.SignedPreKey], timestamp: int = 1_700_000_000_000_000_000,
            ) -> sc.Bundle:
    bundle = sc.Bundle.create(sc.public_key(identity), prekeys, timestamp=timestamp)
    return dataclasses.replace(bundle, signature=sc.sign_bundle(identity, bundle))


def _prekeys() -> dict[str, sc.SignedPreKey]:
    return {
        "phone": sc.SignedPreKey(signed_pre_key=sc.public_key(_key("phone")), version=2, protocol_version=1),
        "desktop": sc.SignedPreKey(signed_pre_key=sc.public_key(_key("desktop")), version=11, protocol_version=1),
    }


def test_bundle_round_trip() -> None:
    identity = _key("identity")
    bundle = _signed(identity, _prekeys())
    assert sc.verify_bundle(bundle) == sc.public_key(identity)
    assert bundle.installations() == ("desktop", "phone")
    assert bundle.prekey("phone") == _prekeys()["phone"] and bundle.prekey("tablet") is None


def test_new_bundle_is_signed_with_version_one() -> None:
    identity, prekey = _key("identity"), _key("prekey")
    bundle, private = sc.new_bundle(identity, "inst-1", 1_700_000_000_000_000_000, _fixed(prekey))
    assert private == prekey
    entry = bundle.prekey("inst-1")
    assert entry == sc.SignedPreKey(signed_pre_key=sc.public_key(prekey), version=1,
                                    protocol_version=sc.PROTOCOL_VERSION)
    assert sc.verify_bundle(bundle) == sc.public_key(identity)


@pytest.mark.parametrize("tamper", ["prekey", "installation id", "version", "timestamp", "added installation",
                                    "removed installation", "identity", "another signer", "timestamp to 0"])
def test_bundle_tampering_fails(tamper: str) -> None:
    identity = _key("identity")
    bundle = _signed(identity, _prekeys())
    prekeys = _prekeys()
    if tamper == "prekey":
        prekeys["phone"] = dataclasses.replace(prekeys["phone"], signed_pre_key=sc.public_key(_key("evil")))
        changed = dataclasses.replace(bundle, signed_pre_keys=tuple(prekeys.items()))
    elif tamper == "installation id":
        prekeys["phone2"] = prekeys.pop("phone")
        changed = dataclasses.replace(bundle, signed_pre_keys=tuple(prekeys.items()))
    elif tamper == "version":
        prekeys["phone"] = dataclasses.replace(prekeys["phone"], version=3)
        changed = dataclasses.replace(bundle, signed_pre_keys=tuple(prekeys.items()))
    elif tamper == "timestamp":
        changed = dataclasses.replace(bundle, timestamp=bundle.timestamp + 1)
    elif tamper == "timestamp to 0":
        changed = dataclasses.replace(bundle, timestamp=0)
    elif tamper == "added installation":
        prekeys["tablet"] = sc.SignedPreKey(signed_pre_key=sc.public_key(_key("tablet")))
        changed = dataclasses.replace(bundle, signed_pre_keys=tuple(prekeys.items()))
    elif tamper == "removed installation":
        del prekeys["desktop"]
        changed = dataclasses.replace(bundle, signed_pre_keys=tuple(prekeys.items()))
    elif tamper == "identity":
        changed = dataclasses.replace(bundle, identity=sc.public_key(_key("evil")))
    else:  # a valid signature by someone else, over the same bundle
        changed = dataclasses.replace(bundle, signature=sc.sign_bundle(_key("evil"), bundle))
    with pytest.raises(sc.BundleError, match="identity key and signature mismatch") as info:
        sc.verify_bundle(changed)
    assert isinstance(info.value, VerificationError) and info.value.code == "status-bundle"


def test_protocol_version_and_map_order_are_not_signed() -> None:
    # buildSignatureMaterial reads neither, so changing them keeps the signature valid.
    identity = _key("identity")
    bundle = _signed(identity, _prekeys())
    prekeys = _prekeys()
    prekeys["phone"] = dataclasses.replace(prekeys["phone"], protocol_version=7)
    changed = dataclasses.replace(bundle, signed_pre_keys=tuple(reversed(list(prekeys.items()))))
    assert sc.verify_bundle(changed) == sc.public_key(identity)


@pytest.mark.parametrize("signature", [b"", bytes(64), bytes(66), None])
def test_malformed_signatures_fail(signature: bytes | None) -> None:
    bundle = _signed(_key("identity"), _prekeys())
    if signature is None:  # recovery id 4
        signature = bundle.signature[:64] + b"\x04"
    with pytest.raises(sc.BundleError):
        sc.verify_bundle(dataclasses.replace(bundle, signature=signature))


def test_zero_signature_recovers_nothing() -> None:
    bundle = _signed(_key("identity"), _prekeys())
    with pytest.raises(sc.BundleError):
        sc.verify_bundle(dataclasses.replace(bundle, signature=bytes(65)))


def test_bad_identity_is_refused() -> None:
    bundle = _signed(_key("identity"), _prekeys())
    with pytest.raises(sc.StatusCryptoError):
        sc.verify_bundle(dataclasses.replace(bundle, identity=b"\x02" + b"\xff" * 32))


def test_installations_sort_by_utf8_bytes() -> None:
    # Go's sort.Strings is byte order: "Z" < "a" < "é" (0xc3 0xa9) < "€" (0xe2 ...).
    ids = ["€", "a", "é", "Z", "10", "9"]
    bundle = sc.Bundle.create(b"", {i: sc.SignedPreKey(signed_pre_key=b"k") for i in ids})
    assert bundle.installations() == ("10", "9", "Z", "a", "é", "€")
    assert sc.signature_material(bundle) == "".join(i + "k0" for i in bundle.installations()).encode()


def test_bundle_records_validate() -> None:
    with pytest.raises(ValueError, match="twice"):
        sc.Bundle(identity=b"", signed_pre_keys=(("a", sc.SignedPreKey(signed_pre_key=b"")),) * 2)
    with pytest.raises(ValueError, match="uint32"):
        sc.SignedPreKey(signed_pre_key=b"", version=1 << 32)
    with pytest.raises(ValueError, match="int64"):
        sc.Bundle.create(b"", {}, timestamp=1 << 63)
    with pytest.raises(TypeError):
        sc.Bundle(identity=b"", signed_pre_keys=(("a", b"not a prekey"),))  # type: ignore[arg-type]
    # Frozen and hashable, as the explorer needs.
    bundle = _signed(_key("identity"), _prekeys())
    assert hash(bundle) == hash(dataclasses.replace(bundle))
    with pytest.raises(dataclasses.FrozenInstanceError):
        bundle.timestamp = 0  # type: ignore[misc]


def test_constants_match_the_sources() -> None:
    c = UPSTREAM["constants"]
    assert c["ssk_len"]["value"] == sc.SSK_LEN and sc.SSK_LEN * 2 == sc.SHARED_KEY_SIZE
    assert c["protocol_version"]["value"] == sc.PROTOCOL_VERSION
    assert c["max_installations"]["value"] == sc.MAX_INSTALLATIONS
    assert c["bundle_refresh_interval_ms"]["value"] == sc.BUNDLE_REFRESH_INTERVAL_MS
