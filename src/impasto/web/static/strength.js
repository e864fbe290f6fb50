// The strength slider: a finished result blended with its photo in the browser, as `impasto blend` and
// `--strength` do in Python (impasto/core/colour.py): linearly in OKLab, the same constants, the same rounding
// (tests/test_browser_strength.py checks that both give the same pixels). The photo comes at the result's size
// (GET /api/jobs/{id}/photo); moving the slider re-blends at once, and Download then saves what is shown.
"use strict";

const OKLAB = {
  rgbToLms: [[0.4122214708, 0.5363325363, 0.0514459929], [0.2119034982, 0.6806995451, 0.1073969566],
    [0.0883024619, 0.2817188376, 0.6299787005]],
  lmsToLab: [[0.2104542553, 0.7936177850, -0.0040720468], [1.9779984951, -2.4285922050, 0.4505937099],
    [0.0259040371, 0.7827717662, -0.8086757660]],
  labToLms: [[1.0, 0.3963377774, 0.2158037573], [1.0, -0.1055613458, -0.0638541728],
    [1.0, -0.0894841775, -1.2914855480]],
  lmsToRgb: [[4.0767416621, -3.3077115913, 0.2309699292], [-1.2684380046, 2.6097574011, -0.3413193965],
    [-0.0041960863, -0.7034186147, 1.7076147010]],
};
// sRGB byte → linear light, once per byte value (Python computes the same from the byte / 255).
const LINEAR = Float64Array.from({ length: 256 }, (_, i) => {
  const c = i / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
});

function mix3(m, x, y, z) {
  return [m[0][0] * x + m[0][1] * y + m[0][2] * z, m[1][0] * x + m[1][1] * y + m[1][2] * z,
    m[2][0] * x + m[2][1] * y + m[2][2] * z];
}

// RGBA bytes (an ImageData's data) → OKLab, three floats a pixel.
function toOklab(rgba) {
  const n = rgba.length / 4, out = new Float64Array(3 * n);
  for (let i = 0; i < n; i++) {
    const [l, m, s] = mix3(OKLAB.rgbToLms, LINEAR[rgba[4 * i]], LINEAR[rgba[4 * i + 1]], LINEAR[rgba[4 * i + 2]]);
    const lab = mix3(OKLAB.lmsToLab, Math.cbrt(Math.max(l, 0)), Math.cbrt(Math.max(m, 0)), Math.cbrt(Math.max(s, 0)));
    out[3 * i] = lab[0]; out[3 * i + 1] = lab[1]; out[3 * i + 2] = lab[2];
  }
  return out;
}

function encode(c) {  // linear light → an sRGB byte, clamped and rounded half up as impasto's tensor_to_pil does
  const x = Math.min(Math.max(c, 0), 1);
  const v = Math.min(Math.max(x <= 0.0031308 ? 12.92 * x : 1.055 * x ** (1 / 2.4) - 0.055, 0), 1);
  return Math.floor(v * 255 + 0.5);
}

// photo + f·(shown − photo) in OKLab, into ``out`` (RGBA bytes), f = strength now / strength made at; the alpha is
// the result's (``shown``, RGBA bytes): a transparent result stays transparent, as impasto blend keeps it.
function blendLab(photoLab, shownLab, f, out, shown) {
  for (let i = 0, n = photoLab.length / 3; i < n; i++) {
    const L = photoLab[3 * i] + f * (shownLab[3 * i] - photoLab[3 * i]);
    const a = photoLab[3 * i + 1] + f * (shownLab[3 * i + 1] - photoLab[3 * i + 1]);
    const b = photoLab[3 * i + 2] + f * (shownLab[3 * i + 2] - photoLab[3 * i + 2]);
    const [l, m, s] = mix3(OKLAB.labToLms, L, a, b);
    const rgb = mix3(OKLAB.lmsToRgb, l * l * l, m * m * m, s * s * s);
    out[4 * i] = encode(rgb[0]); out[4 * i + 1] = encode(rgb[1]); out[4 * i + 2] = encode(rgb[2]);
    out[4 * i + 3] = shown[4 * i + 3];
  }
  return out;
}

