"""mpENC's group key agreement core (protocols/mpenc/crypto.py): CLIQUES and ASKE.

The reference vectors come from mpENC's JavaScript implementation; the rest checks the
design's claims (5.2) against an oracle that does not use the CLIQUES list handling:
the shared secret of a group is x_1...x_n G, computed directly with `apply_privates`.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_core_ed25519_scalar_mul, crypto_scalarmult, crypto_scalarmult_base
from nacl.signing import SigningKey

from protocols.mpenc.crypto import (
    BASE_POINT,
    GkaCryptoError,
    aka_exclude,
    aka_include,
    aka_refresh,
    apply_privates,
    cardinal_key,
    downflow,
    group_key,
    hkdf_sha256,
    ika_start,
    new_ephemeral_signing_key,
    new_nonce,
    new_private_contribution,
    session_id,
    session_signature,
    sign_packet,
    signing_key_pair,
    upflow,
    verify_packet_signature,
    verify_session_signature,
)

# The copy travels with the repository; the shared original is checked against it when present.
VECTORS_COPY = Path(__file__).parent / "vectors" / "mpenc-reference.json"
VECTORS_SHARED = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "mpenc-reference.json"


def _load_vectors() -> dict[str, Any]:
    path = VECTORS_COPY if VECTORS_COPY.exists() else VECTORS_SHARED
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


V = _load_vectors()
b64 = base64.b64decode
X_PRIV = b64(V["keys"]["x25519_private"])
X_PUB = b64(V["keys"]["x25519_public"])
ED_SEED = b64(V["keys"]["ed25519_seed"])
ED_PUB = b64(V["keys"]["ed25519_public"])


# --- reference vectors -------------------------------------------------------------------


def test_vector_copy_matches_shared_original() -> None:
    if not VECTORS_SHARED.exists():
        pytest.skip("no shared vectors next to this clone")
    assert json.loads(VECTORS_COPY.read_text()) == json.loads(VECTORS_SHARED.read_text())


def test_vector_key_pairs() -> None:
    assert apply_privates([X_PRIV], None) == X_PUB
    pair = signing_key_pair(ED_SEED)
    assert (pair.seed, pair.public) == (ED_SEED, ED_PUB)


@pytest.mark.parametrize("case", V["cliques_key_chain"]["cases"], ids=lambda c: f"{c['privates']}-{c['intermediate']}")
def test_vector_key_chain(case: dict[str, Any]) -> None:
    intermediate = None if case["intermediate"] is None else b64(V["keys"][case["intermediate"]])
    assert apply_privates([X_PRIV] * case["privates"], intermediate) == b64(case["expected"])


@pytest.mark.parametrize("case", V["group_key"]["cases"], ids=lambda c: c["info"] or "no-info")
def test_vector_hkdf(case: dict[str, str]) -> None:
    ikm = bytes.fromhex(case["ikm_hex"])
    assert hkdf_sha256(ikm, case["info"].encode()) == bytes.fromhex(case["expected_hex"])
    if case["info"] == "mpenc group key":
        assert group_key(ikm) == bytes.fromhex(case["expected_hex"])


def test_hkdf_rfc5869_case_1_salt_info_and_two_blocks() -> None:
    okm = hkdf_sha256(bytes([0x0B]) * 22, info=bytes(range(0xF0, 0xFA)), salt=bytes(range(0x0D)), length=42)
    assert okm.hex() == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"


def test_vector_session_id() -> None:
    sid = V["session_id"]
    nonces = [n.encode("utf-8") for n in sid["nonces"]]
    assert session_id(sid["members"], nonces) == b64(sid["expected"])


def test_vector_session_signature() -> None:
    case = V["session_signature"]
    sid = b64(V["session_id"]["expected"])
    assert case["signing_seed"] == "ed25519_seed" and case["ephemeral_public"] == case["nonce"] == "ed25519_public"
    signature = session_signature(ED_SEED, case["member_id"], ED_PUB, ED_PUB, sid)
    assert signature == b64(case["expected"])
    verify_session_signature(ED_PUB, case["member_id"], ED_PUB, ED_PUB, sid, signature)


# --- a group of members, driven through the pure functions -------------------------------


def direct(privates: list[bytes]) -> bytes:
    """The oracle: x_1...x_k G, each contribution applied in turn from the base point."""
    return apply_privates(privates, None)


@dataclass
class Group:
    members: list[str]
    privates: dict[str, list[bytes]]
    downflow: list[bytes]  # the last broadcast intermediate keys
    # Contributions of excluded members: an exclude does not remove them from the
    # intermediate keys, it hides the result behind the initiator's new contribution.
    departed: tuple[bytes, ...] = ()

    def secret_of(self, member: str) -> bytes:
        return cardinal_key(self.downflow, self.members.index(member), self.privates[member])

    def secrets(self) -> dict[str, bytes]:
        return {m: self.secret_of(m) for m in self.members}

    def true_secret(self) -> bytes:
        return direct([p for m in self.members for p in self.privates[m]] + list(self.departed))


def ika(members: list[str], rng: random.Random) -> tuple[Group, bytes, list[list[bytes]]]:
    """Run IKA in list order; returns the group, the last member's secret, the upflows."""
    privates = {m: new_private_contribution(rng) for m in members}
    upflows = [ika_start(privates[members[0]])]
    for member in members[1:-1]:
        upflows.append(upflow(upflows[-1], privates[member]))
    down = downflow(upflows[-1], privates[members[-1]])
    assert down.privates == [privates[members[-1]]]
    return (
        Group(list(members), {m: [p] for m, p in privates.items()}, down.intermediate_keys),
        down.cardinal_key,
        upflows,
    )


