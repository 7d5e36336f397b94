"""Request bodies larger than the waypoint buffers (4 MiB) stream through it instead of being
refused with 413: the head and the buffered part go upstream first, then the rest as it
arrives (root; skips otherwise). Uses the lab of tests/test_waypoint_tcp.py, whose echo
Service has an undeclared port (8081) the waypoint serves as HTTP.
"""

from __future__ import annotations

import os
import tempfile

from test_waypoint_tcp import ECHO_HOST, ECHO_VIP, _series, _waypoint_metrics, mesh  # noqa: F401

SIZE = 6 << 20  # well beyond the 4 MiB buffer


def _upload(lab, path: str, *extra: str) -> tuple[str, str]:
    """(status, body) of a POST of SIZE bytes from client/sleep-0 through the waypoint."""
    with tempfile.NamedTemporaryFile(prefix="ambit-body-", delete=False) as f:
        f.write(bytes((i * 13) & 0xFF for i in range(256)) * (SIZE // 256))
        name = f.name
    try:
        done = lab.exec("client/sleep-0", "curl", "-s", "--max-time", "30", "-w", "\n%{http_code}",
                        "-H", "content-type: application/octet-stream", *extra,
                        "--data-binary", f"@{name}", f"http://{ECHO_VIP}:8081{path}", timeout=60)
    finally:
        os.unlink(name)
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return status.strip(), body


def _bytes_received(lab) -> float:
    metrics = _waypoint_metrics(lab)
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("istio_request_bytes_sum{") and f'destination_service="{ECHO_HOST}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_body_with_content_length_beyond_the_buffer_reaches_the_backend(mesh):  # noqa: F811
    before = _bytes_received(mesh)
    status, body = _upload(mesh, "/upload")
    assert status == "200", (status, body[:200])
    assert "echo answered POST /upload" in body, body[:200]
    assert _bytes_received(mesh) - before == SIZE


def test_a_chunked_body_beyond_the_buffer_reaches_the_backend(mesh):  # noqa: F811
    before = _bytes_received(mesh)
    status, body = _upload(mesh, "/chunked", "-H", "transfer-encoding: chunked")
    assert status == "200", (status, body[:200])
    assert "echo answered POST /chunked" in body, body[:200]
    assert _bytes_received(mesh) - before == SIZE
    assert _series(_waypoint_metrics(mesh), "istio_requests_total", 'reporter="waypoint"',
                   f'destination_service="{ECHO_HOST}"', 'response_code="413"') == 0
