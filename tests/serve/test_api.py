"""The OpenAI-compatible API through the official openai client: steered and unsteered,
streamed and not, seeded sampling, stop strings, and per-row batching of concurrent requests."""

import threading

import pytest

QUESTIONS = ["Hi", "What is a cloud made of?", "Count to five.", "Why is the sea salty?", "Name a colour.",
             "How do plants grow?"]
STEERINGS = [None, [{"vector": "pirate/best"}], [{"vector": "calm"}], [{"adapter": "adapters/style"}],
             [{"vector": "pirate/pv", "layer": 2, "coefficient": -3, "positions": "all"}],
             [{"vector": "pirate/best", "coefficient": 2}, {"vector": "calm", "component": "mlp"}]]


@pytest.fixture(scope="module")
def server(serve):
    return serve(max_batch=8, max_queue=16)


@pytest.fixture(scope="module")
def registry(server):
    return server.app.state.registry


def ask(client, question, steering=None, stream=False, **options):
    """``(text, finish_reason, usage or None)`` of one chat completion (greedy unless told)."""
    options = {"temperature": 0, "max_tokens": 10, **options}
    extra = {"extra_body": {"steering": steering}} if steering is not None else {}
    messages = [{"role": "user", "content": question}]
    if not stream:
        answer = client.chat.completions.create(model="tiny-llama", messages=messages, **options, **extra)
        return answer.choices[0].message.content, answer.choices[0].finish_reason, answer.usage
    chunks = list(client.chat.completions.create(model="tiny-llama", messages=messages, stream=True, **options,
                                                 **extra))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, [c.choices[0].finish_reason for c in chunks if c.choices][-1], None


def expected(lm, registry, question, steering, max_tokens=10):
    """What ``lm.generate`` answers with the same interventions."""
    interventions = None
    if steering:
        interventions = [[i for spec in steering
                          for i in registry.interventions(spec.get("vector") or spec["adapter"],
                                                          **{k: v for k, v in spec.items() if k not in ("vector", "adapter")})]]
    return lm.generate([question], interventions=interventions, max_new_tokens=max_tokens)[0]


def test_models_lists_the_served_model(server):
    assert [m.id for m in server.client().models.list().data] == ["tiny-llama"]


@pytest.mark.parametrize("stream", [False, True])
def test_answers_equal_generate_with_the_same_steering(server, registry, tiny_llama, stream):
    client = server.client()
    answers = [ask(client, "What is a cloud made of?", steering, stream=stream)[0] for steering in STEERINGS]
    assert answers == [expected(tiny_llama, registry, "What is a cloud made of?", s) for s in STEERINGS]
    assert len(set(answers)) == len(answers)  # every steering changes the answer


def test_usage_counts_tokens(server, tiny_llama):
    text, finish, usage = ask(server.client(), "Hi", max_tokens=7)
    prompt = tiny_llama.tokenizer(tiny_llama.chat_prompt("Hi"), add_special_tokens=False)["input_ids"]
    assert (finish, usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == \
        ("length", len(prompt), 7, len(prompt) + 7)


def test_stream_reports_usage_when_asked(server):
    chunks = list(server.client().chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Hi"}], stream=True, temperature=0, max_tokens=5,
        stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == 5 and chunks[-1].choices == []


def test_a_stop_string_ends_the_text_before_it(server):
    client = server.client()
    full, _, _ = ask(client, "Count to five.", max_tokens=12)
    stop = full[len(full) // 2: len(full) // 2 + 3]
    for stream in (False, True):
        text, finish, _ = ask(client, "Count to five.", max_tokens=12, stop=[stop], stream=stream)
        assert (text, finish) == (full[: full.index(stop)].rstrip(), "stop")


def test_seeded_sampling_is_reproducible_and_steered(server):
    client = server.client()
    sample = dict(temperature=1.3, top_p=0.9, max_tokens=12)
    first = ask(client, "Hi", seed=7, **sample)[0]
    assert ask(client, "Hi", seed=7, stream=True, **sample)[0] == first
    assert ask(client, "Hi", seed=8, **sample)[0] != first
    assert ask(client, "Hi", [{"vector": "pirate/best"}], seed=7, **sample)[0] != first


def test_concurrent_requests_with_different_steering_equal_the_same_requests_alone(server):
    client = server.client()
    jobs = [(q, STEERINGS[i % len(STEERINGS)], {"seed": i, "temperature": 0.8} if i % 3 == 2 else {})
            for i, q in enumerate(QUESTIONS + QUESTIONS[::-1])]
    alone = [ask(client, q, s, **o)[0] for q, s, o in jobs]
    together = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i, question, steering, options):
        start.wait()
        together[i] = ask(client, question, steering, stream=i % 2 == 1, **options)[0]

    threads = [threading.Thread(target=run, args=(i, *job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert together == alone
    assert server.app.state.engine.largest_batch > 1  # the requests did share batches
