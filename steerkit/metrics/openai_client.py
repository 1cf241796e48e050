"""A minimal client for OpenAI-compatible chat-completions endpoints (standard library only).

Works with OpenAI and with servers that speak the same API (vLLM, llama.cpp server, Ollama,
LiteLLM, ...). The API key is read from the ``api_key`` argument or ``$OPENAI_API_KEY``; it
never appears in a repr or an error message (a pickled client, e.g. sent to a joblib worker,
does carry it).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_MAX_RETRY_AFTER = 60.0


class JudgeAuthError(RuntimeError):
    """The judge endpoint rejected the credentials (HTTP 401/403) or none were given."""


def _retry_after(error: urllib.error.HTTPError) -> float:
    try:
        return min(float(error.headers.get("Retry-After", 0)), _MAX_RETRY_AFTER)
    except (TypeError, ValueError):
        return 0.0


class OpenAICompatibleClient:
    """Greedy chat completions with first-token log-probabilities.

    Parameters
    ----------
    model : the model name the server knows (``"gpt-4.1-mini"``).
    base_url : API root; default ``$OPENAI_BASE_URL`` or ``https://api.openai.com/v1``.
    api_key : default ``$OPENAI_API_KEY``. Servers that need no key accept any value.
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
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not self._api_key:
            raise JudgeAuthError(
                f"No API key for the judge at {self.base_url}: set the environment variable "
                "OPENAI_API_KEY or pass api_key=... (a local server that needs no key accepts any value)."
            )
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff

    def __repr__(self) -> str:
        return f"OpenAICompatibleClient({self.model!r}, base_url={self.base_url!r})"

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
        choice = self._post("/chat/completions", payload)["choices"][0]
        text = (choice.get("message") or {}).get("content") or ""
        content = (choice.get("logprobs") or {}).get("content") or []
        if not content or not content[0].get("top_logprobs"):
            return text, None
        return text, {item["token"]: float(item["logprob"]) for item in content[0]["top_logprobs"]}

    def _post(self, path: str, payload: dict) -> dict:
        url = self.base_url + path
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self._api_key}"}
        last_error: Exception | None = None
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * 2**attempt
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                if error.code in (401, 403):
                    raise JudgeAuthError(
                        f"The judge endpoint {self.base_url} refused the API key (HTTP {error.code}); "
                        "check the environment variable OPENAI_API_KEY (or api_key=...) and OPENAI_BASE_URL."
                    ) from None
                if error.code != 429 and error.code < 500:
                    detail = error.read().decode(errors="replace")[:500]
                    raise RuntimeError(f"POST {url} failed with HTTP {error.code}: {detail}") from None
                last_error, wait = error, max(wait, _retry_after(error))
                error.close()
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                last_error = error
            if attempt < self.max_retries:
                time.sleep(wait)
        raise RuntimeError(f"POST {url} failed after {self.max_retries + 1} attempts: {last_error}")
