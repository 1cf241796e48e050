"""The OpenAI-compatible FastAPI app: ``GET /v1/models``, ``GET /v1/steering`` and
``POST /v1/chat/completions`` (streaming and not), each request steered its own way.

A request's steering is the body field ``steering`` (what the ``openai`` client sends with
``extra_body={"steering": [...]}``): a list of ``{"vector": name, "layer"?, "coefficient"?,
"positions"?, "component"?}`` and ``{"adapter": name}``; absent or empty means unsteered.
Every mistake is answered with OpenAI's error body ``{"error": {"message", "type", "param",
"code"}}`` (one line saying what to fix) and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
import uuid
from typing import Literal

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field, ValidationError
    from starlette.exceptions import HTTPException
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(f"steerkit serve needs fastapi and uvicorn ({err}): pip install 'steerkit[serve]'",
                              name=err.name) from None

from steerkit.lm.generation import check_context
from steerkit.serve.engine import BatchingEngine, Delta, Failed, Finished, QueueFull
from steerkit.serve.registry import UnknownSteering, UnusableSteering

MAX_STOP_STRINGS = 4  # as OpenAI's API
RETRY_AFTER_S = 1
DISCONNECT_POLL_S = 0.25  # how often a waiting non-streamed request checks that its client is still there


class APIError(Exception):
    """An answer with OpenAI's error body: HTTP ``status``, one-line ``message``, the request
    field it is about (``param``) and a machine-readable ``code``."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return JSONResponse({"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}},
                            status_code=self.status, headers=self.headers)


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class SteeringSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vector: str | None = None
    adapter: str | None = None
    layer: int | None = None
    coefficient: float | None = None
    positions: str | None = None
    component: str | None = None


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat completion request that steerkit serves (others are ignored)."""

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: dict | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    steering: list[SteeringSpec] | None = None


def _validation_error(err: ValidationError) -> APIError:
    first = err.errors()[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    return APIError(400, f"field {param!r}: {first['msg']}" if param else first["msg"], param=param,
                    code="invalid_value")


def parse_chat_request(body: bytes, max_body_bytes: int) -> ChatRequest:
    """The validated request in ``body``; APIError 413 (too large) or 400 (not JSON, wrong fields)."""
    if len(body) > max_body_bytes:
        raise APIError(413, f"the request body has {len(body)} bytes, more than this server's {max_body_bytes}: "
                       "send a shorter conversation", code="request_too_large")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise APIError(400, f"the request body is not valid JSON ({err}): send a JSON object", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, f"the request body is a JSON {type(data).__name__}: send a JSON object", code="invalid_json")
    try:
        chat = ChatRequest.model_validate(data)
    except ValidationError as err:
        raise _validation_error(err) from None
    if chat.n != 1:
        raise APIError(400, f"n={chat.n}: this server returns one choice per request, send n=1 (or several requests)",
                       param="n", code="invalid_value")
    return chat


def chat_prompt(tokenizer, messages: list[Message]) -> str:
    """The prompt text of ``messages`` by the tokenizer's chat template, ending where the
    assistant's answer starts, formatted as generation formats it (a template that rejects a
    system role gets the system text in the first user turn: :func:`~steerkit.lm.chat.apply_template`);
    APIError 400 when the template refuses them."""
    from steerkit.lm.chat import apply_template, format_chat

    if getattr(tokenizer, "chat_template", None):
        try:
            return apply_template(tokenizer, [m.model_dump() for m in messages])
        except Exception as err:  # jinja's TemplateError: roles or order the template rejects
            raise APIError(400, f"the model's chat template refuses these messages ({' '.join(str(err).split())}): "
                           "fix their roles or order", param="messages", code="invalid_value") from None
    roles = [m.role for m in messages]
    if roles not in (["user"], ["system", "user"]):
        raise APIError(400, "this model has no chat template: send one user message, optionally after one system "
                       "message", param="messages", code="invalid_value")
    return format_chat(tokenizer, messages[-1].content, messages[0].content if len(messages) == 2 else None)


def steering_interventions(registry, specs: list[SteeringSpec] | None) -> list | None:
    """The interventions of a request's ``steering`` list (None when unsteered); APIError 400
    for a malformed entry, 404 for an unknown name, 422 when it cannot steer this model."""
    interventions = []
    for index, spec in enumerate(specs or []):
        param = f"steering.{index}"
        if (spec.vector is None) == (spec.adapter is None):
            raise APIError(400, f"{param} must name exactly one of 'vector' or 'adapter'", param=param,
                           code="invalid_value")
        options = {k: getattr(spec, k) for k in ("layer", "coefficient", "positions", "component")}
        kind, name = ("adapter", spec.adapter) if spec.adapter is not None else ("vector", spec.vector)
        try:
            registry.get(name, kind)
            interventions += registry.interventions(name, **options)
        except UnknownSteering as err:
            raise APIError(404, f"{param}: {err}", param=param, code="steering_not_found") from None
        except UnusableSteering as err:
            raise APIError(422, f"{param}: {err}", param=param, code="invalid_steering") from None
    return interventions or None


def _stops(stop) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if len(stops) > MAX_STOP_STRINGS or any(not s for s in stops):
        raise APIError(400, f"stop must be up to {MAX_STOP_STRINGS} non-empty strings, got {list(stops)!r}",
                       param="stop", code="invalid_value")
    return stops


def create_app(lm, registry, *, max_batch: int = 16, max_queue: int = 64, default_max_tokens: int = 256,
               max_body_bytes: int = 1_000_000, max_wait_s: float = 0.005) -> FastAPI:
    """The FastAPI app serving ``lm`` with the steering of ``registry`` (a
    :class:`~steerkit.serve.registry.VectorRegistry`).

    ``max_batch`` rows per generation and ``max_queue`` waiting requests (beyond: 503 with
    ``Retry-After``) go to the :class:`~steerkit.serve.engine.BatchingEngine`, started here and
    closed when the app shuts down (``app.state.engine``). A request without ``max_tokens``
    gets ``default_max_tokens`` (fewer when the context has less room). The comparison page
    (``steerkit.serve.page``, when installed) is mounted at ``/``.
    """
    import contextlib

    engine = BatchingEngine(lm, max_batch=max_batch, max_queue=max_queue, max_wait_s=max_wait_s)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        engine.close()

    app = FastAPI(title="steerkit", lifespan=lifespan)
    app.state.lm, app.state.registry, app.state.engine = lm, registry, engine
    created = int(time.time())

    @app.exception_handler(APIError)
    async def api_error(request, err: APIError):
        return err.response()

    @app.exception_handler(HTTPException)
    async def http_error(request, err: HTTPException):
        return APIError(err.status_code, str(err.detail), code="not_found" if err.status_code == 404 else None).response()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": lm.name, "object": "model", "created": created, "owned_by": "steerkit"}]}

    @app.get("/v1/steering")
    async def steering():
        """The vectors and adapters requests can name (see ``SteeringEntry.describe``)."""
        return {"object": "list", "data": registry.describe()}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        chat = parse_chat_request(await request.body(), max_body_bytes)
        if chat.model != lm.name:
            raise APIError(404, f"model {chat.model!r} is not served here: use {lm.name!r} (GET /v1/models)",
                           param="model", code="model_not_found")
        interventions = steering_interventions(registry, chat.steering)
        # in a thread: encoding waits for the tokenizer lock the worker holds while it decodes
        prompt_ids = await asyncio.to_thread(engine.encode, chat_prompt(lm.tokenizer, chat.messages))
        max_tokens = chat.max_completion_tokens or chat.max_tokens
        if max_tokens is None and lm.context_length is not None:
            max_tokens = min(default_max_tokens, max(1, lm.context_length - len(prompt_ids)))
        try:
            check_context(lm, [len(prompt_ids)], ["the prompt (messages)"], max_new_tokens=max_tokens or 0)
        except ValueError as err:
            raise APIError(413, str(err), param="messages", code="context_length_exceeded") from None
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        try:
            row = engine.submit(prompt_ids, lambda event: loop.call_soon_threadsafe(events.put_nowait, event),
                                interventions=interventions, temperature=1.0 if chat.temperature is None else chat.temperature,
                                top_p=1.0 if chat.top_p is None else chat.top_p, seed=chat.seed,
                                max_tokens=max_tokens or default_max_tokens, stop=_stops(chat.stop))
        except QueueFull as err:
            raise APIError(503, f"the server is at capacity ({err})", code="server_busy",
                           headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        except ValueError as err:
            param = str(err).split(" ", 1)[0]
            raise APIError(400, str(err), param=param, code="invalid_value") from None
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        head = {"id": completion_id, "created": int(time.time()), "model": lm.name}
        if chat.stream:
            usage = bool((chat.stream_options or {}).get("include_usage"))
            return StreamingResponse(_sse(events, row, head, usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            event = await _final_event(events, request)
        finally:
            row.cancel()
        if event is None:
            raise APIError(499, "the client closed the request", code="client_closed")
        if isinstance(event, Failed):
            raise APIError(500, event.message, code="generation_failed")
        return {**head, "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": event.text},
                             "finish_reason": event.finish_reason, "logprobs": None}],
                "usage": _usage(event)}

    if importlib.util.find_spec("steerkit.serve.page") is not None:
        from steerkit.serve import page

        app.include_router(page.router)
    return app


async def _final_event(events: asyncio.Queue, request) -> Finished | Failed | None:
    """The row's :class:`Finished` or :class:`Failed` event, or None once the client has gone
    away (checked every :data:`DISCONNECT_POLL_S` seconds while the row runs), so that its row
    can be cancelled."""

    async def final():
        while not isinstance(event := await events.get(), (Finished, Failed)):
            pass
        return event

    waiting = asyncio.ensure_future(final())
    try:
        while not (await asyncio.wait({waiting}, timeout=DISCONNECT_POLL_S))[0]:
            if await request.is_disconnected():
                return None
        return waiting.result()
    finally:
        waiting.cancel()


def _usage(event: Finished) -> dict:
    return {"prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
            "total_tokens": event.prompt_tokens + event.completion_tokens}


def _chunk(head: dict, delta: dict, finish_reason=None) -> str:
    chunk = {**head, "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


async def _sse(events: asyncio.Queue, row, head: dict, include_usage: bool):
    """OpenAI's server-sent chat chunks: the role, the text deltas, the finish reason (then the
    usage when asked), ``data: [DONE]``. A client that goes away cancels its row."""
    try:
        yield _chunk(head, {"role": "assistant", "content": ""})
        while True:
            event = await events.get()
            if isinstance(event, Delta):
                yield _chunk(head, {"content": event.text})
            elif isinstance(event, Failed):
                error = {"message": event.message, "type": "server_error", "param": None, "code": "generation_failed"}
                yield f"data: {json.dumps({'error': error})}\n\n"
                break
            else:
                yield _chunk(head, {}, event.finish_reason)
                if include_usage:
                    yield f"data: {json.dumps({**head, 'object': 'chat.completion.chunk', 'choices': [], 'usage': _usage(event)})}\n\n"
                break
        yield "data: [DONE]\n\n"
    finally:
        row.cancel()
