// memeflow search page: text, image and "more like this" searches against POST /search,
// more results on demand, and each meme handed over: open, download, copy, drag. Animated
// memes and videos play through media.js.
// The query lives in the URL (?q=words or ?like=ID); an image query is not put there.
"use strict";

const TOP_K = 24; // results per page; "More results" (or scrolling to it) asks for the next
const form = document.getElementById("search");
const input = document.getElementById("query");
const fileInput = document.getElementById("image");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");
const moreButton = document.getElementById("more");
const dropOverlay = document.getElementById("drop");
const keyForm = document.getElementById("key");
const keyInput = document.getElementById("key-input");
const randomNotice = document.getElementById("random-weights");
const noFilesNotice = document.getElementById("no-files");
const KEY_COOKIE = "memeflow_key"; // the gateway accepts the API key from this cookie
const IDLE = statusLine.textContent;
// The formats the server reads (memeflow/formats.py, filled into the page by the gateway).
const SUFFIXES = fileInput.accept.split(",").filter(Boolean);
const FORMAT_NAMES = fileInput.dataset.formats;
const MEDIA_TYPES = { ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jpe": "image/jpeg", ".jfif": "image/jpeg",
  ".png": "image/png", ".apng": "image/png", ".gif": "image/gif", ".webp": "image/webp", ".bmp": "image/bmp",
  ".tif": "image/tiff", ".tiff": "image/tiff", ".avif": "image/avif", ".heic": "image/heic", ".heif": "image/heif" };
const CAN_COPY = Boolean(window.isSecureContext && navigator.clipboard && navigator.clipboard.write && window.ClipboardItem);
let latest = 0; // only the newest search may draw its results
let waitingForKey = null; // the search to run again once the user gives the API key
let current = null; // the search on screen: { query, ticket, shown, done, loading }

// The server asks for MEMEFLOW_API_KEY: a cookie carries it, so thumbnails get it too.
class KeyNeeded extends Error {}

// Headers for every API call; an access check adds its credentials here.
function apiHeaders() {
  return { "Content-Type": "application/json" };
}

function setStatus(text, kind = "") {
  statusLine.textContent = text;
  statusLine.className = kind;
}

function describe(query) {
  if (query.q) return `“${query.q}”`;
  if (query.like) return "memes like the one you picked";
  return `your image ${query.fileName ? `(${query.fileName})` : ""}`.trim();
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null; // not JSON: the status says enough
  }
}

function failure(response, body) {
  const detail = body && (body.detail || (body.header && body.header.status && body.header.status.description));
  return new Error(detail ? String(detail) : `the server answered ${response.status} ${response.statusText}`);
}

async function postSearch(queryDoc, offset) {
  const response = await fetch("/search", {
    method: "POST",
    headers: apiHeaders(),
    body: JSON.stringify({ data: [queryDoc], parameters: { top_k: TOP_K, offset } }),
  });
  if (response.status === 401) throw new KeyNeeded();
  const body = await readJson(response);
  if (!response.ok) throw failure(response, body);
  const doc = body && body.data && body.data[0];
  if (!doc) throw new Error("the server sent no result");
  if (doc.error) throw new Error(doc.error);
  return doc.matches || [];
}

// What the service says about itself: random weights, and whether it serves full-size files.
let serverStatus = null;
async function loadStatus() {
  const response = await fetch("/status", { headers: apiHeaders() }).catch(() => null);
  if (!response || !response.ok) return; // 401: asked again once the key is given
  serverStatus = await readJson(response);
  if (!serverStatus) return;
  randomNotice.hidden = !serverStatus.random_weights;
  noFilesNotice.hidden = serverStatus.serves_files !== false;
}

// For each id, null when the gateway serves its full-size file, else the reason it does not.
async function fileAvailability(ids) {
  if (serverStatus && serverStatus.serves_files === false) {
    return Object.fromEntries(ids.map((id) => [id, noFilesNotice.textContent.replace(/\s+/g, " ").trim()]));
  }
  const response = await fetch("/files", { method: "POST", headers: apiHeaders(), body: JSON.stringify({ ids }) });
  const body = await readJson(response);
  if (!response.ok || !body || !body.files) throw failure(response, body);
  return body.files;
}

