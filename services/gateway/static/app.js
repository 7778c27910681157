// imsearch web page: search by photo, see why a result matched, manage the collections.
// Plain JavaScript, no build step, nothing from a CDN: it only talks to this gateway's /v1 API.
"use strict";

const $ = (id) => document.getElementById(id);
let queryFile = null;
let queryUrl = null;

// ---- tabs ---------------------------------------------------------------------------------
function showTab(name) {
  for (const tab of ["search", "manage"]) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    $(`panel-${tab}`).hidden = !selected;
  }
  if (name === "manage") refreshStats();
}
$("tab-search").addEventListener("click", () => showTab("search"));
$("tab-manage").addEventListener("click", () => showTab("manage"));

// ---- API ----------------------------------------------------------------------------------
// An API key (needed for writes, and for everything when the server says so) lives in this
// tab's session only.
const apiKey = () => sessionStorage.getItem("imsearch-api-key") || "";
const withKey = (headers = {}) => (apiKey() ? { ...headers, "X-API-Key": apiKey() } : headers);

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: withKey(options.headers) });
  } catch (err) {
    throw new Error(`The server cannot be reached (${err.message}).`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || {};
    throw new Error(`${error.message || response.statusText} (${error.code || response.status})`);
  }
  return body;
}

// ---- collections --------------------------------------------------------------------------
// The routes of one collection: /v1/… for "default", /v1/collections/{name}/… for the others.
const collection = () => $("collection").value || "default";
const base = () => (collection() === "default" ? "/v1" : `/v1/collections/${encodeURIComponent(collection())}`);
const imagePath = (id) => `${base()}/images/${id.split("/").map(encodeURIComponent).join("/")}`;

async function loadCollections(select) {
  const picker = $("collection");
  try {
    const body = await api("/v1/collections");
    const names = body.collections.map((c) => c.name);
    const wanted = select || sessionStorage.getItem("imsearch-collection") || picker.value;
    picker.replaceChildren(...names.map((name) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      return option;
    }));
    picker.value = names.includes(wanted) ? wanted : names[0] || "default";
  } catch (err) {
    setStatus($("search-status"), `Collections unavailable: ${err.message}`, true);
  }
}
$("collection").addEventListener("change", () => {
  sessionStorage.setItem("imsearch-collection", collection());
  $("results").replaceChildren();
  $("no-match").hidden = true;
  if (!$("panel-manage").hidden) refreshStats();
});

function setStatus(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// ---- search -------------------------------------------------------------------------------
function chooseQuery(file) {
  if (!file) return;
  queryFile = file;
  if (queryUrl) URL.revokeObjectURL(queryUrl);
  queryUrl = URL.createObjectURL(file);
  const preview = $("query-preview");
  preview.src = queryUrl;
  preview.alt = `Query photo: ${file.name}`;
  preview.hidden = false;
  // Most browsers cannot show HEIC (an iPhone's photos): the engine decodes it all the same.
  preview.onerror = () => {
    preview.hidden = true;
    setStatus($("search-status"), `This browser cannot show ${file.name}; searching with it anyway…`);
  };
  search();
}

$("search-file").addEventListener("change", (event) => chooseQuery(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  chooseQuery(event.dataTransfer.files[0]);
});
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("search-file").click(); }
});
$("search-form").addEventListener("submit", (event) => { event.preventDefault(); search(); });

async function search() {
  const status = $("search-status");
  if (!queryFile) { setStatus(status, "Choose a photo first.", true); return; }
  const form = new FormData();
  form.append("image", queryFile);
  const params = new URLSearchParams({ k: $("search-k").value, rerank: $("search-rerank").value, matches: "true" });
  const filter = $("search-filter").value.trim();
  if (filter) {
    try {
      JSON.parse(filter);
    } catch (err) {
      $("results").replaceChildren();
      $("no-match").hidden = true;
      setStatus(status, `The filter is not JSON: ${err.message}`, true);
      return;
    }
    params.set("filter", filter);
  }
  setStatus(status, "Searching…");
  $("results").replaceChildren();
  blobUrls.splice(0).forEach((url) => URL.revokeObjectURL(url));
  $("no-match").hidden = true;
  $("timings").textContent = "";
  try {
    const body = await api(`${base()}/search?${params}`, { method: "POST", body: form });
    renderResults(body);
    setStatus(status, `${body.results.length} results.`);
  } catch (err) {
    setStatus(status, `Search failed: ${err.message}`, true);
  }
}

