// The conversation in the middle: stored history (older pages on scroll up),
// the user's turn shown at once, a placeholder while the model works, the
// result or an error with retry, and the Retry-After countdown.

import { api, ApiError } from "./api.js";
import { $, h } from "./dom.js";
import { icon } from "./icons.js";
import { clockTime, t } from "./i18n.js";
import { imageGrid, localImage, storedImage } from "./images.js";
import { emit, state } from "./state.js";
import { LONG_WAIT_S, QUOTA_CODES, quotaMessage, resetPhrase, waitSeconds } from "./usage.js";

const PAGE = 30;
const messagesEl = () => $("#messages");
const threadEl = () => $("#thread");

let olderCursor = null;
let loadingOlder = false;
let observer = null;
// Whether the view follows the newest message: true until the user scrolls up.
let stickToBottom = true;

// ---- rendering ------------------------------------------------------------------

function avatar() {
  return h("div", { class: "msg-avatar", "aria-hidden": "true" },
    h("img", { src: $(".brand-logo").getAttribute("src"), alt: "", width: 28, height: 28 }));
}

/** The user's turn: prompt, input thumbnails, the mode. */
export function userMessage({ prompt, kind, inputs = [], when, saved = true }) {
  const thumbs = inputs.length
    ? h("div", { class: "msg-inputs" },
      inputs.map((image, index) => h("img", {
        src: image.thumb || image.url,
        alt: t("image.inputAlt", { n: index + 1 }),
        loading: "lazy",
        width: 64,
        height: 64,
        class: image.editing ? "is-editing" : "",
      })))
    : null;
  return h("article", { class: "msg msg-user", dataset: { kind } },
    h("div", { class: "msg-body" },
      h("div", { class: "bubble" }, thumbs, h("p", { class: "msg-text", text: prompt || "" })),
      h("div", { class: "msg-meta" },
        h("span", { class: `kind-tag kind-${kind}`, i18n: `mode.${kind}` }),
        when ? h("time", { datetime: when, text: clockTime(when) }) : null,
        saved ? null : h("span", { class: "not-saved", i18n: "turn.notSaved" }))));
}

function metaLine(message) {
  const parts = [];
  if (message.model) parts.push(message.model);
  if (message.duration_ms) parts.push(t("turn.duration", { s: Math.max(0.1, message.duration_ms / 1000).toFixed(1) }));
  const tokens = message.usage?.total_tokens;
  if (tokens) parts.push(t("turn.tokens", { n: tokens }));
  if (message.params?.seed !== undefined && message.params?.seed !== null) {
    parts.push(t("turn.seed", { n: message.params.seed }));
  }
  return h("div", { class: "msg-meta" },
    parts.map((part) => h("span", { text: part })),
    message.created_at ? h("time", { datetime: message.created_at, text: clockTime(message.created_at) }) : null);
}

function textBlock(texts) {
  // N candidates often say the same thing N times; once is enough.
  const clean = [...new Set((texts || []).filter((text) => text && text.trim()))];
  if (!clean.length) return null;
  // Model output is text, never markup.
  return h("div", { class: "msg-texts" }, clean.map((text) => h("p", { text })));
}

/** An assistant answer: texts, the image grid, warnings, meta. */
export function assistantMessage(message, images, prompt) {
  const context = { prompt, when: message.created_at || new Date().toISOString() };
  const body = h("div", { class: "msg-body" },
    textBlock(message.texts),
    images.length ? imageGrid(images, context) : null,
    !images.length && !message.error && !(message.texts || []).length
      ? h("p", { class: "muted", i18n: "turn.noImage" }) : null,
    (message.warnings || []).length
      ? h("ul", { class: "warnings" }, message.warnings.map((w) => h("li", { text: String(w) }))) : null,
    message.error ? errorCard({ message: message.error.message || message.error.code, code: message.error.code }) : null,
    metaLine(message));
  return h("article", { class: "msg msg-assistant", dataset: { id: message.id ?? "" } }, avatar(), body);
}

function errorCard({ message, code, upstream, note = null }, actions = null) {
  return h("div", { class: "error-card", role: "alert" },
    icon("alert"),
    h("div", { class: "error-main" },
      h("p", { class: "error-message", text: message }),
      note ? h("p", { class: "error-note", text: note }) : null,
      upstream ? h("p", { class: "error-upstream", text: upstream }) : null,
      code ? h("p", { class: "error-code", text: code }) : null),
    actions);
}

function renderStored(items) {
  // Pairs each answer with the prompt before it, for alt text and file names.
  const nodes = [];
  let lastPrompt = "";
  for (const message of items) {
    if (message.role === "user") {
      lastPrompt = message.prompt || "";
      nodes.push(userMessage({
        prompt: message.prompt,
        kind: message.kind,
        inputs: (message.input_images || []).map(storedImage),
        when: message.created_at,
      }));
    } else {
      nodes.push(assistantMessage(message, (message.images || []).map(storedImage),
        message.prompt || lastPrompt));
    }
  }
  return nodes;
}

