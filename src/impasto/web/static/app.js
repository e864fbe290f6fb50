// impasto's page: pick images, queue a job, watch it form (Server-Sent Events), browse earlier results.
// Plain JavaScript, no build step and nothing from elsewhere: the server's CSP allows only this origin.
"use strict";

const $ = (sel) => document.querySelector(sel);
const FINAL = ["done", "cancelled", "diverged", "failed"];  // as GET /api/settings gives them (statuses.final)
// Fields the form owns; "reuse settings" puts any other non-default setting into the JSON box.
const FORM_FIELDS = ["preset", "size", "start_size", "first_steps", "steps", "style_weight", "preserve_color",
  "style_blend"];

const state = {
  settings: null,      // GET /api/settings
  files: {},           // slot ("content", "1", "2", "3") -> File
  job: null,           // the job shown in the run panel
  source: null,        // its EventSource
  history: [],         // its loss history, for the chart
};

// ---------------------------------------------------------------- helpers
function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e4 || a < 1e-2)) return x.toExponential(2);
  return Number(x.toPrecision(3)).toString();
}

async function api(path, options = {}) {
  const resp = await fetch(path, options);
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) throw new Error((body && body.detail) || `${resp.status} ${resp.statusText}`);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// ---------------------------------------------------------------- images: drop zones
function setFile(slot, file) {
  const drop = slot === "content" ? $("#content-drop") : $(`#style-drop-${slot}`);
  if (!file) {
    delete state.files[slot];
    drop.classList.remove("filled");
    drop.querySelector("img").removeAttribute("src");
  } else {
    state.files[slot] = file;
    drop.classList.add("filled");
    const img = drop.querySelector("img");
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(file);
    img.alt = file.name;
  }
  updateBlend();
}

function wireDrop(slot) {
  const drop = slot === "content" ? $("#content-drop") : $(`#style-drop-${slot}`);
  const input = drop.querySelector("input");
  input.addEventListener("change", () => setFile(slot, input.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = [...e.dataTransfer.files].find((f) => f.type.startsWith("image/")) || e.dataTransfer.files[0];
    if (file) setFile(slot, file);
  });
}

function styleSlots() {
  return ["1", "2", "3"].filter((s) => state.files[s] && !document.querySelector(`.slot[data-slot="${s}"]`).hidden);
}

function updateBlend() {
  const used = styleSlots();
  const blending = used.length > 1;
  document.querySelectorAll(".blend").forEach((b) => { b.hidden = !blending; });
  $("#blend-note").hidden = !blending;
  $("#add-style").hidden = !document.querySelector('.slot[data-slot="3"]').hidden;
}

// ---------------------------------------------------------------- settings form
function styleWeightFromSlider() { return Number((10 ** Number($("#style-weight").value)).toPrecision(3)); }

function setStyleWeight(w) {
  $("#style-weight").value = Math.log10(Math.max(w, 0.1));
  showStyleWeight();
}

function showStyleWeight() { $("#style-weight-value").textContent = fmt(styleWeightFromSlider()); }

function presetValues(name) {
  const s = state.settings;
  return { ...s.defaults, ...(name ? s.presets[name] : {}) };
}