def include(group: Group, initiator: str, new: list[str], rng: random.Random) -> tuple[Group, bytes, list[list[bytes]]]:
    """Run an include; returns the group, the last new member's secret, every message sent."""
    up = aka_include(
        group.downflow, group.members.index(initiator), group.privates[initiator], new_private_contribution(rng)
    )
    privates = {**group.privates, initiator: up.privates}
    messages = [up.intermediate_keys]
    for member in new[:-1]:
        privates[member] = [new_private_contribution(rng)]
        messages.append(upflow(messages[-1], privates[member][0]))
    down = downflow(messages[-1], new_private_contribution(rng))
    privates[new[-1]] = down.privates
    messages.append(down.intermediate_keys)
    return Group(group.members + new, privates, down.intermediate_keys, group.departed), down.cardinal_key, messages


def exclude(group: Group, initiator: str, excluded: list[str], rng: random.Random) -> tuple[Group, bytes]:
    indices = [group.members.index(m) for m in excluded]
    down = aka_exclude(
        group.downflow,
        group.members.index(initiator),
        group.privates[initiator],
        new_private_contribution(rng),
        indices,
    )
    members = [m for m in group.members if m not in excluded]
    privates = {m: group.privates[m] for m in members} | {initiator: down.privates}
    departed = group.departed + tuple(p for m in excluded for p in group.privates[m])
    return Group(members, privates, down.intermediate_keys, departed), down.cardinal_key


def refresh(group: Group, initiator: str, rng: random.Random) -> tuple[Group, bytes]:
    down = aka_refresh(
        group.downflow, group.members.index(initiator), group.privates[initiator], new_private_contribution(rng)
    )
    privates = {**group.privates, initiator: down.privates}
    return Group(group.members, privates, down.intermediate_keys, group.departed), down.cardinal_key


def names(n: int, prefix: str = "p") -> list[str]:
    return [f"{prefix}{i}" for i in range(1, n + 1)]


def assert_agreed(group: Group, sender_secret: bytes) -> bytes:
    """Everyone computes the same secret, the one the oracle computes; returns it."""
    secret = group.true_secret()
    assert set(group.secrets().values()) == {secret}
    assert sender_secret == secret
    assert len(group.downflow) == len(group.members)
    return secret


# --- CLIQUES IKA ---------------------------------------------------------------------------


