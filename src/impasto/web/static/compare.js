// Two results side by side: pick two gallery cards, then a split view (a dialog) shows one picture clipped over
// the other; the slider, or dragging across the picture, moves the split.
"use strict";

function pickForCompare(id, picked) {
  state.compare = state.compare.filter((x) => x !== id);
  if (picked) state.compare.push(id);
  if (state.compare.length > 2) state.compare.shift();  // a third pick drops the oldest
  document.querySelectorAll(".card").forEach((c) => {
    const box = c.querySelector(".pick input");
    if (box) box.checked = state.compare.includes(c.dataset.job);
  });
  updateCompareBar();
}

function updateCompareBar() {
  const button = $("#compare-open");
  const n = state.compare.length;
  button.disabled = n !== 2;
  button.textContent = n === 2 ? "compare the two picked" : `compare: pick ${2 - n} more`;
  button.hidden = n === 0;
}

function setSplit(percent) {
  const p = Math.min(100, Math.max(0, Number(percent)));
  $("#compare-view").style.setProperty("--split", `${p}%`);  // CSSOM, which the page's CSP allows
  $("#compare-slider").value = p;
}

function openCompare(a, b) {
  if (!a || !b) return;
  const view = $("#compare-view");
  const [left, right] = [$("#compare-a"), $("#compare-b")];
  left.onload = () => view.style.setProperty("--aspect", `${left.naturalWidth / left.naturalHeight}`);
  left.src = `${a.urls.image}?v=${a.status}-${a.preview_step}`;
  right.src = `${b.urls.image}?v=${b.status}-${b.preview_step}`;
  left.alt = `left: ${title(a)}`;
  right.alt = `right: ${title(b)}`;
  $("#compare-label-a").textContent = `◀ ${title(a)} · ${summary(a.config)}`;
  $("#compare-label-b").textContent = `${title(b)} · ${summary(b.config)} ▶`;
  setSplit(50);
  $("#compare").showModal();
}

function wireCompare() {
  const view = $("#compare-view");
  $("#compare-slider").addEventListener("input", (e) => setSplit(e.target.value));
  $("#compare-close").addEventListener("click", () => $("#compare").close());
  $("#compare").addEventListener("click", (e) => {  // a click on the backdrop, outside the dialog's box, closes it
    const box = $("#compare").getBoundingClientRect();
    const outside = e.clientX < box.left || e.clientX > box.right || e.clientY < box.top || e.clientY > box.bottom;
    if (e.target === $("#compare") && outside) $("#compare").close();
  });
  let dragging = false;
  const follow = (e) => {
    const box = view.getBoundingClientRect();
    setSplit((100 * (e.clientX - box.left)) / box.width);
  };
  view.addEventListener("pointerdown", (e) => { dragging = true; view.setPointerCapture(e.pointerId); follow(e); });
  view.addEventListener("pointermove", (e) => { if (dragging) follow(e); });
  view.addEventListener("pointerup", () => { dragging = false; });
}