// The blend on plain byte arrays (RGBA): what the tests compare with Python's.
function blendBytes(photo, shown, was, now) {
  const out = new Uint8ClampedArray(photo.length);
  if (now === was) { out.set(shown); return out; }
  if (now === 0) { out.set(photo); return out; }
  return blendLab(toOklab(photo), toOklab(shown), now / was, out, shown);
}

// ---------------------------------------------------------------- the slider on the page
const strength = { job: null, was: 1, photo: null, shown: null, photoLab: null, shownLab: null, image: null,
  url: null, ticket: 0 };

function pixelsOf(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const c = document.createElement("canvas");
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      resolve(ctx.getImageData(0, 0, c.width, c.height));
    };
    img.onerror = () => reject(new Error(`cannot load ${url}`));
    img.src = url;
  });
}

// A finished job with a result: load the result and its photo, then offer the slider at the job's own strength.
async function offerStrength(job) {
  if (strength.job === job.id) return;
  resetStrength();
  const ticket = strength.ticket;
  strength.job = job.id;
  strength.was = job.config && typeof job.config.strength === "number" ? job.config.strength : 1;
  try {
    const [shown, photo] = await Promise.all([pixelsOf(`${job.urls.image}?v=final`), pixelsOf(job.urls.photo)]);
    if (ticket !== strength.ticket) return;
    if (shown.width !== photo.width || shown.height !== photo.height) throw new Error("the photo is not the result's size");
    Object.assign(strength, { shown, photo, photoLab: toOklab(photo.data), shownLab: toOklab(shown.data) });
  } catch (e) {
    if (ticket === strength.ticket) $("#run-message").textContent = `strength: ${e.message}`;
    return;
  }
  const slider = $("#strength");
  slider.value = String(strength.was);
  slider.disabled = strength.was === 0;  // a result made at 0 is the photo: the painting is not in it
  slider.title = slider.disabled ? "made at strength 0: the painting is not in it" : "how much of the painting to keep";
  $("#strength-value").textContent = strength.was.toFixed(2);
  $("#strength-row").hidden = false;
}

function resetStrength() {
  strength.ticket++;
  Object.assign(strength, { job: null, photo: null, shown: null, photoLab: null, shownLab: null });
  if (strength.url) URL.revokeObjectURL(strength.url);
  strength.url = null;
  $("#strength-row").hidden = true;
  $("#blended").hidden = true;
}

function reblend() {
  if (!strength.shown) return;
  const now = Number($("#strength").value);
  $("#strength-value").textContent = now.toFixed(2);
  const canvas = $("#blended"), { width, height } = strength.shown;
  if (now === strength.was) {  // the result as made: the server's PNG (with its recipe) is what is shown
    canvas.hidden = true;
    $("#preview").hidden = false;
    setDownload(state.job);
    return;
  }
  canvas.width = width; canvas.height = height;
  const out = new ImageData(width, height);
  blendLab(strength.photoLab, strength.shownLab, now / strength.was, out.data, strength.shown.data);
  canvas.getContext("2d").putImageData(out, 0, 0);
  canvas.hidden = false;
  $("#preview").hidden = true;
  const dl = $("#download");
  dl.removeAttribute("href");  // until the PNG of what is shown is ready
  const ticket = strength.ticket;
  canvas.toBlob((blob) => {
    if (ticket !== strength.ticket || Number($("#strength").value) !== now || !blob) return;
    if (strength.url) URL.revokeObjectURL(strength.url);
    strength.url = URL.createObjectURL(blob);
    dl.href = strength.url;
    const name = (state.job && state.job.download_name) || "impasto.png";
    dl.download = name.replace(/\.png$/, `-strength${Math.round(now * 100)}.png`);
    dl.title = `save the picture at strength ${now.toFixed(2)}, as shown (impasto blend keeps the recipe)`;
  }, "image/png");
}

function wireStrength() {
  $("#strength").addEventListener("input", reblend);
}
