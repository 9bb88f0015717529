// fastinpaint's editor: paint the hole (and optionally the source region) over an image, send it to
// POST /api/v1/inpaint, show the result. Plain JavaScript, no dependencies, nothing fetched from
// elsewhere.
//
// The image and the two paint layers are canvases at the image's full resolution, stacked in
// #stage and scaled by a CSS transform (zoom and pan never resample what is sent to the server).
// An image is an immutable record {canvas, blob, type}: the blob is what is sent and downloaded
// (the original file bytes, so nothing is re-encoded), the canvas what is shown. Undo history holds
// snapshots {image, hole, source}; a stroke shares the image record, so it costs only the masks.
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY_LIMIT = 30;
const COLOURS = { hole: "rgb(255,48,48)", allow: "rgb(40,200,90)", deny: "rgb(60,110,255)" };

const S = {
  config: null,
  image: null,        // current {canvas, blob, type, name}
  before: null,       // the image before the last run (for Compare)
  undo: [], redo: [],
  tool: "hole", brush: 24,
  scale: 1, tx: 0, ty: 0,
  stroke: null,       // {layers, last: {x, y}} while painting
  pan: null,          // {x, y, tx, ty} while panning
  spaceDown: false,
  busy: false,
};
const view = { image: $("image"), hole: $("hole-overlay"), source: $("source-overlay") };
const ctx = {
  image: view.image.getContext("2d"),
  hole: view.hole.getContext("2d", { willReadFrequently: true }),
  source: view.source.getContext("2d", { willReadFrequently: true }),
};

function setState(state) { document.body.dataset.state = state; }

// The status line beside Run; `warn`: something the user must see (a result the server did not
// save). Its full text is also the tooltip: a long reason is cut to the toolbar's width.
function setStatus(text, warn = false) {
  const status = $("status");
  status.textContent = text;
  status.title = text;
  status.classList.toggle("warning", warn);
}

