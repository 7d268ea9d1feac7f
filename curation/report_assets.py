"""The report page's style sheet and the clip browser's script: plain CSS and JavaScript inlined into
report.html, so the page needs nothing from the network (the clip videos are relative links into OUT)."""

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}
.note{color:#555;font-size:13px}.ran{color:#2a7d2a}.skipped{color:#a05a00}
.bar{display:inline-block;height:12px;vertical-align:middle}
.bar.total,.bar.kept{background:#4f81bd}.bar.rejected{background:#c0504d}.bar.later{background:#9bbb59}
.bar.r{background:#bbb}
.hists{display:flex;flex-wrap:wrap;gap:12px}.hist{border:1px solid #eee;padding:4px}
.filters{display:flex;flex-wrap:wrap;gap:10px 18px;align-items:end;background:#f6f6f6;padding:8px;font-size:13px;
position:sticky;top:0;z-index:2}
.filters label{display:flex;flex-direction:column;gap:2px}.filters input[type=range]{width:110px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:10px;margin-top:10px}
.card{border:1px solid #ccc;border-radius:4px;padding:6px;font-size:12px;overflow:hidden}
.card.rejected{background:#fbf1f0}.card[hidden]{display:none}
.card img{width:100%;height:auto;display:block;background:#eee}
.card video{width:100%;max-height:150px;background:#000;margin-top:4px}
.card .id{font-family:monospace;font-size:11px;color:#555;word-break:break-all}
.card .tag{display:inline-block;background:#e4ecf7;border-radius:3px;padding:0 4px;margin:1px}
.card .reason{color:#b03a2e;font-weight:bold}.card .keep{color:#2a7d2a;font-weight:bold}
.card .caption{margin-top:4px;font-style:italic}.card dl{display:grid;grid-template-columns:auto 1fr;gap:0 8px;
margin:4px 0}.card dt{color:#666}.card dd{margin:0}
"""

JS = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("clip-data").textContent);
  const grid = document.getElementById("grid");
  const counter = document.getElementById("shown-count");
  const fmt = (v) => (v === null || v === undefined) ? "–" : (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const outcome = (c) => c.keep ? "kept" : (c.reason || "rejected");

  function card(c) {
    const d = el("div", c.keep ? "card" : "card rejected");
    d.dataset.id = c.id;
    if (c.thumb) {
      const img = el("img");
      img.src = c.thumb;
      img.alt = "frames of " + c.id;
      d.appendChild(img);
    }
    const head = el("div");
    head.appendChild(el("span", "tag", c.label));
    head.appendChild(el("span", "tag", c.cls));
    head.appendChild(el("span", c.keep ? "keep" : "reason", c.keep ? "kept" : (c.reason || "rejected")));
    head.appendChild(el("span", null, " " + fmt(c.dur) + " s"));
    d.appendChild(head);
    d.appendChild(el("div", "id", c.id));
    if (c.message) d.appendChild(el("div", "note", c.message));
    const dl = el("dl");
    const row = (k, v) => { dl.appendChild(el("dt", null, k)); dl.appendChild(el("dd", null, v)); };
    for (const s of data.scores) {
      const v = c.scores[s.name];
      if (v !== null && v !== undefined) row(s.name, fmt(v));
    }
    if (c.tags && c.tags.length) row("scene tags", c.tags.map((t) => t.tag + " " + fmt(t.score)).join(", "));
    if (c.timeline && c.timeline.length > 1) {
      row("timeline", c.timeline.map((t) => t.label + " " + fmt(t.start_s) + "–" + fmt(t.end_s)).join(", "));
    }
    if (c.crop) row("crop", c.crop.join(", "));
    if (c.ocr) row("text", c.ocr);
    if (c.dup) row("duplicate of", c.dup);
    if (c.shard) row("shard", c.shard);
    if (c.captionState) row("caption", c.captionState);
    d.appendChild(dl);
    if (c.caption) d.appendChild(el("div", "caption", c.caption));
    if (c.video) {
      const v = el("video");
      v.controls = true;
      v.muted = true;
      v.preload = "none";
      v.src = c.video;
      d.appendChild(v);
    } else {
      d.appendChild(el("div", "note", c.keep ? "clip file missing" : "no clip file (rejected before extraction)"));
    }
    return d;
  }

  const cards = data.clips.map((c) => { const d = card(c); grid.appendChild(d); return [c, d]; });

  function options(select, values) {
    for (const [value, n] of values) {
      const o = el("option", null, value + " (" + n + ")");
      o.value = value;
      select.appendChild(o);
    }
  }
  function tally(key) {
    const m = new Map();
    for (const c of data.clips) m.set(key(c), (m.get(key(c)) || 0) + 1);
    return [...m.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1);
  }
  const fLabel = document.getElementById("f-label");
  const fClass = document.getElementById("f-class");
  const fOutcome = document.getElementById("f-outcome");
  options(fLabel, tally((c) => c.label));
  options(fClass, tally((c) => c.cls));
  const rejected = data.clips.filter((c) => !c.keep).length;
  options(fOutcome, [...tally(outcome).filter(([k]) => k === "kept"), ["rejected (any)", rejected],
                     ...tally(outcome).filter(([k]) => k !== "kept")]);

  const ranges = [];
  const box = document.getElementById("score-filters");
  for (const s of data.scores) {
    if (!(s.max >= s.min)) continue;
    const lab = el("label", null, s.name + " ");
    const shown = el("span", "note");
    const mk = (which, value) => {
      const r = el("input");
      r.type = "range"; r.min = 0; r.max = 1000; r.value = value; r.id = "f-" + which + "-" + s.name;
      r.addEventListener("input", apply);
      return r;
    };
    const lo = mk("min", 0), hi = mk("max", 1000);
    lab.appendChild(shown); lab.appendChild(lo); lab.appendChild(hi);
    box.appendChild(lab);
    ranges.push({ name: s.name, min: s.min, max: s.max, lo: lo, hi: hi, shown: shown });
  }
  const at = (r, input) => {
    const k = Number(input.value);
    return k <= 0 ? r.min : k >= 1000 ? r.max : r.min + (r.max - r.min) * k / 1000;
  };

  function apply() {
    let n = 0;
    const want = { label: fLabel.value, cls: fClass.value, outcome: fOutcome.value };
    for (const r of ranges) r.shown.textContent = fmt(at(r, r.lo)) + " – " + fmt(at(r, r.hi));
    for (const [c, d] of cards) {
      let ok = (!want.label || c.label === want.label) && (!want.cls || c.cls === want.cls);
      if (ok && want.outcome) ok = want.outcome === "rejected (any)" ? !c.keep : outcome(c) === want.outcome;
      for (const r of ranges) {
        if (!ok) break;
        if (r.lo.value === "0" && r.hi.value === "1000") continue;  // full range: clips without a value pass too
        const v = c.scores[r.name];
        ok = v !== null && v !== undefined && v >= at(r, r.lo) && v <= at(r, r.hi);
      }
      d.hidden = !ok;
      if (ok) n++;
    }
    counter.textContent = n + " of " + data.clips.length + " shown";
  }
  for (const f of [fLabel, fClass, fOutcome]) f.addEventListener("change", apply);
  document.getElementById("f-reset").addEventListener("click", () => {
    fLabel.value = ""; fClass.value = ""; fOutcome.value = "";
    for (const r of ranges) { r.lo.value = 0; r.hi.value = 1000; }
    apply();
  });
  apply();
  document.body.dataset.ready = "1";
})();
"""
