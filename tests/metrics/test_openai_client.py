"""The remote judge client against a fake chat-completions server on 127.0.0.1 (no internet)."""

import json
import logging
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from steerkit.metrics import JudgeAuthError, LLMJudge, OpenAICompatibleClient
from steerkit.metrics.openai_client import redact


def completion(text, top=None):
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if top is not None:
        choice["logprobs"] = {"content": [{"token": text[:2], "logprob": -0.1, "top_logprobs": [
            {"token": token, "logprob": logprob} for token, logprob in top.items()]}]}
    return {"id": "x", "object": "chat.completion", "choices": [choice]}


class FakeServer:
    """Answers requests from a script of ``(status, body)`` or ``(status, body, headers)`` replies.

    Every request (POST or GET) is recorded with its path, Authorization header and JSON body.
    """

    def __init__(self):
        self.script, self.requests = [], []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so tests can see whether a connection is reused

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append({"method": self.command, "path": self.path, "peer": self.client_address,
                                        "auth": self.headers["Authorization"], "body": body})
                status, reply, *headers = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers[0] if headers else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with FakeServer() as fake:
        yield fake


def client_for(server, **kwargs):
    return OpenAICompatibleClient("judge-model", base_url=server.url, api_key="test-key", backoff=0.0, **kwargs)


def test_complete_returns_text_and_first_token_logprobs(server):
    server.script = [(200, completion("85", {"85": math.log(0.6), "90": math.log(0.2), "The": math.log(0.1)}))]
    text, top = client_for(server).complete("Rate this.", max_tokens=5)
    assert text == "85" and top["90"] == pytest.approx(math.log(0.2))
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer test-key"
    assert request["body"]["messages"] == [{"role": "user", "content": "Rate this."}]
    assert request["body"] | {"messages": None} == {
        "model": "judge-model", "messages": None, "max_tokens": 5, "temperature": 0,
        "logprobs": True, "top_logprobs": 20}


def test_no_logprobs_gives_none(server):
    server.script = [(200, completion("70"))]
    assert client_for(server).complete("x") == ("70", None)


def test_retries_rate_limits_then_succeeds(server):
    server.script = [(429, {"error": "slow down"}), (429, {"error": "slow down"}), (200, completion("42"))]
    assert client_for(server, max_retries=4).complete("x")[0] == "42"
    assert len(server.requests) == 3


def test_gives_up_after_max_retries(server):
    server.script = [(503, {"error": "down"})]
    with pytest.raises(RuntimeError, match="after 3 attempts"):
        client_for(server, max_retries=2).complete("x")
    assert len(server.requests) == 3


def test_auth_error_is_immediate_and_names_the_env_var(server):
    server.script = [(401, {"error": "bad key"})]
    with pytest.raises(JudgeAuthError, match="OPENAI_API_KEY") as info:
        client_for(server, max_retries=4).complete("x")
    assert server.url in str(info.value) and "test-key" not in str(info.value)
    assert len(server.requests) == 1


def test_other_client_errors_are_not_retried(server):
    server.script = [(400, {"error": "unknown model"})]
    with pytest.raises(RuntimeError, match="HTTP 400.*unknown model"):
        client_for(server).complete("x")
    assert len(server.requests) == 1


def test_key_and_base_url_from_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    with pytest.raises(JudgeAuthError, match="OPENAI_API_KEY"):
        OpenAICompatibleClient("m")
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    client = OpenAICompatibleClient("m")
    assert client.base_url == "http://127.0.0.1:9/v1" and "from-env" not in repr(client)


def test_remote_judge_uses_logprobs_then_falls_back_to_text(server):
    judge = LLMJudge("Q: {question} A: {answer} concept?", client=client_for(server), coherence_prompt="{question}{answer} coherent?")
    server.script = [
        (200, completion("80", {"80": math.log(0.5), "60": math.log(0.5)})),  # concept: weighted 70
        (200, completion("Score: 55", {"Score": math.log(0.9), "55": math.log(0.05)})),  # coherence: mass 0.05 -> text
    ]
    table = judge.score_responses(["Why?"], ["Arr!"])
    assert table.loc[0, ["concept", "coherence", "utility"]].tolist() == pytest.approx([70.0, 55.0, 62.5])
    assert server.requests[0]["body"]["messages"][0]["content"] == "Q: Why? A: Arr! concept?"
    server.script = [(200, completion("REFUSAL", {"RE": 0.0}))]
    assert math.isnan(judge.rate(["anything"])[0])


@pytest.fixture
def other_server(server):
    with FakeServer() as fake:
        fake.script = [(200, completion("99"))]
        yield fake


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_is_refused_and_never_gets_the_key(server, other_server, status):
    server.script = [(status, {}, {"Location": other_server.url + "/chat/completions?api_key=leak"})]
    with pytest.raises(RuntimeError, match=rf"redirect \(HTTP {status}\) to another address") as info:
        client_for(server, max_retries=3).complete("x")
    message = str(info.value)
    assert other_server.url in message and "leak" not in message and "test-key" not in message
    assert "OPENAI_BASE_URL" in message and "\n" not in message
    assert other_server.requests == [] and len(server.requests) == 1  # not followed, not retried


def test_redirect_on_the_same_host_is_refused_too(server):
    server.script = [(307, completion("99"), {"Location": "/v2/chat/completions"})]
    with pytest.raises(RuntimeError, match=r"redirect \(HTTP 307\) to .*/v2/chat/completions"):
        client_for(server).complete("x")
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions"]


