// fashion-search page: plain JS, no build step. Talks to the gateway's JSON API (/api/*).
"use strict";

const $ = (id) => document.getElementById(id);
let queryImage = null;   // File or Blob chosen, dropped or pasted
let lastTextQuery = "";

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}
function clearError() { $("error").hidden = true; }

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("The search gateway cannot be reached: " + err.message);
  }
  let body = null;
  try { body = await response.json(); } catch (_) { /* non-JSON error page */ }
  if (!response.ok) {
    throw new Error((body && body.error) || `Request failed (${response.status} ${response.statusText})`);
  }
  return body;
}

function filters() {
  const out = {};
  for (const select of document.querySelectorAll("#filter-selects select")) {
    const chosen = [...select.selectedOptions].map((o) => o.value).filter(Boolean);
    if (chosen.length) out[select.name] = chosen;
  }
  for (const key of ["year_min", "year_max"]) {
    if ($(key).value) out[key] = Number($(key).value);
  }
  return out;
}

function params() {
  return { k: Number($("k").value || 12), filters: filters(), index: $("index").value || "" };
}

async function loadMeta() {
  try {
    const meta = await api("/api/meta");
    $("model-badge").textContent = `model: ${meta.model.model_id} (${meta.model.version})`;
    $("card-body").textContent = JSON.stringify(meta.model.card, null, 2) || "no card";
    const selects = $("filter-selects");
    selects.innerHTML = "";
    // The filter fields and their labels come from the gateway (fashion_core.catalog.schema.KEYWORDS).
    for (const { name: field, label } of meta.filter_fields) {
      const values = meta.facets[field] || [];
      if (!values.length) continue;
      const wrap = document.createElement("label");
      wrap.textContent = label + " ";
      const select = document.createElement("select");
      select.name = field;
      select.id = "filter-" + field;
      select.append(new Option("any", ""));
      for (const v of values) select.append(new Option(v, v));
      wrap.append(select);
      selects.append(wrap);
    }
    const indexSelect = $("index");
    indexSelect.innerHTML = "";
    for (const idx of meta.indexes) indexSelect.append(new Option(`${idx.name} (${idx.size}, ${idx.backend})`, idx.name));
    $("index-choice").hidden = meta.indexes.length < 2;
  } catch (err) {
    showError(err.message);
  }
}

// Which ranking found a hit (SearchHit.matched), in the switch's words.
const MATCHED = { "dense": "picture", "lexical": "words", "dense+lexical": "words + picture" };
// The switch's modes (SearchTextRequest.mode), in the same words.
const MODES = { "dense": "picture", "lexical": "words", "hybrid": "words + picture" };

function textMode() {
  const checked = document.querySelector("#mode input[name=mode]:checked");
  return checked ? checked.value : "";
}

function renderResults(data, title) {
  $("status").textContent = `${title}: ${data.hits.length} results in ${data.took_ms} ms`;
  const grid = $("results");
  grid.innerHTML = "";
  const heat = $("heatmap").checked && lastTextQuery && !queryImage;
  for (const hit of data.hits) {
    const p = hit.product;
    const item = document.createElement("div");
    item.className = "item";
    item.dataset.id = hit.id;
    item.title = "more like this";
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    const img = document.createElement("img");
    img.src = hit.image_url;
    img.alt = p.productDisplayName || String(hit.id);
    img.loading = "lazy";
    thumb.append(img);
    if (heat) {
      const overlay = document.createElement("img");
      overlay.className = "overlay";
      overlay.alt = "localization heatmap";
      overlay.src = `/api/localize?id=${hit.id}&query=${encodeURIComponent(lastTextQuery)}&index=${encodeURIComponent(params().index)}`;
      thumb.append(overlay);
    }
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = p.productDisplayName || hit.id;
    const attrs = document.createElement("div");
    attrs.className = "attrs";
    attrs.textContent = [p.gender, p.articleType, p.baseColour, p.season, p.usage, p.year].filter(Boolean).join(" · ");
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = "score " + hit.score.toFixed(3);
    item.append(thumb, name, attrs, score);
    if (hit.matched) {
      const matched = document.createElement("div");
      matched.className = "matched " + hit.matched.replace("+", "-");
      matched.textContent = "matched: " + (MATCHED[hit.matched] || hit.matched);
      item.append(matched);
    }
    item.addEventListener("click", () => moreLikeThis(hit.id, p.productDisplayName));
    grid.append(item);
  }
}

async function search(event) {
  if (event) event.preventDefault();
  clearError();
  const q = $("query").value.trim();
  try {
    let data;
    if (queryImage) {
      const form = new FormData();
      form.append("image", queryImage, queryImage.name || "pasted.png");
      form.append("params", JSON.stringify(params()));
      data = await api("/api/search/image", { method: "POST", body: form });
      lastTextQuery = "";
      renderResults(data, "photo search");
    } else {
      if (!q) { showError("Type a description or add a photo to search."); return; }
      data = await api("/api/search/text", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ query: q, mode: textMode(), ...params() }),
      });
      lastTextQuery = q;
      renderResults(data, `“${q}” (${MODES[textMode()] || textMode()})`);
    }
  } catch (err) {
    showError(err.message);
  }
}

async function moreLikeThis(id, name) {
  clearError();
  try {
    const data = await api("/api/similar", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ id, ...params() }),
    });
    renderResults(data, `more like “${name || id}”`);
  } catch (err) {
    showError(err.message);
  }
}

async function classify(event) {
  event.preventDefault();
  clearError();
  if (!queryImage) { showError("Add a photo first (drop, paste or choose one)."); return; }
  const form = new FormData();
  form.append("image", queryImage, queryImage.name || "pasted.png");
  form.append("labels", $("labels").value);
  try {
    const data = await api("/api/classify", { method: "POST", body: form });
    const bars = $("bars");
    bars.innerHTML = "";
    for (const s of data.labels) {
      const row = document.createElement("div");
      row.className = "bar";
      const label = document.createElement("span");
      label.textContent = s.label;
      const track = document.createElement("div");
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = (100 * s.probability).toFixed(1) + "%";
      track.append(fill);
      const value = document.createElement("span");
      value.textContent = (100 * s.probability).toFixed(1) + "%";
      row.append(label, track, value);
      bars.append(row);
    }
  } catch (err) {
    showError(err.message);
  }
}

function setImage(file) {
  if (!file) return;
  queryImage = file;
  const preview = $("preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("clear-image").hidden = false;
}

function wireImageInput() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => setImage(e.target.files[0]));
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => setImage(e.dataTransfer.files[0]));
  document.addEventListener("paste", (e) => {
    for (const item of e.clipboardData.items) {
      if (item.type.startsWith("image/")) { setImage(item.getAsFile()); e.preventDefault(); return; }
    }
  });
  $("clear-image").addEventListener("click", () => {
    queryImage = null;
    $("preview").hidden = true;
    $("clear-image").hidden = true;
    $("file").value = "";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  wireImageInput();
  $("search-form").addEventListener("submit", search);
  $("classify-form").addEventListener("submit", classify);
  $("card-toggle").addEventListener("click", () => { $("card").hidden = !$("card").hidden; });
  loadMeta();
});