function fillForm(cfg) {
  $("#preset").value = cfg.preset || "";
  $("#size").value = cfg.size;
  $("#start-size").value = cfg.start_size ?? "";
  $("#first-steps").value = cfg.first_steps ?? "";
  $("#steps").value = cfg.steps;
  $("#preserve-color").value = cfg.preserve_color;
  setStyleWeight(cfg.style_weight);
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function formConfig() {
  const cfg = {
    size: Number($("#size").value),
    start_size: numberOrNull("#start-size"),
    first_steps: numberOrNull("#first-steps"),
    steps: Number($("#steps").value),
    style_weight: styleWeightFromSlider(),
    preserve_color: $("#preserve-color").value,
  };
  if ($("#preset").value) cfg.preset = $("#preset").value;
  const extra = $("#extra").value.trim();
  if (extra) {
    let parsed;
    try { parsed = JSON.parse(extra); } catch (e) { throw new Error(`More settings: not valid JSON (${e.message})`); }
    if (typeof parsed !== "object" || Array.isArray(parsed) || parsed === null) {
      throw new Error('More settings: give a JSON object such as {"seed": 7}');
    }
    Object.assign(cfg, parsed);
  }
  return cfg;
}

function reuseSettings(job) {
  const cfg = job.config;
  fillForm(cfg);
  const base = presetValues(cfg.preset);
  const extra = {};
  for (const [k, v] of Object.entries(cfg)) {
    if (FORM_FIELDS.includes(k) || state.settings.server_fields.includes(k)) continue;
    if (JSON.stringify(v) !== JSON.stringify(base[k])) extra[k] = v;
  }
  $("#extra").value = Object.keys(extra).length ? JSON.stringify(extra, null, 1) : "";
  if (Object.keys(extra).length) $("details.more").open = true;
  if (cfg.style_blend) {
    cfg.style_blend.forEach((w, i) => {
      const slot = document.querySelector(`.slot[data-slot="${i + 1}"]`);
      if (slot) { slot.hidden = false; $(`#blend-${i + 1}`).value = Math.round(w * 100); }
    });
  }
  updateBlend();
  $("#form-error").textContent = "";
  $("#job-form").scrollIntoView({ behavior: "smooth" });
}

// ---------------------------------------------------------------- submitting
async function submit(event) {
  event.preventDefault();
  const error = $("#form-error");
  error.textContent = "";
  try {
    if (!state.files.content) throw new Error("Choose a content image (the photo).");
    const styles = styleSlots();
    if (!styles.length) throw new Error("Choose a style image (the painting).");
    const cfg = formConfig();
    const data = new FormData();
    data.append("content", state.files.content);
    for (const s of styles) data.append("style", state.files[s]);
    if (styles.length > 1 && !("style_blend" in cfg)) {
      const weights = styles.map((s) => Number($(`#blend-${s}`).value));
      const sum = weights.reduce((a, b) => a + b, 0);
      data.append("style_blend", weights.map((w) => (w / sum).toFixed(3)).join(","));
    }
    data.append("config", JSON.stringify(cfg));
    $("#start").disabled = true;
    const job = await api("/api/jobs", { method: "POST", body: data });
    watch(job);
    loadGallery();
  } catch (e) {
    error.textContent = e.message;
  } finally {
    $("#start").disabled = false;
  }
}

// ---------------------------------------------------------------- watching a job
function watch(job) {
  if (state.source) state.source.close();
  state.job = job;
  state.history = [];
  $("#bar").style.width = "0";
  $("#progress-text").textContent = "\u00a0";
  imageTicket++;  // previews of the job shown before are not wanted now
  $("#preview").hidden = true;
  $("#empty").hidden = false;
  $("#empty").textContent = "Waiting for the first step…";
  drawChart();
  showJob(job);
  const source = new EventSource(job.urls.events);
  state.source = source;
  source.addEventListener("state", (e) => {
    const j = JSON.parse(e.data);
    state.history = j.history || [];
    showJob(j);
    drawChart();
  });
  source.addEventListener("status", (e) => showStatus({ ...state.job, ...JSON.parse(e.data) }));
  source.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    state.history.push(p);
    showProgress(p.step, p.total_steps, p);
    scheduleChart();
  });
  source.addEventListener("preview", (e) => showImage(JSON.parse(e.data).url));
  source.addEventListener("end", (e) => {
    source.close();
    const j = JSON.parse(e.data);
    showJob(j);
    loadGallery();
  });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) $("#run-message").textContent = "lost the connection"; };
}

function showJob(j) {
  state.job = { ...state.job, ...j };
  showStatus(j);
  if (j.step) showProgress(j.step, j.total_steps, j.losses);
  if (j.has_image) showImage(`${j.urls.image}?v=${j.status}-${j.preview_step}`);
  const done = FINAL.includes(j.status);
  $("#cancel").disabled = done;
  const dl = $("#download");
  if (done && j.has_result) {
    dl.href = j.urls.download;
    dl.classList.remove("disabled");
    dl.removeAttribute("aria-disabled");
  } else {
    dl.removeAttribute("href");
    dl.classList.add("disabled");
    dl.setAttribute("aria-disabled", "true");
  }
  $("#run-message").textContent = j.message || "";
  $("#run-title").textContent = j.inputs ? `${j.inputs.content} × ${j.inputs.styles.join(" + ")}` : "Result";
}

function showStatus(j) {
  const badge = $("#status");
  badge.className = `badge ${j.status}`;
  badge.textContent = j.status === "queued" && j.position ? `queued, ${j.position} ahead` : j.status;
}