def test_error_bodies_are_redacted_and_kept_to_one_line(server):
    body = {"error": {"message": "Incorrect API key provided: test-key.\nSee http://bob:hunter2@example.com/?token=abc123",
                      "api_key": "sk-abcdefghijklmnop"}}
    server.script = [(400, body)]
    with pytest.raises(RuntimeError, match=r"HTTP 400.*Incorrect API key provided") as info:
        client_for(server).complete("x")
    message = str(info.value)
    for secret in ("test-key", "hunter2", "abc123", "sk-abcdefghijklmnop"):
        assert secret not in message
    assert "\n" not in message


def test_long_error_bodies_are_cut(server):
    server.script = [(422, {"error": "x" * 5000})]
    with pytest.raises(RuntimeError, match=r"HTTP 422") as info:
        client_for(server).complete("x")
    assert len(str(info.value)) < 400


def test_a_body_that_is_not_json_or_not_a_completion_is_a_clear_error(server):
    server.script = [(200, b"<html>welcome</html>")]
    with pytest.raises(RuntimeError, match=r"not JSON.*OPENAI_BASE_URL") as info:
        client_for(server).complete("x")
    assert "welcome" not in str(info.value)
    server.script = [(200, {"data": []})]
    with pytest.raises(RuntimeError, match=r"no 'choices'.*chat-completions"):
        client_for(server).complete("x")


def test_unreachable_server_fails_after_the_retries(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = OpenAICompatibleClient("m", base_url="http://127.0.0.1:9/v1", api_key="test-key", max_retries=1, backoff=0.0)
    with pytest.raises(RuntimeError, match=r"POST http://127\.0\.0\.1:9/v1/chat/completions failed after 2 attempts "
                       r"\(ConnectError.*\); check that the server at OPENAI_BASE_URL"):
        client.complete("x")


def test_a_base_url_without_http_scheme_is_refused_at_once():
    with pytest.raises(ValueError, match=r"base URL 'localhost:8000/v1' .*http://"):
        OpenAICompatibleClient("m", base_url="localhost:8000/v1", api_key="k")


def test_credentials_in_the_base_url_stay_out_of_repr_errors_and_logs(server, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="httpx")
    url = server.url.replace("http://", "http://alice:pw-secret@")
    client = OpenAICompatibleClient("m", base_url=url, api_key="test-key", backoff=0.0, max_retries=0)
    assert "pw-secret" not in repr(client)
    server.script = [(200, completion("42"))]
    assert client.complete("x")[0] == "42"
    assert server.requests[-1]["auth"] == "Bearer test-key"  # the key, not the URL's user and password
    assert "127.0.0.1" in caplog.text and "pw-secret" not in caplog.text
    server.script = [(503, {"error": "down"})]
    with pytest.raises(RuntimeError) as info:
        client.complete("x")
    assert "pw-secret" not in str(info.value)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(JudgeAuthError) as info:
        OpenAICompatibleClient("m", base_url=url)
    assert "pw-secret" not in str(info.value)


@pytest.mark.parametrize("text, secret", [
    ("https://user:pass@host/v1", "pass"),
    ("https://host/v1?key=abc&x=1", "abc"),
    ("https://host/v1?x=1&api_key=abc", "abc"),
    ("GET /?access_token=abc HTTP/1.1", "abc"),
    ('{"token": "abc"}', "abc"),
    ("Authorization: Bearer abc", "abc"),
    ("your key sk-proj-abcdef123456 is wrong", "sk-proj-abcdef123456"),
    ("the key is my-own-key!", "my-own-key"),
])
def test_redact_removes_credentials(text, secret):
    cleaned = redact(text, secrets=["my-own-key"])
    assert secret not in cleaned and "[redacted]" in cleaned


def test_redact_keeps_harmless_text_and_makes_one_line():
    assert redact("POST http://127.0.0.1:8000/v1/chat/completions?monkey=1&max_tokens=5") == (
        "POST http://127.0.0.1:8000/v1/chat/completions?monkey=1&max_tokens=5")
    assert redact("line one\n  line\ttwo\r\n") == "line one line two"


def test_one_client_reuses_its_connection_and_a_pickled_copy_opens_its_own(server):
    import pickle

    server.script = [(200, completion("1"))]
    client = client_for(server)
    client.complete("x")
    client.complete("y")
    assert server.requests[0]["peer"] == server.requests[1]["peer"]  # one TCP connection, not one per request
    copy = pickle.loads(pickle.dumps(client))
    assert copy.complete("z") == ("1", None) and server.requests[2]["auth"] == "Bearer test-key"


def test_a_base_url_that_is_not_a_url_is_a_clear_error():
    with pytest.raises(ValueError, match=r"base URL 'http://host:abc/v1' is not a valid URL"):
        OpenAICompatibleClient("m", base_url="http://host:abc/v1", api_key="k")


@pytest.mark.parametrize("logprobs", [{"content": [{"top_logprobs": [{"token": "1"}]}]},
                                      {"content": [{"top_logprobs": "x"}]}, {"content": ["x"]}, "x"])
def test_malformed_logprobs_are_a_clear_error(server, logprobs):
    answer = completion("85")
    answer["choices"][0]["logprobs"] = logprobs
    server.script = [(200, answer)]
    with pytest.raises(ValueError, match="malformed 'logprobs' field"):
        client_for(server).complete("x")
