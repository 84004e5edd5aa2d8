// Sign up, log in, log out, in a dialog; the signed-in name in the top bar.
// The same dialog makes the first admin with the setup code from the server
// log, and asks for an invite code when the signup policy wants one. Before
// a login it says what happens to what was made without an account.

import { api, ApiError, setCsrfToken } from "./api.js";
import { $, h } from "./dom.js";
import { t } from "./i18n.js";
import { emit, on, state } from "./state.js";
import { unsavedTurns } from "./thread.js";
import { toast } from "./ui.js";

let mode = "login";
// From GET /auth/setup; an older server without it behaves as "open", no setup.
let setup = { needed: false, signup_policy: "open" };

const TITLES = { login: "auth.loginTitle", signup: "auth.signupTitle", setup: "auth.setupTitle" };
const SUBMITS = { login: "auth.login", signup: "auth.signup", setup: "auth.setupSubmit" };

function setMode(next) {
  const closed = setup.signup_policy === "closed";
  if ((next === "setup" && !setup.needed) || (next === "signup" && closed)) next = "login";
  mode = next;
  const signup = mode === "signup";
  $("#auth-tabs").hidden = mode === "setup" || closed;
  $("#tab-login").setAttribute("aria-selected", String(!signup));
  $("#tab-signup").setAttribute("aria-selected", String(signup));
  $("#auth-title").textContent = t(TITLES[mode]);
  $("#auth-submit").textContent = t(SUBMITS[mode]);
  $("#auth-password").autocomplete = mode === "login" ? "current-password" : "new-password";
  $("#auth-password-help").hidden = mode === "login";
  $("#auth-invite-field").hidden = !(signup && setup.signup_policy === "invite");
  $("#auth-setup-field").hidden = mode !== "setup";
  $("#setup-offer").hidden = !setup.needed || mode === "setup";
  $("#setup-back").hidden = mode !== "setup";
  $("#auth-closed").hidden = !(closed && mode === "login");
  // The other way in, as plain to see as the way this mode offers.
  const other = switchButton();
  other.hidden = mode === "setup" || closed;
  other.dataset.to = signup ? "login" : "signup";
  other.textContent = t(signup ? "auth.haveAccount" : "auth.createAccount");
  showError(null);
}

function switchButton() {
  let button = $("#auth-switch");
  if (!button) {
    button = h("button", {
      type: "button",
      class: "btn btn-secondary btn-block",
      id: "auth-switch",
      onclick: () => {
        setMode(button.dataset.to);
        $("#auth-username").focus();
      },
    });
    $("#auth-submit").after(button);
  }
  return button;
}

/** Before logging in: what was made without an account is not saved, and how long it stays. */
function renderUnsavedNote() {
  let note = $("#auth-unsaved");
  if (!note) {
    note = h("p", { class: "auth-unsaved", id: "auth-unsaved", role: "note" });
    $("#auth-tabs").before(note);
  }
  const count = state.user ? 0 : unsavedTurns();
  note.hidden = !count;
  note.textContent = count ? t(count === 1 ? "auth.unsavedOne" : "auth.unsaved", { n: count }) : "";
}

/** Whether the first admin is still to be made, and who may sign up. */
export async function loadSetup() {
  try {
    const answer = await api.get("/auth/setup");
    setup = {
      needed: Boolean(answer?.needed),
      signup_policy: ["open", "invite", "closed"].includes(answer?.signup_policy) ? answer.signup_policy : "open",
    };
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    setup = { needed: false, signup_policy: "open" };
  }
  if (mode === "signup" && setup.signup_policy === "closed") mode = "login";
  setMode(mode);
  return setup;
}

function showError(message) {
  const box = $("#auth-error");
  box.textContent = message || "";
  box.hidden = !message;
}

export function openAuth(initial = "login") {
  setMode(initial);
  renderUnsavedNote();
  const dialog = $("#auth-dialog");
  if (!dialog.open) dialog.showModal();
  (mode === "setup" ? $("#auth-setup-code") : $("#auth-username")).focus();
}

