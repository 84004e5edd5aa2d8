// The composer: a growing text box (Enter sends, Shift+Enter breaks the line,
// Enter during IME composition does nothing), images attached by button, drag
// and drop or paste, the "editing" chip that carries the last result into
// the next prompt, and the mode those images imply, naming which images go.
//
// What gets edited is what the user chose: "Use as input" replaces the result
// carried over on its own; new attachments replace it too, and it is offered
// back ("Also use the last result") for when it should go with them.

import { $, h, iconButton } from "./dom.js";
import { icon } from "./icons.js";
import { t } from "./i18n.js";
import { on, state } from "./state.js";
import { currentModel, requestParams } from "./settings.js";
import { sending, startTurn } from "./thread.js";
import { toast } from "./ui.js";

const ACCEPTED = new Set(["image/png", "image/jpeg", "image/webp", "image/gif"]);
const MAX_FILE_MB = 10;

// [{kind: "file", file, url} | {kind: "image", image}] in the order added.
let attachments = [];
// The image the next prompt continues from: the last result on its own
// (chosen false), or one the user picked with "Use as input" (chosen true).
let editing = null;
let chosen = false;
// The last result, put aside by attachments added after it: offered back.
let dropped = null;
// After a failed turn its images and text come back to the composer; if the
// retry button then succeeds, they are spent and go away (unless changed since).
let restored = null;
let restoredPrompt = null;
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
    // New images replace the result carried over, unless the user chose it.
    if (editing && !chosen) {
      dropped = editing;
      editing = null;
    }
  }
  render();
}

/** "Use as input": the image replaces the one carried over; a second choice goes beside the first. */
function useImage(image) {
  const already = attachments.some((a) => a.kind === "image" && a.image.url === image.url);
  if (editing?.url === image.url) {
    chosen = true;
  } else if (!already) {
    if (editing && chosen) {
      attachments = [...attachments, { kind: "image", image }];
    } else {
      editing = image;
      chosen = true;
      dropped = null;
    }
  }
  render();
  promptEl().focus();
}

/** The result the next prompt continues from (not a choice of the user's). */
export function setEditing(image) {
  editing = image;
  chosen = false;
  dropped = null;
  render();
}

/** The put-aside result goes with the attachments after all: kept on purpose. */
function keepDropped() {
  editing = dropped;
  chosen = true;
  dropped = null;
  render();
  promptEl().focus();
}

export function clearAttachments({ keepEditing = false } = {}) {
  for (const item of attachments) if (item.kind === "file") URL.revokeObjectURL(item.url);
  attachments = [];
  dropped = null;
  if (!keepEditing) {
    editing = null;
    chosen = false;
  }
  render();
}

function chip(url, label, removeLabel, onRemove, extraClass = "") {
  return h("div", { class: `attachment ${extraClass}` },
    h("img", { src: url, alt: "", width: 56, height: 56 }),
    label ? h("span", { class: "attachment-label", text: label }) : null,
    iconButton("x", removeLabel, onRemove, "attachment-remove"));
}

function keepOffer() {
  return h("button", { type: "button", class: "attachment attachment-keep", id: "keep-result", onclick: keepDropped },
    h("img", { src: dropped.thumb || dropped.url, alt: "", width: 40, height: 40 }),
    h("span", { class: "attachment-label" }, icon("plus"), h("span", { i18n: "composer.keepResult" })));
}

function render() {
  const box = $("#attachments");
  const items = [];
  if (editing) {
    const editingChip = chip(editing.thumb || editing.url, t("composer.editing"),
      t("composer.removeEditing"), () => setEditing(null), "is-editing");
    editingChip.id = "editing-chip";
    editingChip.dataset.chosen = String(chosen);
    items.push(editingChip);
  }
  attachments.forEach((item, index) => {
    const url = item.kind === "file" ? item.url : item.image.thumb || item.image.url;
    const name = item.kind === "file" ? item.file.name : t("image.inputAlt", { n: index + 1 });
    items.push(chip(url, null, t("composer.remove", { name }), () => {
      if (item.kind === "file") URL.revokeObjectURL(item.url);
      attachments = attachments.filter((other) => other !== item);
      // Nothing attached any more: the last result carries on again.
      if (!attachments.length && !editing && dropped) setEditing(dropped);
      else render();
    }));
  });
  if (dropped && attachments.length) items.push(keepOffer());
  box.replaceChildren(...items);
  box.hidden = items.length === 0;
  renderMode();
}

/** Exactly which images the next prompt sends, in words. */
function modeHint(current) {
  if (current === "generate") return t("mode.generateHint");
  const files = attachments.filter((item) => item.kind === "file");
  const fromThread = imageCount() - files.length;
  if (current === "edit") {
    if (files.length) return t("mode.editFile", { name: files[0].file.name || "?" });
    return t(editing && !chosen ? "mode.editResult" : "mode.editChosen");
  }
  const n = imageCount();
  if (!fromThread) return t("mode.composeHint", { n });
  if (!files.length) return t("mode.composeThread", { n });
  return t("mode.composeMixed", { n, r: fromThread, f: files.length });
}

function renderMode() {
  const pill = $("#mode-pill");
  const current = mode();
  const count = imageCount();
  pill.dataset.mode = current;
  pill.dataset.count = String(count);
  const hint = modeHint(current);
  pill.replaceChildren(...[
    icon(current === "generate" ? "sparkles" : current === "edit" ? "wand" : "layers"),
    h("span", { class: "mode-name", text: t(`mode.${current}`) }),
    // On a phone the sentence is hidden: the number of images still shows.
    count > 1 ? h("span", { class: "mode-count", "aria-hidden": "true", text: String(count) }) : null,
    h("span", { class: "mode-hint", text: hint }),
  ].filter(Boolean));
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
  if (sending() || submitting) {
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
  const previous = { attachments, editing, chosen };
  attachments = [];
  editing = null;
  chosen = false;
  dropped = null;
  restoredPrompt = null;
  render();
  const { ok, view } = await startTurn({ prompt, mode: kind, params, files, sourceIds, inputs, convId });
  // Failed (or cancelled before it made anything), in the thread still shown:
  // the prompt and its images come back, unless the user has moved on.
  if (ok || view !== state.view) return;
  if (!attachments.length && !chosen) {
    ({ attachments, editing, chosen } = previous);
    restored = attachments;
    render();
  }
  if (!promptEl().value.trim()) {
    promptEl().value = prompt;
    restoredPrompt = prompt;
    autosize();
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

  on("use-image", useImage);
  on("turn-finished", ({ images, canceled }) => {
    if (restored && attachments === restored) attachments = [];
    restored = null;
    // A retry of the failed turn got through: the text put back is spent.
    if (restoredPrompt !== null && promptEl().value === restoredPrompt) {
      promptEl().value = "";
      autosize();
    }
    restoredPrompt = null;
    // A cancelled result is never what the next prompt edits, nor does a new
    // result push aside what the user chose or attached (it is offered).
    if (!images.length || canceled || chosen) render();
    else if (attachments.length) {
      dropped = images[0];
      render();
    } else setEditing(images[0]);
  });
  // A prompt the model refuses as it stands: back in the box, to be reworded.
  on("edit-prompt", ({ prompt }) => {
    promptEl().value = prompt;
    restoredPrompt = null;
    autosize();
    promptEl().focus();
    promptEl().setSelectionRange(prompt.length, prompt.length);
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
