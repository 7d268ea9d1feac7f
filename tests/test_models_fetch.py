"""`droplet models fetch` against a local HTTP server on 127.0.0.1: a hub-shaped tree of tiny files (reached through
HF_ENDPOINT, as huggingface_hub requests them) and plain files checked against a pinned sha256."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import yaml
from conftest import PYTHON, REPO

from droplet import fetch_weights as weights
from droplet.fetch_weights import REGISTRY, FetchError, FileWeights, download_checked

B32 = REGISTRY["clip-vit-b-32"]
TINY = {"embed_dim": 16, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1}}


def _tiny_open_clip_files() -> dict[str, bytes]:
    """A tiny CLIP (random weights) as the hub's open_clip layout holds it: open_clip_config.json + safetensors."""
    import open_clip
    import torch
    from safetensors.torch import save

    torch.manual_seed(1)
    model = open_clip.CLIP(**TINY)
    return {"open_clip_config.json": json.dumps({"model_cfg": TINY}).encode(),
            "open_clip_model.safetensors": save({k: v.contiguous() for k, v in model.state_dict().items()})}


class Server:
    """Serves `hub` (repo id -> {path: bytes}) the way the Hub does and `files` (URL path -> bytes) plainly."""

    commit = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, hub: dict[str, dict[str, bytes]], files: dict[str, bytes]) -> None:
        self.hub, self.files, self.requests = hub, files, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_GET(self) -> None:
                server.respond(self, head=False)

            def do_HEAD(self) -> None:
                server.respond(self, head=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, body: bytes, headers: dict, head: bool) -> None:
        handler.send_response(code)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def respond(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlparse(handler.path).path)
        self.requests.append((handler.command, path))
        commit = {"X-Repo-Commit": self.commit}
        if path in self.files:
            return self._send(handler, 200, self.files[path], {}, head)
        if (m := re.match(r"^/api/models/(.+)/revision/([^/]+)$", path)) and m[1] in self.hub:
            body = {"id": m[1], "sha": self.commit, "siblings": [{"rfilename": f} for f in self.hub[m[1]]]}
            return self._send(handler, 200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)
        if (m := re.match(r"^/api/models/(.+)/tree/([^/]+)(/.*)?$", path)) and m[1] in self.hub:
            body = [{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                    for f, b in self.hub[m[1]].items()]
            return self._send(handler, 200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)
        if (m := re.match(r"^/(.+)/resolve/([^/]+)/(.+)$", path)) and m[3] in self.hub.get(m[1], {}):
            body = self.hub[m[1]][m[3]]
            return self._send(handler, 200, body, {**commit, "ETag": f'"{hashlib.sha1(body).hexdigest()}"'}, head)
        return self._send(handler, 404, b"not found", {**commit, "X-Error-Code": "EntryNotFound"}, head)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    hub = {
        B32.repo_id: _tiny_open_clip_files(),
        # no safetensors here: the open_clip .bin is fetched instead
        REGISTRY["clip-vit-l-14"].repo_id: {"open_clip_config.json": b"{}", "open_clip_pytorch_model.bin": b"bin"},
        REGISTRY["qwen2.5-vl-7b-instruct"].repo_id: {
            "config.json": b'{"model_type": "qwen2_5_vl"}', "model-00001-of-00001.safetensors": b"w" * 64,
            "pytorch_model.bin": b"a duplicate format, left out", "tokenizer/vocab.json": b"{}"},
    }
    files = {"/heads/head.pth": b"a published head" * 10}
    s = Server(hub, files)
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def run_fetch(args: list[str], server: Server, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(home / "hf"), "NO_PROXY": "127.0.0.1",
           "no_proxy": "127.0.0.1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run([PYTHON, "-m", "droplet", "models", "fetch", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)


def test_clip_weights_come_from_the_hub_at_hf_endpoint_and_the_printed_config_loads(server: Server, tmp_path: Path):
    result = run_fetch(["clip-vit-b-32", str(tmp_path / "models")], server, tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "models" / "clip-vit-b-32"
    for name, body in server.hub[B32.repo_id].items():
        assert (folder / name).read_bytes() == body
    # the pinned revision, asked of the server HF_ENDPOINT names
    assert ("GET", f"/{B32.repo_id}/resolve/{B32.revision}/open_clip_model.safetensors") in server.requests
    config = yaml.safe_load(result.stdout.split("point to it:\n", 1)[1])
    assert config == {"embeddings": {"weights": str(folder)}}

    from curation.embeddings import ClipEmbedder, EmbeddingConfig

    embedder = ClipEmbedder(EmbeddingConfig(**config["embeddings"]))
    vector = embedder.embed([np.full((40, 60, 3), 90, np.uint8)])
    assert vector.shape == (16,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_a_repository_without_safetensors_gives_its_open_clip_bin(server: Server, tmp_path: Path):
    result = run_fetch(["clip-vit-l-14", str(tmp_path)], server, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "clip-vit-l-14" / "open_clip_pytorch_model.bin").read_bytes() == b"bin"
    assert not (tmp_path / "clip-vit-l-14" / "open_clip_model.safetensors").exists()


def test_a_caption_vlm_is_a_snapshot_without_duplicate_formats(server: Server, tmp_path: Path):
    result = run_fetch(["qwen2.5-vl-7b-instruct", str(tmp_path)], server, tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "Qwen2.5-VL-7B-Instruct"
    assert (folder / "tokenizer" / "vocab.json").exists() and (folder / "model-00001-of-00001.safetensors").exists()
    assert not (folder / "pytorch_model.bin").exists()
    config = yaml.safe_load(result.stdout.split("point to it:\n", 1)[1])
    assert config == {"backend": "vllm", "vllm": {"model_path": str(folder), "family": "qwen2_5_vl"}}
    from captioning.config import CaptionConfig

    assert CaptionConfig.model_validate(config).vllm.model_path == str(folder)


def test_hub_failures_are_one_line_and_exit_2(tmp_path: Path, server: Server):
    result = run_fetch(["internvl2-8b", str(tmp_path)], server, tmp_path)  # the server has no such repository
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "OpenGVLab/InternVL2-8B@main" in lines[0], result.stderr
    result = run_fetch(["clip-vit-b-32", str(tmp_path), "--url", f"{server.url}/x"], server, tmp_path)
    assert result.returncode == 2 and "set HF_ENDPOINT" in result.stderr


def test_a_plain_file_is_kept_only_with_its_sha256(server: Server, tmp_path: Path):
    body = server.files["/heads/head.pth"]
    url = f"{server.url}/heads/head.pth"
    dest = tmp_path / "heads" / "head.pth"
    assert download_checked(url, hashlib.sha256(body).hexdigest(), dest) is True
    assert dest.read_bytes() == body
    asked = len(server.requests)
    assert download_checked(url, hashlib.sha256(body).hexdigest(), dest) is False  # there already: no request
    assert len(server.requests) == asked

    wrong = tmp_path / "wrong" / "head.pth"
    with pytest.raises(FetchError, match="is not the pinned 0000"):
        download_checked(url, "0" * 64, wrong)
    assert list(wrong.parent.iterdir()) == []  # nothing kept, no temp file left
    with pytest.raises(FetchError, match="/heads/missing.pth"):
        download_checked(f"{server.url}/heads/missing.pth", "0" * 64, wrong)


def test_fetch_prints_the_head_config_lines(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    body = server.files["/heads/head.pth"]
    entry = FileWeights("test-head", f"{server.url}/heads/head.pth", hashlib.sha256(body).hexdigest(), "head.pth",
                        "a head", "aesthetic:\n  head: {path}\n  kind: linear\n", "curate config")
    monkeypatch.setitem(weights.REGISTRY, "test-head", entry)
    path, config = weights.fetch("test-head", tmp_path)
    assert path == tmp_path.resolve() / "head.pth" and path.read_bytes() == body
    assert yaml.safe_load(config) == {"aesthetic": {"head": str(path), "kind": "linear"}}


def test_cli_deletes_a_file_whose_sha256_is_not_the_pinned_one(server: Server, tmp_path: Path):
    result = run_fetch(["aesthetic-b32-linear", str(tmp_path), "--url", f"{server.url}/heads/head.pth"], server,
                       tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "sha256" in lines[0] and REGISTRY["aesthetic-b32-linear"].sha256 in lines[0] and "deleted" in lines[0]
    assert [p for p in tmp_path.iterdir() if p.name != "hf"] == []


def test_models_help_is_light():
    probe = ("import sys\nfrom droplet.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print('HEAVY:', sorted(m for m in ('torch', 'huggingface_hub', 'open_clip', 'ray', 'av') "
             "if m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", probe, "models", "fetch", "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert "aesthetic-l14-mlp" in result.stdout and result.stdout.strip().endswith("HEAVY: []")