def test_ika_reproduces_the_design_example() -> None:
    rng = random.Random(4)
    x1, x2, x3, x4 = (new_private_contribution(rng) for _ in range(4))
    u1 = ika_start(x1)
    assert u1 == [BASE_POINT, direct([x1])]
    u2 = upflow(u1, x2)
    assert u2 == [direct([x2]), direct([x1]), direct([x1, x2])]
    u3 = upflow(u2, x3)
    assert u3 == [direct([x2, x3]), direct([x1, x3]), direct([x1, x2]), direct([x1, x2, x3])]
    d = downflow(u3, x4)
    assert d.intermediate_keys == [
        direct([x2, x3, x4]),
        direct([x1, x3, x4]),
        direct([x1, x2, x4]),
        direct([x1, x2, x3]),
    ]
    assert d.cardinal_key == direct([x1, x2, x3, x4])
    for i, x in enumerate((x1, x2, x3, x4)):
        assert cardinal_key(d.intermediate_keys, i, [x]) == d.cardinal_key


@pytest.mark.parametrize("n", range(2, 9))
def test_ika_every_member_computes_the_same_key(n: int) -> None:
    group, last_secret, upflows = ika(names(n), random.Random(n))
    secret = assert_agreed(group, last_secret)
    assert len({group_key(s) for s in group.secrets().values()}) == 1
    assert group_key(secret) != secret
    # The design's invariant: entry i lacks exactly member i's contribution.
    for i, member in enumerate(group.members):
        others = [group.privates[m][0] for m in group.members if m != member]
        assert group.downflow[i] == direct(others)
    # Only the last member ever holds the secret: it is never sent.
    assert all(secret not in message for message in [*upflows, group.downflow])


def test_ika_depends_on_every_contribution() -> None:
    rng = random.Random(7)
    group, secret, _ = ika(names(3), rng)
    other, other_secret, _ = ika(names(3), rng)
    assert secret != other_secret
    # A member using the wrong contribution gets a different key.
    assert cardinal_key(group.downflow, 0, other.privates["p1"]) != secret


# --- CLIQUES AKA ---------------------------------------------------------------------------


def test_include_reproduces_the_design_example() -> None:
    rng = random.Random(5)
    group, _, _ = ika(names(4), rng)
    x1, x2, x3, x4 = (group.privates[m][0] for m in names(4))
    new_group, _, messages = include(group, "p1", ["p5"], rng)
    x1b = new_group.privates["p1"][1]
    x5 = new_group.privates["p5"][0]
    u1, d = messages
    assert new_group.privates["p1"] == [x1, x1b]
    assert u1 == [
        direct([x4, x3, x2]),
        direct([x1b, x4, x3, x1]),
        direct([x1b, x4, x2, x1]),
        direct([x1b, x3, x2, x1]),
        direct([x1b, x1, x4, x3, x2]),
    ]
    assert d == [
        direct([x5, x4, x3, x2]),
        direct([x5, x1b, x4, x3, x1]),
        direct([x5, x1b, x4, x2, x1]),
        direct([x5, x1b, x3, x2, x1]),
        direct([x1b, x1, x4, x3, x2]),
    ]


@pytest.mark.parametrize("new_count", [1, 2])
@pytest.mark.parametrize("n", [2, 4])
def test_include(n: int, new_count: int) -> None:
    rng = random.Random(n * 10 + new_count)
    group, old_secret, _ = ika(names(n), rng)
    for initiator in group.members:
        new_members = names(new_count, prefix="new")
        new_group, last_secret, messages = include(group, initiator, new_members, rng)
        assert new_group.members == group.members + new_members
        assert len(messages) == new_count + 1 and len(messages[0]) == n + 1
        secret = assert_agreed(new_group, last_secret)
        assert secret != old_secret and group_key(secret) != group_key(old_secret)
        # The new members see every message of the include and hold their own privates:
        # nothing they can compute from those gives the old secret.
        new_privates = [p for m in new_members for p in new_group.privates[m]]
        subsets = [list(c) for k in range(len(new_privates) + 1) for c in itertools.combinations(new_privates, k)]
        for message in messages:
            assert old_secret not in message and group_key(old_secret) not in message
            for value, privates in itertools.product(message, subsets):
                derived = apply_privates(privates, value) if privates else value
                assert derived != old_secret


