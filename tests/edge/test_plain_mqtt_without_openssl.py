"""A plain-MQTT device process runs without OpenSSL (``skip_openssl``); a reset link must not kill it.

paho-mqtt names ``ssl.SSLWantReadError`` in the except clauses of its socket reads and writes. With
``ssl`` absent, any socket error there (a broker resetting the connection: seen in CI's ``make demo``)
raised AttributeError in paho's network thread, which died: the agent never reconnected and fell
hours behind its data. Run in a child interpreter: ``skip_openssl`` changes ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import sys
    from pumpops.edge._run import skip_openssl

    assert skip_openssl()
    import paho.mqtt.client as mqtt

    class Reset:
        def recv(self, n):
            raise ConnectionResetError(104, "Connection reset by peer")

        def send(self, buf):
            raise BrokenPipeError(32, "Broken pipe")

        def close(self):
            pass

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t")
    client._sock = Reset()
    for call, expected in ((lambda: client._sock_recv(1), ConnectionResetError),
                           (lambda: client._sock_send(b"x"), BrokenPipeError)):
        try:
            call()
        except expected:
            pass
        else:
            sys.exit("no error raised")
    assert "ssl" not in sys.modules or sys.modules["ssl"] is None  # still no OpenSSL loaded
    print("ok")
    """
)


def test_a_reset_link_raises_the_socket_error_paho_handles_not_attribute_error() -> None:
    run = subprocess.run(
        [sys.executable, "-c", CHILD], check=False, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok"
