// The hdrjax page: uploads, the queue, the SDR views drawn from float pixels, the HDR image, downloads.
// The server does the work (hdrjax.serve); this script only asks and draws.
"use strict";

const POLL_MS = 700;
const DOWNLOAD_LABELS = {
  uhdr: "Ultra HDR (.jpg)", exr: "EXR (float, linear)", avif: "AVIF PQ (10-bit)",
  "avif-hlg": "AVIF HLG (10-bit)", brackets: "Brackets (.zip of JPEGs)",
};
const items = [];        // {id, name, el, data, localError}, in upload order
let selected = null;     // the item whose result is shown
let views = null;        // {id, width, height, before: Float32Array, after: Float32Array}
let drawPending = false;

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ uploads and the queue

function upload(file) {
  const item = {id: null, name: file.name, el: document.createElement("li"), data: null, localError: null};
  items.push(item);
  $("jobs").appendChild(item.el);
  item.el.addEventListener("click", () => select(item));
  renderItem(item, "uploading…", 0);
  fetch("/api/jobs", {method: "POST", headers: {"X-Filename": encodeURIComponent(file.name)}, body: file})
    .then(async (r) => {
      const body = await r.json().catch(() => ({error: `${file.name}: the server answered ${r.status}`}));
      if (!r.ok) { item.localError = body.error; renderItem(item); return; }
      item.id = body.id; item.data = body; renderItem(item);
    })
    .catch(() => { item.localError = `${file.name}: the upload did not reach the server`; renderItem(item); });
}

function stateOf(item) {
  if (item.localError) return "failed";
  return item.data ? item.data.state : "uploading";
}

function renderItem(item, text, progress) {
  const d = item.data, state = stateOf(item);
  item.el.dataset.state = state;
  item.el.classList.toggle("selected", item === selected);
  let status = text || "";
  if (item.localError) status = item.localError;
  else if (d) {
    if (state === "queued") status = d.position ? `queued, ${d.position} ahead` : "queued, next";
    else if (state === "running" && d.cancel_requested) status = "cancelling after this step…";
    else if (state === "running") status = d.phase + (d.estimated ? " (progress estimated)" : "");
    else if (state === "done") status = `done in ${d.stats.total_seconds.toFixed(1)} s`;
    else if (state === "failed") status = d.error;
    else status = state;
    progress = d.progress;
  }
  item.el.innerHTML = "";
  const name = document.createElement("div"); name.className = "name"; name.textContent = item.name;
  if (item.id && (state === "queued" || state === "running" || state === "done")) {
    const b = document.createElement("button");
    b.textContent = state === "done" ? "delete" : "cancel";
    b.addEventListener("click", (e) => { e.stopPropagation(); cancel(item); });
    name.prepend(b);
  }
  const s = document.createElement("div"); s.className = "status"; s.textContent = status;
  item.el.append(name, s);
  if (state === "queued" || state === "running" || state === "uploading") {
    const p = document.createElement("progress"); p.max = 1; p.value = progress || 0; item.el.append(p);
  }
}

function cancel(item) {
  fetch(`/api/jobs/${item.id}`, {method: "DELETE"}).then((r) => r.json()).then((d) => {
    if (d.state) { item.data = d; renderItem(item); }
    if (item === selected) { selected = null; views = null; $("result").hidden = true; }
  });
}

async function poll() {
  for (const item of items) {
    const state = stateOf(item);
    const waiting = state === "queued" || state === "running";
    const filesPending = state === "done" && item === selected && !allFiles(item);
    if (!item.id || !(waiting || filesPending)) continue;
    try {
      const r = await fetch(`/api/jobs/${item.id}`);
      if (r.ok) item.data = await r.json();
      else item.localError = (await r.json()).error;
    } catch (e) { continue; }
    renderItem(item);
    if (!selected && item.data && item.data.view) select(item);
    if (item === selected) showResult();
  }
  setTimeout(poll, POLL_MS);
}

function allFiles(item) { return item.data && Object.keys(item.data.files).length === Object.keys(DOWNLOAD_LABELS).length; }

// ------------------------------------------------------------------ the result view

function select(item) {
  if (!item.data || !item.data.view) return;
  selected = item;
  items.forEach((i) => i.el.classList.toggle("selected", i === item));
  showResult();
}

function fmtStops(x) { return `${x.toFixed(1)} stops`; }
function fmtBytes(n) { return n < 2 ** 20 ? `${Math.max(1, Math.round(n / 1024))} KiB` : `${(n / 2 ** 20).toFixed(1)} MiB`; }

