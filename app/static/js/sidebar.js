// The conversation list: newest activity first, each with its title, time and
// last image (all from the list endpoint: no request per conversation), a
// mark on those with work in progress, a title filter, more pages on scroll,
// inline rename, delete with confirmation.

import { api, ApiError } from "./api.js";
import { $, debounce, h, iconButton } from "./dom.js";
import { icon } from "./icons.js";
import { relativeTime, t } from "./i18n.js";
import { emit, on, state } from "./state.js";
import { confirmDialog, toast } from "./ui.js";

const PAGE = 30;
const DEFAULT_TITLE = "New conversation"; // what the server calls an untitled one

let items = [];
let cursor = null;
let filter = "";
let loading = false;
let generation = 0; // discards answers to superseded list requests
let working = new Set(); // ids of conversations with a queued or running job

export function displayTitle(conversation) {
  if (!conversation) return t("conv.defaultTitle");
  if (conversation.title !== DEFAULT_TITLE) return conversation.title;
  // The server names it after its first prompt once that turn is stored;
  // until then the prompt on its way already says what it is.
  return conversation.pendingTitle || t("conv.defaultTitle");
}

export function findConversation(id) {
  return items.find((item) => item.id === id) || null;
}

/** The one with the latest activity (the list is in that order). */
export function newestConversation() {
  return items[0] || null;
}

function thumb(conversation) {
  if (conversation.last_image_thumb_url) {
    return h("img", { class: "conv-thumb", src: conversation.last_image_thumb_url, alt: "", loading: "lazy", width: 40, height: 40 });
  }
  return h("span", { class: "conv-thumb conv-thumb-empty", "aria-hidden": "true" }, icon("image"));
}

// A spinner over the thumbnail, and the words in the line under the title.
function workingMark() {
  return h("span", { class: "conv-working", title: t("conv.working"), "aria-hidden": "true" },
    h("span", { class: "spinner" }));
}

function workingText() {
  return h("span", { class: "conv-working-text", text: t("conv.working") });
}

function row(conversation) {
  const title = displayTitle(conversation);
  const current = conversation.id === state.currentConvId;
  const busy = working.has(conversation.id);
  const open = h("button", {
    type: "button",
    class: "conv-open",
    "aria-current": current ? "page" : false,
    onclick: () => emit("open-conversation", conversation.id),
  },
  h("span", { class: "conv-thumb-box" }, thumb(conversation), busy ? workingMark() : null),
  h("span", { class: "conv-text" },
    h("span", { class: "conv-title", text: title }),
    h("span", { class: "conv-sub" },
      busy ? workingText() : null,
      h("time", { datetime: conversation.updated_at, text: relativeTime(conversation.updated_at) }),
      conversation.last_prompt ? h("span", { class: "conv-prompt", text: ` · ${conversation.last_prompt}` }) : null)));
  open.addEventListener("dblclick", () => startRename(conversation));
  open.addEventListener("keydown", (event) => {
    if (event.key === "F2") {
      event.preventDefault();
      startRename(conversation);
    }
  });
  const actions = h("div", { class: "conv-actions" },
    iconButton("pencil", `${t("conv.rename")}: ${title}`, () => startRename(conversation), "icon-btn icon-btn-sm"),
    iconButton("trash", `${t("conv.delete")}: ${title}`, () => remove(conversation), "icon-btn icon-btn-sm danger"));
  actions.children[0].dataset.action = "rename";
  actions.children[1].dataset.action = "delete";
  return h("li", {
    class: `conv-item${current ? " is-current" : ""}${busy ? " is-working" : ""}`,
    dataset: { id: String(conversation.id) },
  }, open, actions);
}

/** Mark the conversations with work in progress, in place (a rename in progress survives). */
export function setWorking(ids) {
  working = new Set(ids);
  for (const li of $("#conv-list").children) {
    const busy = working.has(Number(li.dataset.id));
    li.classList.toggle("is-working", busy);
    const box = li.querySelector(".conv-thumb-box");
    const mark = box?.querySelector(".conv-working");
    if (busy && box && !mark) {
      box.append(workingMark());
      li.querySelector(".conv-sub")?.prepend(workingText());
    } else if (!busy && mark) {
      mark.remove();
      li.querySelector(".conv-working-text")?.remove();
    }
  }
}

