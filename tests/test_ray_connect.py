"""The one Ray connection (`runtime.ray_connect`): an embedded Ray listens on loopback only, and captioning's
vLLM backend connects through it."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import pytest
from conftest import PYTHON, REPO

PROBE = """
import json
import psutil
import ray
from runtime.ray_connect import connect_ray

connect_ray(None, num_cpus=1)
ray.get(ray.remote(lambda: 1).remote())  # a worker is up too
listening = set()
for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
    try:
        listening |= {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        pass
print(json.dumps({"node": ray.util.get_node_ip_address(), "listening": sorted(listening)}))
ray.shutdown()
"""


def test_embedded_ray_listens_on_loopback_only():
    env_drop = ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # connect_ray must set what it needs itself
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    result = subprocess.run([PYTHON, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["node"] == "127.0.0.1"
    assert seen["listening"] and all(_loopback(a) for a in seen["listening"]), seen


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def test_captioning_connects_through_the_loopback_connection(monkeypatch, tmp_path):
    import runtime.ray_connect
    from captioning.config import CaptionConfig
    from captioning.pipeline import make_backend

    calls = []

    class Connected(Exception):
        pass

    def fake_connect(address=None, **kwargs):
        calls.append(address)
        raise Connected

    monkeypatch.setattr(runtime.ray_connect, "connect_ray", fake_connect)
    model = tmp_path / "model"
    model.mkdir()
    cfg = CaptionConfig.model_validate({"backend": "vllm", "vllm": {"model_path": str(model)}})
    with pytest.raises(Connected):
        make_backend(cfg, tmp_path, None)
    assert calls == [None]


def test_on_a_cluster_the_model_folder_is_not_checked_on_the_driver(tmp_path):
    from captioning.config import CaptionConfig

    cfg = CaptionConfig.model_validate({"backend": "vllm", "vllm": {"model_path": "/cluster/models/qwen"}})
    assert cfg.local_paths()["folders"] == {"vllm.model_path": "/cluster/models/qwen"}
    assert cfg.local_paths(on_cluster=True)["folders"] == {}  # the workers read it, from storage they see
    assert "vllm.runtime_env" in cfg.local_paths(on_cluster=True)["files"]  # read here, to start the workers
