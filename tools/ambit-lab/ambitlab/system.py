"""The privileged edge: network namespaces, veths, routes, nftables, cgroups, files in /etc/netns.

Every function here changes the machine; each one is idempotent on teardown (removing
something already gone is not an error) so `down` can always finish.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import socket
import subprocess
import time

from .plan import FABRIC_BRIDGE, FABRIC_NETNS, NodePlan, PodPlan

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"
ETC_NETNS = "/etc/netns"


class LabError(Exception):
    """A failure with a message meant for the operator."""


def run(*argv: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise LabError(f"`{' '.join(argv)}` failed: {err}") from err
    if done.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def ip(netns: str, *args: str) -> str:
    return run("ip", "-n", netns, *args)


def sysctl(netns: str, **values: str) -> None:
    # /proc/sys/net shows the netns of the process that opens it, so write it from inside.
    args = [f"{k.replace('__', '.')}={v}" for k, v in values.items()]
    run("ip", "netns", "exec", netns, "sysctl", "-q", "-w", *args)


def netns_list() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


def netns_add(name: str) -> None:
    run("ip", "netns", "add", name)
    ip(name, "link", "set", "lo", "up")


def netns_delete(name: str) -> None:
    if name in netns_list():
        run("ip", "netns", "delete", name)


# ---- topology ------------------------------------------------------------------------------


def create_fabric() -> None:
    netns_add(FABRIC_NETNS)
    ip(FABRIC_NETNS, "link", "add", FABRIC_BRIDGE, "type", "bridge")
    ip(FABRIC_NETNS, "link", "set", FABRIC_BRIDGE, "up")


def create_node(node: NodePlan, all_nodes: list[NodePlan]) -> None:
    netns_add(node.netns)
    # Created inside the fabric with its peer moved straight into the node, so no interface
    # ever appears in the machine's own namespace.
    ip(FABRIC_NETNS, "link", "add", node.fabric_port, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
    ip(FABRIC_NETNS, "link", "set", node.fabric_port, "master", FABRIC_BRIDGE, "up")
    ip(node.netns, "addr", "add", f"{node.ip}/16", "dev", "eth0")
    ip(node.netns, "link", "set", "eth0", "up")
    # The pods' gateway lives on lo: the node answers ARP for it on every pod veth.
    ip(node.netns, "addr", "add", f"{node.gateway}/32", "dev", "lo")
    sysctl(node.netns, net__ipv4__ip_forward="1", net__ipv4__conf__all__rp_filter="0",
           net__ipv4__conf__default__rp_filter="0")
    for other in all_nodes:
        if other.name != node.name:
            ip(node.netns, "route", "add", other.pod_cidr, "via", other.ip, "dev", "eth0")


def create_pod_network(pod: PodPlan, node: NodePlan) -> None:
    netns_add(pod.netns)
    ip(node.netns, "link", "add", pod.host_veth, "type", "veth", "peer", "name", "eth0", "netns", pod.netns)
    ip(node.netns, "link", "set", pod.host_veth, "up")
    ip(node.netns, "route", "add", f"{pod.ip}/32", "dev", pod.host_veth)
    ip(pod.netns, "addr", "add", f"{pod.ip}/32", "dev", "eth0")
    ip(pod.netns, "link", "set", "eth0", "up")
    ip(pod.netns, "route", "add", node.gateway, "dev", "eth0", "scope", "link")
    ip(pod.netns, "route", "add", "default", "via", node.gateway, "dev", "eth0")


def apply_nft(netns: str, ruleset: str) -> None:
    run("ip", "netns", "exec", netns, "nft", "-f", "-", stdin=ruleset)


def delete_nft(netns: str, table: str) -> None:
    if netns in netns_list():
        subprocess.run(["ip", "netns", "exec", netns, "nft", "delete", "table", "ip", table],
                       capture_output=True, timeout=30)


# ---- /etc/netns hosts files ----------------------------------------------------------------


def write_hosts(netns: str, text: str) -> str:
    directory = os.path.join(ETC_NETNS, netns)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "hosts")
    # Rewritten in place (same inode): `ip netns exec` bind-mounts this file, so processes
    # already running in the pod see the new names too.
    with open(path, "a+", encoding="utf-8") as f:
        f.seek(0)
        f.truncate()
        f.write(text)
    return directory


def remove_etc_netns(netns: str) -> None:
    shutil.rmtree(os.path.join(ETC_NETNS, netns), ignore_errors=True)


def remove_etc_netns_root_if_empty(created_by_lab: bool) -> None:
    if created_by_lab:
        with contextlib.suppress(OSError):
            os.rmdir(ETC_NETNS)


# ---- cgroup v2 -----------------------------------------------------------------------------


def find_cgroup2() -> str | None:
    with open("/proc/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    return None


def mount_cgroup2(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    run("mount", "-t", "cgroup2", "none", path)


def unmount(path: str) -> bool:
    if not os.path.ismount(path):
        return True
    return subprocess.run(["umount", path], capture_output=True, timeout=30).returncode == 0


def make_cgroup(path: str) -> None:
    os.makedirs(path, exist_ok=True)


def cgroup_pids(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs"), encoding="utf-8") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def join_cgroup(path: str) -> None:
    with open(os.path.join(path, "cgroup.procs"), "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))


def remove_cgroup_tree(path: str, timeout: float = 5.0) -> bool:
    """rmdir bottom-up; a cgroup whose last process just died can stay busy for a moment."""
    if not os.path.isdir(path):
        return True
    deadline = time.monotonic() + timeout
    for root, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            _rmdir_retry(os.path.join(root, d), deadline)
    _rmdir_retry(path, deadline)
    return not os.path.isdir(path)


def _rmdir_retry(path: str, deadline: float) -> None:
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY or time.monotonic() > deadline:
                return
            time.sleep(0.05)


# ---- probing inside a netns ----------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def inside_netns(name: str):
    """Run the body with this thread in netns `name`; sockets made there stay there."""
    with open("/proc/self/ns/net", "rb") as home, open(os.path.join(NETNS_RUN_DIR, name), "rb") as target:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise LabError(f"cannot enter netns {name}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise LabError("cannot return to the original netns")


def port_accepts(netns: str | None, address: str, port: int) -> bool:
    """Whether address:port takes a TCP connection inside netns (None: where we are)."""
    with inside_netns(netns) if netns else contextlib.nullcontext():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            return s.connect_ex((address, port)) == 0
