"""A minimal client for OpenAI-compatible chat-completions endpoints (on httpx).

Works with OpenAI and with servers that speak the same API (vLLM, llama.cpp server, Ollama,
LiteLLM, ...). The API key is read from the ``api_key`` argument or ``$OPENAI_API_KEY``; it
never appears in a repr, an error message or a log line (a pickled client, e.g. sent to a
joblib worker, does carry it).

Redirects are never followed: the key goes only to the configured base URL. A redirect
(any 3xx, to another host or to another path on the same host) is an error that names the
address it points to, so the user can set that address as the base URL if it is trusted.
Every URL and response body in a message or in httpx's request log passes through
:func:`redact`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable

import httpx

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_MAX_RETRY_AFTER = 60.0  # seconds
_MAX_DETAIL = 300  # characters of a response body quoted in an error
_MIN_SECRET = 4  # shorter api_key values are not searched for (they would blank out ordinary words)
_REDACTED = "[redacted]"

_USERINFO = re.compile(r"(?<=://)[^/\s@]+@")
_BEARER = re.compile(r"(\bBearer\s+)\S+", re.IGNORECASE)
_SECRET_FIELD = re.compile(
    r"""(\b(?:api[_-]?key|key|token|access[_-]?token|secret|password|passwd|signature|sig)["']?\s*[:=]\s*["']?)"""
    r"""[^\s"'&,;}]+""",
    re.IGNORECASE,
)
_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{6,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` made fit for an error message or a log line.

    Replaces by ``[redacted]``: the given ``secrets`` (e.g. the API key), user and password
    in URLs, values of credential fields in query strings and JSON (``key=``, ``api_key=``,
    ``token=``, ``"password": ...``), bearer tokens and ``sk-...`` keys; then joins the text
    onto one line.
    """
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET:
            text = text.replace(secret, _REDACTED)
    text = _USERINFO.sub(_REDACTED + "@", text)
    text = _BEARER.sub(r"\g<1>" + _REDACTED, text)
    text = _SECRET_FIELD.sub(r"\g<1>" + _REDACTED, text)
    text = _OPENAI_KEY.sub(_REDACTED, text)
    return " ".join(text.split())


class _RedactLog(logging.Filter):
    """httpx logs every request with its full URL (user, password and query included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        return True


logging.getLogger("httpx").addFilter(_RedactLog())


class EndpointError(RuntimeError, ValueError):
    """The endpoint could not be used (unreachable, redirecting, or answering with an error).

    A ``ValueError`` too, since the fix is a setting (base URL, model, key), so the command
    line reports it as one ``error:`` line. Messages hold no credentials (see :func:`redact`).
    """


class JudgeAuthError(EndpointError):
    """The judge endpoint rejected the credentials (HTTP 401/403) or none were given."""


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("Retry-After", 0)), _MAX_RETRY_AFTER)
    except (TypeError, ValueError):
        return 0.0


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


class OpenAICompatibleClient:
    """Greedy chat completions with first-token log-probabilities.

    Parameters
    ----------
    model : the model name the server knows (``"gpt-4.1-mini"``).
    base_url : API root (``http://`` or ``https://``); default ``$OPENAI_BASE_URL`` or
        ``https://api.openai.com/v1``.
    api_key : default ``$OPENAI_API_KEY``. Servers that need no key accept any value. Sent
        as ``Authorization: Bearer ...`` to ``base_url`` only (redirects are refused).
    timeout : seconds per request.
    max_retries : retries after the first attempt on HTTP 429, 5xx, timeouts and connection
        errors, waiting ``backoff · 2**k`` seconds before retry ``k`` (0-based), or the
        server's ``Retry-After`` when that is longer (capped at 60 s).
    backoff : base wait in seconds.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 60, max_retries: int = 4, backoff: float = 1.0):
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        try:
            scheme = httpx.URL(self.base_url).scheme
        except httpx.InvalidURL as error:
            raise EndpointError(f"base URL {redact(self.base_url)!r} is not a valid URL ({error}); check "
                                "OPENAI_BASE_URL or the base URL option") from None
        if scheme not in ("http", "https"):
            raise EndpointError(
                f"base URL {redact(self.base_url)!r} must start with http:// or https:// "
                "(e.g. http://localhost:8000/v1); check OPENAI_BASE_URL or the base URL option"
            )
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not self._api_key:
            raise JudgeAuthError(
                f"No API key for the endpoint {redact(self.base_url)}: set the environment variable "
                "OPENAI_API_KEY or pass api_key=... (a local server that needs no key accepts any value)."
            )
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._http: httpx.Client | None = None  # one connection pool per client, made on first use

    def __getstate__(self) -> dict:
        # A pickled client (e.g. sent to a joblib worker) opens its own connections.
        return {**self.__dict__, "_http": None}

    def __repr__(self) -> str:
        return f"OpenAICompatibleClient({self.model!r}, base_url={redact(self.base_url)!r})"

    def complete(self, prompt: str, *, max_tokens: int = 8) -> tuple[str, dict[str, float] | None]:
        """Greedy answer (temperature 0) to ``prompt`` sent as one user turn.

        Returns
        -------
        ``(text, top_logprobs)``: the answer text, and the top-20 alternatives of its first
        token as ``{token text: natural-log probability}`` (None when the server returns no
        log-probabilities).
        """
        payload = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 20,
        }
        data = self._post("/chat/completions", payload)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise EndpointError(
                f"{self._shown('/chat/completions')} answered with no 'choices'; is OPENAI_BASE_URL an "
                "OpenAI-compatible chat-completions API root (e.g. http://localhost:8000/v1)?"
            )
        choice = choices[0]
        text = (choice.get("message") or {}).get("content") or ""
        return text, self._first_token_logprobs(choice.get("logprobs"))

    def _first_token_logprobs(self, logprobs) -> dict[str, float] | None:
        """``{token: logprob}`` of the first answer token from a choice's ``logprobs`` field."""
        if not logprobs:
            return None
        try:
            content = logprobs.get("content")
            if not content:
                return None
            top = content[0].get("top_logprobs")
            return {str(item["token"]): float(item["logprob"]) for item in top} if top else None
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            raise EndpointError(
                f"{self._shown('/chat/completions')} answered with a malformed 'logprobs' field (expected "
                "content[0].top_logprobs = [{token, logprob}, ...]); the server is not OpenAI-compatible there"
            ) from None

    def _shown(self, path: str) -> str:
        """The request URL as messages show it (redacted)."""
        return redact(self.base_url + path, [self._api_key])

    def _bearer(self, request: httpx.Request) -> httpx.Request:
        # An httpx auth callable, so that a user:password in base_url does not replace the key.
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        return request

    def _post(self, path: str, payload: dict):
        """POST ``payload`` as JSON and return the decoded JSON answer, retrying as documented."""
        shown = self._shown(path)
        last_error = ""
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout, follow_redirects=False, auth=self._bearer)
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * 2**attempt
            try:
                response = self._http.post(self.base_url + path, json=payload)
            except httpx.TransportError as error:
                last_error = f"{type(error).__name__}: {redact(str(error), [self._api_key])}"
            else:
                if response.is_success:
                    return self._json(response, shown)
                self._raise_unless_retryable(response, shown)
                last_error, wait = f"HTTP {response.status_code}", max(wait, _retry_after(response))
            if attempt < self.max_retries:
                time.sleep(wait)
        raise EndpointError(
            f"POST {shown} failed after {self.max_retries + 1} attempts ({last_error}); check that the server "
            "at OPENAI_BASE_URL (or base_url=...) is up and reachable"
        )

    def _json(self, response: httpx.Response, shown: str):
        try:
            return response.json()
        except ValueError:
            raise EndpointError(
                f"POST {shown} answered HTTP {response.status_code} with a body that is not JSON; check that "
                "OPENAI_BASE_URL (or base_url=...) is the API root (e.g. http://localhost:8000/v1)"
            ) from None

    def _raise_unless_retryable(self, response: httpx.Response, shown: str) -> None:
        """Raise for a redirect, refused credentials or another client error; return for 429 and 5xx."""
        code = response.status_code
        if response.is_redirect or 300 <= code < 400:
            target = response.url.join(response.headers.get("Location", ""))
            where = "another address, " if _origin(target) != _origin(response.url) else ""
            shown_target = redact(str(target), [self._api_key])
            raise EndpointError(
                f"POST {shown} answered with a redirect (HTTP {code}) to {where}{shown_target}; "
                "steerkit does not follow redirects, so the API key is only sent to the configured address: "
                "set OPENAI_BASE_URL (or base_url=...) to the address that should answer"
            )
        if code in (401, 403):
            raise JudgeAuthError(
                f"The endpoint {redact(self.base_url, [self._api_key])} refused the API key (HTTP {code}); "
                "check the environment variable OPENAI_API_KEY (or api_key=...) and OPENAI_BASE_URL."
            )
        if code != 429 and code < 500:
            detail = redact(response.text, [self._api_key])[:_MAX_DETAIL]
            raise EndpointError(f"POST {shown} failed with HTTP {code}: {detail}")
