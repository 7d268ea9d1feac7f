"""OUT/report.html as a clip browser, opened in headless Chromium driven over the DevTools protocol (a websocket,
aiohttp): the page loads with no console errors and fetches nothing from the network, its filters show the clips
they should, a clip's <video> loads and plays, and a screenshot has content.

The OUT is the curated sample data, copied with the columns of the quality stages added (values made up here,
some clips rejected for them), a captions table and a shard index. Without Chromium these tests skip, saying so;
under CI (`CI` set) they fail instead: `.ci/run` installs it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import kill_tree

from curation.report import StageRun, write_report
from shards.captions import CAPTION_SCHEMA
from shards.index import INDEX_SCHEMA

CHROMIUM_NAMES = ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome", "headless_shell")
THRESHOLDS = {"aesthetic_score": 4.0, "exposure": (0.15, 0.85), "text_area": 0.1}
STAGES = [StageRun("technical", True, "sharpness, exposure, black borders"),
          StageRun("aesthetic", True, "aesthetic_score below 4.0 rejected"),
          {"name": "scene tags", "ran": False, "detail": "no weights configured (quality.tags.weights)"},
          StageRun("ocr", True, "text_area above 0.1 rejected"), StageRun("dedup", True, "phash distance <= 4")]


def find_chromium() -> str | None:
    """A Chromium binary: $CHROMIUM, else the first of the usual names on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


# --- the OUT ------------------------------------------------------------------------------------------------

def _unit(clip_id: str, salt: str) -> float:
    """A made-up score in [0, 1) that stays the same for a clip."""
    return (zlib.crc32(f"{salt}:{clip_id}".encode()) % 10_000) / 10_000


def _with_quality_columns(clips: pa.Table) -> pa.Table:
    """clips.parquet as the quality stages would leave it: their columns on the clips that were extracted
    (null on clips rejected before), some kept clips rejected with their reason codes."""
    rows = clips.to_pylist()
    kept_ids = [r["clip_id"] for r in rows if r["keep"]]
    for row in rows:
        cid = row["clip_id"]
        if not row["keep"]:  # what curation measured stays (a real near-duplicate keeps its duplicate_of)
            for name in ("aesthetic_score", "scene_tags", "sharpness", "exposure", "crop", "text_area", "ocr_text",
                         "duplicate_of"):
                row.setdefault(name, None)
            continue
        row.update(aesthetic_score=round(2 + 6 * _unit(cid, "a"), 3), sharpness=round(_unit(cid, "s"), 3),
                   exposure=round(_unit(cid, "e"), 3), crop=[0, 0, row["width"], row["height"]],
                   text_area=round(0.2 * _unit(cid, "t"), 4), duplicate_of=None,
                   scene_tags=[{"tag": "outdoor", "score": 0.8}, {"tag": "abstract", "score": 0.5}])
        row["ocr_text"] = "BREAKING NEWS" if row["text_area"] > THRESHOLDS["text_area"] else None
        reason = ("low_aesthetic" if row["aesthetic_score"] < THRESHOLDS["aesthetic_score"] else
                  "text_overlay" if row["ocr_text"] else None)
        if cid == kept_ids[-1]:
            reason, row["duplicate_of"] = "near_duplicate", kept_ids[0]
        if reason:
            row.update(keep=False, reject_reason=reason)
    extra = [("aesthetic_score", pa.float64()), ("scene_tags", pa.list_(pa.struct([("tag", pa.string()),
                                                                                   ("score", pa.float64())]))),
             ("sharpness", pa.float64()), ("exposure", pa.float64()), ("crop", pa.list_(pa.int64())),
             ("text_area", pa.float64()), ("ocr_text", pa.string()), ("duplicate_of", pa.string())]
    schema = pa.schema([*clips.schema, *(pa.field(n, t) for n, t in extra if n not in clips.schema.names)])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture(scope="module")
