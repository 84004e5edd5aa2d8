// The composer: a growing text box (Enter sends, Shift+Enter breaks the line,
// Enter during IME composition does nothing), images attached by button, drag
// and drop or paste, the "editing" chip that carries the last result into
// the next prompt, and the mode those images imply.

import { $, h, iconButton } from "./dom.js";
import { icon } from "./icons.js";
import { t } from "./i18n.js";
import { on, state } from "./state.js";
import { currentModel, requestParams } from "./settings.js";
import { startTurn } from "./thread.js";
import { toast } from "./ui.js";

const ACCEPTED = new Set(["image/png", "image/jpeg", "image/webp", "image/gif"]);
const MAX_FILE_MB = 10;

// [{kind: "file", file, url} | {kind: "image", image}] in the order added.
let attachments = [];
// The result the next prompt edits by default: an image from the thread.
let editing = null;
// After a failed turn its images come back to the composer; if the retry
// button then succeeds, they are spent and go away (unless changed since).
let restored = null;
let submitting = false;
let composing = false;

const promptEl = () => $("#prompt");

export function imageCount() {
  return attachments.length + (editing ? 1 : 0);
}

export function mode() {
  const count = imageCount();
  return count === 0 ? "generate" : count === 1 ? "edit" : "compose";
}

// ---- attachments -----------------------------------------------------------------------

export function addFiles(fileList) {
  for (const file of fileList) {
    if (!ACCEPTED.has(file.type)) {
      toast(t("composer.notImage", { name: file.name || "?" }), { kind: "error" });
      continue;
    }
    if (file.size > MAX_FILE_MB * 1024 * 1024) {
      toast(t("composer.tooBig", { name: file.name, mb: MAX_FILE_MB }), { kind: "error" });
      continue;
    }
    attachments = [...attachments, { kind: "file", file, url: URL.createObjectURL(file) }];
  }
  render();
}

function addImage(image) {
  const already = attachments.some((a) => a.kind === "image" && a.image.url === image.url)
    || (editing && editing.url === image.url);
  if (!already) attachments = [...attachments, { kind: "image", image }];
  render();
  promptEl().focus();
}

export function setEditing(image) {
  editing = image;
  render();
}

export function clearAttachments({ keepEditing = false } = {}) {
  for (const item of attachments) if (item.kind === "file") URL.revokeObjectURL(item.url);
  attachments = [];
  if (!keepEditing) editing = null;
  render();
}

function chip(url, label, removeLabel, onRemove, extraClass = "") {
  return h("div", { class: `attachment ${extraClass}` },
    h("img", { src: url, alt: "", width: 56, height: 56 }),
    label ? h("span", { class: "attachment-label", text: label }) : null,
    iconButton("x", removeLabel, onRemove, "attachment-remove"));
}

function render() {
  const box = $("#attachments");
  const items = [];
  if (editing) {
    const editingChip = chip(editing.thumb || editing.url, t("composer.editing"),
      t("composer.removeEditing"), () => setEditing(null), "is-editing");
    editingChip.id = "editing-chip";
    items.push(editingChip);
  }
  attachments.forEach((item, index) => {
    const url = item.kind === "file" ? item.url : item.image.thumb || item.image.url;
    const name = item.kind === "file" ? item.file.name : t("image.inputAlt", { n: index + 1 });
    items.push(chip(url, null, t("composer.remove", { name }), () => {
      if (item.kind === "file") URL.revokeObjectURL(item.url);
      attachments = attachments.filter((other) => other !== item);
      render();
    }));
  });
  box.replaceChildren(...items);
  box.hidden = items.length === 0;
  renderMode();
}

function renderMode() {
  const pill = $("#mode-pill");
  const current = mode();
  const count = imageCount();
  pill.dataset.mode = current;
  const hint = current === "generate" ? t("mode.generateHint")
    : current === "edit" ? t("mode.editHint") : t("mode.composeHint", { n: count });
  pill.replaceChildren(
    icon(current === "generate" ? "sparkles" : current === "edit" ? "wand" : "layers"),
    h("span", { class: "mode-name", text: t(`mode.${current}`) }),
    h("span", { class: "mode-hint", text: hint }));
  pill.title = hint;
}

