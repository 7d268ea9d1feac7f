"""docs/data-contract.md agrees with the code that declares the contract: every schema column (in order, with
its type), every camera label and reason code (and which ones today's code emits), every OUT path; its
sampling example runs as a doctest."""

from __future__ import annotations

import ast
import doctest
import re

import pyarrow as pa
import pytest
from conftest import REPO

from curation import camera, reasons
from shards import index, labels, layout, schema, writer

DOC = REPO / "docs" / "data-contract.md"
TEXT = DOC.read_text(encoding="utf-8")
CONTRACT_REASONS = (  # the codes the contract names (more may be added)
    "empty_file", "not_a_video", "no_video_stream", "truncated", "decode_error", "timeout", "too_short", "too_long",
    "too_small", "too_large", "duplicate", "static", "edited", "low_aesthetic", "low_quality", "text_overlay",
    "near_duplicate", "not_selected", "caption_failed",
)


def section(heading: str) -> str:
    """The text under the heading that contains `heading`, up to the next heading."""
    lines = TEXT.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("#") and heading in line]
    assert len(starts) == 1, f"{heading!r}: {len(starts)} headings"
    body = []
    for line in lines[starts[0] + 1:]:
        if line.startswith("#"):
            break
        body.append(line)
    return "\n".join(body)


def table(heading: str) -> list[list[str]]:
    """Rows of the markdown table under `heading` (header and rule left out), as lists of cells."""
    rows = [line.strip().strip("|").split("|") for line in section(heading).splitlines() if line.startswith("|")]
    assert len(rows) > 2, f"no table under {heading!r}"
    return [[cell.strip() for cell in row] for row in rows[2:]]


def name(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"first cell {cell!r} is not one `name`"
    return match.group(1)


def type_name(dtype: pa.DataType) -> str:
    if pa.types.is_list(dtype):
        return "list of " + ("struct" if pa.types.is_struct(dtype.value_type) else type_name(dtype.value_type))
    return {"bool": "bool", "string": "string", "int64": "int64", "double": "float64"}[str(dtype)]


@pytest.mark.parametrize(("heading", "fields"), [
    ("Columns of `sources.parquet`", schema.SOURCE_SCHEMA),
    ("Columns of `scenes.parquet`", schema.SCENE_SCHEMA),
    ("Columns of `clips.parquet`", schema.CLIP_SCHEMA),
    ("Fields of a `camera_timeline` segment", list(schema.TIMELINE_SEGMENT)),
    ("Columns of `captions.parquet`", schema.CAPTION_SCHEMA),
    ("Columns of `index.parquet`", index.INDEX_SCHEMA),
])
def test_every_column_is_documented_in_order_with_its_type(heading: str, fields) -> None:
    documented = [(name(row[0]), row[1]) for row in table(heading)]
    assert documented == [(f.name, type_name(f.type)) for f in fields]


def test_the_shard_json_keys_are_documented() -> None:
    members = {name(row[0]): row[1] for row in table("Tar members")}
    assert set(members) == {"<clip_id>.json", "<clip_id>.mp4", "<clip_id>.txt"}
    for key in writer.CAPTION_METADATA:
        assert f"`{key}`" in members["<clip_id>.json"]
    manifest = section("`manifest.json`")
    assert f'"version": {index.MANIFEST_VERSION}' in manifest
    for key in ("name", "samples", "bytes", "sha256", "total_samples", "total_bytes"):
        assert f'"{key}"' in manifest


def _label_strings(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in labels.CAMERA_LABELS}


def test_every_camera_label_is_documented_and_emitted_with_its_paper_class() -> None:
    rows = {name(row[0]): row for row in table("Camera-motion labels")}
    assert set(rows) == set(labels.CAMERA_LABELS)
    assert {row[-1] for row in rows.values()} == {"emitted"}
    assert {label: row[-2] for label, row in rows.items()} == labels.PAPER_CLASS
    emitted = {label for label, row in rows.items() if row[-1] == "emitted"}
    assert emitted == _label_strings(REPO / "curation" / "camera.py")  # the labels the analysis can write
    assert emitted >= {v for pair in camera.LABELS.values() for v in pair}
    paper = {row[0]: row[1] for row in table("Paper classes")}
    for label, row in rows.items():
        assert row[-2] in paper and (f"`{label}`" in paper[row[-2]] or f"`{label.split('_')[0]}_*`" in paper[row[-2]])


def _reasons_used(folder) -> set[str]:
    used = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "reasons":
                used.add(getattr(reasons, node.attr, None))
    return used - {None}


def test_every_reason_code_is_documented_and_marked_as_emitted_or_not() -> None:
    from captioning.runner import CAPTION_FAILED

    rows = {name(row[0]): row for row in table("Reason codes")}
    assert set(rows) == set(reasons.ALL) | {CAPTION_FAILED} | set(CONTRACT_REASONS)
    emitted = {code for code, row in rows.items() if row[-1] == "emitted"}
    assert {row[-1] for row in rows.values()} <= {"emitted", "not yet"}
    assert emitted == _reasons_used(REPO / "curation") | {CAPTION_FAILED}


def test_every_caption_qa_code_is_documented() -> None:
    source = (REPO / "captioning" / "qa.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'QAResult\(False, f?"([a-z_]+):', source))
    assert codes and {name(row[0]) for row in table("Caption QA codes")} == codes


def test_every_out_path_is_documented() -> None:
    from curation.store import OutStore

    tree = section("The OUT folder")
    out = layout.OutLayout("OUT")
    paths = [v for k, v in vars(out).items() if k != "root"]
    assert len(paths) >= 10
    for path in paths:
        rel = path.relative_to(out.root).as_posix()
        assert f"  {rel}" in tree or f"  {rel}/" in tree or f"  {path.name}/" in tree, rel
    assert "  clips/<clip_id>.mp4" in tree and f"  shards/{index.shard_name(0)}" in tree
    for name_ in (index.INDEX_NAME, index.MANIFEST_NAME, writer.LOCK_NAME):
        assert f"  shards/{name_}" in tree
    store = OutStore("OUT")
    for path in (store.probe_path("<key>"), store.plan_path("<key>"), store.clip_result_path("<clip_id>"),
                 store.commit_path("<key>")):
        assert f"  {path.parent.name}/{path.name}" in tree, path


def test_the_sampling_example_runs() -> None:
    result = doctest.testfile(str(DOC), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


def test_the_docs_are_self_contained() -> None:
    """Users get the repo, not the project's planning files."""
    for path in (REPO / "docs").rglob("*.md"):
        assert "SPEC" not in path.read_text(encoding="utf-8"), path
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/data-contract.md" in readme and "SPEC.md" not in readme
