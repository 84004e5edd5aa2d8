// Start-up and wiring: theme, language, who is logged in, the models, and
// how the sidebar, thread, composer and settings react to each other.

import { api, handleSessionLost } from "./api.js";
import { adoptSession, initAuth, loadSetup, sessionExpired } from "./auth.js";
import { clearAttachments, fillPrompt, initComposer, setEditing } from "./composer.js";
import { $, h } from "./dom.js";
import { fillIcons } from "./icons.js";
import { applyI18n, lang, loadStrings, onLangChange, preloadLang, setLang, t } from "./i18n.js";
import { initViewer } from "./images.js";
import { initJobs, refreshActivity, setPageTitle } from "./jobs.js";
import { prefs } from "./prefs.js";
import { initSettings, renderSettings } from "./settings.js";
import {
  displayTitle, findConversation, initSidebar, loadConversations, markCurrent, newestConversation,
  notePrompt, resetConversations, setWorking, upsertConversation,
} from "./sidebar.js";
import { emit, on, state } from "./state.js";
import {
  clearThread, initThread, keepUnsavedTurns, resumeAnonymousJobs, showConversation, unsavedTurns,
} from "./thread.js";
import { closeDrawersIfNarrow, initDrawers, togglePanel, toast } from "./ui.js";

// ---- theme -------------------------------------------------------------------------

const SYSTEM_DARK = window.matchMedia("(prefers-color-scheme: dark)");

function currentTheme() {
  return prefs.get("theme") || (SYSTEM_DARK.matches ? "dark" : "light");
}

function applyTheme() {
  const theme = currentTheme();
  document.documentElement.dataset.theme = theme;
  $("#theme-toggle").setAttribute("aria-label", t(theme === "dark" ? "theme.toLight" : "theme.toDark"));
  $("#theme-toggle").title = $("#theme-toggle").getAttribute("aria-label");
}

// ---- the parts of the page that depend on state ------------------------------------------

// A dismissed offline banner stays away for a day, then reminds again.
const DAY_MS = 24 * 3600 * 1000;
let offlineDismissed = Date.now() - (prefs.get("offlineDismissedAt") || 0) < DAY_MS;

function renderChrome() {
  $("#lang-label").textContent = t("lang.other");
  const badge = $("#provider-badge");
  badge.hidden = !state.provider;
  badge.dataset.provider = state.provider || "";
  badge.textContent = state.provider ? t(`provider.${state.provider}`) : "";
  $("#banner-offline").hidden = state.provider !== "offline" || offlineDismissed;
  $("#banner-anon").hidden = Boolean(state.user);
  $("#about").textContent = t("settings.about", {
    version: state.version,
    provider: state.provider ? t(`provider.${state.provider}`) : "—",
  });
  renderThreadTitle();
  applyTheme();
}

function renderThreadTitle() {
  const conversation = state.currentConvId ? findConversation(state.currentConvId) : null;
  $("#thread-head").hidden = !conversation;
  $("#thread-title").textContent = conversation ? displayTitle(conversation) : "";
  setPageTitle(conversation ? `${displayTitle(conversation)} · Nano Banana` : "Nano Banana");
}

// The offline engine answers under the Gemini models' names: the picker says
// which engine will draw (the ids stay what the requests send).
function labelModels() {
  const offline = state.provider === "offline";
  state.models = state.models.map((model) => {
    const name = model.catalogLabel ?? (model.label || model.id);
    return { ...model, catalogLabel: name, label: offline ? t("settings.offlineModel", { name }) : name };
  });
}

function renderSuggestions() {
  const box = $("#suggestions");
  box.replaceChildren(...[1, 2, 3, 4].map((n) => h("button", {
    type: "button",
    class: "suggestion",
    onclick: () => fillPrompt(t(`suggest.${n}`)),
  }, t(`suggest.${n}`))));
}

// ---- conversations ---------------------------------------------------------------------------

function rememberConversation(id) {
  if (state.user) prefs.set(`conv.${state.user.id}`, id);
}