/** Adopt a session answer from /me, /auth/login or /auth/signup. */
export function adoptSession(session) {
  setCsrfToken(session?.csrf_token);
  state.user = session?.authenticated ? session.user : null;
  renderAccount();
  emit("user", state.user);
}

function renderAccount() {
  const user = state.user;
  $("#login-btn").hidden = Boolean(user);
  $("#account-user").hidden = !user;
  if (user) {
    $("#account-name").textContent = user.username;
    $("#avatar").textContent = [...user.username][0]?.toUpperCase() || "?";
    $("#account-user").title = t("auth.signedInAs", { name: user.username });
  }
}

async function submit(event) {
  event.preventDefault();
  const username = $("#auth-username").value.trim();
  const password = $("#auth-password").value;
  if (!username || !password) {
    showError(t("auth.required"));
    return;
  }
  const body = { username, password };
  if (mode === "setup") {
    body.setup_code = $("#auth-setup-code").value.trim();
    if (!body.setup_code) {
      showError(t("auth.setupHelp"));
      $("#auth-setup-code").focus();
      return;
    }
  }
  const invite = $("#auth-invite").value.trim();
  if (mode === "signup" && setup.signup_policy === "invite" && invite) body.invite_code = invite;
  const button = $("#auth-submit");
  button.disabled = true;
  showError(null);
  const settingUp = mode === "setup";
  try {
    let session = await api.post(`/auth/${mode}`, { json: body });
    if (settingUp && !session?.authenticated) {
      session = await api.post("/auth/login", { json: { username, password } });
    }
    $("#auth-password").value = "";
    $("#auth-setup-code").value = "";
    $("#auth-invite").value = "";
    $("#auth-dialog").close();
    if (settingUp) {
      setup = { ...setup, needed: false };
      setMode("login");
    }
    state.signingIn = true;
    adoptSession(session);
    toast(t(settingUp ? "auth.setupDone" : "auth.welcome", { name: session.user.username }),
      { kind: "success", timeout: 2500 });
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    let message = error.message;
    if (error.status === 429 && error.retryAfter) message += ` ${t("auth.retryIn", { s: error.retryAfter })}`;
    showError(message);
    if (settingUp && error.status === 404) {
      // Someone else made the first admin meanwhile.
      await loadSetup();
    }
    if (error.code === "invalid_credentials") {
      // The name is most likely right: keep it, and ask for the password again.
      $("#auth-password").value = "";
    }
    const field = error.code === "invalid_password" || error.code === "invalid_credentials" ? "#auth-password"
      : mode === "setup" && /setup/.test(error.code) ? "#auth-setup-code"
        : mode === "signup" && /invite/.test(error.code) ? "#auth-invite" : "#auth-username";
    if ($(field).closest("[hidden]")) $("#auth-username").focus();
    else $(field).focus();
  } finally {
    button.disabled = false;
  }
}

export async function logout() {
  try {
    await api.post("/auth/logout");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
  }
  adoptSession({ authenticated: false });
  toast(t("auth.loggedOut"), { timeout: 2000 });
}

export function initAuth() {
  $("#auth-form").addEventListener("submit", submit);
  $("#tab-login").addEventListener("click", () => setMode("login"));
  $("#tab-signup").addEventListener("click", () => setMode("signup"));
  $("#setup-start").addEventListener("click", () => {
    setMode("setup");
    $("#auth-setup-code").focus();
  });
  $("#setup-back").addEventListener("click", () => {
    setMode("login");
    $("#auth-username").focus();
  });
  for (const tab of [$("#tab-login"), $("#tab-signup")]) {
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const other = tab.id === "tab-login" ? $("#tab-signup") : $("#tab-login");
      other.click();
      other.focus();
    });
  }
  $("#login-btn").addEventListener("click", () => openAuth("login"));
  for (const button of document.querySelectorAll("[data-action='login']")) {
    button.addEventListener("click", () => openAuth("login"));
  }
  $("#logout-btn").addEventListener("click", logout);
  on("lang", () => {
    setMode(mode);
    renderAccount();
    if ($("#auth-dialog").open) renderUnsavedNote();
  });
}

export function sessionExpired() {
  if (!state.user) return;
  adoptSession({ authenticated: false });
  toast(t("auth.expired"), { kind: "error" });
}