function renderResults(body) {
  $("no-match").hidden = body.no_confident_match !== true;
  const list = $("results");
  body.results.forEach((hit, index) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "result";
    button.dataset.id = hit.id;
    const img = document.createElement("img");
    thumbnailSrc(hit.id).then((src) => { img.src = src; }, () => { img.alt = `${hit.id} (no thumbnail)`; });
    img.alt = hit.id;
    img.loading = "lazy";
    const meta = document.createElement("div");
    meta.className = "meta";
    const verified = hit.verified
      ? ` <span class="badge" title="${hit.inliers} inliers">${Math.round(100 * hit.confidence)}% sure · ${hit.inliers} inliers</span>`
      : "";
    meta.innerHTML = `<strong>${index + 1}.</strong> <span class="id"></span>${verified}<br>similarity ${hit.global_score.toFixed(3)}`;
    meta.querySelector(".id").textContent = hit.id;
    button.append(img, meta);
    button.setAttribute("aria-label", `Result ${index + 1}: ${hit.id}${hit.verified ? `, verified with ${hit.inliers} inliers` : ""}. Show why it matched.`);
    button.addEventListener("click", () => showMatch(hit));
    item.append(button);
    list.append(item);
  });
  const t = body.timings_ms;
  $("timings").textContent = `extract ${t.extract.toFixed(0)} ms · search ${t.search.toFixed(1)} ms · rerank ${t.rerank.toFixed(0)} ms · total ${t.total.toFixed(0)} ms · cache ${body.cache} · ${body.rerank.method}`;
}

function thumbnailUrl(id) {
  return `${imagePath(id)}/thumbnail`;
}

// An <img> cannot send a header: with a key, the thumbnail is fetched and shown from memory
// (released when the next results replace these).
const blobUrls = [];
async function thumbnailSrc(id) {
  if (!apiKey()) return thumbnailUrl(id);
  const response = await fetch(thumbnailUrl(id), { headers: withKey() });
  if (!response.ok) throw new Error(`thumbnail ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  blobUrls.push(url);
  return url;
}

// ---- why it matched -----------------------------------------------------------------------
function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${src}`));
    img.src = src;
  });
}

async function showMatch(hit) {
  const dialog = $("match-dialog");
  const pairs = hit.matches || [];
  $("match-summary").textContent = hit.verified
    ? `${hit.id}: ${hit.inliers} keypoints agree on one perspective transform (${Math.round(100 * hit.confidence)}% sure it is the same object); ${Math.min(pairs.length, hit.inliers)} are drawn, and the box shows where it is in your photo.`
    : `${hit.id} was not verified geometrically (${hit.inliers ?? 0} consistent keypoints); it is ranked by descriptor similarity (${hit.global_score.toFixed(3)}).`;
  dialog.showModal();
  const [query, result] = await Promise.all([
    loadImage(queryUrl).catch(() => null),
    thumbnailSrc(hit.id).then(loadImage),
  ]);
  if (!query) {
    // e.g. a HEIC photo in a browser that cannot show one: the result alone, said so.
    $("match-summary").textContent += " (This browser cannot show your photo, so only the result is drawn.)";
    drawResultOnly(result);
    return;
  }
  const canvas = $("match-canvas");
  const height = 360;
  const qw = query.width * height / query.height;
  const rw = result.width * height / result.height;
  const gap = 16;
  canvas.width = Math.round(qw + gap + rw);
  canvas.height = height;
  canvas.dataset.lines = String(pairs.length);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(query, 0, 0, qw, height);
  ctx.drawImage(result, qw + gap, 0, rw, height);
  if (hit.box) {
    // Where this result is in the query photo (a photo of several objects has one per result).
    const [x1, y1, x2, y2] = hit.box;
    ctx.lineWidth = 3;
    ctx.strokeStyle = "#e0a100";
    ctx.strokeRect(x1 * qw, y1 * height, (x2 - x1) * qw, (y2 - y1) * height);
  }
  ctx.lineWidth = 1;
  pairs.forEach(([xq, yq, xr, yr], i) => {
    ctx.strokeStyle = `hsl(${(i * 47) % 360} 80% 45%)`;
    ctx.beginPath();
    ctx.moveTo(xq * qw, yq * height);
    ctx.lineTo(qw + gap + xr * rw, yr * height);
    ctx.stroke();
  });
}

