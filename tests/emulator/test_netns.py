"""The private network namespace that libwebrtc tests run in (protocol.md section 10)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from decart_sync.testing import NETNS_CLIENT_ADDRESS

RunInNetns = Callable[..., subprocess.CompletedProcess[str]]

# Inside the namespace: which interfaces exist, and whether a connection from the client address
# reaches a listener on 127.0.0.1 (what a libwebrtc client does to reach the emulator).
_PROBE = """
import json, socket, sys
listener = socket.create_server(("127.0.0.1", 0))
client = socket.socket()
client.bind((sys.argv[1], 0))
client.settimeout(10)
client.connect(listener.getsockname())
peer, (peer_host, _) = listener.accept()
client.sendall(b"ping")
print(json.dumps({
    "interfaces": sorted(name for _, name in socket.if_nameindex()),
    "peer": peer_host,
    "echo": peer.recv(4).decode(),
}))
"""


@pytest.mark.slow
def test_a_client_on_the_veth_address_reaches_a_server_on_loopback_and_nothing_else_exists(
    private_netns: RunInNetns,
) -> None:
    result = private_netns([sys.executable, "-c", _PROBE, NETNS_CLIENT_ADDRESS], timeout=30)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {"interfaces": ["lo", "t0", "t1"], "peer": NETNS_CLIENT_ADDRESS, "echo": "ping"}