function newestImage(items) {
  for (let i = items.length - 1; i >= 0; i -= 1) {
    const images = items[i].role === "assistant" ? items[i].images || [] : [];
    if (images.length) return storedImage(images[0]);
  }
  return null;
}

// ---- the thread's life -------------------------------------------------------------------

function updateEmpty() {
  const empty = !messagesEl().children.length;
  $("#empty-state").hidden = !empty;
  threadEl().classList.toggle("is-empty", empty);
}

function scrollToBottom() {
  const thread = threadEl();
  thread.scrollTop = thread.scrollHeight;
  stickToBottom = true;
}

export function clearThread() {
  state.view += 1;
  olderCursor = null;
  messagesEl().replaceChildren();
  $("#thread-loading").hidden = true;
  updateEmpty();
}

/** Show a stored conversation; resolves with its newest image (or null). */
export async function showConversation(convId) {
  clearThread();
  const view = state.view;
  $("#thread-loading").hidden = false;
  $("#empty-state").hidden = true;
  try {
    const page = await api.get(`/conversations/${convId}/messages?limit=${PAGE}`);
    if (view !== state.view) return null;
    messagesEl().replaceChildren(...renderStored(page.items));
    olderCursor = page.next_cursor;
    updateEmpty();
    scrollToBottom();
    requestAnimationFrame(fillUpwards);
    return newestImage(page.items);
  } finally {
    if (view === state.view) $("#thread-loading").hidden = true;
  }
}

/** The observer only reports changes: if the top is still in view, go on. */
function fillUpwards() {
  if (olderCursor && threadEl().scrollTop < 200) loadOlder();
}

async function loadOlder() {
  if (!olderCursor || loadingOlder || !state.currentConvId) return;
  loadingOlder = true;
  const view = state.view;
  const convId = state.currentConvId;
  $("#thread-loading").hidden = false;
  try {
    const page = await api.get(
      `/conversations/${convId}/messages?limit=${PAGE}&before=${encodeURIComponent(olderCursor)}`);
    if (view !== state.view) return;
    const thread = threadEl();
    const before = thread.scrollHeight - thread.scrollTop;
    messagesEl().prepend(...renderStored(page.items));
    olderCursor = page.next_cursor;
    // Keep what the user was looking at where it was.
    thread.scrollTop = thread.scrollHeight - before;
    requestAnimationFrame(fillUpwards);
  } catch (error) {
    if (error instanceof ApiError) olderCursor = null;
  } finally {
    loadingOlder = false;
    if (view === state.view) $("#thread-loading").hidden = true;
  }
}

export function initThread() {
  observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadOlder();
  }, { root: threadEl(), rootMargin: "200px 0px 0px 0px" });
  observer.observe($("#thread-sentinel"));
  const thread = threadEl();
  thread.addEventListener("scroll", () => {
    stickToBottom = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 48;
  }, { passive: true });
  // The composer grows (attachments, long prompts) and images arrive: keep
  // the newest message in view unless the user is reading further up.
  const keep = new ResizeObserver(() => {
    if (stickToBottom && messagesEl().children.length) thread.scrollTop = thread.scrollHeight;
  });
  keep.observe(thread);
  keep.observe(messagesEl());
  updateEmpty();
}

// ---- a turn in flight -------------------------------------------------------------------

function placeholder(count, aspect, onCancel) {
  const elapsed = h("span", { class: "elapsed", text: t("turn.elapsed", { s: 0 }) });
  const skeletons = h("div", { class: "image-grid skeletons", dataset: { count: String(count) } });
  const [w, hgt] = (aspect || "1:1").split(":").map(Number);
  for (let i = 0; i < count; i += 1) {
    const box = h("div", { class: "skeleton" });
    if (w && hgt) box.style.aspectRatio = `${w} / ${hgt}`;
    skeletons.append(box);
  }
  const cancel = h("button", { type: "button", class: "btn btn-ghost btn-sm", onclick: onCancel },
    icon("stop"), h("span", { i18n: "turn.cancel" }));
  const el = h("article", { class: "msg msg-assistant pending", "aria-busy": "true" }, avatar(),
    h("div", { class: "msg-body" },
      h("div", { class: "working", role: "status" },
        h("span", { class: "spinner", "aria-hidden": "true" }),
        h("span", { i18n: "turn.working" }), elapsed, cancel),
      skeletons));
  const started = performance.now();
  const timer = setInterval(() => {
    elapsed.textContent = t("turn.elapsed", { s: Math.floor((performance.now() - started) / 1000) });
  }, 250);
  return { el, stop: () => clearInterval(timer) };
}

/** A quota or budget refusal that lasts: when it lifts, and no retry button. */
function quotaFailure(error) {
  const card = errorCard({
    message: error.message || t("error.unknown"),
    // In the browser's clock, which may not be the server's QUOTA_TIMEZONE.
    note: resetPhrase({ resetsAt: error.body?.resets_at, retryAfter: error.retryAfter }),
    code: error.code,
  });
  card.classList.add("is-quota");
  return h("article", { class: "msg msg-assistant failed" }, avatar(), h("div", { class: "msg-body" }, card));
}

