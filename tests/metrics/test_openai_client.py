"""The remote judge client against a fake chat-completions server on 127.0.0.1 (no internet)."""

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from steerkit.metrics import JudgeAuthError, LLMJudge, OpenAICompatibleClient


def completion(text, top=None):
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if top is not None:
        choice["logprobs"] = {"content": [{"token": text[:2], "logprob": -0.1, "top_logprobs": [
            {"token": token, "logprob": logprob} for token, logprob in top.items()]}]}
    return {"id": "x", "object": "chat.completion", "choices": [choice]}


class FakeServer:
    """Answers POST /v1/chat/completions from a script of (status, body) replies."""

    def __init__(self):
        self.script, self.requests = [], []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers["Authorization"], "body": body})
                status, reply = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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