function drawResultOnly(result) {
  const canvas = $("match-canvas");
  canvas.height = 360;
  canvas.width = Math.round(result.width * 360 / result.height);
  canvas.dataset.lines = "0";
  canvas.getContext("2d").drawImage(result, 0, 0, canvas.width, canvas.height);
}

// ---- collection ---------------------------------------------------------------------------
$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("manage-status");
  const form = new FormData();
  form.append("image", $("add-file").files[0]);
  form.append("id", $("add-id").value.trim());
  form.append("metadata", $("add-metadata").value.trim() || "{}");
  setStatus(status, "Adding…");
  try {
    const body = await api(`${base()}/images`, { method: "POST", body: form });
    setStatus(status, body.created ? `Added ${body.id}.` : `${body.id} was already there, unchanged.`);
    refreshStats();
  } catch (err) {
    setStatus(status, `Adding failed: ${err.message}`, true);
  }
});

$("delete-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("manage-status");
  const id = $("delete-id").value.trim();
  try {
    await api(imagePath(id), { method: "DELETE" });
    setStatus(status, `Deleted ${id}.`);
    refreshStats();
  } catch (err) {
    setStatus(status, `Deleting failed: ${err.message}`, true);
  }
});

$("stats-refresh").addEventListener("click", refreshStats);

async function refreshStats() {
  const list = $("stats");
  try {
    const stats = await api(`${base()}/stats`);
    const rows = {
      collection: collection(),
      images: stats.count,
      "descriptor model": stats.model_id,
      index: stats.index ? stats.index.factory : "",
      whitening: stats.whitening ? `learned from ${stats.whitening.n} images` : "none yet",
      mode: stats.mode,
      "default re-ranking": stats.rerank ? stats.rerank.method : "",
    };
    list.replaceChildren(...Object.entries(rows).flatMap(([key, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value ?? "";
      dd.dataset.key = key;
      return [dt, dd];
    }));
  } catch (err) {
    setStatus($("manage-status"), `Stats unavailable: ${err.message}`, true);
  }
}

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("collections-status");
  const name = $("create-name").value.trim();
  try {
    await api("/v1/collections", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name }),
    });
    setStatus(status, `Created ${name}; it is selected.`);
    $("create-name").value = "";
    await loadCollections(name);
    sessionStorage.setItem("imsearch-collection", name);
    refreshStats();
  } catch (err) {
    setStatus(status, `Creating failed: ${err.message}`, true);
  }
});

$("drop-go").addEventListener("click", async () => {
  const status = $("collections-status");
  const name = collection();
  if (!window.confirm(`Drop the collection ${name} and delete all its images?`)) return;
  try {
    await api(`/v1/collections/${encodeURIComponent(name)}`, { method: "DELETE" });
    setStatus(status, `Dropped ${name}.`);
    await loadCollections("default");
    refreshStats();
  } catch (err) {
    setStatus(status, `Dropping failed: ${err.message}`, true);
  }
});

// ---- API key --------------------------------------------------------------------------------
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem("imsearch-api-key", key);
  else sessionStorage.removeItem("imsearch-api-key");
  $("api-key").value = "";
  setStatus($("key-status"), key ? "API key set for this tab." : "No API key: writes work only on an open server.");
  loadCollections();  // a key limited to some collections sees only those
});
loadCollections();
setStatus($("key-status"), apiKey() ? "API key set for this tab." : "No API key set.");
