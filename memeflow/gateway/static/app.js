// memeflow search page: text, image and "more like this" searches against POST /search.
// The query lives in the URL (?q=words or ?like=ID); an image query is not put there.
"use strict";

const TOP_K = 24;
const form = document.getElementById("search");
const input = document.getElementById("query");
const fileInput = document.getElementById("image");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");
const dropOverlay = document.getElementById("drop");
const keyForm = document.getElementById("key");
const keyInput = document.getElementById("key-input");
const KEY_COOKIE = "memeflow_key"; // the gateway accepts the API key from this cookie
const IDLE = statusLine.textContent;
let latest = 0; // only the newest search may draw its results
let waitingForKey = null; // the search to run again once the user gives the API key

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

async function postSearch(queryDoc) {
  const response = await fetch("/search", {
    method: "POST",
    headers: apiHeaders(),
    body: JSON.stringify({ data: [queryDoc], parameters: { top_k: TOP_K } }),
  });
  if (response.status === 401) throw new KeyNeeded();
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  if (!response.ok) {
    const detail = body && (body.detail || (body.header && body.header.status && body.header.status.description));
    throw new Error(detail ? String(detail) : `the server answered ${response.status} ${response.statusText}`);
  }
  const doc = body && body.data && body.data[0];
  if (!doc) throw new Error("the server sent no result");
  if (doc.error) throw new Error(doc.error);
  return doc.matches || [];
}

function label(match) {
  const tags = match.tags || {};
  const file = tags.file || (match.uri ? match.uri.split("/").pop() : "");
  const name = typeof tags.name === "string" && tags.name ? tags.name : file || match.id;
  const where = [tags.folder, file].filter(Boolean).join("/");
  return { name, where };
}

function card(match) {
  const { name, where } = label(match);
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = `?like=${encodeURIComponent(match.id)}`;
  link.dataset.id = match.id;
  link.title = `More like ${name}`;
  const img = document.createElement("img");
  img.src = `/thumbnails/${encodeURIComponent(match.id)}`;
  img.alt = name;
  img.loading = "lazy";
  img.addEventListener("error", () => img.removeAttribute("src"), { once: true });
  const title = document.createElement("p");
  title.className = "name";
  title.textContent = name;
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = `score ${Number(match.score).toFixed(3)}${where ? ` · ${where}` : ""}`;
  link.append(img, title, meta);
  if (match.signals && match.signals.words) {  // found by the words written on it (OCR)
    const words = document.createElement("p");
    words.className = "words";
    const text = (match.words || "").replace(/\s+/g, " ").trim();
    words.textContent = `words: “${text.length > 80 ? `${text.slice(0, 79)}…` : text}”`;
    words.title = "Found by the words written on this meme";
    link.append(words);
  }
  item.append(link);
  return item;
}

async function run(query) {
  const ticket = ++latest;
  setStatus(`Searching for ${describe(query)}…`, "loading");
  results.setAttribute("aria-busy", "true");
  try {
    const queryDoc = query.q ? { text: query.q } : query.like ? { id: query.like } : { uri: query.image };
    const matches = await postSearch(queryDoc);
    if (ticket !== latest) return;
    results.replaceChildren(...matches.map(card));
    setStatus(
      matches.length
        ? `${matches.length} results for ${describe(query)}. Pick one to see more like it.`
        : `Nothing found for ${describe(query)}: the index is empty. Index memes with \`memeflow index FOLDER\`.`,
    );
  } catch (error) {
    if (ticket !== latest) return;
    results.replaceChildren();
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
  input.value = "";
  results.replaceChildren();
  setStatus(IDLE);
  if (push && location.search) history.pushState(null, "", location.pathname);
}

function searchFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    setStatus(`Search failed: ${file.name} is not an image (${file.type}); choose a JPEG, PNG, GIF or WebP file.`, "error");
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
  const link = event.target.closest("a[data-id]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  show({ like: link.dataset.id });
  window.scrollTo(0, 0);
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
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
show(queryFromUrl(), { push: false });
