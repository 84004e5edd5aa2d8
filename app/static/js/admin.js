// The admin panel, for admins only (the server refuses everyone else with
// 403): users with their usage and quota, and what can be done to each one;
// invites (the code is shown once); install-wide usage with a CSV export.
// Loaded on the first click on "Admin" (main.js), which then hands over.

import { api, ApiError } from "./api.js";
import { $, h } from "./dom.js";
import { relativeTime, t } from "./i18n.js";
import { emit, on, state } from "./state.js";
import { confirmDialog, closeDrawersIfNarrow, toast } from "./ui.js";
import {
  budgetExhausted, dayCharts, dayLabel, figuresTable, integer, isoDay, refreshUsage, totalText, usd,
} from "./usage.js";

const TABS = ["users", "invites", "usage"];
const QUOTAS = [
  // field name in PATCH, key in the row's quota object, input id, integer?
  ["quota_daily_images", "daily_images", "user-quota-daily", true],
  ["quota_monthly_images", "monthly_images", "user-quota-monthly", true],
  ["quota_monthly_usd", "monthly_usd", "user-quota-usd", false],
];

let tab = "users";
let users = [];
let invites = [];
let managing = null; // the id of the user in the user dialog
let usageRows = null;
let usageTotal = null;

const rows = (data) => data?.items || [];

function dateText(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return new Intl.DateTimeFormat(document.documentElement.lang, { dateStyle: "medium" }).format(date);
}

function complain(error, box = null) {
  if (!(error instanceof ApiError)) throw error;
  if (box) {
    box.textContent = error.message;
    box.hidden = false;
  } else {
    toast(error.message, { kind: "error" });
  }
}

// ---- tabs ------------------------------------------------------------------------------------

function selectTab(name, { focus = false } = {}) {
  tab = name;
  for (const other of TABS) {
    const button = $(`#admin-tab-${other}`);
    const selected = other === name;
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`#admin-panel-${other}`).hidden = !selected;
  }
  if (focus) $(`#admin-tab-${name}`).focus();
  if (name === "users") loadUsers();
  else if (name === "invites") loadInvites();
  else loadUsage();
}

export function openAdmin() {
  if (!state.user?.is_admin) return;
  closeDrawersIfNarrow();
  const dialog = $("#admin-dialog");
  if (!dialog.open) dialog.showModal();
  renderBudget();
  selectTab(tab);
  $(`#admin-tab-${tab}`).focus();
}

function renderBudget() {
  $("#admin-budget").hidden = !budgetExhausted();
}

// ---- users --------------------------------------------------------------------------------

/** {override, default, effective} of one limit; null is unlimited (or no override). */
function quotaOf(user, key) {
  const { override = null, effective = null, default: fallback = null } = user.quota?.[key] || {};
  return { override, effective, fallback };
}

function limitText(value, format) {
  return value === null || value === undefined ? "∞" : format(value);
}

function quotaCell(user) {
  return QUOTAS.map(([, key, , whole], index) => {
    const quota = quotaOf(user, key);
    const text = limitText(quota.effective, whole ? integer : usd);
    return h("span", { class: quota.override !== null ? "quota-value is-override" : "quota-value" },
      index ? " / " : "", text);
  });
}

function userRow(user) {
  const me = user.id === state.user?.id;
  const cell = (labelKey, ...content) => h("td", { "data-label": t(labelKey) }, ...content);
  return h("tr", { dataset: { userId: user.id }, class: user.disabled ? "is-disabled" : "" },
    h("th", { scope: "row", "data-label": t("admin.colUser") },
      h("span", { class: "user-name", text: user.username }),
      me ? h("span", { class: "muted", text: ` (${t("admin.you")})` }) : null,
      user.disabled ? h("span", { class: "badge badge-off", text: t("admin.disabled") }) : null),
    cell("admin.colRole", h("span", {
      class: user.is_admin ? "badge badge-admin" : "badge",
      text: t(user.is_admin ? "admin.roleAdmin" : "admin.roleUser"),
    })),
    cell("admin.colCreated", dateText(user.created_at)),
    cell("admin.colSeen", user.last_seen_at ? relativeTime(user.last_seen_at) : t("admin.never")),
    cell("admin.colToday", integer(user.images_today)),
    cell("admin.colMonth", integer(user.images_month)),
    cell("admin.colCost", usd(user.cost_month_usd)),
    cell("admin.colQuota", h("span", { class: "quota-cell" }, ...quotaCell(user))),
    h("td", { class: "row-actions" }, h("button", {
      type: "button",
      class: "btn btn-secondary btn-sm",
      "aria-label": t("admin.manageUser", { name: user.username }),
      onclick: () => openUser(user.id),
      text: t("admin.manage"),
    })));
}

