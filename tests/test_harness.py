"""The test harness itself: the test run's Ray head stays off every fixed Ray port, and no test leaves Ray
connected in the pytest process."""

from __future__ import annotations

import sys

import psutil
from conftest import disconnect_leftover_ray

# What a Ray head takes when its ports are not given: GCS, dashboard, client server, dashboard agent (HTTP), and
# the workers' range. Two Ray heads on one machine (two test runs, say) would collide on these.
RAY_FIXED_PORTS = {6379, 8265, 10001, 52365, *range(10002, 20000)}


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every listening socket of a process and all its descendants."""
    found = set()
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            found |= {(c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN}
        except psutil.NoSuchProcess:
            pass
    return found


def test_the_test_run_head_listens_only_on_loopback_and_its_own_free_ports(ray_head, ray_client):
    @ray_client.remote(num_cpus=1)
    def worker_pid() -> int:
        import os

        return os.getpid()

    assert ray_client.get(worker_pid.remote())  # a worker is up, listening on its own port
    sockets = listening(ray_head["pid"])
    ports = {port for _, port in sockets}
    assert {ip.removeprefix("::ffff:") for ip, _ in sockets} == {"127.0.0.1"}, sockets
    missing = {flag: port for flag, port in ray_head["ports"].items() if port not in ports}
    assert not missing, f"not listening where the fixture put them: {missing}"
    assert not ports & RAY_FIXED_PORTS, sorted(ports & RAY_FIXED_PORTS)


def test_a_ray_connection_left_open_is_shut_down(monkeypatch, request):
    class FakeRay:
        up = True

        def is_initialized(self) -> bool:
            return self.up

        def shutdown(self) -> None:
            self.up = False

    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    assert disconnect_leftover_ray() and not fake.up
    assert not disconnect_leftover_ray()
    assert "no_ray_left_connected" in request.fixturenames  # the guard runs after every test
