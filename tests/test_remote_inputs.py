"""Inputs as fsspec URIs: a list file of http:// URIs served on 127.0.0.1 is probed, analysed and cut
through fsspec file objects (PyAV never sees a local path)."""

from __future__ import annotations

import functools
import http.server
import threading

from conftest import read_table, run_droplet


def test_curate_http_uris(sample_data, ray_head, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(sample_data))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        listing = tmp_path / "uris.txt"
        listing.write_text(f"{base}/synthetic/hd_shots.mp4\n{base}/broken/not_a_video.mp4\n")
        out = tmp_path / "out"
        result = run_droplet(["curate", str(listing), str(out), "--address", ray_head["address"], "--no-progress"],
                             env=ray_head["env"])
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr[-3000:]
    sources = read_table(out, "sources").set_index("source")
    assert sources.loc[f"{base}/broken/not_a_video.mp4", "reason"] == "not_a_video"
    assert sources.loc[f"{base}/synthetic/hd_shots.mp4", "status"] == "ok"
    clips = read_table(out, "clips")
    assert clips.keep.sum() == 2 and set(clips[clips.keep].camera_motion) == {"pan_right", "zoom_in"}
