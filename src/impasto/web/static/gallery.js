// The gallery of finished jobs (app.js holds the page's state and helpers: $, api, el, state, watch, reuseSettings).
"use strict";

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

async function loadGallery() {
  let jobs;
  try { jobs = (await api("/api/jobs?limit=60")).jobs; } catch (e) { return []; }
  const box = $("#gallery");
  box.replaceChildren();
  if (!jobs.length) { box.append(el("p", { class: "note" }, "No results yet.")); return jobs; }
  for (const j of jobs) {
    const when = new Date(j.created * 1000).toLocaleString();
    const picture = j.has_image
      ? el("img", { src: `${j.urls.image}?thumb=320&v=${j.status}-${j.preview_step}`, alt: "result", loading: "lazy" })
      : el("div", { class: "placeholder" }, j.status);
    const inputs = el("div", { class: "inputs" },
      ...j.urls.inputs.map((u, i) => el("img", { src: u, alt: i ? j.inputs.styles[i - 1] : j.inputs.content,
        title: i ? `style: ${j.inputs.styles[i - 1]}` : `content: ${j.inputs.content}`, loading: "lazy" })));
    const buttons = el("div", { class: "card-actions" },
      el("button", { type: "button", class: "link", onclick: () => watch(j) }, "show"),
      el("button", { type: "button", class: "link", onclick: () => reuseSettings(j) }, "reuse settings"));
    if (j.has_result) buttons.append(el("a", { href: j.urls.download, download: "" }, "download"));
    const card = el("article", { class: "card", "data-job": j.id },
      el("div", { class: "thumb", onclick: () => watch(j) }, picture),
      el("div", { class: "meta" },
        el("div", { class: "meta-head" }, el("span", { class: `badge ${j.status}` }, j.status),
          el("time", {}, when)),
        inputs,
        el("p", { class: "settings" }, summary(j.config)),
        j.message ? el("p", { class: "note" }, j.message) : "",
        buttons));
    box.append(card);
  }
  return jobs;
}