function showResult() {
  const d = selected.data;
  $("result").hidden = false;
  $("result-name").textContent = `${selected.name} — ${d.width}×${d.height}`;
  const st = d.stats;
  const rows = [
    ["Dynamic range, photo", fmtStops(st.dynamic_range_before)],
    ["Dynamic range, HDR", fmtStops(st.dynamic_range_after)],
    ["Headroom over white", `+${st.headroom_stops.toFixed(1)} stops`],
    ["Reconstructed (α > 0)", st.reconstructed_fraction == null ? "–" : `${(100 * st.reconstructed_fraction).toFixed(1)} % of pixels`],
    ["Time", `${st.model_seconds.toFixed(1)} s` + (st.total_seconds ? ` (${st.total_seconds.toFixed(1)} s with files)` : "")],
  ];
  // A grid of one column per figure: the labels in the first row, the values under them.
  const stats = $("stats");
  stats.style.gridTemplateColumns = `repeat(${rows.length}, auto)`;
  stats.innerHTML = "";
  for (const [k] of rows) { const dt = document.createElement("dt"); dt.textContent = k; stats.append(dt); }
  for (const [, v] of rows) { const dd = document.createElement("dd"); dd.textContent = v; stats.append(dd); }
  const files = d.files;
  const list = $("downloads");
  list.innerHTML = "";
  for (const [kind, label] of Object.entries(DOWNLOAD_LABELS)) {
    if (!files[kind]) continue;
    const li = document.createElement("li"), a = document.createElement("a");
    a.id = `dl-${kind}`; a.href = `/api/jobs/${selected.id}/files/${kind}`; a.setAttribute("download", "");
    a.textContent = `${label}, ${fmtBytes(files[kind].bytes)}`;
    li.append(a); list.append(li);
  }
  const img = $("hdr-img"), src = `/api/jobs/${selected.id}/files/uhdr`;
  if (files.uhdr && img.getAttribute("src") !== src) {
    img.src = src;
    $("hdr-note").textContent = "The Ultra HDR file itself: HDR on an HDR screen (Chrome, Edge, Safari, Android), its SDR base elsewhere.";
  } else if (!files.uhdr) { img.removeAttribute("src"); $("hdr-note").textContent = "Writing the Ultra HDR file…"; }
  if (!views || views.id !== selected.id) loadViews(selected);
}

async function fetchView(id, which) {
  const r = await fetch(`/api/jobs/${id}/view/${which}`);
  if (!r.ok) throw new Error((await r.json()).error);
  const w = +r.headers.get("X-Width"), h = +r.headers.get("X-Height");
  return {w, h, pixels: decodeRGBE(new Uint8Array(await r.arrayBuffer()), w * h)};
}

async function loadViews(item) {
  const id = item.id;
  views = {id, loading: true};
  try {
    const [b, a] = await Promise.all([fetchView(id, "before"), fetchView(id, "after")]);
    if (!selected || selected.id !== id) return;
    views = {id, width: a.w, height: a.h, before: b.pixels, after: a.pixels};
    for (const c of [$("before"), $("after")]) { c.width = a.w; c.height = a.h; }
    requestDraw();
  } catch (e) { views = null; }
}

// Radiance RGBE (4 bytes per pixel, as written by imagecodecs.rgbe_encode) -> float RGB.
function decodeRGBE(bytes, n) {
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    const e = bytes[4 * i + 3];
    if (e === 0) continue;
    const f = Math.pow(2, e - 136);
    out[3 * i] = (bytes[4 * i] + 0.5) * f;
    out[3 * i + 1] = (bytes[4 * i + 1] + 0.5) * f;
    out[3 * i + 2] = (bytes[4 * i + 2] + 0.5) * f;
  }
  return out;
}

// ------------------------------------------------------------------ SDR drawing: exposure, tone curve, sRGB

function srgb(x) {
  x = x <= 0 ? 0 : x >= 1 ? 1 : x;
  return x <= 0.0031308 ? 12.92 * x : 1.055 * Math.pow(x, 1 / 2.4) - 0.055;
}

function filmic(x) {  // Narkowicz 2015 fit of the ACES reference rendering, with its 0.6 pre-exposure
  x *= 0.6;
  return (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14);
}

function draw(canvas, pixels, gain, curve) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(canvas.width, canvas.height);
  const out = img.data, n = canvas.width * canvas.height;
  for (let i = 0; i < n; i++) {
    let r = pixels[3 * i] * gain, g = pixels[3 * i + 1] * gain, b = pixels[3 * i + 2] * gain;
    if (curve === "reinhard") {
      const y = 0.2126 * r + 0.7152 * g + 0.0722 * b, k = 1 / (1 + y);
      r *= k; g *= k; b *= k;
    } else if (curve === "filmic") {
      r = filmic(r); g = filmic(g); b = filmic(b);
    }
    out[4 * i] = Math.round(255 * srgb(r));
    out[4 * i + 1] = Math.round(255 * srgb(g));
    out[4 * i + 2] = Math.round(255 * srgb(b));
    out[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function requestDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    const ev = +$("exposure").value;
    $("exposure-value").textContent = `${ev >= 0 ? "+" : ""}${ev.toFixed(1)} stops`;
    if (!views || !views.after) return;
    const gain = Math.pow(2, ev), curve = $("curve").value;
    draw($("before"), views.before, gain, curve);
    draw($("after"), views.after, gain, curve);
    split();
  });
}

function split() {
  const s = +$("split").value;
  $("after").style.clipPath = `inset(0 0 0 ${s}%)`;
  $("divider").style.left = `${s}%`;
}

// ------------------------------------------------------------------ wiring

function addFiles(list) { for (const f of list) upload(f); }

$("file").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); addFiles(e.dataTransfer.files); });
$("exposure").addEventListener("input", requestDraw);
$("curve").addEventListener("change", requestDraw);
$("split").addEventListener("input", split);
fetch("/api/limits").then((r) => r.json()).then((l) => {
  $("limits").textContent = `JPEG, PNG or TIFF, up to ${l.max_megapixels} megapixels and ${(l.max_upload_bytes / 2 ** 20).toFixed(0)} MiB. ` +
    `Results are deleted ${Math.round(l.keep_seconds / 60)} minutes after they are done.`;
});
poll();
