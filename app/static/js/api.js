// The HTTP client: JSON in and out, the CSRF header on writes, the UI's
// language in Accept-Language (the server translates its messages), and one
// error type carrying the server's code, message and Retry-After.

import { lang, t } from "./i18n.js";

let csrfToken = null;
let onSessionLost = () => {};

export function setCsrfToken(token) {
  csrfToken = token || null;
}

/** Called when a request that needed the session answers 401. */
export function handleSessionLost(callback) {
  onSessionLost = callback;
}

export class ApiError extends Error {
  constructor({ status, code, message, retryAfter = null, errors = null, body = null }) {
    super(message);
    this.body = body;
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.errors = errors;
  }
}

function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

async function send(method, url, { json, form, signal, headers: extra } = {}) {
  const headers = { Accept: "application/json", "Accept-Language": lang(), ...extra };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(url, { method, headers, body, signal, credentials: "same-origin" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError({ status: 0, code: "network_error", message: t("error.network") });
  }
  if (response.status === 204) return null;
  let data = null;
  if ((response.headers.get("Content-Type") || "").includes("json")) {
    try {
      data = await response.json();
    } catch (error) {
      if (error.name === "AbortError") throw error;
      data = null;
    }
  }
  if (!response.ok) {
    throw new ApiError({
      status: response.status,
      code: data?.error || `http_${response.status}`,
      message: data?.message || data?.detail || t("error.http", { status: response.status }),
      retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
      errors: data?.errors || null,
      body: data,
    });
  }
  return data;
}

export async function request(method, url, options = {}) {
  try {
    return await send(method, url, options);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // The session rotated (another tab logged in again): fetch the new
    // token once and repeat the write.
    if (error.code === "csrf_failed" && !options.retried) {
      const me = await send("GET", "/me").catch(() => null);
      if (me?.authenticated && me.csrf_token) {
        setCsrfToken(me.csrf_token);
        return request(method, url, { ...options, retried: true });
      }
    }
    if (error.status === 401 && error.code === "unauthorized") onSessionLost();
    throw error;
  }
}

export const api = {
  get: (url, options) => request("GET", url, options),
  post: (url, options) => request("POST", url, options),
  patch: (url, options) => request("PATCH", url, options),
  delete: (url, options) => request("DELETE", url, options),
};
