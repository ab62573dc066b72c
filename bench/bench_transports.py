"""N parties over Redis Streams against the in-memory network, in the same run.

Two loads:
- mpENC, n = 10 and 50: one member establishes a session with the n - 1 others (upflow,
  downflow and the confirmations, every packet to the whole group);
- KeySync, n = 10 and 25: n devices of one group start and one generates a key
  (GroupKeysUpdate to all). Not 50: a grouped device's Init announces its keys on the
  channel and every other device answers with its own, to all, so a group's start is
  about n^3 deliveries (1,110 for 10, 16,275 for 25, some 127,000 for 50: ten minutes a
  transport here). That is the protocol's, not the transports'.

Each party runs under the asyncio driver (runtime.aio) with its store (runtime.store,
SQLite, one commit per step): over Redis one OS process per party (`fsmc run`'s workers),
on the in-memory network as tasks of one process. Printed: deliveries (messages handed
to a party), deliveries per second from the first step until the run is quiet, and the
latency from a message's send to each receipt (p50, p95, p99; the parties share this
machine's clock). Process start-up is not counted.

    python bench/bench_transports.py [n ...]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fsmc.run import Run  # noqa: E402
from runtime.net.redisserver import RedisServer  # noqa: E402


def mpenc_scenario(n: int) -> str:
    names = [f"m{i:02}" for i in range(n)]
    parties = "".join(f'[[party]]\nname = "{m}"\n' for m in names)
    others = ", ".join(f'"{m}"' for m in names[1:])
    return (f'description = "{n} members establish a session"\nprotocol = "mpenc"\nseed = 1\n{parties}'
            f'[[step]]\nstart = true\n[[step]]\nparty = "{names[0]}"\nevent = "Establish"\nmembers = [{others}]\n'
            f'[[step]]\ndeliver = true\n')


def keysync_scenario(n: int) -> str:
    names = [f"d{i:02}" for i in range(n)]
    parties = "".join(f'[[party]]\nname = "{d}"\ngroup = "home"\n' for d in names)
    return (f'description = "{n} grouped devices start, one generates a key"\nprotocol = "keysync"\nseed = 5\n'
            f'{parties}[[step]]\nstart = true\n[[step]]\ndeliver = true\n[[step]]\nparty = "{names[0]}"\n'
            f'event = "KeyGen"\n[[step]]\ndeliver = true\n')


def measure(path: Path, redis_url: str | None, stores: Path) -> tuple[int, float, list[float]]:
    run = Run(path, redis_url, stores)
    try:
        run.start_workers()
        t0 = time.perf_counter()
        for step in run.scenario.steps:
            run.step(step, timeout=900)
        run.wait_quiet()
        elapsed = time.perf_counter() - t0
        result = run.finish()
    finally:
        run.stop()
    assert result.ok, result.failures
    sent = {e.seq: e.time for e in result.trace if e.kind == "send"}
    latencies = [e.time - sent[e.seq] for e in result.trace if e.kind in ("receive", "drop") and e.seq in sent]
    return len(latencies), elapsed, latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main(sizes: list[int] | None = None) -> None:
    loads = ([(f"mpENC establish, {n} members", f"mpenc-{n}", mpenc_scenario(n)) for n in sizes or (10, 50)]
             + [(f"KeySync group of {n}, start + KeyGen", f"keysync-{n}", keysync_scenario(n))
                for n in sizes or (10, 25)])
    print("Transports: deliveries per second and latency (ms), parties under the asyncio driver with stores")
    print(f"  {'load':34} {'transport':9} {'deliveries':>10} {'per s':>8} {'p50':>7} {'p95':>7} {'p99':>7}")
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        for label, stem, text in loads:
            path = Path(tmp) / f"{stem}.toml"
            path.write_text(text, encoding="utf-8")
            rates = {}
            for transport, url in (("memory", None), ("redis", server.url)):
                count, elapsed, latencies = measure(path, url, Path(tmp) / f"stores-{stem}-{transport}")
                rates[transport] = count / elapsed
                ms = [x * 1000 for x in latencies]
                print(f"  {label:34} {transport:9} {count:10} {count / elapsed:8.0f} "
                      f"{statistics.median(ms):7.1f} {percentile(ms, 95):7.1f} {percentile(ms, 99):7.1f}")
            print(f"  {'':34} redis/memory throughput {rates['redis'] / rates['memory']:.2f}x")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or None)
