"""A redis-server of our own: on a free loopback port, in a directory of its own.

Tests, `make demo` and `fsmc run --transport redis` start one and stop it; nothing
assumes a server is already running. The server keeps its data in an append-only file
in its directory, so `restart()` (stop, start again on the same port and directory)
is a broker restart with the data kept.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from runtime.errors import UsageError

__all__ = ["RedisServer", "free_port"]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """`with RedisServer() as server: server.url` — a running server until the block ends."""

    def __init__(self, directory: Path | None = None, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise UsageError("redis-server is not installed (make setup installs it with apt-get)")
        self.binary = binary
        self._own_directory = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="fsmc-redis-")) if directory is None else Path(directory)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 (the server's, for its life)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes",
             "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UsageError(f"redis-server exited at start (see {self.directory / 'redis.log'})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise UsageError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()  # SIGTERM: redis-server flushes its append-only file and exits
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Stop and start again, on the same port, with the data kept."""
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
