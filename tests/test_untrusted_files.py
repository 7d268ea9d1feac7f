"""No pickle (or other code-running format) is read from a file a user could hand in.

Every first-party package is parsed with `ast` and each call that can run code while reading data is reported:
pickle / cloudpickle / dill / joblib / marshal loads, `torch.load` without `weights_only=True`, `torch.jit.load`,
`yaml.load` without a safe loader, `np.load` with `allow_pickle`, `pandas.read_pickle`, `shell=True`, `os.system`,
`eval` / `exec`, and DeepSpeed's `engine.load_checkpoint` (it unpickles its own files). `ALLOWED` names the few
that stay, with why; an entry that no longer matches anything fails too, so the list cannot rot.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_PACKAGES = {"tests", "bench", "demo", "docs", "configs"}
KNOWN_PACKAGES = {"curation", "captioning", "shards", "model", "train", "runtime", "droplet"}

# (file, enclosing function, kind) -> why it is allowed
ALLOWED: dict[tuple[str, str, str], str] = {
    ("curation/rows.py", "unwrap", "pickle.loads"):
        "a Ray Data row's bytes, pickled by `wrap` in this job's own processes; rows are never read from a file "
        "(the journal under OUT/_work/ is JSON)",
    ("curation/stages.py", "analyze_stage", "pickle.loads"):
        "the bytes `_analyze_in_child` pickled in the forkserver child this stage started, sent over a pipe",
    ("train/checkpoint.py", "load_checkpoint", "deepspeed.load_checkpoint"):
        "resuming the run's own DeepSpeed checkpoint (DeepSpeed reads it with weights_only=False); the named "
        "exception: only ever a checkpoint folder this trainer wrote",
}

PICKLE_CALLS = {f"{m}.{f}" for m in ("pickle", "cloudpickle", "dill", "_pickle")
                for f in ("load", "loads", "Unpickler")}
ALWAYS_FORBIDDEN = PICKLE_CALLS | {
    "joblib.load", "marshal.load", "marshal.loads", "pandas.read_pickle", "torch.jit.load", "yaml.unsafe_load",
    "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all", "os.system", "os.popen", "eval", "exec",
    "builtins.eval", "builtins.exec", "numpy.lib.format.read_array",
}
SAFE_YAML_LOADERS = {"yaml.SafeLoader", "yaml.CSafeLoader", "yaml.BaseLoader", "yaml.CBaseLoader"}


@dataclass(frozen=True)
class Finding:
    file: str
    function: str
    kind: str
    line: int

    def key(self) -> tuple[str, str, str]:
        return (self.file, self.function, self.kind)


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it imports (`np` -> numpy, `loads` -> pickle.loads), from imports anywhere in the file."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


class _Scanner(ast.NodeVisitor):
    def __init__(self, file: str, aliases: dict[str, str]) -> None:
        self.file, self.aliases = file, aliases
        self.scope: list[str] = []
        self.findings: list[Finding] = []

    def _resolve(self, node: ast.AST) -> str | None:
        dotted = _dotted(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        head = self.aliases.get(head, head)
        full = f"{head}.{rest}" if rest else head
        return full.replace("np.", "numpy.", 1) if full.startswith("np.") else full

    def _report(self, node: ast.AST, kind: str) -> None:
        self.findings.append(Finding(self.file, ".".join(self.scope) or "<module>", kind, node.lineno))

    def _scoped(self, node: ast.AST) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Call(self, node: ast.Call) -> None:
        name = self._resolve(node.func)
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        unpacked = any(k.arg is None for k in node.keywords)  # **kwargs: nothing can be proven
        if name in ALWAYS_FORBIDDEN:
            self._report(node, name)
        elif name == "torch.load" and (unpacked or not _is_const(kw.get("weights_only"), True)):
            self._report(node, "torch.load without weights_only=True")
        elif name in ("yaml.load", "yaml.load_all"):
            loader = kw.get("Loader", node.args[1] if len(node.args) > 1 else None)
            if loader is None or self._resolve(loader) not in SAFE_YAML_LOADERS:
                self._report(node, f"{name} without a safe loader")
        elif name == "numpy.load" and (unpacked or not (kw.get("allow_pickle") is None
                                                        or _is_const(kw.get("allow_pickle"), False))):
            self._report(node, "numpy.load with allow_pickle")
        elif isinstance(node.func, ast.Attribute) and node.func.attr == "load_checkpoint":
            self._report(node, "deepspeed.load_checkpoint")
        if "shell" in kw and not _is_const(kw["shell"], False):
            self._report(node, "shell=True")
        self.generic_visit(node)


def scan_source(source: str, file: str = "<snippet>") -> list[Finding]:
    tree = ast.parse(source, filename=file)
    scanner = _Scanner(file, _aliases(tree))
    scanner.visit(tree)
    return scanner.findings


def first_party_packages() -> list[Path]:
    return sorted(p for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()
                  and p.name not in NOT_PACKAGES and not p.name.startswith("."))


def scan_packages() -> list[Finding]:
    findings = []
    for package in first_party_packages():
        for path in sorted(package.rglob("*.py")):
            file = path.relative_to(ROOT).as_posix()
            findings.extend(scan_source(path.read_text(encoding="utf-8"), file))
    return findings


def test_every_first_party_package_is_scanned() -> None:
    names = {p.name for p in first_party_packages()}
    assert KNOWN_PACKAGES <= names, KNOWN_PACKAGES - names


def test_no_code_running_reads_but_the_allowed_ones() -> None:
    findings = scan_packages()
    unexpected = [f for f in findings if f.key() not in ALLOWED]
    assert not unexpected, "\n".join(f"{f.file}:{f.line} in {f.function}: {f.kind}" for f in unexpected)
    stale = set(ALLOWED) - {f.key() for f in findings}
    assert not stale, f"allow-list entries that match nothing any more (remove them): {sorted(stale)}"


SNIPPET = '''
import pickle, marshal, subprocess, os, yaml, torch, cloudpickle
import numpy as np
import pickle as pk
from pickle import loads as pl
from yaml import SafeLoader

def bad(path, data, engine, kwargs):
    pickle.load(open(path, "rb"))
    pk.loads(data)
    pl(data)
    pickle.Unpickler(open(path, "rb")).load()
    cloudpickle.load(open(path, "rb"))
    torch.load(path)
    torch.load(path, weights_only=False)
    torch.load(path, **kwargs)
    torch.jit.load(path)
    subprocess.run("ls", shell=True)
    os.system("ls")
    yaml.load(data)
    yaml.load(data, Loader=yaml.Loader)
    yaml.unsafe_load(data)
    np.load(path, allow_pickle=True)
    marshal.loads(data)
    eval("1 + 1")
    exec("x = 1")
    engine.load_checkpoint(path)

def fine(path, data, model):
    torch.load(path, map_location="cpu", weights_only=True)
    yaml.safe_load(data)
    yaml.load(data, Loader=SafeLoader)
    np.load(path)
    np.load(path, allow_pickle=False)
    subprocess.run(["ls"], shell=False)
    pickle.dumps(data)
    model.eval()
'''


def test_the_scanner_catches_each_forbidden_read() -> None:
    findings = scan_source(SNIPPET)
    assert all(f.function == "bad" for f in findings), [f for f in findings if f.function != "bad"]
    kinds = [f.kind for f in findings]
    assert kinds == [
        "pickle.load", "pickle.loads", "pickle.loads", "pickle.Unpickler", "cloudpickle.load",
        "torch.load without weights_only=True", "torch.load without weights_only=True",
        "torch.load without weights_only=True", "torch.jit.load", "shell=True", "os.system",
        "yaml.load without a safe loader", "yaml.load without a safe loader", "yaml.unsafe_load",
        "numpy.load with allow_pickle", "marshal.loads", "eval", "exec", "deepspeed.load_checkpoint",
    ], kinds
    lines = [f.line for f in findings]
    assert lines == sorted(lines) and len(set(lines)) == len(lines)  # one finding per bad line, none elsewhere


def test_an_allowed_kind_elsewhere_is_still_caught() -> None:
    """The allow-list is per function: the same call in another function of an allowed file is reported."""
    findings = scan_source("import pickle\ndef other(b):\n    return pickle.loads(b)\n", "curation/rows.py")
    assert [f.key() for f in findings] == [("curation/rows.py", "other", "pickle.loads")]
    assert all(f.key() not in ALLOWED for f in findings)


# -- the trainer-state file: tensors and plain values only ---------------------------------------------------------
class _RunsCode:
    marker = ""  # the file its unpickling would create

    def __reduce__(self):  # noqa: ANN204 - what a hostile pickle does: call anything on load
        return (Path.touch, (Path(_RunsCode.marker),))


def test_trainer_state_round_trips_with_weights_only(tmp_path: Path) -> None:
    """The RNG states written by `rng_state` read back with weights_only=True and restore the same draws."""
    import random

    import numpy as np
    import torch

    from train.checkpoint import read_rank_state, rng_state, set_rng_state

    generator = torch.Generator().manual_seed(7)
    np.random.seed(3)
    random.seed(5)
    path = tmp_path / "trainer_state_rank00000.pt"
    torch.save({"step": 3, "rng": rng_state(generator), "cursor": {"epoch": 1, "consumed": [2, 1]},
                "ema": {"decay": 0.5, "shadow": {"w": torch.ones(2)}}}, path)
    expected = (random.random(), np.random.rand(), torch.rand(1, generator=generator).item())
    np.random.seed(0)
    random.seed(0)
    state = read_rank_state(path)
    set_rng_state(state["rng"], generator)
    assert (random.random(), np.random.rand(), torch.rand(1, generator=generator).item()) == expected
    assert state["cursor"] == {"epoch": 1, "consumed": [2, 1]} and torch.equal(state["ema"]["shadow"]["w"],
                                                                                torch.ones(2))


def test_trainer_state_of_the_older_layout_still_reads(tmp_path: Path) -> None:
    """A file from before the NumPy state became a list (an ndarray in it) reads and restores."""
    import numpy as np
    import torch

    from train.checkpoint import read_rank_state

    np.random.seed(11)
    path = tmp_path / "old.pt"
    torch.save({"numpy": np.random.get_state()}, path)
    expected = np.random.rand()
    np.random.set_state(tuple(read_rank_state(path)["numpy"]))
    assert np.random.rand() == expected


def test_a_trainer_state_that_would_run_code_is_refused(tmp_path: Path) -> None:
    import pickle

    import pytest
    import torch

    from train.checkpoint import read_rank_state

    _RunsCode.marker = str(tmp_path / "ran")
    path = tmp_path / "trainer_state_rank00000.pt"
    torch.save({"step": 1, "payload": _RunsCode()}, path)
    with pytest.raises(pickle.UnpicklingError):
        read_rank_state(path)
    assert not (tmp_path / "ran").exists()


# -- model folders: safetensors only -------------------------------------------------------------------------------
def test_vae_and_text_encoder_folders_with_pickled_weights_are_refused(tmp_path: Path) -> None:
    """A VAE or T5 folder that holds only a pickled .bin does not load (and a safetensors one does)."""
    import pytest
    import torch
    from diffusers import AutoencoderKLCogVideoX
    from transformers import T5Config, T5EncoderModel

    from model.presets import preset
    from model.text import TextEncoder
    from model.tiny import make_tokenizer
    from model.vae import load_vae

    config = preset("tiny")
    vae = AutoencoderKLCogVideoX(**config["vae"])
    vae.save_pretrained(tmp_path / "vae_bin", safe_serialization=False)
    assert (tmp_path / "vae_bin" / "diffusion_pytorch_model.bin").exists()
    with pytest.raises(OSError, match="safetensors"):
        load_vae(tmp_path / "vae_bin")

    t5 = T5EncoderModel(T5Config(**config["text_encoder"]))
    t5.save_pretrained(tmp_path / "t5")
    make_tokenizer(config["text_encoder"]["vocab_size"]).save_pretrained(tmp_path / "tokenizer")
    assert TextEncoder.from_folders(tmp_path / "t5", tmp_path / "tokenizer").encoder is not None
    (tmp_path / "t5" / "model.safetensors").unlink()
    torch.save(t5.state_dict(), tmp_path / "t5" / "pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        TextEncoder.from_folders(tmp_path / "t5", tmp_path / "tokenizer")


def test_vllm_reads_safetensors_only(tmp_path: Path) -> None:
    from captioning.config import CaptionConfig
    from captioning.vllm_backend import engine_kwargs

    assert engine_kwargs(CaptionConfig(backend="vllm"), str(tmp_path))["load_format"] == "safetensors"
