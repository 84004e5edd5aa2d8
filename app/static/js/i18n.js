// Chinese and English for every visible string. The language follows the
// browser until the user picks one; the choice persists.

import { prefs } from "./prefs.js";

const STRINGS = {
  en: {
    skip: "Skip to the prompt",
    "lang.toggle": "切换到中文",
    "lang.other": "中文",
    "theme.toggle": "Switch between light and dark",
    "theme.toLight": "Switch to the light theme",
    "theme.toDark": "Switch to the dark theme",
    "common.close": "Close",
    "common.cancel": "Cancel",
    "common.dismiss": "Dismiss",
    "common.copy": "Copy",
    "common.copied": "Copied",
    "common.delete": "Delete",
    "common.retry": "Retry",

    "provider.offline": "Offline engine",
    "provider.gemini": "Gemini",

    "sidebar.title": "Conversations",
    "sidebar.open": "Show conversations",
    "settings.toggle": "Show or hide settings",

    "conv.new": "New conversation",
    "conv.defaultTitle": "New conversation",
    "conv.filter": "Filter by title",
    "conv.empty": "No conversations yet. Your first prompt starts one.",
    "conv.noMatch": "No conversation matches “{q}”.",
    "conv.rename": "Rename",
    "conv.renameLabel": "New title",
    "conv.delete": "Delete",
    "conv.deleteTitle": "Delete this conversation?",
    "conv.deleteText": "“{title}” and its images will be deleted for good.",
    "conv.deleted": "Conversation deleted",
    "conv.loadFailed": "Could not load conversations.",

    "anon.sidebar": "Log in to keep your conversations and images.",
    "anon.banner":
      "You are not logged in: you can generate and edit, but results are not saved. Log in to keep your history.",
    "anon.bannerShort": "Not logged in: results are not saved.",

    "offline.title": "Offline engine.",
    "offline.short": "No API key: images are drawn locally.",
    "offline.body":
      "No API key is set, so pictures are drawn locally and edits are simple filters. Set GOOGLE_API_KEY in .env and restart to use Gemini.",

    "thread.label": "Conversation",

    "empty.title": "What shall we make?",
    "empty.body":
      "Describe a picture to generate it. Attach one image to edit it, or several to combine them.",
    "suggest.1": "A banana astronaut floating above the Earth, watercolor",
    "suggest.2": "A cozy reading nook in a treehouse at golden hour",
    "suggest.3": "Isometric tiny city on a floating island, pastel colours",
    "suggest.4": "Portrait of a shiba inu wearing sunglasses, studio light",

    "composer.label": "Prompt",
    "composer.placeholder": "Describe an image, or what to change…",
    "composer.attach": "Attach images",
    "composer.send": "Send",
    "composer.hint": "Enter to send · Shift+Enter for a new line",
    "composer.drop": "Drop images to attach them",
    "composer.remove": "Remove {name}",
    "composer.removeEditing": "Stop editing this image",
    "composer.editing": "Editing",
    "composer.empty": "Write a prompt first.",
    "composer.busy": "Please wait for the current request to finish.",
    "composer.notImage": "“{name}” is not an image (PNG, JPEG, WEBP or GIF).",
    "composer.tooBig": "“{name}” is larger than {mb} MB.",
    "composer.tooMany": "{model} accepts at most {n} input images.",
    "mode.generate": "Generate",
    "mode.edit": "Edit",
    "mode.compose": "Compose",
    "mode.generateHint": "Generate a new image",
    "mode.editHint": "Edit 1 image",
    "mode.composeHint": "Combine {n} images",
    "turn.working": "Working…",
    "turn.elapsed": "{s} s",
    "turn.cancel": "Cancel",
    "turn.cancelled": "Cancelled.",
    "turn.retryIn": "Retry in {s} s",
    "turn.noImage": "The model answered without an image.",
    "turn.ready": "Done: {n} images.",
    "turn.readyOne": "Done: 1 image.",
    "turn.duration": "{s} s",
    "turn.tokens": "{n} tokens",
    "turn.notSaved": "Not saved",
    "turn.seed": "seed {n}",

    "image.open": "Open image {n} full size",
    "image.download": "Download",
    "image.copy": "Copy image",
    "image.copied": "Image copied to the clipboard",
    "image.copyFailed": "Copying images needs HTTPS or localhost in this browser.",
    "image.use": "Use as input",
    "image.used": "Added as an input image",
    "image.alt": "Result {n} for: {prompt}",
    "image.inputAlt": "Input image {n}",
    "viewer.label": "Full-size image",

    "settings.title": "Settings",
    "settings.model": "Model",
    "settings.aspect": "Aspect ratio",
    "settings.size": "Image size",
    "settings.count": "Number of images",
    "settings.advanced": "Sampling",
    "settings.temperature": "Temperature",
    "settings.topP": "Top P",
    "settings.topK": "Top K",
    "settings.maxTokens": "Max tokens",
    "settings.modelHint": "{id} · up to {n} input images",
    "settings.seed": "Seed",
    "settings.seedRandom": "Random each time",
    "settings.randomize": "Randomize seed",
    "settings.default": "Default",
    "settings.auto": "Auto",
    "settings.reset": "Reset to defaults",
    "settings.resetDone": "Settings reset to defaults",
    "settings.invalid": "{field} must be between {min} and {max}.",
    "settings.invalidMin": "{field} must be at least {min}.",
    "settings.integer": "{field} must be a whole number.",
    "settings.noModels": "Model list unavailable; the server default is used.",
    "settings.about": "Nano Banana {version} · {provider}",

    "tokens.title": "API tokens",
    "tokens.help":
      "Use a token as “Authorization: Bearer …” from scripts. The secret is shown only once.",
    "tokens.name": "Token name",
    "tokens.create": "Create",
    "tokens.copyNow": "Copy this token now; it will not be shown again.",
    "tokens.secret": "New token",
    "tokens.none": "No tokens yet.",
    "tokens.revoke": "Revoke",
    "tokens.revokeTitle": "Revoke this token?",
    "tokens.revokeText": "Scripts using “{name}” will stop working at once.",
    "tokens.lastUsed": "last used {when}",
    "tokens.neverUsed": "never used",
    "tokens.nameRequired": "Give the token a name.",

    "password.title": "Password",
    "password.help": "Changing it signs out every other browser.",
    "password.current": "Current password",
    "password.new": "New password (8–128 characters)",
    "password.change": "Change password",
    "password.changed": "Password changed. Other sessions are signed out.",
    "password.tooShort": "The new password needs 8 to 128 characters.",

    "auth.login": "Log in",
    "auth.signup": "Sign up",
    "auth.logout": "Log out",
    "auth.loginTitle": "Welcome back",
    "auth.signupTitle": "Create an account",
    "auth.username": "Username",
    "auth.password": "Password",
    "auth.passwordHelp": "8–128 characters. Usernames: 3–32 letters, digits, _ . -",
    "auth.required": "Enter a username and a password.",
    "auth.loggedOut": "Logged out",
    "auth.welcome": "Signed in as {name}",
    "auth.expired": "Your session has ended. Please log in again.",
    "auth.retryIn": "Try again in {s} s.",
    "auth.signedInAs": "Signed in as {name}",

    "error.network": "Cannot reach the server. Check your connection and try again.",
    "error.http": "The server answered with an error ({status}).",
    "error.unknown": "Something went wrong.",

    "time.justNow": "just now",
  },
  zh: {
    skip: "跳到输入框",
    "lang.toggle": "Switch to English",
    "lang.other": "EN",
    "theme.toggle": "切换浅色 / 深色主题",
    "theme.toLight": "切换到浅色主题",
    "theme.toDark": "切换到深色主题",
    "common.close": "关闭",
    "common.cancel": "取消",
    "common.dismiss": "不再显示",
    "common.copy": "复制",
    "common.copied": "已复制",
    "common.delete": "删除",
    "common.retry": "重试",

    "provider.offline": "离线引擎",
    "provider.gemini": "Gemini",

    "sidebar.title": "对话",
    "sidebar.open": "显示对话列表",
    "settings.toggle": "显示或隐藏设置",

    "conv.new": "新建对话",
    "conv.defaultTitle": "新对话",
    "conv.filter": "按标题筛选",
    "conv.empty": "还没有对话。发送第一条提示词即可开始。",
    "conv.noMatch": "没有标题包含“{q}”的对话。",
    "conv.rename": "重命名",
    "conv.renameLabel": "新标题",
    "conv.delete": "删除",
    "conv.deleteTitle": "删除这个对话？",
    "conv.deleteText": "“{title}”及其图片将被永久删除。",
    "conv.deleted": "对话已删除",
    "conv.loadFailed": "无法加载对话列表。",

    "anon.sidebar": "登录后可保存对话和图片。",
    "anon.banner": "你尚未登录：可以生成和编辑图片，但结果不会保存。登录即可保留历史记录。",
    "anon.bannerShort": "未登录：结果不会保存。",

    "offline.title": "离线引擎。",
    "offline.short": "未设置 API 密钥：图片在本地绘制。",
    "offline.body":
      "未设置 API 密钥，图片由本地绘制，编辑只是简单的滤镜。在 .env 中设置 GOOGLE_API_KEY 并重启即可使用 Gemini。",

    "thread.label": "对话内容",

    "empty.title": "想画点什么？",
    "empty.body": "描述一幅画面即可生成；附上一张图片可以编辑它，附上多张可以合成。",
    "suggest.1": "一个漂浮在地球上空的香蕉宇航员，水彩风格",
    "suggest.2": "黄昏时树屋里温馨的阅读角",
    "suggest.3": "漂浮岛屿上的等距微缩城市，马卡龙色调",
    "suggest.4": "戴墨镜的柴犬肖像，影棚灯光",

    "composer.label": "提示词",
    "composer.placeholder": "描述一幅图片，或想要的修改…",
    "composer.attach": "添加图片",
    "composer.send": "发送",
    "composer.hint": "Enter 发送 · Shift+Enter 换行",
    "composer.drop": "松开以添加图片",
    "composer.remove": "移除 {name}",
    "composer.removeEditing": "不再编辑这张图片",
    "composer.editing": "正在编辑",
    "composer.empty": "请先输入提示词。",
    "composer.busy": "请等待当前请求完成。",
    "composer.notImage": "“{name}”不是图片（支持 PNG、JPEG、WEBP、GIF）。",
    "composer.tooBig": "“{name}”超过 {mb} MB。",
    "composer.tooMany": "{model} 最多接受 {n} 张输入图片。",
    "mode.generate": "生成",
    "mode.edit": "编辑",
    "mode.compose": "合成",
    "mode.generateHint": "生成新图片",
    "mode.editHint": "编辑 1 张图片",
    "mode.composeHint": "合成 {n} 张图片",
    "turn.working": "生成中…",
    "turn.elapsed": "{s} 秒",
    "turn.cancel": "取消",
    "turn.cancelled": "已取消。",
    "turn.retryIn": "{s} 秒后可重试",
    "turn.noImage": "模型只返回了文字，没有图片。",
    "turn.ready": "完成：{n} 张图片。",
    "turn.readyOne": "完成：1 张图片。",
    "turn.duration": "{s} 秒",
    "turn.tokens": "{n} tokens",
    "turn.notSaved": "未保存",
    "turn.seed": "种子 {n}",

    "image.open": "查看第 {n} 张大图",
    "image.download": "下载",
    "image.copy": "复制图片",
    "image.copied": "图片已复制到剪贴板",
    "image.copyFailed": "此浏览器仅在 HTTPS 或 localhost 下才能复制图片。",
    "image.use": "用作输入",
    "image.used": "已添加为输入图片",
    "image.alt": "“{prompt}”的第 {n} 张结果",
    "image.inputAlt": "输入图片 {n}",
    "viewer.label": "原尺寸图片",

    "settings.title": "设置",
    "settings.model": "模型",
    "settings.aspect": "宽高比",
    "settings.size": "图片尺寸",
    "settings.count": "图片数量",
    "settings.advanced": "采样参数",
    "settings.temperature": "温度",
    "settings.topP": "Top P",
    "settings.topK": "Top K",
    "settings.maxTokens": "最大 tokens",
    "settings.modelHint": "{id} · 最多 {n} 张输入图片",
    "settings.seed": "随机种子",
    "settings.seedRandom": "每次随机",
    "settings.randomize": "随机生成种子",
    "settings.default": "默认",
    "settings.auto": "自动",
    "settings.reset": "恢复默认设置",
    "settings.resetDone": "已恢复默认设置",
    "settings.invalid": "{field} 必须在 {min} 到 {max} 之间。",
    "settings.invalidMin": "{field} 不能小于 {min}。",
    "settings.integer": "{field} 必须是整数。",
    "settings.noModels": "无法获取模型列表，将使用服务器默认模型。",
    "settings.about": "Nano Banana {version} · {provider}",

    "tokens.title": "API 令牌",
    "tokens.help": "脚本中以 “Authorization: Bearer …” 使用令牌。密钥只显示一次。",
    "tokens.name": "令牌名称",
    "tokens.create": "创建",
    "tokens.copyNow": "请立即复制此令牌，之后将不再显示。",
    "tokens.secret": "新令牌",
    "tokens.none": "还没有令牌。",
    "tokens.revoke": "撤销",
    "tokens.revokeTitle": "撤销这个令牌？",
    "tokens.revokeText": "使用“{name}”的脚本将立即失效。",
    "tokens.lastUsed": "最近使用：{when}",
    "tokens.neverUsed": "从未使用",
    "tokens.nameRequired": "请填写令牌名称。",

    "password.title": "密码",
    "password.help": "修改后，其他浏览器中的登录将全部失效。",
    "password.current": "当前密码",
    "password.new": "新密码（8–128 个字符）",
    "password.change": "修改密码",
    "password.changed": "密码已修改，其他会话已退出登录。",
    "password.tooShort": "新密码长度须为 8–128 个字符。",

    "auth.login": "登录",
    "auth.signup": "注册",
    "auth.logout": "退出登录",
    "auth.loginTitle": "欢迎回来",
    "auth.signupTitle": "创建账号",
    "auth.username": "用户名",
    "auth.password": "密码",
    "auth.passwordHelp": "密码 8–128 个字符。用户名 3–32 个字符：字母、数字、_ . -",
    "auth.required": "请输入用户名和密码。",
    "auth.loggedOut": "已退出登录",
    "auth.welcome": "已登录：{name}",
    "auth.expired": "登录已过期，请重新登录。",
    "auth.retryIn": "请 {s} 秒后再试。",
    "auth.signedInAs": "当前用户：{name}",

    "error.network": "无法连接服务器，请检查网络后重试。",
    "error.http": "服务器返回错误（{status}）。",
    "error.unknown": "出错了。",

    "time.justNow": "刚刚",
  },
};

