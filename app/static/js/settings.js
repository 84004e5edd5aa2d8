// The settings panel: model, aspect ratio and size (only what the model
// supports), number of images, sampling parameters, seed. Saved between
// visits; empty fields mean "the server's default" and are not sent.

import { logout } from "./auth.js";
import { $, h } from "./dom.js";
import { t } from "./i18n.js";
import { prefs } from "./prefs.js";
import { state } from "./state.js";
import { confirmDialog, toast } from "./ui.js";

const DEFAULTS = {
  model: "",
  aspect_ratio: "",
  image_size: "",
  candidate_count: 1,
  temperature: "",
  top_p: "",
  top_k: "",
  seed: "",
  max_output_tokens: "",
};

// name → [element id, label key, min, max, integer]
const NUMBERS = {
  temperature: ["set-temperature", "settings.temperature", 0, 2, false],
  top_p: ["set-top-p", "settings.topP", 0, 1, false],
  top_k: ["set-top-k", "settings.topK", 1, null, true],
  max_output_tokens: ["set-max-tokens", "settings.maxTokens", 1, null, true],
  seed: ["set-seed", "settings.seed", 0, 2147483647, true],
};

let values = { ...DEFAULTS, ...(prefs.get("settings") || {}) };

function save() {
  prefs.set("settings", values);
}

export function currentModel() {
  const id = values.model || state.defaultModel;
  return state.models.find((m) => m.id === id) || state.models.find((m) => m.default) || null;
}

function option(value, label, selected) {
  return h("option", { value, selected: value === selected }, label);
}

function renderModelOptions() {
  const select = $("#set-model");
  if (!state.models.length) {
    select.replaceChildren(option("", t("settings.default"), ""));
    select.disabled = true;
    select.title = t("settings.noModels");
    return;
  }
  select.disabled = false;
  select.title = "";
  const model = currentModel();
  select.replaceChildren(...state.models.map((m) =>
    option(m.id, m.label || m.id, model?.id)));
}

function renderModelLimits() {
  const model = currentModel();
  // Offline, the picker's names stand for the local engine: the hint says so.
  const id = model && state.provider === "offline"
    ? t("settings.offlineModel", { name: model.id }) : model?.id;
  $("#set-model-hint").textContent = model
    ? t("settings.modelHint", { id, n: model.max_input_images ?? "?" }) : "";
  const aspects = model?.aspect_ratios || [];
  const sizes = model?.image_sizes || [];
  // Until the catalog has arrived, keep the saved choices as they are.
  if (model && values.aspect_ratio && !aspects.includes(values.aspect_ratio)) values.aspect_ratio = "";
  if (model && values.image_size && !sizes.includes(values.image_size)) values.image_size = "";
  const aspect = $("#set-aspect");
  aspect.replaceChildren(option("", t("settings.auto"), values.aspect_ratio),
    ...aspects.map((a) => option(a, a, values.aspect_ratio)));
  aspect.disabled = !aspects.length;
  const size = $("#set-size");
  size.replaceChildren(option("", t("settings.default"), values.image_size),
    ...sizes.map((s) => option(s, s, values.image_size)));
  size.disabled = !sizes.length;
  size.closest(".field").classList.toggle("is-disabled", !sizes.length);
  aspect.closest(".field").classList.toggle("is-disabled", !aspects.length);
}

function renderCount() {
  const group = $("#set-count");
  group.replaceChildren();
  for (let n = 1; n <= 6; n += 1) {
    const id = `set-count-${n}`;
    const input = h("input", {
      type: "radio", name: "candidate_count", id, value: String(n),
      checked: Number(values.candidate_count) === n,
    });
    group.append(input, h("label", { for: id, text: String(n) }));
  }
}

function renderNumbers() {
  for (const [name, [id]] of Object.entries(NUMBERS)) $(`#${id}`).value = values[name] ?? "";
}