function renderUsers() {
  const body = $("#admin-users-body");
  if (!users.length) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 9, class: "muted", text: t("admin.noUsers") })));
    return;
  }
  body.replaceChildren(...users.map(userRow));
}

async function loadUsers() {
  $("#admin-users-error").hidden = true;
  try {
    users = rows(await api.get("/admin/users"));
  } catch (error) {
    users = [];
    complain(error, $("#admin-users-error"));
  }
  renderUsers();
  if (managing !== null && $("#user-dialog").open) renderUser();
}

// ---- one user ---------------------------------------------------------------------------------

function managed() {
  return users.find((user) => user.id === managing) || null;
}

function openUser(id) {
  managing = id;
  renderUser();
  const dialog = $("#user-dialog");
  if (!dialog.open) dialog.showModal();
  $("#user-quota-daily").focus();
}

function renderUser() {
  const user = managed();
  if (!user) {
    if ($("#user-dialog").open) $("#user-dialog").close();
    return;
  }
  $("#user-title").textContent = t("admin.manageUser", { name: user.username });
  for (const [, key, id, whole] of QUOTAS) {
    const quota = quotaOf(user, key);
    const input = $(`#${id}`);
    input.value = quota.override ?? "";
    input.setAttribute("aria-invalid", "false");
    input.placeholder = t("admin.defaultIs", { value: limitText(quota.fallback, whole ? integer : usd) });
  }
  $("#user-role").textContent = t(user.is_admin ? "admin.demote" : "admin.promote");
  $("#user-access").textContent = t(user.disabled ? "admin.enable" : "admin.disable");
  $("#user-access").classList.toggle("btn-danger", !user.disabled);
  $("#user-access").classList.toggle("btn-secondary", Boolean(user.disabled));
  $("#user-error").hidden = true;
}

function quotaValues() {
  const body = {};
  for (const [field, , id, whole] of QUOTAS) {
    const input = $(`#${id}`);
    const raw = input.value.trim();
    if (raw === "") {
      body[field] = null;
      continue;
    }
    const number = Number(raw);
    if (!Number.isFinite(number) || number < 0 || (whole && !Number.isInteger(number))) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
      const label = $(`label[for="${id}"]`).textContent;
      throw new Error(whole ? t("settings.integer", { field: label }) : t("settings.invalidMin", { field: label, min: 0 }));
    }
    body[field] = number;
  }
  return body;
}

async function patchUser(body, doneKey) {
  const user = managed();
  if (!user) return;
  $("#user-error").hidden = true;
  try {
    await api.patch(`/admin/users/${user.id}`, { json: body });
    toast(t(doneKey, { name: user.username }), { kind: "success", timeout: 2500 });
    if (user.id === state.user?.id && "is_admin" in body) {
      state.user = { ...state.user, is_admin: body.is_admin };
      renderAccess();
    }
    emit("quota-changed");
    await loadUsers();
  } catch (error) {
    complain(error, $("#user-error"));
  }
}

async function setPassword(event) {
  event.preventDefault();
  const user = managed();
  const input = $("#user-password");
  if (!user) return;
  if (input.value.length < 8 || input.value.length > 128) {
    $("#user-error").textContent = t("password.tooShort");
    $("#user-error").hidden = false;
    input.focus();
    return;
  }
  try {
    await api.post(`/admin/users/${user.id}/password`, { json: { password: input.value } });
    input.value = "";
    toast(t("admin.passwordSet", { name: user.username }), { kind: "success", timeout: 2500 });
  } catch (error) {
    complain(error, $("#user-error"));
  }
}

