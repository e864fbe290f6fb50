// The run panel: the job in view, followed through its event stream (GET /api/jobs/{id}/events), and the queue
// strip of the other jobs that wait or run meanwhile.
"use strict";

let imageTicket = 0;
let chartQueued = false;

function watch(job) {
  if (state.source) state.source.close();
  state.job = job;
  state.history = [];
  rememberJob(job);
  resetStrength();
  document.body.classList.add("watching");  // on a phone, the picture moves above the form
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
  source.addEventListener("status", (e) => {
    state.job = { ...state.job, ...JSON.parse(e.data) };
    showStatus(state.job);
    renderQueue(state.jobs);
  });
  source.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    state.history.push(p);
    state.job.step = p.step;
    showProgress(p.step, p.total_steps, p);
    scheduleChart();
  });
  source.addEventListener("preview", (e) => showImage(JSON.parse(e.data).url));
  source.addEventListener("end", (e) => {
    source.close();
    showJob(JSON.parse(e.data));
    refreshGallery();
  });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) $("#run-message").textContent = "lost the connection"; };
  renderQueue(state.jobs);
  markShown();
}

// Back to the empty panel (the job in view was deleted).
function unwatch() {
  if (state.source) state.source.close();
  state.job = state.source = null;
  state.history = [];
  rememberJob(null);
  resetStrength();
  document.body.classList.remove("watching");
  imageTicket++;
  $("#preview").hidden = true;
  $("#empty").hidden = false;
  $("#empty").textContent = "Choose a photo and a painting, then press Paint.";
  $("#bar").style.width = "0";
  $("#progress-text").textContent = "\u00a0";
  $("#run-title").textContent = "Result";
  $("#status").className = "badge idle";
  $("#status").textContent = "idle";
  $("#cancel").disabled = true;
  setDownload(null);
  $("#run-message").textContent = "";
  drawChart();
  renderQueue(state.jobs);
}

function showJob(j) {
  state.job = { ...state.job, ...j };
  showStatus(j);
  if (j.step) showProgress(j.step, j.total_steps, { ...(j.history || []).slice(-1)[0], ...j, ...j.losses });
  else if (typeof j.estimate_s === "number" && !FINAL.includes(j.status)) {
    $("#progress-text").textContent = `expected: about ${duration(j.estimate_s)} on this server`;  // before step 1
  }
  if (j.has_image) showImage(`${j.urls.image}?v=${j.status}-${j.preview_step}`);
  const done = FINAL.includes(j.status);
  $("#cancel").disabled = done;
  setDownload(done && j.has_result ? j : null);
  if (done && j.has_result && state.job.urls && state.job.config) offerStrength(state.job);
  $("#run-message").textContent = j.message || "";
  $("#run-title").textContent = j.inputs ? title(j) : "Result";
}

function setDownload(job) {
  const dl = $("#download");
  if (job) {
    dl.href = job.urls.download;
    dl.download = job.download_name || "";
    dl.classList.remove("disabled");
    dl.removeAttribute("aria-disabled");
    dl.title = `save ${job.download_name || "the PNG"} (its settings are inside)`;
  } else {
    dl.removeAttribute("href");
    dl.classList.add("disabled");
    dl.setAttribute("aria-disabled", "true");
    dl.title = "available when the picture is finished";
  }
}

function showStatus(j) {
  const badge = $("#status");
  badge.className = `badge ${j.status}`;
  badge.textContent = j.status === "queued" && j.position ? `queued, ${j.position} ahead` : j.status;
}

// "scale 2/4 · 181 px" from a step's fields (scale is 0-based); one scale shows only its size.
function scaleText(p) {
  const scales = p.scales ?? state.job?.scales;
  const size = Array.isArray(p.size) ? Math.max(...p.size) : p.size;
  const parts = [];
  if (p.scale !== undefined && p.scale !== null && scales > 1) parts.push(`scale ${p.scale + 1}/${scales}`);
  if (size) parts.push(`${size} px`);
  return parts.join(" · ");
}

function showProgress(step, total, p) {
  const frac = total ? step / total : 0;
  $("#bar").style.width = `${(100 * frac).toFixed(1)}%`;
  const parts = [`step ${step}${total ? ` / ${total}` : ""}`];
  const where = scaleText(p || {});
  if (where) parts.push(where);
  if (p && p.total !== undefined) {
    const terms = Object.keys(state.settings ? state.settings.losses : p)
      .filter((k) => k !== "total" && typeof p[k] === "number" && (p[k] || k === "content" || k === "style"));
    parts.push(`loss ${fmt(p.total)} (${terms.map((k) => `${k} ${fmt(p[k])}`).join(", ")})`);
  }
  const last = state.history[state.history.length - 1];
  if (last && last.time !== undefined) parts.push(`${last.time.toFixed(1)} s`);
  const eta = p && typeof p.eta_s === "number" ? p.eta_s : null;
  if (eta !== null && step < total && isActive(state.job)) parts.push(`about ${duration(eta)} left`);
  $("#progress-text").textContent = parts.join(" · ");
}

function showImage(url) {
  // Load off-screen, then swap the element: the picture changes without flashing blank, and a slow older
  // image never replaces a newer one. Drawn with smooth scaling (style.css), even when small.
  const ticket = ++imageTicket;
  const next = new Image();
  next.id = "preview";
  next.alt = "the picture as it forms";
  next.onload = () => {
    if (ticket !== imageTicket) return;
    $("#preview").replaceWith(next);
    $("#empty").hidden = true;
  };
  next.src = url;
}

async function cancel() {
  if (!state.job) return;
  $("#cancel").disabled = true;
  try {
    await api(state.job.urls.cancel || `/api/jobs/${state.job.id}/cancel`, { method: "POST" });
    $("#run-message").textContent = "cancelling after this step…";
  } catch (e) {
    $("#run-message").textContent = e.message;
  }
}

// ---------------------------------------------------------------- the queue strip
// The other jobs that run or wait, in order, each a button that brings it into view.
function renderQueue(jobs) {
  const box = $("#queue");
  const others = jobs.filter((j) => isActive(j) && (!state.job || j.id !== state.job.id))
    .sort((a, b) => (a.position ?? 0) - (b.position ?? 0) || a.created - b.created);
  box.hidden = !others.length;
  box.replaceChildren(el("span", { class: "queue-title" }, "Also in the queue"), ...others.map((j) => {
    const where = j.status === "running" ? `running${j.total_steps ? ` · ${j.step}/${j.total_steps}` : ""}`
      : `${j.position} ahead`;
    return el("button", { type: "button", class: `queued-job ${j.status}`, "data-job": j.id, onclick: () => watch(j) },
      el("span", { class: `badge ${j.status}` }, where), ` ${title(j)}`);
  }));
}

// ---------------------------------------------------------------- the loss chart (chart.js draws it)
function scheduleChart() {
  if (chartQueued) return;
  chartQueued = true;
  requestAnimationFrame(() => { chartQueued = false; drawChart(); });
}

function drawChart() {
  drawLossChart($("#chart"), state.history, state.settings ? Object.keys(state.settings.losses) : undefined);
}

function wireRun() {
  $("#cancel").addEventListener("click", cancel);
  window.addEventListener("resize", scheduleChart);
}