@pytest.mark.parametrize("excluded_count", [1, 2])
def test_exclude(excluded_count: int) -> None:
    rng = random.Random(excluded_count)
    group, old_secret, _ = ika(names(5), rng)
    for initiator, excluded in [("p1", names(excluded_count + 1)[1:]), ("p5", ["p1", "p3"][:excluded_count])]:
        new_group, sender_secret = exclude(group, initiator, excluded, rng)
        assert new_group.members == [m for m in group.members if m not in excluded]
        secret = assert_agreed(new_group, sender_secret)
        assert secret != old_secret
        # An excluded member gets nowhere with its contributions on any broadcast value
        # (the one at its old position included), nor with the old downflow.
        for member in excluded:
            for value in [*new_group.downflow, *group.downflow]:
                assert apply_privates(group.privates[member], value) != secret


def test_exclude_down_to_one_member() -> None:
    group, _, _ = ika(names(2), random.Random(2))
    solo, secret = exclude(group, "p2", ["p1"], random.Random(3))
    assert solo.members == ["p2"] and assert_agreed(solo, secret)


def test_exclude_rejects_bad_requests() -> None:
    group, _, _ = ika(names(3), random.Random(1))
    x = new_private_contribution(random.Random(2))
    keys, own = group.downflow, group.privates["p1"]
    for excluded in ([], [0], [1, 1], [3], [-1]):
        with pytest.raises(ValueError):
            aka_exclude(keys, 0, own, x, excluded)


def test_refresh() -> None:
    rng = random.Random(9)
    group, old_secret, _ = ika(names(4), rng)
    secrets = {old_secret}
    for initiator in ["p3", "p3", "p1"]:
        before = len(group.privates[initiator])
        group, sender_secret = refresh(group, initiator, rng)
        assert group.members == names(4)
        assert len(group.privates[initiator]) == before + 1
        secret = assert_agreed(group, sender_secret)
        assert secret not in secrets
        secrets.add(secret)


def test_contributions_must_stay_separate() -> None:
    """The design's reason for keeping a list of contributions: clamping a combined scalar breaks it."""

    def clamp(k: bytes) -> bytes:
        b = bytearray(k)
        b[0] &= 248
        b[31] = (b[31] & 127) | 64
        return bytes(b)

    a, b = X_PRIV, new_private_contribution(random.Random(1))
    # The product of the clamped scalars modulo the group order, as ed25519 scalar arithmetic computes it.
    combined = crypto_core_ed25519_scalar_mul(clamp(a), clamp(b))
    assert apply_privates([a, b], None) != crypto_scalarmult_base(combined)
    assert apply_privates([a, b], X_PUB) != crypto_scalarmult(combined, X_PUB)


def test_bad_intermediate_keys_are_rejected() -> None:
    x = new_private_contribution(random.Random(1))
    low_order = bytes(32)  # u = 0: every multiple is the neutral point
    with pytest.raises(GkaCryptoError, match="intermediate key #0 is a low-order"):
        upflow([low_order, direct([x])], x)
    with pytest.raises(GkaCryptoError, match="cardinal key is a low-order"):
        downflow([BASE_POINT, low_order], x)
    with pytest.raises(GkaCryptoError, match="own intermediate key #1"):
        cardinal_key([BASE_POINT, low_order], 1, [x])
    with pytest.raises(GkaCryptoError, match="32-byte"):
        upflow([BASE_POINT, b"short"], x)
    with pytest.raises(GkaCryptoError, match="no intermediate keys"):
        upflow([], x)
    with pytest.raises(ValueError):
        apply_privates([], BASE_POINT)


