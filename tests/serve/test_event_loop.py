"""The event loop never waits for the engine's tokenizer lock: while the worker holds it (as it
does decoding rows), a chat request's prompt encoding waits in a thread and other requests
are answered."""

import threading

import httpx

GOOD = {"model": "tiny-llama", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "temperature": 0}


def test_encoding_a_prompt_does_not_block_other_requests(serve):
    server = serve(max_batch=2, max_queue=4)
    answers = []
    with server.app.state.engine.tokenizer_lock:  # as the worker does while decoding
        chat = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{server.url}/v1/chat/completions", json=GOOD, timeout=60)))
        chat.start()
        chat.join(0.5)
        assert chat.is_alive()  # its encoding waits for the lock ...
        models = httpx.get(f"{server.url}/v1/models", timeout=5)  # ... while the server goes on answering
        assert models.status_code == 200 and models.json()["data"][0]["id"] == "tiny-llama"
    chat.join(60)
    assert answers[0].status_code == 200 and answers[0].json()["usage"]["completion_tokens"] == 3
