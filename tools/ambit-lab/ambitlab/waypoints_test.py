from ambitlab.lab import plan_from_paths
from ambitlab import waypoints

import os

MESH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "manifests", "waypoint")


def test_each_waypoint_gateway_becomes_a_pod_and_a_service_named_like_it():
    objs, plan, problems, _ = plan_from_paths([MESH], ["node-0", "node-1"])
    assert not problems, problems
    pods = [p for p in plan.pods if waypoints.is_waypoint_pod(p)]
    assert [(p.namespace, p.name, p.service_account) for p in pods] == [("shop", "waypoint-0", "waypoint")]
    svc = next(s for s in plan.services if s.namespace == "shop" and s.name == "waypoint")
    assert [p.port for p in svc.ports] == [15008]
    # Applying the same objects again adds nothing twice.
    assert len(waypoints.with_waypoints(objs)) == len(objs)


def test_waypoint_argv_uses_the_waypoint_token_and_the_pod_ip():
    _, plan, _, _ = plan_from_paths([MESH], ["node-0", "node-1"])
    pod = next(p for p in plan.pods if waypoints.is_waypoint_pod(p))
    argv = waypoints.argv(pod, {"address": "172.18.0.1:15012", "tokens_dir": "/t", "root_cert": "/r.pem"})
    assert argv[argv.index("--token-file") + 1] == "/t/waypoint.shop.waypoint"
    assert argv[argv.index("--gateway-name") + 1] == "waypoint"
    assert argv[argv.index("--metrics-address") + 1] == f"{pod.ip}:15020"
    assert argv[argv.index("--admin-socket") + 1] == f"/run/ambit-lab/waypoints/{pod.namespace}_{pod.name}.sock"
