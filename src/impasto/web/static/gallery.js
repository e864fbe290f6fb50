// The gallery: a card per job, newest first, kept live by polling GET /api/jobs (often while a job runs or waits,
// now and then otherwise), updated in place so that pictures do not flash. Each card can be shown, reused,
// downloaded, picked for comparison (compare.js) or, once ended, deleted after an inline confirmation.
"use strict";

const LIVE_MS = 1500, IDLE_MS = 10000;
let galleryTimer = null;

function summary(cfg) {
  const parts = [`${cfg.size} px`];
  if (cfg.start_size && cfg.start_size < cfg.size) {
    parts.push(`from ${cfg.start_size}`, `${cfg.steps} steps/scale` + (cfg.first_steps ? ` (${cfg.first_steps} first)` : ""));
  } else {
    parts.push("one scale", `${cfg.steps} steps`);
  }
  parts.push(`style ×${fmt(cfg.style_weight)}`);
  if (cfg.preserve_color !== "none") parts.push(`colour: ${cfg.preserve_color}`);
  if (cfg.preset) parts.push(cfg.preset);
  if (cfg.style_blend) parts.push(`blend ${cfg.style_blend.join(":")}`);
  return parts.join(" · ");
}

async function refreshGallery() {
  clearTimeout(galleryTimer);
  let jobs = null;
  try { jobs = (await api("/api/jobs?limit=60")).jobs; } catch (_) { /* the server is away: try again later */ }
  if (jobs) {
    state.jobs = jobs;
    renderGallery(jobs);
    renderQueue(jobs);
  }
  galleryTimer = setTimeout(refreshGallery, (jobs || []).some(isActive) ? LIVE_MS : IDLE_MS);
  return jobs || [];
}

function latest(id) { return state.jobs.find((j) => j.id === id); }

function badgeText(j) {
  if (j.status === "queued") return j.position ? `queued · ${j.position} ahead` : "queued · next";
  if (j.status === "running" && j.total_steps) return `running · ${j.step}/${j.total_steps}`;
  return j.status;
}

function renderGallery(jobs) {
  const box = $("#gallery");
  const cards = new Map([...box.querySelectorAll(".card")].map((c) => [c.dataset.job, c]));
  const shown = jobs.map((j) => updateCard(cards.get(j.id) || el("article", { class: "card", "data-job": j.id }), j));
  box.replaceChildren(...(shown.length ? shown : [el("p", { class: "note" }, "No results yet.")]));
  state.compare = state.compare.filter((id) => jobs.some((j) => j.id === id && j.has_image));
  updateCompareBar();
  markShown();
}

// Rebuild only what changed: the picture when there is a newer one, the text when the status or step moved.
function updateCard(card, j) {
  const pic = j.has_image ? `${j.status}-${j.preview_step}` : j.status;
  if (card.dataset.pic !== pic) {
    card.dataset.pic = pic;
    setThumb(card, j);
  }
  const meta = [j.status, j.position, j.step, j.message, j.has_result].join("|");
  if (card.dataset.meta !== meta && !card.classList.contains("confirming")) {
    card.dataset.meta = meta;
    const fresh = cardMeta(j);
    const old = card.querySelector(".meta");
    if (old) old.replaceWith(fresh); else card.append(fresh);
  }
  const pick = card.querySelector(".pick input");
  if (pick) pick.checked = state.compare.includes(j.id);
  return card;
}

function setThumb(card, j) {
  let thumb = card.querySelector(".thumb");
  if (!thumb) {
    thumb = el("div", { class: "thumb", title: "show", onclick: () => watch(latest(j.id) || j) });
    card.prepend(thumb);
  }
  if (!j.has_image) { thumb.replaceChildren(el("div", { class: "placeholder" }, j.status)); return; }
  const img = el("img", { alt: `result: ${title(j)}` });
  const hadOne = thumb.querySelector("img");
  img.onload = () => { if (img.parentNode !== thumb) thumb.replaceChildren(img); };  // swap once loaded: no flash
  img.src = `${j.urls.image}?thumb=320&v=${j.status}-${j.preview_step}`;
  if (!hadOne) thumb.replaceChildren(img);
}

function cardMeta(j) {
  const when = new Date(j.created * 1000).toLocaleString();
  const inputs = el("div", { class: "inputs" },
    ...j.urls.inputs.map((u, i) => el("img", { src: u, alt: i ? j.inputs.styles[i - 1] : j.inputs.content,
      title: i ? `style: ${j.inputs.styles[i - 1]}` : `content: ${j.inputs.content}`, loading: "lazy" })),
    ...(window.impastoMasks?.thumbs(j) || []));  // its regions (masks.js)
  const actions = el("div", { class: "card-actions" },
    el("button", { type: "button", class: "link", onclick: () => watch(latest(j.id) || j) }, "show"),
    el("button", { type: "button", class: "link", onclick: () => reuseSettings(latest(j.id) || j) }, "reuse settings"));
  if (j.has_result) actions.append(el("a", { href: j.urls.download, download: j.download_name || "" }, "download"));
  if (j.has_image && FINAL.includes(j.status)) {
    const box = el("input", { type: "checkbox", onchange: (e) => pickForCompare(j.id, e.target.checked) });
    actions.append(el("label", { class: "pick", title: "pick two results to see them side by side" }, box, "compare"));
  }
  if (FINAL.includes(j.status)) {
    actions.append(el("button", { type: "button", class: "link danger", onclick: (e) => askDelete(e.target.closest(".card"), j) },
      "delete"));
  }
  return el("div", { class: "meta" },
    el("div", { class: "meta-head" }, el("span", { class: `badge ${j.status}` }, badgeText(j)), el("time", {}, when)),
    inputs,
    el("p", { class: "settings" }, summary(j.config)),
    j.message ? el("p", { class: "note" }, j.message) : "",
    actions);
}

// The card that the run panel shows is outlined.
function markShown() {
  document.querySelectorAll(".card").forEach((c) => c.classList.toggle("shown", Boolean(state.job) && c.dataset.job === state.job.id));
}

// ---------------------------------------------------------------- deleting, after an inline confirmation
function askDelete(card, j) {
  card.classList.add("confirming");
  const actions = card.querySelector(".card-actions");
  const keep = () => {
    card.classList.remove("confirming");
    card.dataset.meta = "";
    updateCard(card, latest(j.id) || j);
  };
  actions.replaceChildren(
    el("span", { class: "confirm-text" }, "Delete this result and its images?"),
    el("button", { type: "button", class: "danger small confirm-delete", onclick: () => deleteJob(card, j) }, "Delete"),
    el("button", { type: "button", class: "link", onclick: keep }, "keep"));
  actions.querySelector(".confirm-delete").focus();
}

async function deleteJob(card, j) {
  try {
    await api(j.urls.self, { method: "DELETE" });
  } catch (e) {
    card.querySelector(".confirm-text").textContent = e.message;
    return;
  }
  card.remove();
  state.jobs = state.jobs.filter((x) => x.id !== j.id);
  state.compare = state.compare.filter((id) => id !== j.id);
  if (state.job && state.job.id === j.id) unwatch();
  refreshGallery();
}

function wireGallery() {
  $("#refresh").addEventListener("click", refreshGallery);
  $("#compare-open").addEventListener("click", () => openCompare(...state.compare.map(latest)));
  wireCompare();
  // A tab in the background polls slowly; coming back, it catches up at once.
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshGallery(); });
}
