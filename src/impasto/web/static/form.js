// The form: the drop zones (a photo and up to three styles), the settings, "reuse settings" and Paint.
"use strict";

// ---------------------------------------------------------------- images: drop zones
function drop(slot) { return slot === "content" ? $("#content-drop") : $(`#style-drop-${slot}`); }

function slotBox(slot) { return document.querySelector(`.slot[data-slot="${slot}"]`); }

// source: {job, index} when the file is a job's stored input (so a reload can fetch it again), else null.
function setFile(slot, file, source = null) {
  const zone = drop(slot);
  const img = zone.querySelector("img");
  if (img.src) URL.revokeObjectURL(img.src);
  if (!file) {
    delete state.files[slot];
    zone.classList.remove("filled");
    img.removeAttribute("src");
  } else {
    state.files[slot] = file;
    zone.classList.add("filled");
    img.src = URL.createObjectURL(file);
    img.alt = file.name;
  }
  rememberImage(slot, file, source);
  updateBlend();
}

function wireDrop(slot) {
  const zone = drop(slot);
  const input = zone.querySelector("input");
  input.addEventListener("change", () => setFile(slot, input.files[0]));
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = [...e.dataTransfer.files].find((f) => f.type.startsWith("image/")) || e.dataTransfer.files[0];
    if (file) setFile(slot, file);
  });
}

function styleSlots() {
  return ["1", "2", "3"].filter((s) => state.files[s] && !slotBox(s).hidden);
}

function showSlot(slot, shown) {
  slotBox(slot).hidden = !shown;
  if (!shown && state.files[slot]) setFile(slot, null);
}

function updateBlend() {
  const blending = styleSlots().length > 1;
  document.querySelectorAll(".blend").forEach((b) => { b.hidden = !blending; });
  $("#blend-note").hidden = !blending;
  $("#add-style").hidden = !slotBox("3").hidden;
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
  $("#size-side").value = cfg.size_side;
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
    size_side: $("#size-side").value,
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

// A gallery card's settings and images back into the form (the images from the job's stored inputs).
async function reuseSettings(job) {
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
  const n = job.inputs.styles.length;
  ["2", "3"].forEach((s) => showSlot(s, Number(s) <= n));
  (cfg.style_blend || []).forEach((w, i) => { $(`#blend-${i + 1}`).value = Math.round(w * 100); });
  updateBlend();
  $("#form-error").textContent = "";
  $("#form-note").textContent = "";
  $("#job-form").scrollIntoView({ behavior: "smooth" });
  const names = [job.inputs.content, ...job.inputs.styles];
  const files = await Promise.all(names.map((name, i) => fetchInput(job.id, i, name)));
  files.forEach((file, i) => { if (file) setFile(i ? String(i) : "content", file, { job: job.id, index: i }); });
  if (files.includes(null)) $("#form-error").textContent = "Some of that job's images are gone; choose them again.";
  else window.impastoMasks?.reuse(job);  // and its painted regions (masks.js)
  saveForm();
}

// ---------------------------------------------------------------- submitting
async function submit(event) {
  event.preventDefault();
  const error = $("#form-error");
  error.textContent = "";
  $("#form-note").textContent = "";
  try {
    if (!state.files.content) throw new Error("Choose a content image (the photo).");
    const styles = styleSlots();
    if (!styles.length) throw new Error("Choose a style image (the painting).");
    const cfg = formConfig();
    const data = new FormData();
    data.append("content", state.files.content);
    for (const s of styles) data.append("style", state.files[s]);
    await window.impastoMasks?.append(data, styles);  // painted regions, if any (masks.js)
    if (styles.length > 1 && !("style_blend" in cfg)) {
      const weights = styles.map((s) => Number($(`#blend-${s}`).value));
      const sum = weights.reduce((a, b) => a + b, 0);
      data.append("style_blend", weights.map((w) => (w / sum).toFixed(3)).join(","));
    }
    data.append("config", JSON.stringify(cfg));
    $("#start").disabled = true;
    const job = await api("/api/jobs", { method: "POST", body: data });
    // The images are the job's stored inputs now: a reload fetches them from there, whatever their size.
    ["content", ...styles].forEach((s, i) => rememberImage(s, state.files[s], { job: job.id, index: i }));
    if (isActive(state.job)) {  // the running job stays in view; this one waits in the queue strip
      $("#form-note").textContent = `Queued (${job.position} ahead): it shows under the picture and in the gallery.`;
    } else {
      watch(job);
    }
    refreshGallery();
  } catch (e) {
    error.textContent = e.message;
  } finally {
    $("#start").disabled = false;
  }
}

function wireForm() {
  for (const slot of SLOTS) wireDrop(slot);
  $("#add-style").addEventListener("click", () => {
    const next = document.querySelector(".slot.extra[hidden]");
    if (next) next.hidden = false;
    updateBlend();
    saveForm();
  });
  document.querySelectorAll("[data-remove]").forEach((b) => b.addEventListener("click", (e) => {
    e.preventDefault();
    showSlot(b.dataset.remove, false);
    updateBlend();
    saveForm();
  }));
  $("#style-weight").addEventListener("input", showStyleWeight);
  $("#preset").addEventListener("change", () => {
    fillForm({ ...presetValues($("#preset").value), preset: $("#preset").value });
    saveForm();
  });
  const form = $("#job-form");
  form.addEventListener("input", saveForm);  // every edit is kept for a reload
  form.addEventListener("change", saveForm);
  $("details.more").addEventListener("toggle", saveForm);
  form.addEventListener("submit", submit);
}
