"""Bad requests get a 4xx with OpenAI's error body saying what to fix, a full queue gets 503 with
Retry-After, and the server answers the next good request after every one of them."""

import json
import threading
import time

import httpx
import pytest

GOOD = {"model": "tiny-llama", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "temperature": 0}


def steered(**spec):
    return {**GOOD, "steering": [spec]}


CASES = [
    ("malformed JSON", b'{"model": "tiny-llama", "messages": [', 400, "invalid_json", "not valid JSON"),
    ("not an object", b"[1, 2]", 400, "invalid_json", "send a JSON object"),
    ("missing messages", {"model": "tiny-llama"}, 400, "invalid_value", "field 'messages'"),
    ("unknown role", {**GOOD, "messages": [{"role": "robot", "content": "Hi"}]}, 400, "invalid_value",
     "field 'messages.0.role'"),
    ("n > 1", {**GOOD, "n": 2}, 400, "invalid_value", "send n=1"),
    ("unknown model", {**GOOD, "model": "gpt-4"}, 404, "model_not_found", "use 'tiny-llama'"),
    ("negative temperature", {**GOOD, "temperature": -1}, 400, "invalid_value", "temperature must be"),
    ("too many stops", {**GOOD, "stop": ["a", "b", "c", "d", "e"]}, 400, "invalid_value", "up to 4"),
    ("zero max_tokens", {**GOOD, "max_tokens": 0}, 400, "invalid_value", "field 'max_tokens'"),
    ("zero max_completion_tokens", {**GOOD, "max_completion_tokens": 0}, 400, "invalid_value",
     "field 'max_completion_tokens'"),
    ("unknown vector", steered(vector="pirat"), 404, "steering_not_found",
     "known vectors: calm, narrow, pirate/best, pirate/pv"),
    ("vector passed as adapter", steered(adapter="calm"), 404, "steering_not_found", "pass it as {\"vector\""),
    ("vector and adapter", steered(vector="calm", adapter="adapters/style"), 400, "invalid_value", "exactly one"),
    ("unknown steering field", steered(vector="calm", strength=3), 400, "invalid_value", "steering.0.strength"),
    ("layer out of range", steered(vector="calm", layer=7), 422, "invalid_steering", "use 0..3"),
    ("huge coefficient", steered(vector="calm", coefficient=1e300), 422, "invalid_steering",
     "not a usable steering strength"),
    ("NaN coefficient", json.dumps(steered(vector="calm", coefficient=float("nan"))).encode(), 422,
     "invalid_steering", "not a usable steering strength"),
    ("wrong hidden size", steered(vector="narrow"), 422, "invalid_steering", "hidden size 64"),
    ("bad positions", steered(vector="calm", positions="middle"), 422, "invalid_steering", "use one of all"),
    ("oversize prompt", {**GOOD, "messages": [{"role": "user", "content": "sea " * 2100}]}, 413,
     "context_length_exceeded", "more than the model's context of 2048 tokens"),
    ("oversize max_tokens", {**GOOD, "max_tokens": 5000}, 413, "context_length_exceeded", "lower max_new_tokens"),
]


@pytest.fixture(scope="module")
def server(serve):
    return serve(max_batch=4, max_queue=4)


def post(server, body, **kwargs):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.url}/v1/chat/completions", content=content,
                      headers={"Content-Type": "application/json"}, timeout=60, **kwargs)


@pytest.mark.parametrize("name, body, status, code, words", CASES, ids=[c[0] for c in CASES])
def test_each_bad_request_says_what_to_fix_and_the_server_goes_on(server, name, body, status, code, words):
    answer = post(server, body)
    error = answer.json()["error"]
    assert (answer.status_code, error["code"], error["type"]) == (status, code, "invalid_request_error")
    assert words in error["message"] and "\n" not in error["message"]
    good = post(server, GOOD)
    assert good.status_code == 200 and good.json()["usage"]["completion_tokens"] == 3


def test_an_oversize_body_is_refused(serve):
    small = serve(max_body_bytes=200)
    answer = post(small, {**GOOD, "messages": [{"role": "user", "content": "x" * 300}]})
    assert (answer.status_code, answer.json()["error"]["code"]) == (413, "request_too_large")
    assert post(small, GOOD).status_code == 200


def test_a_full_queue_answers_503_with_retry_after_and_recovers(serve):
    busy = serve(max_batch=1, max_queue=1)
    engine = busy.app.state.engine

    def wait_for(condition):
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.005)

    with httpx.stream("POST", f"{busy.url}/v1/chat/completions", json={**GOOD, "max_tokens": 2000 - 40, "stream": True},
                      timeout=60) as long:
        lines = long.iter_lines()  # kept: dropping the iterator would close the stream
        next(lines)  # the role chunk: the long request is queued or running
        wait_for(lambda: engine.running == 1)
        waiting = {}
        thread = threading.Thread(target=lambda: waiting.update(answer=post(busy, GOOD)))
        thread.start()
        wait_for(lambda: engine._queue.qsize() == 1)
        refused = post(busy, GOOD)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["code"] == "server_busy"
    thread.join(60)  # leaving the stream cancels the long request, so the waiting one runs
    assert waiting["answer"].status_code == 200
    assert post(busy, GOOD).status_code == 200
