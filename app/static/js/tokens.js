// Personal API tokens in the settings panel: create (secret shown once),
// list, revoke. Loaded when someone logs in (main.js).

import { api, ApiError } from "./api.js";
import { $, h, iconButton } from "./dom.js";
import { relativeTime, t } from "./i18n.js";
import { on, state } from "./state.js";
import { confirmDialog, toast } from "./ui.js";

let items = [];

function render() {
  const list = $("#token-list");
  if (!items.length) {
    list.replaceChildren(h("li", { class: "muted small", text: t("tokens.none") }));
    return;
  }
  list.replaceChildren(...items.map((token) => h("li", { class: "token-item" },
    h("div", { class: "token-info" },
      h("span", { class: "token-name", text: token.name }),
      h("span", { class: "token-meta" },
        h("code", { text: `${token.prefix}…` }),
        " · ",
        token.last_used_at ? t("tokens.lastUsed", { when: relativeTime(token.last_used_at) })
          : t("tokens.neverUsed"))),
    iconButton("trash", `${t("tokens.revoke")}: ${token.name}`, () => revoke(token), "icon-btn icon-btn-sm danger"))));
}

async function load() {
  try {
    const data = await api.get("/auth/tokens");
    items = data.items || [];
  } catch {
    items = [];
  }
  render();
}

async function revoke(token) {
  const ok = await confirmDialog({
    title: t("tokens.revokeTitle"),
    text: t("tokens.revokeText", { name: token.name }),
    ok: t("tokens.revoke"),
  });
  if (!ok) return;
  try {
    await api.delete(`/auth/tokens/${token.id}`);
    items = items.filter((item) => item.id !== token.id);
    render();
  } catch (error) {
    if (error instanceof ApiError) toast(error.message, { kind: "error" });
  }
}

export function initTokens() {
  $("#token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("#token-name");
    const name = input.value.trim();
    if (!name) {
      toast(t("tokens.nameRequired"), { kind: "error" });
      input.focus();
      return;
    }
    try {
      const created = await api.post("/auth/tokens", { json: { name } });
      input.value = "";
      $("#token-secret-value").value = created.token;
      $("#token-secret").hidden = false;
      $("#token-secret-value").select();
      items = [created, ...items];
      render();
    } catch (error) {
      if (error instanceof ApiError) toast(error.message, { kind: "error" });
    }
  });
  $("#token-copy").addEventListener("click", async () => {
    const value = $("#token-secret-value").value;
    try {
      await navigator.clipboard.writeText(value);
      toast(t("common.copied"), { kind: "success", timeout: 1500 });
    } catch {
      $("#token-secret-value").select();
    }
  });
  const onUser = () => {
    $("#tokens").hidden = !state.user;
    $("#token-secret").hidden = true;
    $("#token-secret-value").value = "";
    items = [];
    if (state.user) load();
  };
  on("user", onUser);
  on("lang", render);
  onUser(); // loaded after the login that needs it (main.js)
}
