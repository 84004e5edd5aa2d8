// Change the password from the settings panel. The server ends every other
// session and starts a new one here, with a new CSRF token. Loaded when
// someone logs in (main.js).

import { api, ApiError } from "./api.js";
import { adoptSession } from "./auth.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { on, state } from "./state.js";
import { toast } from "./ui.js";

export function initPassword() {
  const form = $("#password-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const current = $("#password-current");
    const next = $("#password-new");
    if (next.value.length < 8 || next.value.length > 128) {
      toast(t("password.tooShort"), { kind: "error" });
      next.focus();
      return;
    }
    try {
      const session = await api.post("/auth/password", {
        json: { current_password: current.value, new_password: next.value },
      });
      form.reset();
      adoptSession(session);
      toast(t("password.changed"), { kind: "success" });
    } catch (error) {
      if (error instanceof ApiError) toast(error.message, { kind: "error" });
    }
  });
  const onUser = () => {
    $("#password-section").hidden = !state.user;
    form.reset();
  };
  on("user", onUser);
  onUser(); // loaded after the login that needs it (main.js)
}
