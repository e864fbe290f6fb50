// The loss chart: each loss term against the step, on a log scale, drawn on a canvas (no library); dashed
// lines mark the scale changes of a coarse-to-fine run.
"use strict";

const PALETTE = ["#e8b04a", "#6fa8dc", "#d0756b", "#93c47d", "#b48ead", "#76c7c0", "#c9a26b"];

// names: "total" and the objective's terms, in order (GET /api/settings: losses), one series each.
function lossSeries(names) {
  return names.map((k, i) => [k, PALETTE[i % PALETTE.length]]);
}

// history: [{step, total, content, style, tv, ...}, ...]; terms that are never > 0 are left out (log scale).
function drawLossChart(canvas, history, names = ["total", "content", "style", "tv"]) {
  const LOSS_SERIES = lossSeries(names);
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const series = LOSS_SERIES.filter(([k]) => history.some((p) => p[k] > 0));
  const pad = { l: 44, r: 8, t: 18, b: 18 };
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#8a8580";
  if (!history.length || !series.length) {
    ctx.fillText("losses appear here while it runs", pad.l, h / 2);
    return;
  }
  let lo = Infinity, hi = -Infinity, s0 = Infinity, s1 = -Infinity;
  for (const p of history) {
    s0 = Math.min(s0, p.step);
    s1 = Math.max(s1, p.step);
    for (const [k] of series) {
      if (p[k] > 0) { lo = Math.min(lo, Math.log10(p[k])); hi = Math.max(hi, Math.log10(p[k])); }
    }
  }
  if (hi - lo < 0.5) { lo -= 0.25; hi += 0.25; }
  s1 = Math.max(s1, s0 + 1);
  const x = (s) => pad.l + ((s - s0) / (s1 - s0)) * (w - pad.l - pad.r);
  const y = (v) => pad.t + (1 - (Math.log10(v) - lo) / (hi - lo)) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#3a3633";
  ctx.lineWidth = 1;
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {  // one grid line per power of ten
    ctx.beginPath(); ctx.moveTo(pad.l, y(10 ** e)); ctx.lineTo(w - pad.r, y(10 ** e)); ctx.stroke();
    ctx.fillText(`1e${e}`, 4, y(10 ** e) + 4);
  }
  ctx.fillText(`step ${s1}`, w - pad.r - 50, h - 4);
  // A new scale has more pixels, so the losses jump there: a dashed line and the scale's number mark each change.
  ctx.save();
  ctx.setLineDash([3, 3]);
  ctx.strokeStyle = "#6b635c";
  for (let i = 1; i < history.length; i++) {
    const p = history[i];
    if (p.scale === undefined || p.scale === history[i - 1].scale) continue;
    const sx = x(p.step - 0.5);
    ctx.beginPath(); ctx.moveTo(sx, pad.t); ctx.lineTo(sx, h - pad.b); ctx.stroke();
    ctx.fillText(`scale ${p.scale + 1}`, sx + 3, h - pad.b - 3);
  }
  ctx.restore();
  let lx = pad.l;
  for (const [k, colour] of series) {
    const points = history.filter((p) => p[k] > 0);
    ctx.strokeStyle = ctx.fillStyle = colour;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((p, i) => (i ? ctx.lineTo(x(p.step), y(p[k])) : ctx.moveTo(x(p.step), y(p[k]))));
    ctx.stroke();
    if (points.length === 1) ctx.fillRect(x(points[0].step) - 2, y(points[0][k]) - 2, 4, 4);
    ctx.fillRect(lx, 5, 10, 3);  // the legend
    ctx.fillText(k, lx + 14, 11);
    lx += 20 + ctx.measureText(k).width;
  }
}