def browser_out(curated: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The curated OUT (its clip files linked) with quality columns, captions and a shard index."""
    src = curated["out"]
    out = tmp_path_factory.mktemp("browser") / "out"
    out.mkdir()
    for name in ("sources.parquet", "scenes.parquet", "config.yaml"):
        shutil.copy(src / name, out / name)
    (out / "clips").symlink_to(src / "clips", target_is_directory=True)
    clips = _with_quality_columns(pq.read_table(src / "clips.parquet"))
    pq.write_table(clips, out / "clips.parquet")
    kept = sorted(r["clip_id"] for r in clips.to_pylist() if r["keep"])
    captions = [{"clip_id": cid, "caption": f"The camera moves across shapes ({i}).", "backend": "grounded",
                 "words": 6, "qa_passed": i % 5 != 0, "qa_reason": None if i % 5 else "too_short: 6 words",
                 "created_at": 1.0} for i, cid in enumerate(kept)]
    captions.insert(0, {"clip_id": kept[1], "caption": None, "error": "caption_failed: timeout", "created_at": 0.5})
    captions.append({"clip_id": kept[2], "caption": None, "error": "caption_failed: out of memory", "created_at": 2.0})
    pq.write_table(pa.Table.from_pylist(captions, schema=CAPTION_SCHEMA), out / "captions.parquet")
    (out / "shards").mkdir()
    sharded = [{"clip_id": cid, "shard": f"shard-{i // 10:06d}.tar"} for i, cid in enumerate(kept[:20])]
    pq.write_table(pa.Table.from_pylist(sharded, schema=INDEX_SCHEMA), out / "shards" / "index.parquet")
    write_report(out, stages=STAGES, thresholds=THRESHOLDS)
    return out


def _page_data(out: Path) -> dict:
    page = (out / "report.html").read_text(encoding="utf-8")
    blob = re.search(r"<script type='application/json' id='clip-data'>(.*?)</script>", page, re.S).group(1)
    return json.loads(blob)


# --- what the page holds, read without a browser -----------------------------------------------------------

def test_the_page_has_funnel_stages_histograms_and_classes(browser_out):
    page = (browser_out / "report.html").read_text(encoding="utf-8")
    clips = pq.read_table(browser_out / "clips.parquet")
    kept = int(pc.sum(pc.cast(clips["keep"], pa.int64())).as_py())
    funnel = dict(re.findall(r"<tr class='\w+'><td>(?:&nbsp;&nbsp;− )?([^<]+)</td><td>(\d+)</td>",
                             page.split("id='funnel'")[1].split("</table>")[0]))
    assert int(funnel["clips cut"]) == clips.num_rows and int(funnel["kept"]) == kept
    assert int(funnel["rejected: low_aesthetic"]) == pc.sum(pc.equal(clips["reject_reason"], "low_aesthetic")).as_py()
    near = pc.sum(pc.equal(clips["reject_reason"], "near_duplicate")).as_py()
    assert near >= 2 and int(funnel["rejected: near_duplicate"]) == near  # the sample set's copy + one made here
    # newest caption row per clip: kept[1]'s early error is overtaken, kept[2]'s late error counts
    assert int(funnel["captioned"]) == kept - 1 and int(funnel["sharded"]) == 20
    assert "<td class='skipped'>skipped</td><td>no weights configured (quality.tags.weights)</td>" in page
    assert page.count("<td class='ran'>ran</td>") == 4
    for score, lines in (("aesthetic_score", 1), ("exposure", 2), ("text_area", 1), ("camera_motion_score", 0)):
        hist = page.split(f"data-score='{score}'")[1].split("</svg>")[0]
        assert hist.count("class='threshold'") == lines and "<rect" in hist
    assert "C1: orbit" in page and "C6: edited" in page
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page)  # nothing from the network


def test_cards_carry_scores_captions_shards_and_reasons(browser_out):
    cards = {c["id"]: c for c in _page_data(browser_out)["clips"]}
    clips = {r["clip_id"]: r for r in pq.read_table(browser_out / "clips.parquet").to_pylist()}
    assert set(cards) == set(clips)
    kept = sorted(cid for cid, r in clips.items() if r["keep"])
    dup = next(c for c in cards.values() if c["reason"] == "near_duplicate")
    assert dup["dup"] == clips[dup["id"]]["duplicate_of"] is not None
    assert dup["video"] == f"clips/{dup['id']}.mp4" and dup["thumb"].startswith("data:image/jpeg;base64,")
    assert cards[kept[1]]["caption"] and cards[kept[2]]["caption"] is None
    assert cards[kept[2]]["captionState"].startswith("error: caption_failed: out of memory")
    assert cards[kept[0]]["shard"] == "shard-000000.tar" and cards[kept[-1]]["shard"] is None
    short = next(c for c in cards.values() if c["reason"] == "too_short")
    assert short["video"] is None and short["thumb"] is None and short["scores"]["aesthetic_score"] is None
    assert cards[kept[0]]["scores"]["aesthetic_score"] == clips[kept[0]]["aesthetic_score"]


def test_a_capped_grid_says_so_and_a_rewrite_keeps_the_stage_record(browser_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(browser_out, out, symlinks=True, ignore=shutil.ignore_patterns("report.html"))
    started = time.time()
    write_report(out, max_clips=50)  # as after `droplet caption`: no summary, stages or thresholds given
    seconds = time.time() - started
    page = (out / "report.html").read_text(encoding="utf-8")
    assert len(_page_data(out)["clips"]) == 50
    total = pq.read_metadata(out / "clips.parquet").num_rows
    assert f"Showing 50 of {total} clips (every" in page
    assert "no weights configured (quality.tags.weights)" in page and page.count("class='threshold'") == 4
    assert seconds < 10, f"a rewrite with every thumbnail cached took {seconds:.1f} s"


# --- the page in Chromium -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        message = f"no Chromium found (looked for $CHROMIUM, {', '.join(CHROMIUM_NAMES)}); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


class DevTools:
    """One page of a headless Chromium, spoken to over the DevTools protocol; console errors, exceptions,
    error log entries and every requested URL are collected as they come."""

    def __init__(self, ws) -> None:  # noqa: ANN001 - an aiohttp websocket
        self.ws, self.next_id = ws, 0
        self.pending: dict[int, asyncio.Future] = {}
        self.events: dict[str, asyncio.Event] = {}
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data:
                self.pending.pop(data["id"]).set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            self.events.setdefault(method, asyncio.Event()).set()
            if method == "Runtime.exceptionThrown":
                self.errors.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                self.errors.append(f"console.{params['type']}: {params['args']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                self.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])

    async def call(self, method: str, timeout: float = 30, **params) -> dict:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def js(self, expression: str, timeout: float = 30):  # noqa: ANN201
        """The value of a JavaScript expression (awaited when it is a promise)."""
        result = await self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                                 returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_event(self, method: str, timeout: float = 30) -> None:
        await asyncio.wait_for(self.events.setdefault(method, asyncio.Event()).wait(), timeout)


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float = 60) -> int:
    """The port Chromium chose (--remote-debugging-port=0 writes it to DevToolsActivePort)."""
    deadline = time.monotonic() + timeout
    marker = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if marker.exists() and (lines := marker.read_text().split()):
            return int(lines[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port")


VISIBLE = "[...document.querySelectorAll('.card')].filter((c) => !c.hidden).map((c) => c.dataset.id)"


def _select(element_id: str, value: str) -> str:
    return (f"(() => {{ const e = document.getElementById({json.dumps(element_id)}); e.value = {json.dumps(value)};"
            f" e.dispatchEvent(new Event(e.tagName === 'SELECT' ? 'change' : 'input')); return {VISIBLE}; }})()")


VIDEO = """new Promise((resolve) => {
  const v = document.querySelector('.card[data-id="%s"] video');
  let settled = false;
  const done = (how) => { if (!settled) { settled = true; resolve({how: how, readyState: v.readyState,
    width: v.videoWidth, height: v.videoHeight, duration: v.duration, error: v.error && v.error.code,
    src: v.currentSrc}); } };
  v.addEventListener('loadedmetadata', () => done('loadedmetadata'));
  v.addEventListener('error', () => done('error'));
  setTimeout(() => done('timeout'), 20000);
  v.preload = 'metadata';
  v.load();
})"""
PLAY = """(async () => {
  const v = document.querySelector('.card[data-id="%s"] video');
  await v.play();
  await new Promise((r) => setTimeout(r, 700));
  v.pause();
  return v.currentTime;
})()"""


async def _drive(chromium: str, url: str, profile: Path, ids: dict) -> dict:
    import aiohttp

    proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--no-default-browser-check", "--mute-audio",
                             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port = _devtools_port(profile, proc)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
                target = next(t for t in await reply.json() if t["type"] == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tab = DevTools(ws)
                for domain in ("Runtime", "Log", "Page", "Network"):
                    await tab.call(f"{domain}.enable")
                await tab.call("Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1,
                               mobile=False)
                started = time.monotonic()
                await tab.call("Page.navigate", url=url)
                await tab.wait_event("Page.loadEventFired", timeout=60)
                while await tab.js("document.body && document.body.dataset.ready") != "1":
                    assert time.monotonic() - started < 60, "the page script never finished"
                    await asyncio.sleep(0.1)
                results = {"load_s": time.monotonic() - started, "initial": await tab.js(VISIBLE),
                           "thumbnail_width": await tab.js("document.querySelector('.card img').naturalWidth"),
                           "counter": await tab.js("document.getElementById('shown-count').textContent")}
                results["outcome"] = await tab.js(_select("f-outcome", "low_aesthetic"))
                results["outcome+class"] = await tab.js(_select("f-class", "C2"))
                await tab.js("document.getElementById('f-reset').click()")
                results["rejected"] = await tab.js(_select("f-outcome", "rejected (any)"))
                await tab.js("document.getElementById('f-reset').click()")
                results["label"] = await tab.js(_select("f-label", ids["label"]))
                await tab.js("document.getElementById('f-reset').click()")
                results["aesthetic_min"] = await tab.js(_select("f-min-aesthetic_score", "500"))
                results["aesthetic_range"] = await tab.js(
                    "(() => { const e = document.getElementById('f-min-aesthetic_score');"
                    " return [Number(e.min), Number(e.max)]; })()")
                await tab.js("document.getElementById('f-reset').click()")
                results["after_reset"] = await tab.js(VISIBLE)
                results["video"] = await tab.js(VIDEO % ids["video"], timeout=40)
                results["played_to"] = await tab.js(PLAY % ids["video"], timeout=30)
                await tab.js("window.scrollTo(0, 0)")
                shot = await tab.call("Page.captureScreenshot", format="png")
                results["screenshot"] = base64.b64decode(shot["data"])
                await asyncio.sleep(0.3)  # late console messages
                results["errors"], results["requests"] = list(tab.errors), list(tab.requests)
                with contextlib.suppress(Exception):  # the browser may hang up before it answers
                    await tab.call("Browser.close", timeout=5)
                tab.reader.cancel()
                return results
    finally:
        try:  # closed, Chromium ends its own processes; else they are ended here
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid, timeout=5)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def browsed(browser_out: Path, chromium: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The report opened in headless Chromium, its filters worked, a video loaded, a screenshot taken."""
    clips = pq.read_table(browser_out / "clips.parquet").to_pylist()
    kept = sorted((c for c in clips if c["keep"]), key=lambda c: c["clip_id"])
    ids = {"video": kept[0]["clip_id"], "label": kept[0]["camera_motion"]}
    url = (browser_out / "report.html").as_uri()
    results = asyncio.run(_drive(chromium, url, tmp_path_factory.mktemp("chromium-profile"), ids))
    return {**results, "clips": clips, "ids": ids, "video_clip": kept[0]}


def test_the_page_loads_without_errors_or_network(browsed):
    assert browsed["errors"] == []
    assert [u for u in browsed["requests"] if not u.startswith(("file:", "data:"))] == []
    assert browsed["thumbnail_width"] > 0  # a strip decoded
    n = len(browsed["clips"])
    assert len(browsed["initial"]) == n and browsed["counter"] == f"{n} of {n} shown"


def test_filters_change_what_is_shown(browsed):
    clips = browsed["clips"]
    ids = lambda keep: sorted(c["clip_id"] for c in clips if keep(c))  # noqa: E731
    assert sorted(browsed["outcome"]) == ids(lambda c: c["reject_reason"] == "low_aesthetic") != []
    assert sorted(browsed["outcome+class"]) == ids(
        lambda c: c["reject_reason"] == "low_aesthetic" and c["paper_class"] == "C2")
    assert sorted(browsed["rejected"]) == ids(lambda c: not c["keep"])
    assert sorted(browsed["label"]) == ids(lambda c: c["camera_motion"] == browsed["ids"]["label"])
    scores = [c["aesthetic_score"] for c in clips if c["aesthetic_score"] is not None]
    middle = (min(scores) + max(scores)) / 2  # the slider at 500 of 0..1000
    assert sorted(browsed["aesthetic_min"]) == ids(
        lambda c: c["aesthetic_score"] is not None and c["aesthetic_score"] >= middle)
    assert 0 < len(browsed["aesthetic_min"]) < len(scores)
    assert len(browsed["after_reset"]) == len(clips)


def test_a_clip_video_loads_and_plays(browsed):
    video, clip = browsed["video"], browsed["video_clip"]
    assert video["how"] == "loadedmetadata" and video["readyState"] >= 1, video
    assert video["src"].endswith(f"/clips/{clip['clip_id']}.mp4")
    assert (video["width"], video["height"]) == (clip["width"], clip["height"])
    assert video["duration"] == pytest.approx(clip["num_frames"] / clip["fps"], abs=0.1)
    assert browsed["played_to"] > 0  # H.264 decodes: the clip played


def test_a_screenshot_has_content(browsed):
    png = browsed["screenshot"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (1000, 1280) and float(image.std()) > 10