async function openConversation(id) {
  if (id === state.currentConvId && $("#messages").children.length) {
    closeDrawersIfNarrow();
    return;
  }
  state.currentConvId = id;
  rememberConversation(id);
  markCurrent();
  renderThreadTitle();
  closeDrawersIfNarrow();
  clearAttachments();
  try {
    const newest = await showConversation(id);
    if (state.currentConvId === id) setEditing(newest);
  } catch (error) {
    if (error.status === 404) {
      state.currentConvId = null;
      rememberConversation(null);
      clearThread();
      loadConversations();
    }
    toast(error.message, { kind: "error" });
  }
  $("#prompt").focus({ preventScroll: true });
}

function newConversation() {
  // A conversation is created on the server with the first prompt, so an
  // abandoned "new" leaves nothing behind.
  state.currentConvId = null;
  rememberConversation(null);
  clearThread();
  clearAttachments();
  markCurrent();
  renderThreadTitle();
  closeDrawersIfNarrow();
  $("#prompt").focus();
  // Without an account there is one thread: its unfinished jobs stay in it.
  if (!state.user) resumeAnonymousJobs();
}

async function createConversation() {
  if (state.currentConvId) return state.currentConvId;
  const conversation = await api.post("/conversations", { json: {} });
  state.currentConvId = conversation.id;
  rememberConversation(conversation.id);
  upsertConversation(conversation);
  markCurrent();
  renderThreadTitle();
  return conversation.id;
}

async function afterTurn({ convId }) {
  if (!convId || !state.user) return;
  // The title is set from the first prompt and the thumbnail changed: one
  // list request brings both.
  await loadConversations();
  markCurrent();
  renderThreadTitle();
}

/** The conversation to open after a login: the one left last, else the newest. */
async function lastConversation(user, { loggingIn }) {
  const last = prefs.get(`conv.${user.id}`);
  if (last && !findConversation(last)) {
    // Older than the first page of the list.
    const conversation = await api.get(`/conversations/${last}`).catch(() => null);
    if (conversation) upsertConversation(conversation);
  }
  if (last && findConversation(last)) return last;
  // A reload keeps an explicit "New conversation"; a login opens where the user was.
  return loggingIn ? newestConversation()?.id ?? null : null;
}

let previousUser = null;

async function onUser(user) {
  const loggingIn = Boolean(user && !previousUser && state.signingIn);
  state.signingIn = false;
  // What was made without an account stays on the page after logging in
  // (the dialog said so), until another conversation is opened.
  const keepUnsaved = Boolean(user && !previousUser && unsavedTurns());
  previousUser = user;
  resetConversations();
  state.currentConvId = null;
  if (keepUnsaved) {
    keepUnsavedTurns();
  } else {
    clearThread();
    clearAttachments();
  }
  renderChrome();
  refreshActivity();
  if (!user) {
    // Jobs sent without an account before a reload (a conversation's come back with it).
    await resumeAnonymousJobs();
    return;
  }
  await loadConversations();
  const last = keepUnsaved ? null : await lastConversation(user, { loggingIn });
  // Unless the user has started something meanwhile (a prompt sent at once).
  const untouched = !state.currentConvId && !$("#messages").children.length;
  if (last && state.user === user && untouched) await openConversation(last);
  else markCurrent();
}

// ---- what only an account needs, loaded when first needed ---------------------------------

// A visitor without an account never sees the usage chip and dialog, the API
// tokens, the password form or the admin panel: their modules and their
// strings are fetched with import() when someone logs in (the admin panel's
// module on the first click on "Admin"), which keeps them out of a new
// visitor's first load. Each init shows what belongs to the user logged in
// already, then follows the "user" events itself.
let accountModules = null; // the promise of the modules and strings below
let accountWired = false;

function fetchAccountParts() {
  accountModules ??= Promise.all([
    import("./usage.js"), import("./tokens.js"), import("./password.js"), loadStrings("account"),
  ]).catch((error) => {
    accountModules = null; // the next attempt asks again
    throw error;
  });
  return accountModules;
}

function loadAccountParts(user) {
  // The usage and admin buttons show at once, as before these modules were
  // loaded on demand (someone may look for them as soon as the login is
  // done); the forms (tokens, password) wait for the modules that handle them.
  $("#usage-section").hidden = !user;
  if (!user || accountWired) return;
  accountWired = true;
  fetchAccountParts()
    .then(([usage, tokens, password]) => {
      usage.initUsage();
      tokens.initTokens();
      password.initPassword();
    })
    .catch((error) => {
      accountWired = false; // the next login tries again
      toast(error.message, { kind: "error" });
    });
}

