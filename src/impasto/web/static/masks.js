// Regions: paint over the photo where each style goes (a brush per style image, "keep photo", an eraser, soft
// edges), or upload a mask for the brush in hand. On Paint the masks go with the job as images, white on black:
// the "mask" fields (one per style image, in their order) and "keep_mask" (the server: web/maskroutes.py).
// Hooks, each a line elsewhere: form.js awaits impastoMasks.append(data, styles) when it submits and calls
// impastoMasks.reuse(job) from "reuse settings"; gallery.js shows impastoMasks.thumbs(job) beside a job's inputs.
"use strict";

window.impastoMasks = (() => {
  const COLOURS = { 1: "#4a90e2", 2: "#e8604a", 3: "#6cc25a", keep: "#f4efe8" };
  const NAMES = { keep: "keep photo", erase: "eraser" };
  const LONG = 512;  // the layers' long side: fine enough for a brush, small to send
  const layers = {};  // "1" "2" "3" "keep" → an offscreen canvas: white, its alpha the mask
  let tool = "1", photo = null, stroke = null, queued = false;

  const node = (tag, attrs = {}, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") n.className = v;
      else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v);
    }
    n.append(...kids);
    return n;
  };
  const canvas = () => document.getElementById("mask-canvas");

  // ------------------------------------------------------------ the panel, under the images
  function build() {
    const tools = node("div", { class: "mask-tools", role: "toolbar", "aria-label": "region brushes" });
    for (const t of ["1", "2", "3", "keep", "erase"]) {
      const b = node("button", { type: "button", class: "mask-tool", "data-tool": t, title: t in NAMES ? NAMES[t]
        : `paint where style ${t} goes`, onclick: () => choose(t) }, t in NAMES ? NAMES[t] : `style ${t}`);
      if (COLOURS[t]) b.prepend(node("span", { class: "swatch", "data-colour": t }));
      tools.append(b);
    }
    const upload = node("input", { type: "file", id: "mask-upload", accept: "image/*" });
    upload.addEventListener("change", () => { if (upload.files[0]) loadInto(tool, upload.files[0]); upload.value = ""; });
    const panel = node("details", { class: "masks", id: "masks-panel" },
      node("summary", {}, "Regions (optional): paint where each style goes"),
      tools,
      node("div", { class: "mask-sliders" },
        node("label", {}, "Brush ", node("input", { type: "range", id: "mask-size", min: "1", max: "30", value: "8" })),
        node("label", {}, "Soft edges ", node("input", { type: "range", id: "mask-soft", min: "0", max: "100", value: "60" })),
        node("label", { class: "button small", title: "a greyscale or transparent image: white / opaque is the region" },
          "upload a mask", upload),
        node("button", { type: "button", class: "link", id: "mask-clear", onclick: clear }, "clear")),
      node("div", { class: "mask-stage" }, node("canvas", { id: "mask-canvas", width: "320", height: "240",
        "aria-label": "the photo, to paint regions on" })),
      node("p", { class: "note", id: "mask-note" },
        "Choose a photo first. Paint a region for every style image (or none); unpainted areas stay close to the " +
        "photo, and \"keep photo\" keeps it exactly."));
    const form = document.getElementById("job-form");
    form.insertBefore(panel, [...form.querySelectorAll("h2")].find((h) => h.textContent === "Settings"));
    panel.querySelectorAll(".swatch").forEach((s) => { s.style.background = COLOURS[s.dataset.colour]; });
    const c = canvas();
    c.addEventListener("pointerdown", down);
    c.addEventListener("pointermove", move);
    for (const e of ["pointerup", "pointercancel", "pointerleave"]) c.addEventListener(e, up);
    panel.addEventListener("toggle", refreshTools);
    document.getElementById("job-form").addEventListener("change", refreshTools);
    const img = document.querySelector("#content-drop img");
    img.addEventListener("load", () => setPhoto(img));
    if (img.complete && img.naturalWidth) setPhoto(img);
    choose("1");
  }

  function usedStyles() {  // the style slots with an image (form.js)
    return typeof styleSlots === "function" ? styleSlots() : ["1"];
  }

  function refreshTools() {
    const used = usedStyles();
    document.querySelectorAll(".mask-tool").forEach((b) => {
      const t = b.dataset.tool;
      b.hidden = /^\d$/.test(t) && !used.includes(t) && t !== "1";
    });
  }

  function choose(t) {
    tool = t;
    document.querySelectorAll(".mask-tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === t));
  }

  // ------------------------------------------------------------ the layers
  function setPhoto(img) {
    const s = LONG / Math.max(img.naturalWidth, img.naturalHeight);
    const w = Math.max(1, Math.round(img.naturalWidth * s)), h = Math.max(1, Math.round(img.naturalHeight * s));
    const c = canvas();
    const same = c.width === w && c.height === h && photo;
    photo = img;
    if (!same) {  // a photo of another shape: the regions start afresh
      c.width = w;
      c.height = h;
      for (const k of ["1", "2", "3", "keep"]) layers[k] = node("canvas", { width: String(w), height: String(h) });
    }
    document.getElementById("mask-note").hidden = true;
    render();
  }

  function painted(k) {
    const layer = layers[k];
    if (!layer) return false;
    const a = layer.getContext("2d").getImageData(0, 0, layer.width, layer.height).data;
    for (let i = 3; i < a.length; i += 4) if (a[i] > 2) return true;
    return false;
  }

  function dab(ctx, x, y, r, soft, op) {
    const g = ctx.createRadialGradient(x, y, Math.min(r * (1 - soft), r * 0.99), x, y, r);
    g.addColorStop(0, "rgba(255,255,255,1)");
    g.addColorStop(1, "rgba(255,255,255,0)");
    ctx.globalCompositeOperation = op;
    ctx.fillStyle = g;
    ctx.beginPath();
    ctx.arc(x, y, r, 0, 2 * Math.PI);
    ctx.fill();
    ctx.globalCompositeOperation = "source-over";
  }

  // One dab of the tool in hand: a style's brush paints its layer and clears the other styles' (a place has one
  // style), "keep photo" paints its own layer, the eraser clears them all.
  function apply(x, y) {
    const c = canvas();
    const r = Number(document.getElementById("mask-size").value) / 100 * Math.max(c.width, c.height) / 2;
    const soft = Number(document.getElementById("mask-soft").value) / 100;
    for (const [k, layer] of Object.entries(layers)) {
      const ctx = layer.getContext("2d");
      if (tool === "erase") dab(ctx, x, y, r, soft, "destination-out");
      else if (k === tool) dab(ctx, x, y, r, soft, "source-over");
      else if (tool !== "keep" && k !== "keep") dab(ctx, x, y, r, soft, "destination-out");
    }
  }

  function point(e) {
    const c = canvas(), box = c.getBoundingClientRect();
    return [(e.clientX - box.left) / box.width * c.width, (e.clientY - box.top) / box.height * c.height];
  }

  function down(e) {
    if (!photo) return;
    e.preventDefault();
    canvas().setPointerCapture?.(e.pointerId);
    stroke = point(e);
    apply(...stroke);
    render();
  }

  function move(e) {
    if (!stroke) return;
    const [x, y] = point(e), [x0, y0] = stroke, c = canvas();
    const step = Math.max(1, Number(document.getElementById("mask-size").value) / 400 * Math.max(c.width, c.height));
    const n = Math.ceil(Math.hypot(x - x0, y - y0) / step);
    for (let i = 1; i <= n; i++) apply(x0 + (x - x0) * i / n, y0 + (y - y0) * i / n);  // no gaps in a fast stroke
    stroke = [x, y];
    render();
  }

  function up() { stroke = null; }

  function clear() {
    for (const layer of Object.values(layers)) layer.getContext("2d").clearRect(0, 0, layer.width, layer.height);
    render();
  }

  function render() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      const c = canvas(), ctx = c.getContext("2d");
      ctx.clearRect(0, 0, c.width, c.height);
      if (photo) ctx.drawImage(photo, 0, 0, c.width, c.height);
      const tint = node("canvas", { width: String(c.width), height: String(c.height) }), t = tint.getContext("2d");
      for (const [k, layer] of Object.entries(layers)) {
        t.globalCompositeOperation = "source-over";
        t.clearRect(0, 0, c.width, c.height);
        t.fillStyle = COLOURS[k];
        t.fillRect(0, 0, c.width, c.height);
        t.globalCompositeOperation = "destination-in";
        t.drawImage(layer, 0, 0);
        ctx.globalAlpha = k === "keep" ? 0.7 : 0.55;
        ctx.drawImage(tint, 0, 0);
        ctx.globalAlpha = 1;
      }
    });
  }

  // An image into a layer: its alpha where it has transparency, else its grey levels (white: the region).
  function drawMask(k, img) {
    const layer = layers[k];
    if (!layer) return;
    const w = layer.width, h = layer.height;
    const tmp = node("canvas", { width: String(w), height: String(h) }), t = tmp.getContext("2d");
    t.drawImage(img, 0, 0, w, h);
    const d = t.getImageData(0, 0, w, h), a = d.data;
    let alpha = false;
    for (let i = 3; i < a.length; i += 4) if (a[i] < 255) { alpha = true; break; }
    for (let i = 0; i < a.length; i += 4) {
      const v = alpha ? a[i + 3] : Math.round(0.299 * a[i] + 0.587 * a[i + 1] + 0.114 * a[i + 2]);
      a[i] = a[i + 1] = a[i + 2] = 255;
      a[i + 3] = v;
    }
    t.putImageData(d, 0, 0);
    layer.getContext("2d").clearRect(0, 0, w, h);
    layer.getContext("2d").drawImage(tmp, 0, 0);
    if (/^\d$/.test(k)) {  // a style's region is no other style's
      for (const other of ["1", "2", "3"]) {
        if (other === k) continue;
        const o = layers[other].getContext("2d");
        o.globalCompositeOperation = "destination-out";
        o.drawImage(tmp, 0, 0);
        o.globalCompositeOperation = "source-over";
      }
    }
    render();
  }

  function imageFrom(src) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("that file is not an image the browser can read"));
      img.src = src;
    });
  }

  async function loadInto(k, file) {
    if (!photo) { document.getElementById("mask-note").hidden = false; return; }
    if (k === "erase") k = "keep";
    const url = URL.createObjectURL(file);
    try { drawMask(k, await imageFrom(url)); } catch (e) { document.getElementById("form-error").textContent = `Mask: ${e.message}`; }
    URL.revokeObjectURL(url);
  }

  function png(layer) {  // white on black, the alpha as the grey level
    const out = node("canvas", { width: String(layer.width), height: String(layer.height) }), ctx = out.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.drawImage(layer, 0, 0);
    return new Promise((resolve) => out.toBlob(resolve, "image/png"));
  }

  // ------------------------------------------------------------ the hooks
  async function append(data, styles) {
    const withRegion = styles.filter(painted);
    if (withRegion.length) {
      const missing = styles.filter((s) => !withRegion.includes(s));
      if (missing.length) {
        throw new Error(`Regions: paint where style ${missing.join(" and ")} goes too, or clear the regions.`);
      }
      for (const s of styles) data.append("mask", await png(layers[s]), `region-${s}.png`);
    }
    if (painted("keep")) data.append("keep_mask", await png(layers.keep), "keep.png");
  }

  async function reuse(job) {
    const urls = [...(job.urls.masks || []).map((u, i) => [String(i + 1), u]),
      ...(job.urls.keep_mask ? [["keep", job.urls.keep_mask]] : [])];
    if (!urls.length) { clear(); return; }
    const img = document.querySelector("#content-drop img");
    if (!img.complete || !img.naturalWidth) await new Promise((r) => img.addEventListener("load", r, { once: true }));
    setPhoto(img);
    clear();
    for (const [k, u] of urls) drawMask(k, await imageFrom(u));
    document.getElementById("masks-panel").open = true;
  }

  function thumbs(job) {
    const urls = [...(job.urls.masks || []), ...(job.urls.keep_mask ? [job.urls.keep_mask] : [])];
    return urls.map((u, i) => {
      const keep = u === job.urls.keep_mask;
      return node("img", { src: u, class: "mask-thumb", loading: "lazy", alt: keep ? "kept region" : `region of style ${i + 1}`,
        title: keep ? "where the photo is kept" : `where style ${i + 1} goes` });
    });
  }

  document.addEventListener("DOMContentLoaded", build);
  return { append, reuse, thumbs, painted, choose };
})();