export function renderSettings() {
  renderModelOptions();
  renderModelLimits();
  renderCount();
  renderNumbers();
}

function validate(name, raw) {
  const [, labelKey, min, max, integer] = NUMBERS[name];
  if (raw === "" || raw === null || raw === undefined) return null;
  const field = t(labelKey);
  const number = Number(raw);
  if (!Number.isFinite(number)) {
    throw new Error(max === null ? t("settings.invalidMin", { field, min }) : t("settings.invalid", { field, min, max }));
  }
  if (integer && !Number.isInteger(number)) throw new Error(t("settings.integer", { field }));
  if (number < min || (max !== null && number > max)) {
    throw new Error(max === null ? t("settings.invalidMin", { field, min }) : t("settings.invalid", { field, min, max }));
  }
  return number;
}

/** The request's optional fields; throws with a translated message when one is invalid. */
export function requestParams() {
  const params = {};
  const model = currentModel();
  if (model) params.model = model.id;
  if (values.aspect_ratio) params.aspect_ratio = values.aspect_ratio;
  if (values.image_size) params.image_size = values.image_size;
  const count = Number(values.candidate_count) || 1;
  if (count !== 1) params.candidate_count = Math.min(6, Math.max(1, count));
  for (const name of Object.keys(NUMBERS)) {
    const value = validate(name, values[name]);
    if (value !== null) params[name] = value;
  }
  return params;
}

function showError(message) {
  const box = $("#settings-error");
  box.textContent = message || "";
  box.hidden = !message;
}

function checkAll() {
  try {
    for (const name of Object.keys(NUMBERS)) validate(name, values[name]);
    showError(null);
  } catch (error) {
    showError(error.message);
  }
}

export function initSettings() {
  const form = $("#settings-form");
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", (event) => {
    const { name, value } = event.target;
    if (name === "model") {
      values.model = value;
      renderModelLimits();
    } else if (name === "aspect_ratio" || name === "image_size") {
      values[name] = value;
    } else if (name === "candidate_count") {
      values.candidate_count = Number(value);
    }
    save();
  });
  form.addEventListener("input", (event) => {
    const { name, value } = event.target;
    if (name in NUMBERS) {
      values[name] = value;
      event.target.setAttribute("aria-invalid", "false");
      try {
        validate(name, value);
      } catch {
        event.target.setAttribute("aria-invalid", "true");
      }
      checkAll();
      save();
    }
  });
  $("#seed-random").addEventListener("click", () => {
    const random = crypto.getRandomValues(new Uint32Array(1))[0] % 2147483647;
    values.seed = String(random);
    $("#set-seed").value = values.seed;
    $("#set-seed").setAttribute("aria-invalid", "false");
    checkAll();
    save();
  });
  $("#settings-reset").addEventListener("click", () => {
    values = { ...DEFAULTS };
    save();
    renderSettings();
    for (const [id] of Object.values(NUMBERS)) $(`#${id}`).setAttribute("aria-invalid", "false");
    showError(null);
    toast(t("settings.resetDone"), { kind: "success", timeout: 2000 });
  });
  renderSettings();
  checkAll();
  confirmLogout();
}

/**
 * Log out sits beside the avatar, where a stray tap lands: it asks first.
 * auth.js wires the button to logout(); this listener runs before that one
 * (capture, on the button itself) and lets it through only when confirmed.
 */
function confirmLogout() {
  const button = $("#logout-btn");
  button.addEventListener("click", async (event) => {
    event.stopImmediatePropagation();
    const confirmed = await confirmDialog({
      title: t("auth.logoutConfirmTitle"),
      text: t("auth.logoutConfirmText"),
      ok: t("auth.logout"),
    });
    if (!confirmed) return;
    await logout();
    // The button is gone with the account; focus goes where logging in again starts.
    if (!$("#login-btn").hidden) $("#login-btn").focus();
  }, { capture: true });
}