async function deleteUser() {
  const user = managed();
  if (!user) return;
  const ok = await confirmDialog({
    title: t("admin.deleteTitle", { name: user.username }),
    text: t("admin.deleteText", { name: user.username }),
    ok: t("common.delete"),
  });
  if (!ok) return;
  try {
    await api.delete(`/admin/users/${user.id}`);
    toast(t("admin.deleted", { name: user.username }), { kind: "success", timeout: 2500 });
    $("#user-dialog").close();
    managing = null;
    await loadUsers();
  } catch (error) {
    complain(error, $("#user-error"));
  }
}

// ---- invites ---------------------------------------------------------------------------------

const inviteState = (invite) => invite.state || "active";
const STATES = { revoked: "admin.inviteRevoked", expired: "admin.inviteExpired", used: "admin.inviteUsedUp" };

function inviteStatus(invite) {
  const current = inviteState(invite);
  if (current !== "active") return t(STATES[current]);
  const uses = t("admin.inviteLeft", { left: integer(invite.uses_left), total: integer(invite.uses_total) });
  const expiry = invite.expires_at ? t("admin.inviteExpires", { when: dateText(invite.expires_at) })
    : t("admin.inviteNoExpiry");
  return `${uses} · ${expiry}`;
}

function renderInvites() {
  const list = $("#invite-list");
  if (!invites.length) {
    list.replaceChildren(h("li", { class: "muted small", text: t("admin.inviteNone") }));
    return;
  }
  list.replaceChildren(...invites.map((invite) => {
    const name = invite.prefix ? `${invite.prefix}…` : `#${invite.id}`;
    const live = inviteState(invite) === "active";
    return h("li", { class: live ? "token-item invite-item" : "token-item invite-item is-dead", dataset: { state: inviteState(invite) } },
      h("div", { class: "token-info" },
        h("span", { class: "token-name" }, h("code", { text: name })),
        h("span", { class: "token-meta", text: `${inviteStatus(invite)} · ${t("admin.inviteCreated", { when: relativeTime(invite.created_at) })}` })),
      live ? h("button", {
        type: "button",
        class: "btn btn-ghost btn-sm danger-text",
        "aria-label": `${t("admin.inviteRevoke")}: ${t("admin.inviteLabel", { name })}`,
        onclick: () => revokeInvite(invite),
        text: t("admin.inviteRevoke"),
      }) : null);
  }));
}

async function loadInvites() {
  $("#admin-invites-error").hidden = true;
  try {
    invites = rows(await api.get("/admin/invites"));
  } catch (error) {
    invites = [];
    complain(error, $("#admin-invites-error"));
  }
  renderInvites();
}

async function createInvite(event) {
  event.preventDefault();
  const body = {};
  for (const [name, id] of [["uses", "invite-uses"], ["expires_in_days", "invite-days"]]) {
    const raw = $(`#${id}`).value.trim();
    if (raw === "") continue;
    const number = Number(raw);
    if (!Number.isInteger(number) || number < 1) {
      const label = $(`label[for="${id}"]`).textContent;
      toast(t("settings.invalidMin", { field: label, min: 1 }), { kind: "error" });
      $(`#${id}`).focus();
      return;
    }
    body[name] = number;
  }
  try {
    const created = await api.post("/admin/invites", { json: body });
    $("#invite-form").reset();
    $("#invite-secret-value").value = created.code;
    $("#invite-secret").hidden = false;
    $("#invite-secret-value").select();
    await loadInvites();
  } catch (error) {
    complain(error);
  }
}

async function revokeInvite(invite) {
  const ok = await confirmDialog({
    title: t("admin.inviteRevokeTitle"),
    text: t("admin.inviteRevokeText"),
    ok: t("admin.inviteRevoke"),
  });
  if (!ok) return;
  try {
    await api.delete(`/admin/invites/${invite.id}`);
    toast(t("admin.inviteRevokedDone"), { kind: "success", timeout: 2000 });
    await loadInvites();
  } catch (error) {
    complain(error);
  }
}

// ---- install-wide usage --------------------------------------------------------------------------

function usageQuery(format = null) {
  const params = new URLSearchParams();
  if ($("#admin-from").value) params.set("from", $("#admin-from").value);
  if ($("#admin-to").value) params.set("to", $("#admin-to").value);
  params.set("group_by", $("#admin-group").value);
  if (format) params.set("format", format);
  return `/admin/usage?${params}`;
}

