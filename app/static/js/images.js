// Images on the page: the shape the thread uses for them, tiles with their
// actions (open, download, copy, use as input) and the full-size viewer,
// which steps through a result's images by arrow key, button or swipe.

import { $, h, iconButton } from "./dom.js";
import { t } from "./i18n.js";
import { emit } from "./state.js";
import { toast } from "./ui.js";

/**
 * An image stored on the server (from a message). The thread shows `display`
 * (a rendition at most 1280 px wide, when the server makes one); the viewer,
 * Download and Copy use `url`, the original.
 */
export function storedImage(ref) {
  return {
    id: ref.id,
    url: ref.url,
    display: ref.display_url || ref.url,
    thumb: ref.thumb_url || ref.url,
    width: ref.width,
    height: ref.height,
    mime: ref.mime || "image/png",
  };
}

/** An image only this page has (anonymous results): base64 PNG → blob URL. */
export function localImage(base64, mime = "image/png") {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const blob = new Blob([bytes], { type: mime });
  const url = URL.createObjectURL(blob);
  return { id: null, url, display: url, thumb: url, blob, mime };
}

const EXTENSIONS = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif" };

/** "nano-banana_a-banana-astronaut_20250101-120501_2.png" — prompt and time. */
export function fileName(prompt, when, index = 0, mime = "image/png") {
  const slug = (prompt || "")
    .normalize("NFKC")
    .replace(/[^\p{L}\p{N}]+/gu, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 48)
    .replace(/-+$/, "")
    .toLowerCase();
  const date = new Date(when || Date.now());
  const pad = (n) => String(n).padStart(2, "0");
  const stamp =
    `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}-` +
    `${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`;
  const suffix = index > 0 ? `_${index + 1}` : "";
  return `nano-banana${slug ? `_${slug}` : ""}_${stamp}${suffix}.${EXTENSIONS[mime] || "png"}`;
}

export function downloadImage(image, context) {
  const link = h("a", {
    href: image.url,
    download: fileName(context.prompt, context.when, context.index, image.mime),
    class: "visually-hidden",
  });
  document.body.append(link);
  link.click();
  link.remove();
}