function suffixOf(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

function label(match) {
  const tags = match.tags || {};
  const file = tags.file || (match.uri ? match.uri.split("/").pop() : "");
  const name = typeof tags.name === "string" && tags.name ? tags.name : file || match.id;
  const where = [tags.folder, file].filter(Boolean).join("/");
  return { name, where, file: file || `${match.id}.jpg` };
}

function fileUrl(id, download = false) {
  return new URL(`/files/${encodeURIComponent(id)}${download ? "?download=1" : ""}`, location.href).href;
}

function card(match, rank) {
  const { name, where } = label(match);
  const item = document.createElement("li");
  item.dataset.id = match.id;
  const link = document.createElement("a");
  link.className = "like";
  link.href = `?like=${encodeURIComponent(match.id)}`;
  link.dataset.id = match.id;
  link.title = `More like ${name}`;
  const img = document.createElement("img");
  img.src = `/thumbnails/${encodeURIComponent(match.id)}`;
  img.alt = name;
  img.loading = "lazy";
  img.addEventListener("error", () => { // no preview (a document stored without a picture)
    if (!img.getAttribute("src") || !img.getAttribute("src").startsWith("/thumbnails/")) return;
    img.removeAttribute("src");
    img.alt = "";
    link.classList.add("no-preview");
  });
  const title = document.createElement("p");
  title.className = "name";
  title.textContent = name;
  link.append(img, title);
  if (isVideo(suffixOf(label(match).file))) link.append(videoBadge(match));
  // The rank is the order shown; the picture's cosine is one signal of it, so it is
  // labelled as such (a meme found by its words may rank above a higher picture score).
  const meta = document.createElement("p");
  meta.className = "meta";
  const place = document.createElement("span");
  place.className = "rank";
  place.textContent = `#${rank}`;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = `picture ${Number(match.score).toFixed(3)}`;
  score.title = "How close the picture is to the query (cosine similarity, CLIP). Results are in rank order, "
    + "which also counts the words on memes: a meme found by its words can rank above a higher picture score.";
  meta.append(place, " · ", score);
  if (where) meta.append(` · ${where}`);
  const parts = [link, meta];
  const text = (match.words || "").replace(/\s+/g, " ").trim();
  if (text) { // the words read on the meme (OCR), on every card that has them
    const words = document.createElement("p");
    words.className = "words";
    words.textContent = `words: “${text.length > 80 ? `${text.slice(0, 79)}…` : text}”`;
    const found = match.signals && match.signals.words;
    if (found) words.classList.add("found");
    words.title = found ? `Found by the words written on this meme (words #${found})` : "The words written on this meme";
    parts.push(words);
  }
  const actions = document.createElement("p");
  actions.className = "actions";
  actions.setAttribute("aria-label", `Use ${name}`);
  parts.push(actions);
  item.append(...parts);
  item.match = match;
  return item;
}

// Open, download, copy and drag the full-size file; only where the gateway serves it.
function handOver(item, reason) {
  const { id } = item.dataset;
  const actions = item.querySelector(".actions");
  const img = item.querySelector("img");
  if (reason) {
    actions.textContent = "preview only";
    actions.classList.add("unavailable");
    actions.title = reason;
    return;
  }
  const { name, file } = label(item.match);
  const { match } = item;
  const url = fileUrl(id);
  const video = isVideo(suffixOf(file));
  const open = document.createElement("a");
  open.className = "open";
  // A video opens at the moment that matched (a media fragment, #t=seconds).
  open.href = video && typeof match.frame_ms === "number" ? `${url}#t=${match.frame_ms / 1000}` : url;
  open.target = "_blank";
  open.rel = "noopener";
  open.textContent = "Open";
  open.title = `Open ${file} full size`;
  const save = document.createElement("a");
  save.className = "download";
  save.href = fileUrl(id, true);
  save.download = file;
  save.textContent = "Download";
  save.title = `Download ${file}`;
  actions.append(open, save);
  if (video) actions.append(playButton(url, file, match));
  else if (isAnimated(match, suffixOf(file))) animate(item.querySelector("a.like"), img, url);
  if (!video) actions.append(copyButton(id, name));
  // Dragged out of the browser: the full-size file (Chromium's DownloadURL) or its URL.
  img.draggable = true;
  img.dataset.full = url;
  img.addEventListener("dragstart", (event) => {
    const type = MEDIA_TYPES[suffixOf(file)] || VIDEO_TYPES[suffixOf(file)] || "application/octet-stream";
    event.dataTransfer.setData("DownloadURL", `${type}:${file}:${url}`);
    event.dataTransfer.setData("text/uri-list", url);
    event.dataTransfer.setData("text/plain", url);
    event.dataTransfer.effectAllowed = "copy";
  });
}

// Copy puts the picture on the clipboard (as PNG), where the page is allowed to.
function copyButton(id, name) {
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy";
  copy.textContent = "Copy";
  if (CAN_COPY) {
    copy.title = `Copy ${name} to the clipboard as an image`;
    copy.addEventListener("click", () => copyImage(id, copy));
  } else {
    copy.disabled = true;
    copy.title = "Copying images needs a secure page: open this memeflow at https:// or on localhost";
  }
  return copy;
}

// The clipboard takes PNG everywhere; other formats are drawn onto a canvas first.
async function asPng(blob) {
  if (blob.type === "image/png") return blob;
  const bitmap = await createImageBitmap(blob);
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  return new Promise((resolve, reject) => canvas.toBlob((png) => (png ? resolve(png) : reject(new Error("could not convert the image"))), "image/png"));
}

async function copyImage(id, button) {
  const png = fetch(fileUrl(id)).then(async (response) => {
    if (!response.ok) throw failure(response, await readJson(response));
    return asPng(await response.blob());
  });
  try {
    // A promise keeps the click's permission while the file is fetched.
    await navigator.clipboard.write([new ClipboardItem({ "image/png": png })]);
    button.textContent = "Copied";
    button.classList.add("done");
    setTimeout(() => { button.textContent = "Copy"; button.classList.remove("done"); }, 2000);
  } catch (error) {
    button.textContent = "Copy failed";
    button.title = `Could not copy: ${error.message}`;
  }
}

async function offerFiles(items) {
  if (!items.length) return;
  let answers;
  try {
    answers = await fileAvailability(items.map((item) => item.dataset.id));
  } catch (error) {
    answers = Object.fromEntries(items.map((item) => [item.dataset.id, error.message]));
  }
  for (const item of items) handOver(item, answers[item.dataset.id] ?? null);
}

function queryDoc(query) {
  return query.q ? { text: query.q } : query.like ? { id: query.like } : { uri: query.image };
}

function summary() {
  const { query, shown, done } = current;
  if (!shown) return `Nothing found for ${describe(query)}: the index is empty. Index memes with \`memeflow index FOLDER\`.`;
  const more = done ? "" : " More below.";
  return `${shown} results for ${describe(query)}. Pick one to see more like it.${more}`;
}

async function run(query) {
  const ticket = ++latest;
  current = { query, ticket, shown: 0, done: false, loading: true };
  moreButton.hidden = true;
  setStatus(`Searching for ${describe(query)}…`, "loading");
  results.setAttribute("aria-busy", "true");
  try {
    const matches = await postSearch(queryDoc(query), 0);
    if (ticket !== latest) return;
    const items = matches.map((match, i) => card(match, i + 1));
    results.replaceChildren(...items);
    Object.assign(current, { shown: matches.length, done: matches.length < TOP_K, loading: false });
    moreButton.hidden = current.done;
    setStatus(summary());
    offerFiles(items);
    watchTheEnd();
  } catch (error) {
    if (ticket !== latest) return;
    results.replaceChildren();
    current = null;
    if (error instanceof KeyNeeded) {
      askForKey(query);
      return;
    }
    // The server names an uploaded image by its data: URI; the user knows it by file name.
    const reason = error.message.replace(/^data:\S*… \(\d+ bytes\): /, "");
    setStatus(`Search for ${describe(query)} failed: ${reason}`, "error");
  } finally {
    if (ticket === latest) results.removeAttribute("aria-busy");
  }
}

// The next page of the search on screen (the API's `offset`).
async function loadMore() {
  if (!current || current.loading || current.done) return;
  const search = current;
  search.loading = true;
  moreButton.disabled = true;
  moreButton.textContent = "Loading more…";
  let loaded = false;
  try {
    const matches = await postSearch(queryDoc(search.query), search.shown);
    if (search !== current) return;
    const items = matches.map((match, i) => card(match, search.shown + i + 1));
    results.append(...items);
    search.shown += matches.length;
    search.done = matches.length < TOP_K;
    setStatus(summary());
    offerFiles(items);
    loaded = true;
  } catch (error) {
    if (search !== current) return;
    setStatus(`More results for ${describe(search.query)} failed: ${error.message}`, "error");
  } finally {
    search.loading = false;
    moreButton.disabled = false;
    moreButton.textContent = "More results";
    if (search === current) moreButton.hidden = search.done;
    if (search === current && loaded) watchTheEnd(); // after a failure, only a click retries
  }
}

moreButton.addEventListener("click", loadMore);
// Scrolling down to the button loads the next page too; watched anew after each page, so
// a screen tall enough to still show the button gets the next one.
const nearTheEnd = new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadMore();
}, { rootMargin: "200px" });
function watchTheEnd() {
  nearTheEnd.unobserve(moreButton);
  if (current && !current.done) nearTheEnd.observe(moreButton);
}

