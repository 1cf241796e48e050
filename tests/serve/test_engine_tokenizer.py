"""The engine's worker decodes only under its tokenizer lock (a fast tokenizer must not be used
by two threads at once): the rows' text is decoded as it streams, never again after a batch."""

import queue
import threading

import pytest

from steerkit.serve.engine import BatchingEngine, Failed, Finished


@pytest.fixture
def engine(tiny_llama):
    engine = BatchingEngine(tiny_llama, max_batch=4)
    yield engine
    engine.close()


def test_the_worker_decodes_only_under_the_tokenizer_lock(engine, tiny_llama, monkeypatch):
    decode, unlocked = tiny_llama.tokenizer.decode, []

    def checked(*args, **kwargs):
        if threading.current_thread().name == "steerkit-engine" and not engine.tokenizer_lock.locked():
            unlocked.append(args)
        return decode(*args, **kwargs)

    monkeypatch.setattr(tiny_llama.tokenizer, "decode", checked)
    ended: queue.Queue = queue.Queue()
    for question in ["Hi", "Count to three.", "Why is the sea salty?"]:
        engine.submit(engine.encode(tiny_llama.chat_prompt(question)),
                      lambda event: isinstance(event, (Finished, Failed)) and ended.put(event), max_tokens=6)
    events = [ended.get(timeout=60) for _ in range(3)]
    assert all(isinstance(event, Finished) and event.completion_tokens == 6 for event in events)
    assert unlocked == []
