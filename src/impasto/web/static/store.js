// What survives a reload of this tab (sessionStorage: this tab only, gone when it closes): the watched job's id,
// the form's values and the chosen images. An image that is a job's stored input (after Paint, or from "reuse
// settings") is kept as a reference and fetched again from GET /api/jobs/{id}/inputs/{n}; one not sent yet is kept
// as a data URL while it fits in the tab's storage (a few MB), else it is chosen again after a reload.
"use strict";

const STORE = "impasto.";
const FORM_IDS = ["preset", "size", "size-side", "start-size", "first-steps", "steps", "style-weight", "preserve-color",
  "extra", "blend-1", "blend-2", "blend-3"];

function remember(key, value) {
  try {
    if (value === null || value === undefined) sessionStorage.removeItem(STORE + key);
    else sessionStorage.setItem(STORE + key, JSON.stringify(value));
    return true;
  } catch (_) {
    return false;  // full, or storage is off: the page works on without it
  }
}

function recall(key) {
  try { return JSON.parse(sessionStorage.getItem(STORE + key)); } catch (_) { return null; }
}

// ---------------------------------------------------------------- the form's values
function saveForm() {
  if (!state.settings) return;  // not filled in yet
  const values = Object.fromEntries(FORM_IDS.map((id) => [id, $(`#${id}`).value]));
  values.slots = ["2", "3"].filter((s) => !slotBox(s).hidden);
  values.more = $("details.more").open;
  remember("form", values);
}

function restoreForm() {
  const values = recall("form");
  if (!values) return;
  for (const id of FORM_IDS) {
    if (typeof values[id] === "string") $(`#${id}`).value = values[id];
  }
  ["2", "3"].forEach((s) => { slotBox(s).hidden = !(values.slots || []).includes(s); });
  if (values.more) $("details.more").open = true;
  showStyleWeight();
}

// ---------------------------------------------------------------- the images
function rememberImage(slot, file, source) {
  const key = `image.${slot}`;
  if (!file) { remember(key, null); return; }
  if (source) { remember(key, { name: file.name, job: source.job, index: source.index }); return; }
  remember(key, null);  // until the new one is read: never an older image after a reload
  const reader = new FileReader();
  reader.onload = () => {
    if (state.files[slot] === file) remember(key, { name: file.name, data: reader.result });
  };
  reader.readAsDataURL(file);
}

function fileFromDataURL(url, name) {
  const comma = url.indexOf(",");
  const type = /^data:([^;,]+)/.exec(url)?.[1] || "application/octet-stream";
  // (not fetch(url): the page's CSP allows connections to this origin only, and data: is another)
  const bytes = Uint8Array.from(atob(url.slice(comma + 1)), (c) => c.charCodeAt(0));
  return new File([bytes], name, { type });
}

// A job's stored input as a File named by its label (the server re-encoded it as PNG); null if it is gone.
async function fetchInput(jobId, index, name) {
  try {
    const resp = await fetch(`/api/jobs/${encodeURIComponent(jobId)}/inputs/${index}`);
    if (!resp.ok) return null;
    return new File([await resp.blob()], name, { type: "image/png" });
  } catch (_) {
    return null;
  }
}

async function restoreImages() {
  await Promise.all(SLOTS.map(async (slot) => {
    const saved = recall(`image.${slot}`);
    if (!saved || !saved.name) return;
    let file = null;
    try {
      file = saved.data ? fileFromDataURL(saved.data, saved.name) : await fetchInput(saved.job, saved.index, saved.name);
    } catch (_) { /* a broken entry: forget it */ }
    if (file && (slot === "content" || !slotBox(slot).hidden)) {
      setFile(slot, file, saved.data ? null : saved);
      if (saved.data) remember(`image.${slot}`, saved);  // setFile re-reads it; keep the entry meanwhile
    } else {
      remember(`image.${slot}`, null);
    }
  }));
  updateBlend();
}

// ---------------------------------------------------------------- the watched job
function rememberJob(job) { remember("job", job ? job.id : null); }

async function recallJob() {
  const id = recall("job");
  if (!id) return null;
  try {
    return await api(`/api/jobs/${encodeURIComponent(id)}`);
  } catch (_) {
    remember("job", null);  // deleted, or another results folder
    return null;
  }
}