function renderUsage() {
  const group = $("#admin-group").value;
  const out = $("#admin-usage-out");
  $("#admin-csv").href = usageQuery("csv");
  $("#admin-usage-total").textContent = usageTotal
    ? totalText(usageTotal.images, usageTotal.cost_usd) : "";
  if (!usageRows) {
    out.replaceChildren();
    return;
  }
  if (group === "day") {
    out.replaceChildren(
      dayCharts(usageRows, out.clientWidth || 600),
      figuresTable(usageRows, t("usage.date"), (row) => dayLabel(row.date, { dateStyle: "medium" })));
  } else if (group === "user") {
    out.replaceChildren(figuresTable(usageRows, t("usage.user"), (row) => row.username
      ?? (row.account === "anonymous" ? t("admin.anonymous")
        : row.account === "deleted" ? t("admin.deletedUser") : `#${row.user_id ?? "?"}`)));
  } else {
    out.replaceChildren(figuresTable(usageRows, t("usage.model"), (row) => row.model));
  }
}

async function loadUsage() {
  $("#admin-usage-error").hidden = true;
  renderUsage();
  try {
    const data = await api.get(usageQuery());
    usageRows = rows(data);
    usageTotal = data?.total || null;
  } catch (error) {
    usageRows = null;
    usageTotal = null;
    complain(error, $("#admin-usage-error"));
  }
  renderUsage();
}

// ---- wiring -----------------------------------------------------------------------------------------

function renderAccess() {
  $("#open-admin").hidden = !state.user?.is_admin;
  if (!state.user?.is_admin) {
    for (const id of ["#user-dialog", "#admin-dialog"]) if ($(id).open) $(id).close();
  }
}

export function initAdmin() {
  $("#open-admin").addEventListener("click", openAdmin);
  for (const name of TABS) {
    const button = $(`#admin-tab-${name}`);
    button.addEventListener("click", () => selectTab(name));
    button.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      const next = TABS[(TABS.indexOf(name) + step + TABS.length) % TABS.length];
      selectTab(next, { focus: true });
    });
  }
  $("#user-quota-form").addEventListener("submit", (event) => {
    event.preventDefault();
    let body;
    try {
      body = quotaValues();
    } catch (error) {
      $("#user-error").textContent = error.message;
      $("#user-error").hidden = false;
      return;
    }
    patchUser(body, "admin.quotaSaved");
  });
  $("#user-role").addEventListener("click", () => {
    const user = managed();
    if (user) patchUser({ is_admin: !user.is_admin }, user.is_admin ? "admin.demoted" : "admin.promoted");
  });
  $("#user-access").addEventListener("click", () => {
    const user = managed();
    if (user) patchUser({ disabled: !user.disabled }, user.disabled ? "admin.enabledDone" : "admin.disabledDone");
  });
  $("#user-password-form").addEventListener("submit", setPassword);
  $("#user-delete").addEventListener("click", deleteUser);
  $("#user-dialog").addEventListener("close", () => {
    managing = null;
    $("#user-password").value = "";
  });

  $("#invite-form").addEventListener("submit", createInvite);
  $("#invite-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("#invite-secret-value").value);
      toast(t("common.copied"), { kind: "success", timeout: 1500 });
    } catch {
      $("#invite-secret-value").select();
    }
  });
  $("#admin-dialog").addEventListener("close", () => {
    $("#invite-secret").hidden = true;
    $("#invite-secret-value").value = "";
    refreshUsage();
  });

  const today = new Date();
  $("#admin-from").value = isoDay(new Date(today.getFullYear(), today.getMonth(), 1));
  $("#admin-to").value = isoDay(today);
  for (const id of ["#admin-from", "#admin-to", "#admin-group"]) {
    $(id).addEventListener("change", loadUsage);
  }

  on("user", () => {
    users = [];
    invites = [];
    usageRows = null;
    renderAccess();
  });
  on("lang", () => {
    if (!$("#admin-dialog").open) return;
    renderBudget();
    renderUsers();
    renderInvites();
    renderUsage();
    if ($("#user-dialog").open) renderUser();
  });
}
