// Sign up, log in, log out, in a dialog; the signed-in name in the top bar.

import { api, ApiError, setCsrfToken } from "./api.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { emit, on, state } from "./state.js";
import { toast } from "./ui.js";

let mode = "login";

function setMode(next) {
  mode = next;
  const signup = mode === "signup";
  $("#tab-login").setAttribute("aria-selected", String(!signup));
  $("#tab-signup").setAttribute("aria-selected", String(signup));
  $("#auth-title").textContent = t(signup ? "auth.signupTitle" : "auth.loginTitle");
  $("#auth-submit").textContent = t(signup ? "auth.signup" : "auth.login");
  $("#auth-password").autocomplete = signup ? "new-password" : "current-password";
  $("#auth-password-help").hidden = !signup;
  showError(null);
}

function showError(message) {
  const box = $("#auth-error");
  box.textContent = message || "";
  box.hidden = !message;
}

export function openAuth(initial = "login") {
  setMode(initial);
  const dialog = $("#auth-dialog");
  if (!dialog.open) dialog.showModal();
  $("#auth-username").focus();
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
  const button = $("#auth-submit");
  button.disabled = true;
  showError(null);
  try {
    const session = await api.post(`/auth/${mode}`, { json: { username, password } });
    $("#auth-password").value = "";
    $("#auth-dialog").close();
    adoptSession(session);
    toast(t("auth.welcome", { name: session.user.username }), { kind: "success", timeout: 2500 });
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    let message = error.message;
    if (error.status === 429 && error.retryAfter) message += ` ${t("auth.retryIn", { s: error.retryAfter })}`;
    showError(message);
    (error.code === "invalid_password" ? $("#auth-password") : $("#auth-username")).focus();
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
  });
}

export function sessionExpired() {
  if (!state.user) return;
  adoptSession({ authenticated: false });
  toast(t("auth.expired"), { kind: "error" });
}
