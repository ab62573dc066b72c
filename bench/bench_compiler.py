"""Compiler benchmark: parse, check and each backend on KeySync, and growth with size.

Prints the median of repeated runs for every stage on protocols/keysync/keysync.fsm, then the
same for a synthetic protocol 20 times larger (KeySync's fsm repeated as 20 fsms), so
that growth with input size is visible as a ratio measured in the same run.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fsmc.backends import asn1, dot, python
from fsmc.check import check
from fsmc.compiler import Compilation, load
from fsmc.diagnostics import Diagnostics
from fsmc.parser import parse_text

ROOT = Path(__file__).resolve().parent.parent
KEYSYNC = ROOT / "protocols" / "keysync" / "keysync.fsm"


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches (grammar tables, templates)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def synthetic(text: str, copies: int) -> str:
    """KeySync's fsm `copies` times in one protocol, each fsm renamed and renumbered, and
    its messages renamed: the messages of a protocol's fsms become classes of one Python
    module, so two of one name are an error (python-name)."""
    start = text.index("fsm KeySync")
    end = text.rindex("}", 0, text.rindex("}"))  # the fsm's closing brace
    body = text[start:end + 1]
    messages = re.findall(r"\bmessage (\w+) \d+", body)
    fsms = []
    for i in range(1, copies + 1):
        fsm = re.sub(r"fsm KeySync 1", f"fsm KeySync{i} {i}", body, count=1)
        if i > 1:
            fsm = re.sub(r"\b(" + "|".join(messages) + r")\b", rf"\g<1>{i}", fsm)
        fsms.append(fsm)
    return text[:start] + "\n".join(fsms) + text[end + 1:]


def stages(path: Path, repeat: int) -> dict[str, float]:
    text = path.read_text(encoding="utf-8")
    c: Compilation = load(path)
    assert c.ok, c.diagnostics.render()
    protocol = c.document.protocols[0]
    doc = c.document

    def do_check() -> None:
        check(doc, c.types, Diagnostics())

    return {
        "parse": median_ms(lambda: parse_text(text, str(path), Diagnostics()), repeat),
        "check": median_ms(do_check, repeat),
        "load (read+parse+types+check)": median_ms(lambda: load(path), repeat),
        "python backend": median_ms(lambda: python.render(c, protocol), repeat),
        "asn1 backend": median_ms(lambda: asn1.render(c, protocol), repeat),
        "dot backend": median_ms(lambda: dot.render(c, protocol), repeat),
        "dot + svg (graphviz)": median_ms(lambda: dot.render_with_svg(c, protocol), max(3, repeat // 10)),
    }


def main() -> int:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    small = stages(KEYSYNC, repeat)
    with tempfile.TemporaryDirectory() as tmp:
        big_path = Path(tmp) / "keysync20.fsm"
        big_path.write_text(synthetic(KEYSYNC.read_text(encoding="utf-8"), 20), encoding="utf-8")
        (Path(tmp) / "pEp.asn1").write_text((KEYSYNC.parent / "pEp.asn1").read_text(encoding="utf-8"))
        big = stages(big_path, max(3, repeat // 5))
    print(f"fsmc compiler, median of {repeat} runs (20x: {max(3, repeat // 5)} runs)")
    print(f"{'stage':32} {'KeySync ms':>11} {'20x ms':>10} {'20x/1x':>7}")
    for stage in small:
        print(f"{stage:32} {small[stage]:11.2f} {big[stage]:10.2f} {big[stage] / small[stage]:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
