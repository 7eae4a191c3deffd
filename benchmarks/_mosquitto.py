"""Start a private Mosquitto on a free port with a generated configuration."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# What zero loss needs (NOTES.md, docs/operations.md): no cap on the queue kept
# for a persistent session, and no cap on in-flight QoS 1 messages.
ZERO_LOSS = "max_queued_messages 0\nmax_inflight_messages 0\n"
# Mosquitto 2.0's defaults, written out so the benchmark states what it compares.
DEFAULTS = "max_queued_messages 1000\nmax_inflight_messages 20\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mosquitto(extra_config: str = ZERO_LOSS) -> Iterator[str]:
    """Run mosquitto until the block ends; yield its ``mqtt://`` URL."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pumpops-bench-mosq-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            # "user root" keeps mosquitto from dropping to its own user, which could not
            # write into this root-owned temporary folder
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"
            f"log_dest file {tmp}/mosquitto.log\n{extra_config}"
        )
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"mosquitto did not start on port {port}")
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
