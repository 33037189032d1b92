// memeflow search page: memes that move. An animated image (GIF, animated WebP, APNG) plays
// while the pointer is on it (or it has the keyboard's focus, or after a first tap on a touch
// screen) and shows its still preview otherwise; a video opens in a player at the moment
// that matched the query (the hit's `frame_ms`). Both play the full-size file from
// GET /files/{id}, which a browser reads a byte range at a time. Loaded before app.js.
"use strict";

const VIDEO_TYPES = { ".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm",
  ".mov": "video/quicktime", ".mkv": "video/x-matroska" };
// Suffixes of images that are often animated: they play on hover even when the index does
// not say (yet) that they have several frames; a still one just shows itself full size.
const MOVING_SUFFIXES = [".gif", ".apng", ".webp"];
const player = document.getElementById("player");
const playerVideo = player.querySelector("video");
const playerCaption = player.querySelector(".caption");

function isVideo(suffix) {
  return Object.hasOwn(VIDEO_TYPES, suffix);
}

// A hit of several frames that is not a video: an animated image.
function isAnimated(match, suffix) {
  return !isVideo(suffix) && (typeof match.frame_ms === "number" || MOVING_SUFFIXES.includes(suffix));
}

// A time in ms as a clock reads it: 6000 -> "0:06", 3723000 -> "1:02:03".
function moment(ms) {
  const total = Math.floor(ms / 1000);
  const [hours, minutes, seconds] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const ss = String(seconds).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${ss}` : `${minutes}:${ss}`;
}

// The badge over a video's preview: that it is a video, and the moment that matched.
function videoBadge(match) {
  const badge = document.createElement("span");
  badge.className = "moment";
  const at = typeof match.frame_ms === "number" ? moment(match.frame_ms) : "";
  badge.textContent = at ? `▶ ${at}` : "▶ video";
  badge.title = at ? `A video: the moment that matched best is at ${at}` : "A video";
  return badge;
}

// The preview becomes the animated original while the pointer is on it. On a touch screen
// (no hover) the first tap plays it and the next one shows more like it, as a click does.
function animate(link, img, url) {
  let playing = false;
  let touched = false;
  const still = () => img.dataset.still || "";
  const play = () => {
    if (playing) return;
    playing = true;
    img.dataset.still = img.getAttribute("src") || "";
    img.src = url;
    link.classList.add("playing");
  };
  const stop = () => {
    if (!playing) return;
    playing = false;
    if (still()) img.src = still();
    else img.removeAttribute("src");
    link.classList.remove("playing");
  };
  link.classList.add("animated");
  link.addEventListener("pointerenter", (event) => { if (event.pointerType === "mouse") play(); });
  link.addEventListener("pointerleave", (event) => { if (event.pointerType === "mouse") stop(); });
  link.addEventListener("focus", play);
  link.addEventListener("blur", stop);
  link.addEventListener("pointerdown", (event) => { touched = event.pointerType !== "mouse"; });
  link.addEventListener("click", (event) => {
    if (!touched || link.dataset.tapped) return; // a click, or a second tap: more like this
    link.dataset.tapped = "1";
    event.preventDefault();
    event.stopPropagation();
    play();
  });
  img.addEventListener("error", () => { if (playing && img.src === url) stop(); });
}

// A "Play" button that opens the video at the moment that matched.
function playButton(url, file, match) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "play";
  const at = typeof match.frame_ms === "number" ? moment(match.frame_ms) : "";
  button.textContent = at ? `Play at ${at}` : "Play";
  button.title = at ? `Play ${file} from ${at}, the moment that matched best` : `Play ${file}`;
  button.addEventListener("click", () => openVideo(url, file, match.frame_ms));
  return button;
}

function openVideo(url, file, ms) {
  const start = typeof ms === "number" ? ms : 0;
  playerCaption.textContent = typeof ms === "number" ? `${file} at ${moment(ms)}, the moment that matched best` : file;
  playerCaption.classList.remove("error");
  playerVideo.dataset.start = String(start / 1000);
  playerVideo.src = url;
  player.showModal();
}

// Seek once the browser knows the video's length, then play (the click allows sound).
playerVideo.addEventListener("loadedmetadata", () => {
  playerVideo.currentTime = Number(playerVideo.dataset.start || 0);
  playerVideo.play().catch(() => {}); // refused autoplay: the controls are there
});
playerVideo.addEventListener("error", () => {
  if (!playerVideo.getAttribute("src")) return;
  playerCaption.textContent = "This browser cannot play this video: download it to watch it.";
  playerCaption.classList.add("error");
});
player.addEventListener("close", () => {
  playerVideo.pause();
  playerVideo.removeAttribute("src");
  playerVideo.load(); // stops fetching the file
});
player.addEventListener("click", (event) => { if (event.target === player) player.close(); });
