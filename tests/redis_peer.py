"""A real ``redis-server`` for tests: on a free loopback port, without persistence,
that a test can kill (SIGKILL), start again (empty, on the same port) and flush.

A missing ``redis-server`` FAILS the test (Debian package redis-server, installed by
.ci/run): the proof these tests give depends on it.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from types import TracebackType

import redis

from peers import LOOPBACK, free_port, require_tool, wait_for_port


class RedisServer:
    """``redis-server --save "" --appendonly no`` on ``port``, logging to ``folder``."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> RedisServer:
        exe = require_tool("redis-server")
        with open(self.folder / f"redis-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [exe, "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
                 "--appendonly", "no", "--dir", str(self.folder), "--protected-mode", "yes"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_for_port(LOOPBACK, self.port, 15.0, self.proc)
        return self

    def kill(self) -> None:
        """SIGKILL: Redis is gone at once, with everything it held."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=5)

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()