// What the server says about saving a result in its --output-dir: the name it chose, or why it
// could not save it (the image is answered all the same, 200: only these headers tell the user
// the file is missing). Nothing when the server does not save results.
function savedNote(resp) {
  const notSaved = resp.headers.get("X-FastInpaint-Not-Saved");
  if (notSaved) return { text: `not saved: ${notSaved}`, warn: true };
  const savedAs = resp.headers.get("X-FastInpaint-Saved-As");
  return { text: savedAs ? `saved as ${savedAs}` : "", warn: false };
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// ---------------------------------------------------------------------------------------------
// server configuration: methods and their options
// ---------------------------------------------------------------------------------------------
async function loadConfig() {
  try {
    const resp = await fetch("/api/v1/server-config");
    S.config = await resp.json();
  } catch (err) {
    showError(`cannot reach the server: ${err}`);
    return;
  }
  const select = $("method");
  for (const m of S.config.methods) select.add(new Option(m.name, m.name, false, m.name === S.config.default_method));
  select.addEventListener("change", renderOptions);
  renderOptions();
  if (S.config.inputs.length) {
    const inputs = $("inputs");
    for (const name of S.config.inputs) inputs.add(new Option(name, name));
    inputs.hidden = false;
    inputs.addEventListener("change", async () => {
      if (!inputs.value) return;
      const resp = await fetch(`/api/v1/inputs/${encodeURIComponent(inputs.value)}`);
      if (!resp.ok) return showError((await errorOf(resp)));
      await openBlob(await resp.blob(), inputs.value);
      inputs.value = "";
    });
  }
}

function currentMethod() {
  return S.config && S.config.methods.find((m) => m.name === $("method").value);
}

// One input per option of the chosen method (the request field of the same name), and the HD
// strategy (only "Original" in this version: the full image is always processed).
function renderOptions() {
  const box = $("options");
  box.textContent = "";
  const method = currentMethod();
  if (!method) return;
  for (const [name, spec] of Object.entries(method.options)) {
    const label = document.createElement("label");
    label.textContent = name.replace("_", " ");
    let input;
    if (spec.type === "choice") {
      input = document.createElement("select");
      for (const c of spec.choices) input.add(new Option((spec.labels && spec.labels[c]) || c, c));
    } else {
      input = document.createElement("input");
      input.type = "number";
      input.step = spec.odd ? 2 : 1;
      if (spec.min !== undefined) input.min = spec.min;
      if (spec.max !== undefined) input.max = spec.max;
    }
    input.value = spec.default;
    input.id = `opt-${name}`;
    input.dataset.option = name;
    label.append(input);
    box.append(label);
  }
  const hd = document.createElement("label");
  hd.textContent = "HD";
  hd.title = "HD strategy: Crop = each hole's region at a scale suited to the method (default), Original = the whole image as is, Resize = the whole image downscaled";
  const hdSelect = document.createElement("select");
  hdSelect.id = "opt-hd_strategy";
  for (const s of S.config.hd_strategies) hdSelect.add(new Option(s, s));
  hd.append(hdSelect);
  box.append(hd);
  for (const b of document.querySelectorAll(".source-tool")) {
    b.dataset.help = b.dataset.help || b.title;
    b.disabled = !method.source_mask;
    b.title = method.source_mask ? b.dataset.help : `${method.name} does not copy from the image: no source region`;
  }
  if (!method.source_mask && (S.tool === "allow" || S.tool === "deny")) setTool("hole");
}

// ---------------------------------------------------------------------------------------------
// images, layers and history
// ---------------------------------------------------------------------------------------------
async function imageRecord(blob, name) {
  const bitmap = await createImageBitmap(blob);
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  return { canvas, blob, type: blob.type || "image/png", name };
}

function copyCanvas(src) {
  const c = document.createElement("canvas");
  c.width = src.width;
  c.height = src.height;
  c.getContext("2d").drawImage(src, 0, 0);
  return c;
}

function showImage(record) {
  ctx.image.clearRect(0, 0, view.image.width, view.image.height);
  ctx.image.drawImage(record.canvas, 0, 0);
}

async function openBlob(blob, name) {
  if (S.busy) return showError("wait for the run to finish before opening another image");
  let record;
  try {
    record = await imageRecord(blob, name || "image");
  } catch (err) {
    return showError(`cannot open ${name || "the image"}: the browser cannot decode it`);
  }
  showError("");
  S.image = record;
  S.before = null;
  S.undo = [];
  S.redo = [];
  const { width, height } = record.canvas;
  for (const c of Object.values(view)) { c.width = width; c.height = height; }
  $("stage").style.width = `${width}px`;
  $("stage").style.height = `${height}px`;
  showImage(record);
  setState("ready");
  setStatus(`${width}×${height}`);
  fit();
  updateButtons();
}

function snapshot() {
  return { image: S.image, before: S.before, hole: copyCanvas(view.hole), source: copyCanvas(view.source) };
}

function restore(snap) {
  setState("ready");
  S.image = snap.image;
  S.before = snap.before;
  showImage(snap.image);
  for (const layer of ["hole", "source"]) {
    ctx[layer].clearRect(0, 0, view[layer].width, view[layer].height);
    ctx[layer].drawImage(snap[layer], 0, 0);
  }
  updateButtons();
}

// Called before every change that can be undone: a stroke, a clear, a run's result.
function pushHistory() {
  setState("ready");  // "done" means: showing a fresh result, until the next edit
  S.undo.push(snapshot());
  if (S.undo.length > HISTORY_LIMIT) S.undo.shift();
  S.redo = [];
  updateButtons();
}

function undo() {
  if (!S.undo.length || S.busy || S.stroke) return;
  S.redo.push(snapshot());
  restore(S.undo.pop());
}

function redo() {
  if (!S.redo.length || S.busy || S.stroke) return;
  S.undo.push(snapshot());
  restore(S.redo.pop());
}

function clearLayers() {
  if (!S.image || S.busy) return;
  pushHistory();
  for (const layer of ["hole", "source"]) ctx[layer].clearRect(0, 0, view[layer].width, view[layer].height);
}

function updateButtons() {
  const has = !!S.image;
  $("undo").disabled = !S.undo.length || S.busy;
  $("redo").disabled = !S.redo.length || S.busy;
  $("run").disabled = !has || S.busy;
  $("compare").disabled = !S.before;
  $("download-png").disabled = !has;
  $("download-jpeg").disabled = !has;
}

// ---------------------------------------------------------------------------------------------
// zoom and pan
// ---------------------------------------------------------------------------------------------
function applyTransform() {
  $("stage").style.transform = `translate(${S.tx}px, ${S.ty}px) scale(${S.scale})`;
  $("stage").classList.toggle("pixelated", S.scale >= 2);
  $("zoom-value").textContent = `${Math.round(S.scale * 100)}%`;
}

function fit() {
  if (!S.image) return;
  const vp = $("viewport").getBoundingClientRect();
  const { width, height } = S.image.canvas;
  S.scale = Math.min((vp.width - 20) / width, (vp.height - 20) / height);
  S.tx = (vp.width - width * S.scale) / 2;
  S.ty = (vp.height - height * S.scale) / 2;
  applyTransform();
}

function zoomAt(factor, cx, cy) {
  const scale = Math.min(32, Math.max(0.02, S.scale * factor));
  S.tx = cx - (cx - S.tx) * (scale / S.scale);
  S.ty = cy - (cy - S.ty) * (scale / S.scale);
  S.scale = scale;
  applyTransform();
}

function actualPixels() {
  const vp = $("viewport").getBoundingClientRect();
  zoomAt(1 / S.scale, vp.width / 2, vp.height / 2);
}

// viewport (CSS px) -> image pixel coordinates
function toImage(ev) {
  const vp = $("viewport").getBoundingClientRect();
  return { x: (ev.clientX - vp.left - S.tx) / S.scale, y: (ev.clientY - vp.top - S.ty) / S.scale };
}

// ---------------------------------------------------------------------------------------------
// painting
// ---------------------------------------------------------------------------------------------
function strokeLayers(tool) {
  if (tool === "hole") return [["hole", COLOURS.hole, "source-over"]];
  if (tool === "allow" || tool === "deny") return [["source", COLOURS[tool], "source-over"]];
  return [["hole", "#000", "destination-out"], ["source", "#000", "destination-out"]];  // erase: both
}

function paintSegment(from, to) {
  for (const [layer, colour, op] of S.stroke.layers) {
    const c = ctx[layer];
    c.save();
    c.globalCompositeOperation = op;
    c.strokeStyle = colour;
    c.fillStyle = colour;
    c.lineWidth = S.brush;
    c.lineCap = "round";
    c.lineJoin = "round";
    c.beginPath();
    if (from.x === to.x && from.y === to.y) {
      c.arc(to.x, to.y, S.brush / 2, 0, 2 * Math.PI);
      c.fill();
    } else {
      c.moveTo(from.x, from.y);
      c.lineTo(to.x, to.y);
      c.stroke();
    }
    c.restore();
  }
}

function moveCursor(ev) {
  const cursor = $("cursor");
  const vp = $("viewport").getBoundingClientRect();
  cursor.hidden = !S.image || !!S.pan || S.spaceDown;
  cursor.style.left = `${ev.clientX - vp.left}px`;
  cursor.style.top = `${ev.clientY - vp.top}px`;
  const d = Math.max(2, S.brush * S.scale);
  cursor.style.width = cursor.style.height = `${d}px`;
}

function onPointerDown(ev) {
  if (!S.image) return;
  $("viewport").focus();
  if (ev.button === 1 || ev.button === 2 || (ev.button === 0 && S.spaceDown)) {
    S.pan = { x: ev.clientX, y: ev.clientY, tx: S.tx, ty: S.ty };
    $("viewport").classList.add("panning");
  } else if (ev.button === 0 && !S.busy) {
    const tool = document.querySelector(`[data-tool="${S.tool}"]`);
    if (tool && tool.disabled) return;
    pushHistory();
    const p = toImage(ev);
    S.stroke = { layers: strokeLayers(S.tool), last: p };
    paintSegment(p, p);
  } else {
    return;
  }
  $("viewport").setPointerCapture(ev.pointerId);
  ev.preventDefault();
}

function onPointerMove(ev) {
  moveCursor(ev);
  if (S.pan) {
    S.tx = S.pan.tx + ev.clientX - S.pan.x;
    S.ty = S.pan.ty + ev.clientY - S.pan.y;
    applyTransform();
  } else if (S.stroke) {
    const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
    for (const e of events.length ? events : [ev]) {
      const p = toImage(e);
      paintSegment(S.stroke.last, p);
      S.stroke.last = p;
    }
  }
}

function onPointerUp(ev) {
  if (S.stroke) updateButtons();
  S.stroke = null;
  S.pan = null;
  $("viewport").classList.remove("panning");
  if ($("viewport").hasPointerCapture(ev.pointerId)) $("viewport").releasePointerCapture(ev.pointerId);
}

function setTool(tool) {
  const button = document.querySelector(`[data-tool="${tool}"]`);
  if (!button || button.disabled) return;
  S.tool = tool;
  for (const b of document.querySelectorAll(".tool")) b.classList.toggle("active", b.dataset.tool === tool);
}

function setBrush(size) {
  S.brush = Math.max(1, Math.min(300, Math.round(size)));
  $("brush").value = S.brush;
  $("brush-value").textContent = S.brush;
}

// ---------------------------------------------------------------------------------------------
// masks out of the paint layers, the request, the result
// ---------------------------------------------------------------------------------------------
// A greyscale PNG (white where `test(r, g, b, a)`), or null when no pixel passes.
async function maskPNG(layer, test) {
  const { width, height } = view[layer];
  const src = ctx[layer].getImageData(0, 0, width, height).data;
  const out = new ImageData(width, height);
  const dst = out.data;
  let any = false;
  for (let i = 0; i < src.length; i += 4) {
    const on = test(src[i], src[i + 1], src[i + 2], src[i + 3]);
    any = any || on;
    const v = on ? 255 : 0;
    dst[i] = dst[i + 1] = dst[i + 2] = v;
    dst[i + 3] = 255;
  }
  if (!any) return null;
  const c = document.createElement("canvas");
  c.width = width;
  c.height = height;
  c.getContext("2d").putImageData(out, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

function dataURL(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function errorOf(resp) {
  try {
    const body = await resp.json();
    if (body && body.error) return `${resp.status}: ${body.error}`;
  } catch (_) { /* not JSON */ }
  return `${resp.status} ${resp.statusText}`;
}

// The source region: where "Copy from" was painted (minus "Never copy"); with only "Never copy"
// painted, everywhere else. Nothing painted: no source_mask (the whole known image).
async function sourceMaskPNG() {
  const painted = (a) => a > 127;
  const allow = (r, g, b, a) => painted(a) && g > b;
  const hasAllow = await maskPNG("source", allow);
  if (hasAllow) return hasAllow;
  return maskPNG("source", (r, g, b, a) => !(painted(a) && b >= g));
}

async function run() {
  if (!S.image || S.busy || S.stroke) return;
  // busy from the first moment: building the masks awaits, and a second Run (Enter on the focused
  // button fires both the key and the click) must not start another request meanwhile
  S.busy = true;
  updateButtons();
  try {
    await request();
  } finally {
    S.busy = false;
    updateButtons();
  }
}

async function request() {
  showError("");
  const mask = await maskPNG("hole", (r, g, b, a) => a > 127);
  if (!mask) return showError("paint over what to remove first (the Hole brush)");
  const method = currentMethod();
  const body = { image: await dataURL(S.image.blob), mask: await dataURL(mask), method: method.name };
  const hasSource = method.source_mask && ctx.source.getImageData(0, 0, view.source.width, view.source.height)
    .data.some((v, i) => i % 4 === 3 && v > 127);
  if (hasSource) body.source_mask = await dataURL(await sourceMaskPNG());
  for (const input of document.querySelectorAll("#options [data-option]")) {
    if (input.value === "") continue;
    body[input.dataset.option] = input.type === "number" ? Number(input.value) : input.value;
  }
  body.hd_strategy = $("opt-hd_strategy").value;

  setState("busy");
  const started = performance.now();
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
  const tick = () => setStatus(`running ${method.name}… ${seconds()} s`);
  tick();
  const timer = setInterval(tick, 100);
  try {
    const resp = await fetch("/api/v1/inpaint", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!resp.ok) throw new Error(await errorOf(resp));
    const blob = await resp.blob();
    const record = await imageRecord(blob, S.image.name);
    pushHistory();  // the run is one undo step: undo brings back the image and the painted hole
    S.before = S.image;
    S.image = record;
    showImage(record);
    ctx.hole.clearRect(0, 0, view.hole.width, view.hole.height);
    const saved = savedNote(resp);
    const done = `done in ${((performance.now() - started) / 1000).toFixed(2)} s`;
    setStatus(saved.text ? `${done} · ${saved.text}` : done, saved.warn);
    setState("done");
  } catch (err) {
    setStatus("failed");
    showError(String(err.message || err));
    setState("error");
  } finally {
    clearInterval(timer);
  }
}

function compare(on) {
  if (!S.before || !S.image) return;
  showImage(on ? S.before : S.image);
  view.hole.style.visibility = on ? "hidden" : "";
}

async function download(type) {
  if (!S.image) return;
  // The server's bytes when they are already of the asked type (no re-encoding), else the canvas.
  const blob = S.image.type === type ? S.image.blob
    : await new Promise((resolve) => S.image.canvas.toBlob(resolve, type, 0.95));
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  const stem = (S.image.name || "image").replace(/\.[^.]*$/, "");
  a.download = `${stem}-inpainted.${type === "image/png" ? "png" : "jpg"}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// ---------------------------------------------------------------------------------------------
// wiring
// ---------------------------------------------------------------------------------------------
function imageFrom(items) {
  for (const item of items || []) {
    const file = item.kind === "file" ? item.getAsFile() : item;
    if (file && file.type && file.type.startsWith("image/")) return file;
  }
  return null;
}

function wire() {
  const vp = $("viewport");
  $("file").addEventListener("change", (ev) => {
    const file = ev.target.files[0];
    if (file) openBlob(file, file.name);
    ev.target.value = "";
  });
  vp.addEventListener("dragover", (ev) => { ev.preventDefault(); vp.classList.add("dragover"); });
  vp.addEventListener("dragleave", () => vp.classList.remove("dragover"));
  vp.addEventListener("drop", (ev) => {
    ev.preventDefault();
    vp.classList.remove("dragover");
    const file = imageFrom(ev.dataTransfer.files);
    if (file) openBlob(file, file.name); else showError("drop an image file");
  });
  window.addEventListener("paste", (ev) => {
    const file = imageFrom(ev.clipboardData && ev.clipboardData.items);
    if (file) { ev.preventDefault(); openBlob(file, file.name || "pasted.png"); }
  });
  vp.addEventListener("pointerdown", onPointerDown);
  vp.addEventListener("pointermove", onPointerMove);
  vp.addEventListener("pointerup", onPointerUp);
  vp.addEventListener("pointercancel", onPointerUp);
  vp.addEventListener("pointerleave", () => { $("cursor").hidden = true; });
  vp.addEventListener("contextmenu", (ev) => ev.preventDefault());
  vp.addEventListener("wheel", (ev) => {
    if (!S.image) return;
    ev.preventDefault();
    const r = vp.getBoundingClientRect();
    zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
  for (const b of document.querySelectorAll(".tool")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("brush").addEventListener("input", (ev) => setBrush(Number(ev.target.value)));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", clearLayers);
  $("zoom-fit").addEventListener("click", fit);
  $("zoom-100").addEventListener("click", actualPixels);
  $("run").addEventListener("click", run);
  const cmp = $("compare");
  cmp.addEventListener("pointerdown", () => compare(true));
  for (const e of ["pointerup", "pointerleave", "pointercancel"]) cmp.addEventListener(e, () => compare(false));
  $("download-png").addEventListener("click", () => download("image/png"));
  $("download-jpeg").addEventListener("click", () => download("image/jpeg"));
  window.addEventListener("resize", () => S.image && fit());
  window.addEventListener("keydown", onKeyDown);
  window.addEventListener("keyup", (ev) => {
    if (ev.code === "Space") { S.spaceDown = false; vp.classList.remove("can-pan"); }
    if (ev.key === "c" || ev.key === "C") compare(false);
  });
}

function onKeyDown(ev) {
  if (ev.target.matches && ev.target.matches("input[type=number], select")) return;
  const mod = ev.ctrlKey || ev.metaKey;
  const key = ev.key.toLowerCase();
  if (mod && key === "z") { ev.preventDefault(); if (ev.shiftKey) redo(); else undo(); return; }
  if (mod && key === "y") { ev.preventDefault(); redo(); return; }
  if (mod) return;
  if (ev.key === "[") setBrush(S.brush > 10 ? S.brush / 1.2 : S.brush - 1);
  else if (ev.key === "]") setBrush(S.brush >= 10 ? S.brush * 1.2 : S.brush + 1);
  else if (ev.code === "Space") { ev.preventDefault(); S.spaceDown = true; $("viewport").classList.add("can-pan"); }
  else if (key === "b") setTool("hole");
  else if (key === "e") setTool("erase");
  else if (key === "a") setTool("allow");
  else if (key === "d") setTool("deny");
  else if (key === "c" && !ev.repeat) compare(true);
  else if (ev.key === "0") fit();
  else if (ev.key === "1") actualPixels();
  else if (ev.key === "Enter") run();
}

setBrush(Number($("brush").value));
wire();
loadConfig();
