"""Starts the real `fluence devnet` binary on free loopback ports in a
temporary directory, waits until it prints its MongoDB endpoint, and stops
it with SIGTERM. Shared by the pymongo suite and the unified spec runner.
"""

from __future__ import annotations

import os
import pathlib
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[3]
PASSPHRASE = "driver suites passphrase"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def fluence_binary() -> pathlib.Path:
    """`$FLUENCE_BIN`, else the debug build `.ci/run` makes."""
    path = pathlib.Path(os.environ.get("FLUENCE_BIN", REPO / "target" / "debug" / "fluence"))
    if not path.is_file():
        raise RuntimeError(
            f"no fluence binary at {path}: run `cargo build -p fluence-cli` or set FLUENCE_BIN"
        )
    return path


class Devnet:
    """One `fluence devnet --nodes 1` process; `uri` is its MongoDB endpoint."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="fluence-drivers-")
        env = dict(os.environ, FLUENCE_PASSPHRASE=PASSPHRASE)
        env.setdefault("FLUENCE_LOG", "warn")
        self.process = subprocess.Popen(
            [
                str(fluence_binary()),
                "devnet",
                "--nodes", "1",
                "--dir", self.dir,
                "--http", "127.0.0.1:0",
                "--mongo", "127.0.0.1:0",
                "--p2p-port", "0",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.output: list[str] = []
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        self.uri = self._wait_for_endpoint(lines)

    def _pump(self, lines: queue.Queue[str | None]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            lines.put(line)
        lines.put(None)

    def _wait_for_endpoint(self, lines: queue.Queue[str | None]) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError("fluence devnet did not start:\n" + "\n".join(self.output))
            # "  MongoDB:  mongodb://127.0.0.1:PORT/"
            if line.strip().startswith("MongoDB:"):
                return line.split()[-1]

    def stop(self) -> None:
        """SIGTERM, wait for a clean exit, remove the data directory."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Devnet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
