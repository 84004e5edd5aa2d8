"""Domain errors. Services raise these; app/web/errors.py turns them into the
one JSON error shape. Nothing here knows about Flask or HTTP requests.

Each error carries a stable ``code`` (what clients branch on), the HTTP
``status`` it maps to, and its message in English and Chinese. ``hint`` is the
fix, when there is one.
"""

from __future__ import annotations


class AppError(Exception):
    code = "error"
    status = 400
    message_en = "Request failed."
    message_zh = "请求失败。"

    def __init__(
        self,
        message_en: str | None = None,
        message_zh: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        extra: dict | None = None,
    ) -> None:
        if code:
            self.code = code
        if status:
            self.status = status
        if message_en:
            self.message_en = message_en
        if message_zh:
            self.message_zh = message_zh
        elif message_en:
            # A specific English text beats a generic Chinese one; callers pass
            # both whenever they can.
            self.message_zh = message_en
        self.retry_after = retry_after
        self.extra = extra or {}
        super().__init__(self.message_en)

    def message(self, lang: str) -> str:
        return self.message_zh if lang == "zh" else self.message_en


class NotFound(AppError):
    code = "not_found"
    status = 404
    message_en = "Not found."
    message_zh = "未找到。"


class Conflict(AppError):
    code = "conflict"
    status = 409
    message_en = "Conflict."
    message_zh = "冲突。"


class Unauthorized(AppError):
    code = "unauthorized"
    status = 401
    message_en = "Please log in."
    message_zh = "请先登录。"


class InvalidInput(AppError):
    code = "invalid_input"
    status = 400
    message_en = "Invalid input."
    message_zh = "输入无效。"


class Busy(AppError):
    code = "busy"
    status = 503
    message_en = "The server is busy generating other images. Try again shortly."
    message_zh = "服务器正忙于生成其他图片，请稍后重试。"


class UpstreamError(AppError):
    """A fault of the upstream model (or of reaching it).

    ``retryable`` says whether the same call may succeed if tried again;
    ``retry_after`` (seconds) is the upstream's own RetryInfo when it gave one.
    """

    code = "upstream_error"
    status = 502
    message_en = "The image model returned an error."
    message_zh = "图像模型返回错误。"

    def __init__(self, *args, retryable: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.retryable = retryable


class InvalidImage(AppError):
    code = "invalid_image"
    status = 400
    message_en = "The file is not a readable image (corrupt or truncated)."
    message_zh = "文件不是可读取的图片（已损坏或不完整）。"


class UnsupportedImage(AppError):
    code = "unsupported_image"
    status = 415
    message_en = "Unsupported image format. Use PNG, JPEG, WEBP or GIF."
    message_zh = "不支持的图片格式，请使用 PNG、JPEG、WEBP 或 GIF。"


class ImageTooLarge(AppError):
    code = "image_too_large"
    status = 413
    message_en = "The image is too large."
    message_zh = "图片过大。"