function showProgress(step, total, losses) {
  const frac = total ? step / total : 0;
  $("#bar").style.width = `${(100 * frac).toFixed(1)}%`;
  const parts = [`step ${step}${total ? ` / ${total}` : ""}`];
  if (losses && losses.total !== undefined) {
    const terms = Object.keys(losses).filter((k) => k !== "total" && (losses[k] || k === "content" || k === "style"));
    parts.push(`loss ${fmt(losses.total)} (${terms.map((k) => `${k} ${fmt(losses[k])}`).join(", ")})`);
  }
  const last = state.history[state.history.length - 1];
  if (last && last.time !== undefined) parts.push(`${last.time.toFixed(1)} s`);
  $("#progress-text").textContent = parts.join(" · ");
}

let imageTicket = 0;

function showImage(url) {
  // Load off-screen, then swap the element: the picture changes without flashing blank, and a slow older
  // image never replaces a newer one.
  const ticket = ++imageTicket;
  const next = new Image();
  next.id = "preview";
  next.alt = "the picture as it forms";
  next.onload = () => {
    if (ticket !== imageTicket) return;
    next.classList.toggle("pixelated", next.naturalWidth < 200);
    $("#preview").replaceWith(next);
    $("#empty").hidden = true;
  };
  next.src = url;
}

async function cancel() {
  if (!state.job) return;
  $("#cancel").disabled = true;
  try {
    await api(`/api/jobs/${state.job.id}`, { method: "DELETE" });
    $("#run-message").textContent = "cancelling after this step…";
  } catch (e) {
    $("#run-message").textContent = e.message;
  }
}

// ---------------------------------------------------------------- the loss chart (chart.js draws it)
let chartQueued = false;

function scheduleChart() {
  if (chartQueued) return;
  chartQueued = true;
  requestAnimationFrame(() => { chartQueued = false; drawChart(); });
}

function drawChart() {
  drawLossChart($("#chart"), state.history, state.settings ? Object.keys(state.settings.losses) : undefined);
}

// ---------------------------------------------------------------- start
async function init() {
  for (const slot of ["content", "1", "2", "3"]) wireDrop(slot);
  $("#add-style").addEventListener("click", () => {
    const next = document.querySelector(".slot.extra[hidden]");
    if (next) next.hidden = false;
    updateBlend();
  });
  document.querySelectorAll("[data-remove]").forEach((b) => b.addEventListener("click", (e) => {
    e.preventDefault();
    const slot = b.dataset.remove;
    setFile(slot, null);
    document.querySelector(`.slot[data-slot="${slot}"]`).hidden = true;
    updateBlend();
  }));
  $("#style-weight").addEventListener("input", showStyleWeight);
  $("#preset").addEventListener("change", () => fillForm({ ...presetValues($("#preset").value), preset: $("#preset").value }));
  $("#job-form").addEventListener("submit", submit);
  $("#cancel").addEventListener("click", cancel);
  $("#refresh").addEventListener("click", loadGallery);
  window.addEventListener("resize", scheduleChart);

  try {
    state.settings = await api("/api/settings");
    const health = await api("/api/health");
    $("#server").textContent = `impasto ${health.impasto} · ${health.device}`;
    $("#server").classList.add("ok");
  } catch (e) {
    $("#server").textContent = `server unreachable: ${e.message}`;
    return;
  }
  for (const name of Object.keys(state.settings.presets)) {
    if (name !== "default") $("#preset").append(el("option", { value: name }, name));
  }
  const help = state.settings.help;
  for (const [id, key] of [["#size", "size"], ["#start-size", "start_size"], ["#first-steps", "first_steps"],
    ["#steps", "steps"], ["#style-weight", "style_weight"], ["#preserve-color", "preserve_color"]]) {
    if (help[key]) $(id).closest("label").title = help[key];
  }
  $("#size").max = state.settings.limits.max_size;
  fillForm(presetValues(""));
  updateBlend();
  drawChart();
  const jobs = await loadGallery();
  // After a reload, pick up the job that is running (or the next one waiting).
  const active = jobs.find((j) => j.status === "running") || jobs.filter((j) => j.status === "queued").pop();
  if (active && !state.job) watch(active);
  document.body.classList.add("ready");
}

init();