const listeners = new Set();
let current = detect();

function detect() {
  const saved = prefs.get("lang");
  if (saved === "zh" || saved === "en") return saved;
  const languages = navigator.languages?.length ? navigator.languages : [navigator.language];
  return languages.some((tag) => /^zh\b/i.test(tag || "")) ? "zh" : "en";
}

export function lang() {
  return current;
}

/** BCP 47 tag for Intl formatters. */
export function locale() {
  return current === "zh" ? "zh-CN" : "en";
}

export function t(key, params = {}) {
  let text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  for (const [name, value] of Object.entries(params)) {
    text = text.replaceAll(`{${name}}`, String(value));
  }
  return text;
}

export function setLang(next) {
  current = next === "zh" ? "zh" : "en";
  prefs.set("lang", current);
  applyI18n();
  for (const listener of listeners) listener(current);
}

export function onLangChange(listener) {
  listeners.add(listener);
}

/** Translate the static markup: data-i18n (text), -placeholder, -aria-label, -title. */
export function applyI18n(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) {
    el.title = t(el.dataset.i18nTitle);
  }
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** "5 min ago", "yesterday", or a date for anything older than a week. */
export function relativeTime(iso) {
  const then = new Date(iso);
  const diff = Date.now() - then.getTime();
  if (Number.isNaN(diff)) return "";
  if (diff < MINUTE) return t("time.justNow");
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: "auto", style: "short" });
  if (diff < HOUR) return rtf.format(-Math.floor(diff / MINUTE), "minute");
  if (diff < DAY) return rtf.format(-Math.floor(diff / HOUR), "hour");
  if (diff < 7 * DAY) return rtf.format(-Math.floor(diff / DAY), "day");
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium" }).format(then);
}

export function clockTime(iso) {
  const then = new Date(iso);
  if (Number.isNaN(then.getTime())) return "";
  const sameDay = new Date().toDateString() === then.toDateString();
  const options = sameDay
    ? { timeStyle: "short" }
    : { dateStyle: "medium", timeStyle: "short" };
  return new Intl.DateTimeFormat(locale(), options).format(then);
}