async function imageBlob(image) {
  if (image.blob) return image.blob;
  const response = await fetch(image.url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.blob();
}

/** The clipboard takes PNG only; anything else is redrawn as PNG first. */
async function pngBlob(image) {
  const blob = await imageBlob(image);
  if (blob.type === "image/png") return blob;
  const bitmap = await createImageBitmap(blob);
  const canvas = h("canvas", { width: bitmap.width, height: bitmap.height });
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

export async function copyImage(image) {
  if (!window.isSecureContext || !navigator.clipboard?.write || !window.ClipboardItem) {
    toast(t("image.copyFailed"), { kind: "error" });
    return;
  }
  try {
    await navigator.clipboard.write([new ClipboardItem({ "image/png": pngBlob(image) })]);
    toast(t("image.copied"), { kind: "success" });
  } catch {
    toast(t("image.copyFailed"), { kind: "error" });
  }
}

export function useAsInput(image) {
  emit("use-image", image);
  toast(t("image.used"), { kind: "success", timeout: 2000 });
}

function actionButton(iconName, key, handler, compact) {
  const button = iconButton(iconName, { key }, (event) => {
    event.stopPropagation();
    handler();
  }, compact ? "tile-btn" : "btn btn-secondary btn-sm");
  button.dataset.action = iconName;
  if (!compact) button.append(h("span", { i18n: key }));
  return button;
}

function tileActions(image, context) {
  return [
    actionButton("download", "image.download", () => downloadImage(image, context), true),
    actionButton("copy", "image.copy", () => copyImage(image), true),
    actionButton("wand", "image.use", () => useAsInput(image), true),
  ];
}

/**
 * A grid of result images. `context` = {prompt, when}; images open in the
 * viewer, and each has download / copy / use-as-input buttons. A tile knows
 * its picture's aspect ratio (--ar) so a tall one can be narrowed to fit the
 * visible thread instead of growing past it.
 */
export function imageGrid(images, context) {
  const grid = h("div", { class: "image-grid", dataset: { count: String(images.length) } });
  images.forEach((image, index) => {
    const itemContext = { ...context, index };
    const img = h("img", {
      src: image.display || image.url,
      alt: t("image.alt", { n: index + 1, prompt: context.prompt || "" }),
      loading: "lazy",
      decoding: "async",
      draggable: "false",
    });
    const tile = h("figure", { class: "tile" },
      h("button", {
        type: "button",
        class: "tile-open",
        "aria-label": t("image.open", { n: index + 1 }),
        onclick: () => openViewer(images, index, context, grid),
      }, img),
      h("div", { class: "tile-actions" }, tileActions(image, itemContext)));
    const setRatio = (width, height) => tile.style.setProperty("--ar", (width / height).toFixed(4));
    if (image.width && image.height) {
      img.width = image.width;
      img.height = image.height;
      setRatio(image.width, image.height);
    } else {
      img.addEventListener("load", () => img.naturalHeight && setRatio(img.naturalWidth, img.naturalHeight),
        { once: true });
    }
    img.addEventListener("error", () => tile.classList.add("broken"), { once: true });
    tile.dataset.imageId = image.id ?? "";
    grid.append(tile);
  });
  return grid;
}

// ---- viewer ----------------------------------------------------------------------
// One dialog for every grid. Its controls are made once and only their state
// changes between images, so the focused control stays focused while the
// user steps through; closing puts focus on the tile of the image last seen.

let viewing = null; // {images, index, context, grid}

function showInViewer() {
  const { images, index, context } = viewing;
  const image = images[index];
  const img = $("#viewer-img");
  img.src = image.url;
  img.alt = t("image.alt", { n: index + 1, prompt: context.prompt || "" });
  $("#viewer-caption").textContent = context.prompt || "";
  const several = images.length > 1;
  const counter = $("#viewer-counter");
  counter.hidden = !several;
  counter.textContent = several ? t("viewer.counter", { n: index + 1, total: images.length }) : "";
  $("#viewer-prev").hidden = !several;
  $("#viewer-next").hidden = !several;
}

function step(delta) {
  if (!viewing || viewing.images.length < 2) return;
  const count = viewing.images.length;
  viewing.index = (viewing.index + delta + count) % count;
  showInViewer();
}

export function openViewer(images, index, context, grid = null) {
  viewing = { images, index, context, grid };
  showInViewer();
  const dialog = $("#viewer");
  if (!dialog.open) dialog.showModal();
}

function viewerActions() {
  const current = () => ({ image: viewing.images[viewing.index], context: { ...viewing.context, index: viewing.index } });
  return [
    actionButton("download", "image.download", () => {
      const { image, context } = current();
      downloadImage(image, context);
    }, false),
    actionButton("copy", "image.copy", () => copyImage(current().image), false),
    actionButton("wand", "image.use", () => {
      useAsInput(current().image);
      $("#viewer").close();
    }, false),
  ];
}

const STEPS = { ArrowRight: 1, ArrowLeft: -1 };
const SWIPE_PX = 40;

/** A horizontal swipe on a touch screen steps to the next or previous image. */
function followSwipes(stage) {
  let start = null;
  stage.addEventListener("pointerdown", (event) => {
    start = event.pointerType === "mouse" ? null : { id: event.pointerId, x: event.clientX, y: event.clientY };
  });
  stage.addEventListener("pointercancel", () => {
    start = null;
  });
  stage.addEventListener("pointerup", (event) => {
    if (!start || event.pointerId !== start.id) return;
    const dx = event.clientX - start.x;
    const dy = event.clientY - start.y;
    start = null;
    if (Math.abs(dx) >= SWIPE_PX && Math.abs(dx) > 1.5 * Math.abs(dy)) step(dx < 0 ? 1 : -1);
  });
}

export function initViewer() {
  const dialog = $("#viewer");
  $("#viewer-actions").replaceChildren(...viewerActions());
  $("#viewer-prev").addEventListener("click", () => step(-1));
  $("#viewer-next").addEventListener("click", () => step(1));
  followSwipes($("#viewer-stage"));
  dialog.addEventListener("click", (event) => {
    // A click on the dark backdrop (the stage around the picture) closes it.
    if (event.target === dialog || event.target.id === "viewer-stage") dialog.close();
  });
  // On the document: a click on the picture may leave focus on <body>.
  document.addEventListener("keydown", (event) => {
    const delta = STEPS[event.key];
    if (!dialog.open || !delta || event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    step(delta);
  });
  dialog.addEventListener("close", () => {
    $("#viewer-img").removeAttribute("src");
    const tile = viewing?.grid?.isConnected && viewing.grid.querySelectorAll(".tile-open")[viewing.index];
    viewing = null;
    if (tile) tile.focus();
  });
}