let adminLoading = null;

function openAdminFirst() {
  adminLoading ??= import("./admin.js")
    .then(({ initAdmin, openAdmin }) => {
      $("#open-admin").removeEventListener("click", openAdminFirst);
      initAdmin(); // its own listener opens the panel from now on
      openAdmin();
    })
    .catch((error) => {
      adminLoading = null;
      toast(error.message, { kind: "error" });
    });
}

function initAccountParts() {
  on("user", (user) => {
    $("#open-admin").hidden = !user?.is_admin; // as admin.js does, once loaded
    loadAccountParts(user);
  });
  $("#open-admin").addEventListener("click", openAdminFirst);
  // Someone about to log in: fetched while they type, ready when they are in.
  $("#auth-dialog").addEventListener("focusin", () => fetchAccountParts().catch(() => {}), { once: true });
}

// ---- start ---------------------------------------------------------------------------------

async function boot() {
  fillIcons();
  applyI18n();
  applyTheme();
  renderSuggestions();
  initDrawers();
  initViewer();
  initThread();
  initJobs();
  initSettings();
  initSidebar();
  initAuth();
  initAccountParts();
  initComposer({ createConversation });

  if (prefs.get("settingsCollapsed")) $("#app").classList.add("settings-collapsed");
  $("#open-settings").setAttribute("aria-expanded", String(!prefs.get("settingsCollapsed")));

  const otherLang = () => (lang() === "zh" ? "en" : "zh");
  $("#lang-toggle").addEventListener("click", () => {
    setLang(otherLang()).catch((error) => toast(error.message, { kind: "error" }));
  });
  // The other language's strings are fetched when a switch looks likely.
  for (const event of ["pointerenter", "focus"]) {
    $("#lang-toggle").addEventListener(event, () => preloadLang(otherLang()));
  }
  $("#theme-toggle").addEventListener("click", () => {
    prefs.set("theme", currentTheme() === "dark" ? "light" : "dark");
    applyTheme();
  });
  SYSTEM_DARK.addEventListener("change", applyTheme);
  $("#open-sidebar").addEventListener("click", () => togglePanel($("#sidebar")));
  $("#open-settings").addEventListener("click", () => togglePanel($("#settings"), {
    onCollapse: () => {
      const collapsed = $("#app").classList.toggle("settings-collapsed");
      prefs.set("settingsCollapsed", collapsed);
      $("#open-settings").setAttribute("aria-expanded", String(!collapsed));
    },
  }));
  $("#new-conv").addEventListener("click", newConversation);
  $("#dismiss-offline").addEventListener("click", () => {
    offlineDismissed = true;
    prefs.set("offlineDismissedAt", Date.now());
    renderChrome();
    $("#prompt").focus();
  });

  onLangChange(() => {
    renderSuggestions();
    renderChrome();
    labelModels();
    renderSettings();
    emit("lang");
  });
  on("user", onUser);
  on("open-conversation", openConversation);
  on("conversation-renamed", renderThreadTitle);
  on("conversation-deleted", (id) => {
    if (id === state.currentConvId) newConversation();
  });
  on("turn-finished", afterTurn);
  on("turn-failed", afterTurn);
  // A prompt on its way names its conversation in the list, marked as working.
  on("turn-sent", ({ convId, prompt }) => {
    if (!convId || !state.user) return;
    notePrompt(convId, prompt);
    markCurrent();
    renderThreadTitle();
  });
  on("activity", setWorking);
  on("conversations-settled", async () => {
    await loadConversations();
    markCurrent();
    renderThreadTitle();
  });
  handleSessionLost(sessionExpired);

  state.version = document.body.dataset.version || "";
  const [health, me, models] = await Promise.all([
    api.get("/health").catch(() => null),
    api.get("/me").catch(() => ({ authenticated: false })),
    api.get("/v1/models").catch(() => null),
    loadSetup(),
  ]);
  state.provider = health?.provider || models?.provider || null;
  if (health?.version) state.version = health.version;
  state.models = models?.models || [];
  state.defaultModel = models?.default_model || state.models.find((m) => m.default)?.id || null;
  labelModels();
  renderSettings();
  // A session's account parts are in before the page shows them.
  if (me?.authenticated) await fetchAccountParts().catch(() => {});
  adoptSession(me);
  document.body.classList.add("ready");
}

boot();
