// impasto's page: pick images, queue a job, watch it form (Server-Sent Events), browse earlier results.
// Plain JavaScript, no build step and nothing from elsewhere: the server's CSP allows only this origin.
// One concern per script, loaded in order (index.html): chart.js (the loss chart), store.js (what survives a
// reload), compare.js (two results side by side), gallery.js (the cards, live), run.js (the job in view),
// strength.js (the strength slider on a finished result), form.js (images and settings, Paint), app.js (shared
// state and helpers, start).
"use strict";

const $ = (sel) => document.querySelector(sel);
const FINAL = ["done", "cancelled", "diverged", "failed"];  // as GET /api/settings gives them (statuses.final)
// Fields the form owns; "reuse settings" puts any other non-default setting into the JSON box.
const FORM_FIELDS = ["preset", "size", "size_side", "start_size", "first_steps", "steps", "style_weight",
  "preserve_color", "style_blend"];
const SLOTS = ["content", "1", "2", "3"];  // the drop zones: the photo, then up to three styles

const state = {
  settings: null,      // GET /api/settings
  files: {},           // slot -> File
  job: null,           // the job shown in the run panel
  source: null,        // its EventSource
  history: [],         // its loss history, for the chart
  jobs: [],            // the latest listing (GET /api/jobs): the gallery and the queue strip
  compare: [],         // ids of the (at most two) gallery cards picked for comparison
};

// ---------------------------------------------------------------- helpers
function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e4 || a < 1e-2)) return x.toExponential(2);
  return Number(x.toPrecision(3)).toString();
}

function duration(s) {
  if (s < 60) return `${Math.max(1, Math.round(s))} s`;
  const m = Math.floor(s / 60), rest = Math.round(s % 60);
  return m < 60 ? `${m} min ${rest} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

async function api(path, options = {}) {
  const resp = await fetch(path, options);
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON (or 204: no body) */ }
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

function title(job) { return `${job.inputs.content} × ${job.inputs.styles.join(" + ")}`; }

function isActive(job) { return Boolean(job) && !FINAL.includes(job.status); }

// ---------------------------------------------------------------- start
async function init() {
  wireForm();
  wireRun();
  wireStrength();
  wireGallery();
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
  restoreForm();  // a reload keeps what was typed (store.js)
  updateBlend();
  drawChart();
  const [jobs] = await Promise.all([refreshGallery(), restoreImages()]);
  // After a reload: the job this tab watched, else the one running (or the next one waiting).
  const watched = await recallJob();
  const active = watched || jobs.find((j) => j.status === "running") || jobs.filter((j) => j.status === "queued").pop();
  if (active && !state.job) watch(active);
  document.body.classList.add("ready");
}

init();
