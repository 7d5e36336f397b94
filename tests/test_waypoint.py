"""L7 through a waypoint, end to end in a lab (root; skips otherwise): ambit-cp, a ztunnel per
node, the waypoint the lab realizes for the `shop` namespace's istio-waypoint Gateway, and
real curl in the pods (tests/manifests/waypoint).

One lab serves the whole module. Only one lab can exist on a machine: the module waits while
a lab that someone else started is up, and never takes it down.
"""

from __future__ import annotations

import collections
import os
import re
import time

import pytest

from conftest import MANIFESTS, Lab, mesh_lab, wait_answering

MESH = os.path.join(MANIFESTS, "waypoint")
RUN_DIR = "/run/ambit-lab"
REVIEWS = "http://reviews.shop:9080"
FLAKY = "http://flaky.shop"


@pytest.fixture(scope="module")
def mesh(require_root, echo_bin, build_dir):
    yield from mesh_lab(echo_bin, build_dir, MESH, lambda lab: wait_answering(lab, "client/sleep-0", f"{REVIEWS}/v1/ready"))



def _apps(lab: Lab, pod: str, url: str, count: int, *extra: str) -> collections.Counter:
    """x-app-name of `count` sequential requests made by one curl process (keep-alive)."""
    script = (f'for i in $(seq {count}); do curl -s -o /dev/null -D - --max-time 5 {" ".join(extra)} {url}; done')
    done = lab.exec(pod, "sh", "-c", script, timeout=300)
    assert done.returncode == 0, done.stderr
    return collections.Counter(m.lower() for m in re.findall(r"(?im)^x-app-name:\s*(\S+)", done.stdout))


def test_canary_90_10_over_1000_requests(mesh):
    apps = _apps(mesh, "client/sleep-0", f"{REVIEWS}/reviews", 1000)
    assert sum(apps.values()) == 1000, apps
    share_v1 = apps["reviews-v1"] / 10.0
    assert 86.0 <= share_v1 <= 94.0, f"v1 got {share_v1}% (want 90 +- 4): {apps}"


def test_end_user_jason_always_reaches_v2(mesh):
    apps = _apps(mesh, "client/sleep-0", f"{REVIEWS}/reviews", 50, "-H", "'end-user: jason'")
    assert apps == collections.Counter({"reviews-v2": 50}), apps


def test_path_prefixes_reach_their_backends(mesh):
    for prefix, app in (("/v1/", "reviews-v1"), ("/v2/", "reviews-v2")):
        apps = _apps(mesh, "client/sleep-0", f"{REVIEWS}{prefix}item", 20)
        assert apps == collections.Counter({app: 20}), (prefix, apps)


def test_retries_turn_ffs_into_200_with_three_attempts(mesh):
    for _ in range(3):
        status, headers, _ = mesh.curl("client/frontend-0", f"{FLAKY}/get")
        assert status == 200, headers
        assert headers.get("x-envoy-attempt-count") == "3", headers


def test_api_get_only_for_the_frontend_service_account(mesh):
    status, _, body = mesh.curl("client/sleep-0", f"{FLAKY}/api/items")
    assert status == 403 and body.strip() == "RBAC: access denied", (status, body)
    # Other paths stay open to everyone (retries hide the backend's failures).
    status, _, _ = mesh.curl("client/sleep-0", f"{FLAKY}/get")
    assert status == 200
    status, _, _ = mesh.curl("client/frontend-0", f"{FLAKY}/api/items")
    assert status == 200


def test_route_timeout_answers_504_with_flag_ut(mesh):
    start = time.monotonic()
    status, _, body = mesh.curl("client/sleep-0", f"{REVIEWS}/slow/2")
    elapsed = time.monotonic() - start
    assert status == 504 and "upstream request timeout" in body, (status, body)
    assert elapsed < 1.8, f"the 0.5 s route timeout took {elapsed:.2f}s"
    metrics = _waypoint_metrics(mesh)
    assert re.search(r'istio_requests_total\{[^}]*reporter="waypoint"[^}]*response_code="504",'
                     r'response_flags="UT"[^}]*\} [1-9]', metrics), "no 504 UT series"


def _waypoint_metrics(lab: Lab) -> str:
    pod = next(p for p in lab.status()["pods"] if p["name"] == "waypoint-0")
    done = lab.exec("shop/waypoint-0", "curl", "-s", "--max-time", "3", f"http://{pod['ip']}:15020/metrics")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_metrics_show_requests_and_upstream_retries(mesh):
    status, _, _ = mesh.curl("client/frontend-0", f"{FLAKY}/get")
    assert status == 200
    metrics = _waypoint_metrics(mesh)
    ok = re.search(r'istio_requests_total\{reporter="waypoint",[^}]*source_principal="spiffe://cluster.local/ns/client/sa/frontend"'
                   r'[^}]*destination_service="flaky.shop.svc.cluster.local"[^}]*response_code="200"[^}]*\} (\d+)', metrics)
    assert ok and int(ok.group(1)) >= 1, metrics[:2000]
    retries = re.search(r'ambit_waypoint_upstream_attempts_total\{destination_service="flaky.shop.svc.cluster.local",'
                        r'attempt="retry"\} (\d+)', metrics)
    assert retries and int(retries.group(1)) >= 2, "retries not counted"


def test_header_operations_show_up_on_both_sides(mesh):
    status, headers, body = mesh.curl("client/sleep-0", f"{REVIEWS}/headers", "-H", "end-user: jason")
    assert status == 200
    assert headers.get("x-waypoint-route") == "jason", headers
    assert re.search(r'(?i)"?x-route"?\s*[:=]\s*"?jason', body), body


def test_config_change_applies_live_without_failing_requests(mesh):
    """Last in the module: it changes the reviews VirtualService (and puts it back)."""
    script = ('ok=0; bad=0; v2=0; for i in $(seq 300); do '
              'out=$(curl -s -D - -o /dev/null --max-time 5 -w "%{http_code}" ' + REVIEWS + '/reviews); '
              'case "$out" in *200) ok=$((ok+1));; *) bad=$((bad+1));; esac; '
              'case "$out" in *reviews-v2*) v2=$((v2+1));; esac; sleep 0.01; done; echo "$ok $bad $v2"')
    import subprocess
    from conftest import LAB
    env = dict(os.environ, AMBIT_ECHO_BIN=mesh.echo)
    load = subprocess.Popen([LAB, "exec", "client/sleep-0", "--", "sh", "-c", script], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        applied = mesh.run("apply", os.path.join(MANIFESTS, "waypoint-apply", "reviews-all-v2.yaml"))
        assert applied.returncode == 0, applied.stderr
        time.sleep(1.5)  # the change must be in effect within a second
        after = _apps(mesh, "client/frontend-0", f"{REVIEWS}/reviews", 30)
        out, err = load.communicate(timeout=120)
    finally:
        if load.poll() is None:
            load.kill()
        mesh.run("apply", os.path.join(MESH, "mesh.yaml"))
    ok, bad, _ = (int(x) for x in out.split())
    assert bad == 0 and ok == 300, (out, err)
    assert after == collections.Counter({"reviews-v2": 30}), after