# --- property tests ----------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(order=st.integers(2, 8).flatmap(lambda n: st.permutations(names(n))), seed=st.integers(0, 2**32))
def test_property_ika_key_does_not_depend_on_the_order(order: list[str], seed: int) -> None:
    rng = random.Random(seed)
    contribution = {m: new_private_contribution(rng) for m in sorted(order)}
    privates = [contribution[m] for m in order]
    upflows = [ika_start(privates[0])]
    for x in privates[1:-1]:
        upflows.append(upflow(upflows[-1], x))
    down = downflow(upflows[-1], privates[-1])
    secrets = {cardinal_key(down.intermediate_keys, i, [x]) for i, x in enumerate(privates)}
    # The same contributions in another order give the same key: x_1...x_n G.
    assert secrets == {down.cardinal_key} == {direct([contribution[m] for m in sorted(order)])}


operations = st.lists(
    st.tuples(st.sampled_from(["include", "exclude", "refresh"]), st.integers(1, 2), st.integers(0, 99)),
    min_size=1,
    max_size=4,
)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 6), ops=operations, seed=st.integers(0, 2**32))
def test_property_membership_changes_keep_the_group_agreed(n: int, ops: list[tuple[str, int, int]], seed: int) -> None:
    rng = random.Random(seed)
    group, secret, _ = ika(names(n), rng)
    seen = {assert_agreed(group, secret)}
    joined = 0
    for kind, count, pick in ops:
        initiator = group.members[pick % len(group.members)]
        if kind == "include":
            new = [f"j{joined + k}" for k in range(count)]
            joined += count
            group, secret, _ = include(group, initiator, new, rng)
        elif kind == "exclude" and len(group.members) - count >= 2:
            others = [m for m in group.members if m != initiator]
            group, secret = exclude(group, initiator, random.Random(pick).sample(others, count), rng)
        else:
            group, secret = refresh(group, initiator, rng)
        secret = assert_agreed(group, secret)
        assert secret not in seen  # every change gives a fresh key
        seen.add(secret)


# --- ASKE ----------------------------------------------------------------------------------


def test_nonces_and_ephemeral_keys_are_random_unless_seeded() -> None:
    assert new_nonce(random.Random(1)) == new_nonce(random.Random(1)) != new_nonce(random.Random(2))
    assert len(new_nonce()) == 32 and new_nonce() != new_nonce()
    assert new_nonce(lambda n: b"\x07" * n) == b"\x07" * 32
    with pytest.raises(ValueError, match="32 bytes"):
        new_nonce(lambda n: b"\x07")
    pair = new_ephemeral_signing_key(random.Random(3))
    assert pair == new_ephemeral_signing_key(random.Random(3))
    assert pair.public == bytes(SigningKey(pair.seed).verify_key)
    assert pair.seed.hex() not in repr(pair)
    assert new_ephemeral_signing_key() != new_ephemeral_signing_key()
    assert new_private_contribution(random.Random(4)) == new_private_contribution(random.Random(4))


@settings(max_examples=30, deadline=None)
@given(data=st.data(), n=st.integers(1, 8))
def test_property_session_id_follows_members_not_order(data: st.DataObject, n: int) -> None:
    members = data.draw(st.lists(st.text(min_size=1, max_size=6), min_size=n, max_size=n, unique=True))
    nonces = data.draw(st.lists(st.binary(min_size=32, max_size=32), min_size=n, max_size=n, unique=True))
    order = data.draw(st.permutations(range(n)))
    sid = session_id(members, nonces)
    assert session_id([members[i] for i in order], [nonces[i] for i in order]) == sid
    expected = sorted(zip((m.encode() for m in members), nonces, strict=True))
    assert sid == hashlib.sha256(b"".join(m for m, _ in expected) + b"".join(k for _, k in expected)).digest()
    altered = bytes([nonces[0][0] ^ 1]) + nonces[0][1:]
    assert session_id(members, [altered, *nonces[1:]]) != sid
    if n >= 2:  # nonces belong to their members: swapping two changes the sid
        assert session_id(members, [nonces[1], nonces[0], *nonces[2:]]) != sid


def test_session_id_rejects_ambiguous_input() -> None:
    with pytest.raises(ValueError, match="twice"):
        session_id(["a", "a"], [b"1", b"2"])
    with pytest.raises(ValueError, match="nonces"):
        session_id(["a", "b"], [b"1"])


