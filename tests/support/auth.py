"""Sign up and log in through the API, as a browser would."""

from __future__ import annotations

PASSWORD = "correct-horse-1"


class AuthActions:
    """Sign up / log in through the API and remember the CSRF token."""

    def __init__(self, client):
        self._client = client
        self.csrf_token: str | None = None
        self.user: dict | None = None

    def signup(self, username="alice", password=PASSWORD):
        response = self._client.post(
            "/auth/signup", json={"username": username, "password": password}
        )
        self._remember(response)
        return response

    def login(self, username="alice", password=PASSWORD):
        response = self._client.post(
            "/auth/login", json={"username": username, "password": password}
        )
        self._remember(response)
        return response

    def logout(self):
        return self._client.post("/auth/logout", headers=self.headers())

    def headers(self, **extra) -> dict:
        headers = {"X-CSRF-Token": self.csrf_token} if self.csrf_token else {}
        headers.update(extra)
        return headers

    def _remember(self, response) -> None:
        if response.status_code in (200, 201):
            body = response.get_json()
            self.csrf_token = body["csrf_token"]
            self.user = body["user"]