/** A prompt was sent to this conversation: it moves to the top, under its prompt. */
export function notePrompt(convId, prompt) {
  const conversation = findConversation(convId);
  if (!conversation) return;
  const text = prompt.split(/\s+/).join(" ").trim();
  upsertConversation({
    ...conversation,
    last_prompt: text,
    updated_at: new Date().toISOString(),
    pendingTitle: conversation.pendingTitle || (text.length > 60 ? `${text.slice(0, 59)}…` : text),
  });
}

function render() {
  const list = $("#conv-list");
  list.replaceChildren(...items.map(row));
  const empty = $("#conv-empty");
  empty.hidden = Boolean(items.length) || loading || !state.user;
  empty.textContent = filter ? t("conv.noMatch", { q: filter }) : t("conv.empty");
}

export async function loadConversations({ more = false } = {}) {
  if (!state.user) return;
  if (more && (!cursor || loading)) return;
  const mine = ++generation;
  loading = true;
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (more) params.set("cursor", cursor);
  if (filter) params.set("q", filter);
  try {
    const page = await api.get(`/conversations?${params}`);
    if (mine !== generation) return;
    // A title still waiting for its first turn keeps the prompt it showed.
    const named = page.items.map((c) => {
      const pendingTitle = c.title === DEFAULT_TITLE ? findConversation(c.id)?.pendingTitle : null;
      return pendingTitle ? { ...c, pendingTitle } : c;
    });
    items = more ? [...items, ...named.filter((c) => !findConversation(c.id))] : named;
    cursor = page.next_cursor;
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof ApiError && error.status !== 401) toast(t("conv.loadFailed"), { kind: "error" });
  } finally {
    if (mine === generation) {
      loading = false;
      render();
    }
  }
}

export function resetConversations() {
  generation += 1;
  items = [];
  cursor = null;
  loading = false;
  render();
}

/** Put a conversation (new or just changed) at the top. */
export function upsertConversation(conversation) {
  items = [conversation, ...items.filter((item) => item.id !== conversation.id)];
  render();
}

export function markCurrent() {
  for (const li of $("#conv-list").children) {
    const current = Number(li.dataset.id) === state.currentConvId;
    li.classList.toggle("is-current", current);
    const button = li.querySelector(".conv-open");
    if (current) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
}

function startRename(conversation) {
  const li = $(`#conv-list li[data-id="${conversation.id}"]`);
  if (!li || li.classList.contains("renaming")) return;
  li.classList.add("renaming");
  const input = h("input", {
    type: "text",
    class: "conv-rename",
    value: conversation.title === DEFAULT_TITLE ? "" : conversation.title,
    maxlength: "200",
    "aria-label": t("conv.renameLabel"),
    placeholder: displayTitle(conversation),
  });
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (!save || !title || title === conversation.title) {
      render();
      li.isConnected && $(`#conv-list li[data-id="${conversation.id}"] .conv-open`)?.focus();
      return;
    }
    try {
      const updated = await api.patch(`/conversations/${conversation.id}`, { json: { title } });
      items = items.map((item) => (item.id === updated.id ? updated : item));
      emit("conversation-renamed", updated);
    } catch (error) {
      if (error instanceof ApiError) toast(error.message, { kind: "error" });
    }
    render();
    $(`#conv-list li[data-id="${conversation.id}"] .conv-open`)?.focus();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
  li.querySelector(".conv-open").replaceWith(input);
  input.focus();
  input.select();
}

async function remove(conversation) {
  const ok = await confirmDialog({
    title: t("conv.deleteTitle"),
    text: t("conv.deleteText", { title: displayTitle(conversation) }),
    ok: t("common.delete"),
  });
  if (!ok) return;
  try {
    await api.delete(`/conversations/${conversation.id}`);
    items = items.filter((item) => item.id !== conversation.id);
    render();
    emit("conversation-deleted", conversation.id);
    toast(t("conv.deleted"), { kind: "success", timeout: 2000 });
  } catch (error) {
    if (error instanceof ApiError) toast(error.message, { kind: "error" });
  }
}

export function initSidebar() {
  const search = $("#conv-filter");
  const refilter = debounce(() => {
    filter = search.value.trim();
    cursor = null;
    loadConversations();
  }, 250);
  search.addEventListener("input", refilter);
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadConversations({ more: true });
  }, { root: $("#conv-scroll"), rootMargin: "0px 0px 120px 0px" });
  observer.observe($("#conv-sentinel"));
  on("lang", render);
  on("user", () => {
    $("#sidebar-anon").hidden = Boolean(state.user);
    $("#conv-scroll").hidden = !state.user;
    $("#filter-field").hidden = !state.user;
  });
}
