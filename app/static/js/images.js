// Images on the page: the shape the thread uses for them, tiles with their
// actions (open, download, copy, use as input) and the full-size viewer.

import { $, h, iconButton } from "./dom.js";
import { t } from "./i18n.js";
import { emit } from "./state.js";
import { toast } from "./ui.js";

/** An image stored on the server (from a message). */
export function storedImage(ref) {
  return {
    id: ref.id,
    url: ref.url,
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
  return { id: null, url, thumb: url, blob, mime };
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

function actionButtons(image, context, { compact = true } = {}) {
  const cls = compact ? "tile-btn" : "btn btn-secondary btn-sm";
  const make = (iconName, key, handler) => {
    const button = iconButton(iconName, { key }, (event) => {
      event.stopPropagation();
      handler();
    }, cls);
    button.dataset.action = iconName;
    if (!compact) button.append(h("span", { i18n: key }));
    return button;
  };
  return [
    make("download", "image.download", () => downloadImage(image, context)),
    make("copy", "image.copy", () => copyImage(image)),
    make("wand", "image.use", () => {
      useAsInput(image);
      if (!compact) $("#viewer").close();
    }),
  ];
}

/**
 * A grid of result images. `context` = {prompt, when}; images open in the
 * viewer, and each has download / copy / use-as-input buttons.
 */
export function imageGrid(images, context) {
  const grid = h("div", { class: "image-grid", dataset: { count: String(images.length) } });
  images.forEach((image, index) => {
    const itemContext = { ...context, index };
    const img = h("img", {
      src: image.url,
      alt: t("image.alt", { n: index + 1, prompt: context.prompt || "" }),
      loading: "lazy",
      decoding: "async",
      draggable: "false",
    });
    if (image.width && image.height) {
      img.width = image.width;
      img.height = image.height;
    }
    img.addEventListener("error", () => img.closest(".tile")?.classList.add("broken"), { once: true });
    const tile = h("figure", { class: "tile" },
      h("button", {
        type: "button",
        class: "tile-open",
        "aria-label": t("image.open", { n: index + 1 }),
        onclick: () => openViewer(images, index, context),
      }, img),
      h("div", { class: "tile-actions" }, actionButtons(image, itemContext)));
    tile.dataset.imageId = image.id ?? "";
    grid.append(tile);
  });
  return grid;
}

// ---- viewer ----------------------------------------------------------------------

let viewing = null;

function showInViewer() {
  const { images, index, context } = viewing;
  const image = images[index];
  const img = $("#viewer-img");
  img.src = image.url;
  img.alt = t("image.alt", { n: index + 1, prompt: context.prompt || "" });
  const counter = images.length > 1 ? ` (${index + 1}/${images.length})` : "";
  $("#viewer-caption").textContent = (context.prompt || "") + counter;
  $("#viewer-actions").replaceChildren(
    ...actionButtons(image, { ...context, index }, { compact: false }));
}

export function openViewer(images, index, context) {
  viewing = { images, index, context };
  showInViewer();
  const dialog = $("#viewer");
  if (!dialog.open) dialog.showModal();
}

export function initViewer() {
  const dialog = $("#viewer");
  dialog.addEventListener("click", (event) => {
    // A click on the dark backdrop (the stage around the picture) closes it.
    if (event.target === dialog || event.target.id === "viewer-stage") dialog.close();
  });
  dialog.addEventListener("keydown", (event) => {
    if (!viewing || viewing.images.length < 2) return;
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    viewing.index = (viewing.index + step + viewing.images.length) % viewing.images.length;
    showInViewer();
  });
  dialog.addEventListener("close", () => {
    $("#viewer-img").removeAttribute("src");
  });
}