function askForKey(query) {
  const tried = document.cookie.split("; ").some((c) => c.startsWith(`${KEY_COOKIE}=`));
  waitingForKey = query;
  keyForm.hidden = false;
  keyInput.value = "";
  keyInput.focus();
  setStatus(
    tried
      ? "The API key was not accepted: check it and enter it again."
      : `Search for ${describe(query)} needs this memeflow's API key: enter it above.`,
    "error",
  );
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${KEY_COOKIE}=${encodeURIComponent(keyInput.value)}; path=/; SameSite=Strict${secure}`;
  keyForm.hidden = true;
  const query = waitingForKey;
  waitingForKey = null;
  loadStatus();
  if (query) run(query);
});

function queryFromUrl() {
  const params = new URLSearchParams(location.search);
  const q = (params.get("q") || "").trim();
  const like = params.get("like") || "";
  return q ? { q } : like ? { like } : null;
}

function show(query, { push = true } = {}) {
  if (push) {
    const url = query && (query.q || query.like) ? `?${new URLSearchParams(query.q ? { q: query.q } : { like: query.like })}` : location.pathname;
    history.pushState(null, "", url);
  }
  input.value = query && query.q ? query.q : "";
  if (query) run(query);
  else clear({ push: false });
}

function clear({ push = true } = {}) {
  latest++;
  current = null;
  input.value = "";
  results.replaceChildren();
  moreButton.hidden = true;
  setStatus(IDLE);
  if (push && location.search) history.pushState(null, "", location.pathname);
}

// Whether the server reads this file's format: by its name's suffix, or, for a pasted
// image without one, by its media type.
function readable(file) {
  const suffix = suffixOf(file.name);
  if (suffix) return SUFFIXES.includes(suffix);
  return Boolean(file.type) && Object.values(MEDIA_TYPES).includes(file.type);
}

function searchFile(file) {
  if (!file) return;
  if (!readable(file)) {
    setStatus(`Search failed: ${file.name} is not an image memeflow reads; choose a ${FORMAT_NAMES} file.`, "error");
    return;
  }
  const reader = new FileReader();
  reader.addEventListener("load", () => {
    history.pushState(null, "", location.pathname); // an image query has no shareable URL
    input.value = "";
    run({ image: reader.result, fileName: file.name });
  });
  reader.addEventListener("error", () => setStatus(`Search failed: could not read ${file.name}.`, "error"));
  reader.readAsDataURL(file);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const q = input.value.trim();
  if (q) show({ q });
  else clear();
});

fileInput.addEventListener("change", () => {
  searchFile(fileInput.files[0]);
  fileInput.value = ""; // choosing the same file again searches again
});

results.addEventListener("click", (event) => {
  const link = event.target.closest("a.like[data-id]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  show({ like: link.dataset.id });
  window.scrollTo(0, 0);
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !player.open) { // an open player closes first
    clear();
    input.focus();
  }
});

document.addEventListener("paste", (event) => {
  const file = [...(event.clipboardData ? event.clipboardData.files : [])].find((f) => f.type.startsWith("image/"));
  if (file) {
    event.preventDefault();
    searchFile(file);
  }
});

let dragDepth = 0;
document.addEventListener("dragenter", (event) => {
  if (![...event.dataTransfer.types].includes("Files")) return;
  dragDepth++;
  dropOverlay.hidden = false;
});
document.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) dropOverlay.hidden = true;
});
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  dropOverlay.hidden = true;
  searchFile(event.dataTransfer.files[0]);
});

window.addEventListener("popstate", () => show(queryFromUrl(), { push: false }));
loadStatus();
show(queryFromUrl(), { push: false });