// ---- sending ----------------------------------------------------------------------------

function autosize() {
  const el = promptEl();
  el.style.height = "auto";
  el.style.height = `${Math.min(el.scrollHeight, 240)}px`;
}

async function submit() {
  const prompt = promptEl().value.trim();
  if (!prompt) {
    toast(t("composer.empty"), { kind: "error", timeout: 2500 });
    promptEl().focus();
    return;
  }
  if (state.busy || submitting) {
    toast(t("composer.busy"), { timeout: 2500 });
    return;
  }
  let params;
  try {
    params = requestParams();
  } catch (error) {
    toast(error.message, { kind: "error" });
    return;
  }
  const model = currentModel();
  if (model?.max_input_images && imageCount() > model.max_input_images) {
    toast(t("composer.tooMany", { model: model.label || model.id, n: model.max_input_images }), { kind: "error" });
    return;
  }
  const kind = mode();
  const files = [];
  const sourceIds = [];
  const inputs = [];
  const take = (image) => {
    if (image.id) sourceIds.push(image.id);
    else files.push(new File([image.blob], "result.png", { type: image.mime || "image/png" }));
  };
  if (editing) {
    take(editing);
    inputs.push({ ...editing, editing: true });
  }
  for (const item of attachments) {
    if (item.kind === "file") {
      files.push(item.file);
      inputs.push({ url: item.url, thumb: item.url });
    } else {
      take(item.image);
      inputs.push(item.image);
    }
  }
  let convId = null;
  if (state.user) {
    submitting = true; // a second Enter must not create a second conversation
    try {
      convId = await ensureConversation();
    } catch (error) {
      toast(error.message, { kind: "error" });
      return;
    } finally {
      submitting = false;
    }
  }
  // The text and images go into the turn; the box is ready for the next one.
  promptEl().value = "";
  autosize();
  const previous = { attachments, editing };
  attachments = [];
  editing = null;
  render();
  const data = await startTurn({ prompt, mode: kind, params, files, sourceIds, inputs, convId });
  if (!data && !editing && !attachments.length) {
    // Failed: put the images back, so a reworded prompt can use them again.
    ({ attachments, editing } = previous);
    restored = attachments;
    render();
  }
}

let ensureConversation = async () => null;

export function initComposer({ createConversation }) {
  ensureConversation = createConversation;
  const el = promptEl();
  const form = $("#composer");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  el.addEventListener("compositionstart", () => { composing = true; });
  el.addEventListener("compositionend", () => { composing = false; });
  el.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.altKey) return;
    // Enter while an input method is composing picks a candidate; it is not "send".
    if (event.isComposing || composing || event.keyCode === 229) return;
    event.preventDefault();
    submit();
  });
  el.addEventListener("input", autosize);
  el.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
    if (files.length) {
      event.preventDefault();
      addFiles(files);
    }
  });

  const input = $("#file-input");
  $("#attach-btn").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = "";
  });

  // Drag and drop anywhere on the page.
  const overlay = $("#drop-overlay");
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    overlay.hidden = false;
  });
  document.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) overlay.hidden = true;
  });
  document.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    addFiles([...event.dataTransfer.files]);
  });

  on("use-image", addImage);
  on("turn-finished", ({ images }) => {
    if (restored && attachments === restored) attachments = [];
    restored = null;
    if (images.length) setEditing(images[0]);
    else render();
  });
  on("busy", (busy) => {
    $("#send-btn").classList.toggle("is-busy", busy);
    $("#composer").setAttribute("aria-busy", String(busy));
  });
  on("lang", render);
  render();
}

export function fillPrompt(text) {
  promptEl().value = text;
  autosize();
  promptEl().focus();
}
