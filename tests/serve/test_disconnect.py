"""A client that goes away frees its row: streamed or not, the row stops at the next token
instead of generating to ``max_tokens`` while the requests queued behind its batch wait."""

import time

import httpx
import pytest

LONG = {"model": "tiny-llama", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2000 - 40,
        "temperature": 0}


@pytest.mark.parametrize("stream", [False, True])
def test_a_disconnected_client_cancels_its_row(serve, stream):
    server = serve(max_batch=1, max_queue=2)
    engine = server.app.state.engine
    rows = []
    submit = engine.submit
    engine.submit = lambda *args, **kwargs: rows.append(submit(*args, **kwargs)) or rows[-1]
    try:
        url = f"{server.url}/v1/chat/completions"
        if stream:  # the client reads the first chunk, then closes the stream
            with httpx.stream("POST", url, json={**LONG, "stream": True}, timeout=30) as response:
                next(response.iter_lines())
        else:  # the client gives up waiting and closes its connection
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(url, json=LONG, timeout=httpx.Timeout(30, read=1.0))
        [row] = rows
        deadline = time.monotonic() + 30
        while not (row.cancelled.is_set() and engine.running == 0):
            assert time.monotonic() < deadline, "the row of the disconnected client was not cancelled"
            time.sleep(0.01)
        assert not row.text.done and len(row.text.tokens) < LONG["max_tokens"]  # it stopped early
    finally:
        del engine.submit
