"""`fsmc inspect`: the checked model as plain data, for tools and editors."""

from __future__ import annotations

from typing import Any

from fsmc import model as m

__all__ = ["document_json"]


def _handler(fsm: m.Fsm, h: m.Handler) -> dict[str, Any]:
    return {
        "event": h.event,
        "kind": fsm.event_kind(h.event).value,
        "transitions": list(h.transitions),
        "sends": list(h.sends),
        "actions": list(h.actions),
        "conditions": list(h.conditions),
        "line": h.position.line,
    }


def _field(f: m.Field) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": f.kind.value, "type": f.type, "name": f.name}
    if f.kind is m.FieldKind.LIST:
        out["fields"] = [_field(x) for x in f.fields]
    if f.kind is m.FieldKind.EMBED:
        out["protocol"] = f.protocol
    return out


def _fsm(fsm: m.Fsm) -> dict[str, Any]:
    return {
        "name": fsm.name,
        "id": fsm.id,
        "stateless": fsm.stateless,
        "threshold": fsm.threshold,
        "versions": list(fsm.versions),
        "states": [
            {
                "name": s.name,
                "timeout": fsm.timeout(s),
                "line": s.position.line,
                "handlers": [_handler(fsm, h) for h in s.handlers],
            }
            for s in fsm.states
        ],
        "messages": [
            {
                "name": msg.name,
                "id": msg.id,
                "type": msg.type.value,
                "ratelimit": msg.ratelimit,
                "security": msg.security.value,
                "fields": [_field(f) for f in msg.fields],
            }
            for msg in fsm.messages
        ],
        "externals": [{"name": e.name, "id": e.id} for e in fsm.externals],
        "signaled": list(fsm.signaled()),
        "events": [{"name": e.name, "kind": e.kind.value, "number": e.number} for e in fsm.events()],
        "conditions": list(fsm.conditions()),
        "actions": list(fsm.actions()),
    }


def document_json(document: m.Document) -> dict[str, Any]:
    return {
        "protocols": [
            {
                "name": p.name,
                "id": p.id,
                "asn1": p.asn1.value if p.asn1 is not None else None,
                "threshold": p.threshold,
                "fsms": [_fsm(f) for f in p.fsms],
            }
            for p in document.protocols
        ]
    }
