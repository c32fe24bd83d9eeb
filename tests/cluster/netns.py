"""Hosts in Linux network namespaces on one machine, each with its own address, for the tests.

    root namespace (pytest, the HTTP clients)  <rc>r ──┐
    <rc>-head  (Ray head)                      <rc>h ──┤  bridge in <rc>-lan,
    <rc>-w1    (Ray GPU worker)                <rc>w1 ─┤  10.<a>.<b>.0/24
    ...                                                 ┘

Nothing in the namespaces has a default route, so no process there can reach anything but its
peers; the root namespace gets one on-link route to the /24 and nothing else. Every name
carries the pytest process id (``rc<pid in hex>``), so a later run recognises what an earlier,
killed run left behind and removes it (``clean_leftovers``) without touching a run that is
still going. Needs root and iproute2 (``ip``), as CI has.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

PREFIX = "rc"
_NAME = re.compile(rf"^{PREFIX}([0-9a-f]+)-")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def missing_requirements() -> str | None:
    """Why namespaced hosts cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (scripts/ensure_iproute2.sh installs it)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def namespace_pids(namespace: str) -> list[int]:
    result = _ip("netns", "pids", namespace, check=False)
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


def kill_namespace(namespace: str, timeout_s: float = 10.0) -> int:
    """SIGKILL every process in the namespace until none is left; how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while pids := namespace_pids(namespace):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} in {namespace} survive SIGKILL")
        time.sleep(0.05)
    return len(killed)


def _alive(pid: int) -> bool:
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def clean_leftovers() -> list[str]:
    """Remove the namespaces, links and folders of earlier runs whose pytest is gone."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _NAME.match(name)
        if match and not _alive(int(match.group(1), 16)):
            kill_namespace(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        link = line.split(":")[1].strip().split("@")[0]
        match = re.match(rf"^{PREFIX}([0-9a-f]+)r$", link)
        if match and not _alive(int(match.group(1), 16)):
            _ip("link", "del", link, check=False)
            removed.append(link)
    for folder in Path("/tmp").glob(f"{PREFIX}*-cluster"):
        match = re.match(rf"^{PREFIX}([0-9a-f]+)-cluster$", folder.name)
        if match and not _alive(int(match.group(1), 16)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 that no route of this machine covers, chosen by the process id."""
    taken = []
    for line in _ip("-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        first = line.split()[0] if line.strip() else ""
        if re.match(r"^\d+\.\d+\.\d+\.\d+(/\d+)?$", first):
            taken.append(ipaddress.ip_network(first, strict=False))
    pid = os.getpid()
    for step in range(256):
        candidate = ipaddress.ip_network(f"10.{200 + (pid + step) % 50}.{(pid // 50) % 250}.0/24")
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 for the test network")


class Lan:
    """A bridge in a namespace of its own, the root namespace on it, and hosts joining it."""

    def __init__(self) -> None:
        self.tag = f"{PREFIX}{os.getpid():x}"
        self.subnet = _free_subnet()
        self._addresses = iter(self.subnet.hosts())
        self.namespace = f"{self.tag}-lan"
        self.hosts: dict[str, str] = {}  # namespace -> address
        self.folder = Path("/tmp") / f"{self.tag}-cluster"
        self.folder.mkdir(exist_ok=True)
        _ip("netns", "add", self.namespace)
        _ip("-n", self.namespace, "link", "set", "lo", "up")
        _ip("-n", self.namespace, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.namespace, "link", "set", "br0", "up")
        self.root_link = f"{self.tag}r"
        self.root_address = self._plug(self.root_link, namespace=None)

    def _plug(self, link: str, namespace: str | None) -> str:
        """A veth pair from ``namespace`` (None: the root one) to the bridge; its address."""
        address = str(next(self._addresses))
        _ip("link", "add", link, "type", "veth", "peer", "name", f"{link}p")
        _ip("link", "set", f"{link}p", "netns", self.namespace)
        _ip("-n", self.namespace, "link", "set", f"{link}p", "master", "br0", "up")
        where: list[str] = []
        if namespace is not None:
            _ip("link", "set", link, "netns", namespace)
            where = ["-n", namespace]
        _ip(*where, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", link)
        _ip(*where, "link", "set", link, "up")
        return address

    def add_host(self, name: str) -> tuple[str, str]:
        """A new namespace on the bridge, loopback up: (namespace, address)."""
        namespace = f"{self.tag}-{name}"
        _ip("netns", "add", namespace)
        # Ray's processes talk to each other on loopback too.
        _ip("-n", namespace, "link", "set", "lo", "up")
        address = self._plug(f"{self.tag}{name}", namespace)
        self.hosts[namespace] = address
        return namespace, address

    def set_link(self, name: str, up: bool) -> None:
        """Cut (or restore) a host's cable, at the bridge."""
        _ip("-n", self.namespace, "link", "set", f"{self.tag}{name}p", "up" if up else "down")

    def popen(
        self,
        namespace: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        log: Path,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a process inside a host's namespace, its output to ``log``."""
        with open(log, "ab") as out:
            return subprocess.Popen(
                ["ip", "netns", "exec", namespace, *argv],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def close(self) -> None:
        """Kill every process in every host, remove the namespaces, links and folder."""
        for namespace in [*self.hosts, self.namespace]:
            kill_namespace(namespace)
        for namespace in [*self.hosts, self.namespace]:
            _ip("netns", "del", namespace, check=False)
        _ip("link", "del", self.root_link, check=False)  # usually gone with its peer already
        shutil.rmtree(self.folder, ignore_errors=True)