SID = b64(V["session_id"]["expected"])
GOOD: dict[str, Any] = {
    "static_public": ED_PUB,
    "member_id": "1",
    "ephemeral_public": ED_PUB,
    "nonce": ED_PUB,
    "sid": SID,
}


@pytest.mark.parametrize(
    "field,value",
    [
        ("member_id", "2"),
        ("ephemeral_public", bytes(32)),
        ("nonce", ED_PUB[:-1] + b"\x00"),
        ("sid", hashlib.sha256(SID).digest()),
        ("static_public", signing_key_pair(bytes(32)).public),
        ("signature", None),
    ],
)
def test_session_signature_over_altered_data_fails(field: str, value: Any) -> None:
    good = session_signature(ED_SEED, "1", ED_PUB, ED_PUB, SID)
    args = dict(GOOD)
    signature = good[:10] + bytes([good[10] ^ 1]) + good[11:] if field == "signature" else good
    if field != "signature":
        args[field] = value
    with pytest.raises(GkaCryptoError, match=r"session signature of member '(1|2)' does not verify"):
        verify_session_signature(signature=signature, **args)


def test_packet_signature() -> None:
    eph = new_ephemeral_signing_key(random.Random(1))
    packet = b"\x00\x01\x00\x02\x00\x01rest of the greeting packet"
    signature = sign_packet(eph.seed, packet)
    verify_packet_signature(eph.public, packet, signature)
    assert signature == SigningKey(eph.seed).sign(b"greetmsgsig" + packet).signature
    failures = [
        (eph.public, packet + b"!", signature),  # altered packet
        (eph.public, packet[:-1], signature),
        (ED_PUB, packet, signature),  # another key
        (eph.public, packet, SigningKey(eph.seed).sign(packet).signature),  # no context string
        (eph.public, packet, signature[:-1]),  # truncated
        (eph.public[:-1], packet, signature),
    ]
    for public, message, sig in failures:
        with pytest.raises(GkaCryptoError, match="greeting packet signature"):
            verify_packet_signature(public, message, sig)


def test_aske_run_and_exclude_refreshes_the_sid() -> None:
    """Phases 1-3 for four members, then an exclude with the initiator's new nonce."""
    rng = random.Random(11)
    members = ["carol@x", "alice@x", "dave@x", "bob@x"]  # upflow order, not sorted
    static = {m: signing_key_pair(rng.randbytes(32)) for m in members}
    nonces = [new_nonce(rng) for _ in members]  # phase 1: collected along the upflow
    ephemeral = [new_ephemeral_signing_key(rng) for _ in members]
    sid = session_id(members, nonces)
    acks = {m: session_signature(static[m].seed, m, ephemeral[i].public, nonces[i], sid) for i, m in enumerate(members)}
    for i, m in enumerate(members):  # phase 3: everyone checks everyone
        verify_session_signature(static[m].public, m, ephemeral[i].public, nonces[i], sid, acks[m])
    # A member told a different nonce list computes a different sid: every ack fails for it.
    forged_sid = session_id(members, [new_nonce(rng), *nonces[1:]])
    with pytest.raises(GkaCryptoError, match="'alice@x'"):
        verify_session_signature(
            static["alice@x"].public, "alice@x", ephemeral[1].public, nonces[1], forged_sid, acks["alice@x"]
        )
    # Exclude dave: without a new nonce from the initiator, the sid of the remaining
    # members could repeat an earlier session's; with it, it does not.
    remaining = [0, 1, 3]
    old = session_id([members[i] for i in remaining], [nonces[i] for i in remaining])
    renewed = [new_nonce(rng) if i == 0 else nonces[i] for i in remaining]
    assert session_id([members[i] for i in remaining], renewed) not in {old, sid}


def test_runtime_gka_does_not_import_the_compiler() -> None:
    package = Path(__file__).resolve().parents[1] / "runtime" / "gka"
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
            else:
                continue
            assert not any(name == "fsmc" or name.startswith("fsmc.") for name in imported), source