/** An error with a retry button that waits out Retry-After, counting down. */
function failure(error, onRetry) {
  const quota = QUOTA_CODES.has(error.code);
  if (quota && waitSeconds(error) > LONG_WAIT_S) return quotaFailure(error);
  const retry = h("button", { type: "button", class: "btn btn-secondary btn-sm retry-btn" });
  const label = h("span");
  retry.append(icon("retry"), label);
  let remaining = error.retryAfter || 0;
  let timer = null;
  const tick = () => {
    if (remaining > 0) {
      retry.disabled = true;
      delete label.dataset.i18n;
      label.textContent = t("turn.retryIn", { s: remaining });
      retry.dataset.countdown = String(remaining);
      remaining -= 1;
    } else {
      clearInterval(timer);
      retry.disabled = false;
      delete retry.dataset.countdown;
      label.dataset.i18n = "common.retry";
      label.textContent = t("common.retry");
    }
  };
  tick();
  if (retry.disabled) timer = setInterval(tick, 1000);
  retry.addEventListener("click", () => {
    clearInterval(timer);
    onRetry();
  });
  const isCancel = error.name === "AbortError";
  const card = errorCard({
    message: isCancel ? t("turn.cancelled") : quota ? quotaMessage(error) : error.message || t("error.unknown"),
    code: isCancel ? null : error.code,
    // Google's own words (English), for the cases where they say more.
    upstream: isCancel ? null : error.body?.upstream_message,
  }, h("div", { class: "error-actions" }, retry));
  if (isCancel) {
    card.classList.add("is-cancelled");
    card.querySelector(".error-message").dataset.i18n = "turn.cancelled";
  }
  return h("article", { class: "msg msg-assistant failed" }, avatar(), h("div", { class: "msg-body" }, card));
}

function buildRequest(turn) {
  const params = { ...turn.params };
  if (turn.convId) params.conv_id = turn.convId;
  if (turn.mode === "generate") return { url: "/v1/generate", options: { json: { prompt: turn.prompt, ...params } } };
  const form = new FormData();
  form.append("prompt", turn.prompt);
  for (const [name, value] of Object.entries(params)) form.append(name, String(value));
  for (const id of turn.sourceIds) form.append("source_image_ids", String(id));
  turn.files.forEach((file, index) => form.append("files", file, file.name || `image-${index + 1}.png`));
  return { url: `/v1/${turn.mode}`, options: { form } };
}

/**
 * Run one turn: the user's message at once, then the placeholder, then the
 * answer. turn = {prompt, mode, params, files, sourceIds, inputs, convId}.
 */
export function startTurn(turn) {
  const userEl = userMessage({
    prompt: turn.prompt,
    kind: turn.mode,
    inputs: turn.inputs,
    when: new Date().toISOString(),
    saved: Boolean(turn.convId),
  });
  messagesEl().append(userEl);
  updateEmpty();
  return runTurn(turn, userEl);
}

async function runTurn(turn, userEl) {
  const view = state.view;
  const controller = new AbortController();
  const pending = placeholder(turn.params.candidate_count || 1, turn.params.aspect_ratio,
    () => controller.abort());
  userEl.after(pending.el);
  scrollToBottom();
  state.busy = true;
  emit("busy", true);
  const { url, options } = buildRequest(turn);
  try {
    const data = await api.post(url, { ...options, signal: controller.signal });
    pending.stop();
    if (view !== state.view) return data;
    const stored = data.message;
    const images = stored?.images?.length
      ? stored.images.map(storedImage)
      : (data.images || []).map((b64) => localImage(b64));
    const message = stored
      ? { ...stored, warnings: data.warnings || [] }
      : {
        texts: data.texts,
        model: data.model,
        usage: data.usage,
        warnings: data.warnings || [],
        created_at: new Date().toISOString(),
        params: turn.params,
      };
    if (data.user_message) {
      const fresh = renderStored([data.user_message])[0];
      userEl.replaceWith(fresh);
      userEl = fresh;
    }
    pending.el.replaceWith(assistantMessage(message, images, turn.prompt));
    scrollToBottom();
    $("#announcer").textContent = images.length === 1
      ? t("turn.readyOne") : t("turn.ready", { n: images.length });
    emit("turn-finished", { images, convId: turn.convId });
    return data;
  } catch (error) {
    pending.stop();
    if (!(error instanceof ApiError) && error.name !== "AbortError") throw error;
    if (view !== state.view) return null;
    const failed = failure(error, () => {
      failed.remove();
      if (!state.busy) runTurn(turn, userEl);
    });
    pending.el.replaceWith(failed);
    scrollToBottom();
    emit("turn-failed", { error, convId: turn.convId });
    return null;
  } finally {
    state.busy = false;
    emit("busy", false);
  }
}
