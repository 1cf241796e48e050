"""The batching engine: one worker thread owns the model and answers many requests at once.

Requests wait in a bounded queue. The worker takes the first waiting request, collects more
for at most ``max_wait_s`` (up to ``max_batch`` rows) and runs ONE batched generation in which
every row has its own interventions (:class:`~steerkit.lm.hooks.Intervening`), its own
sampling settings (:class:`~steerkit.lm.generation.RowSampler`) and its own stop conditions
(``max_tokens``, stop strings, end of sequence, cancellation: :class:`RowMonitor`). Requests
that arrive meanwhile join the next batch. Each row's answer is the one its request gets
alone (see ``steerkit.lm.generation.generate``), and its text streams as it grows.

A request hands over an ``emit`` callback, called from the worker thread with
:class:`Delta` events (new text) and exactly one final :class:`Finished` or :class:`Failed`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from transformers import StoppingCriteria

from steerkit.lm.generation import RowSampler, _generate_batch, _row_sampling
from steerkit.lm.hooks import Intervening

REPLACEMENT = "\ufffd"  # what decoding shows for the first bytes of an unfinished character


class QueueFull(RuntimeError):
    """The engine's queue holds ``max_queue`` waiting requests: try again shortly."""


@dataclass
class Delta:
    """New text of a row (never a split character, never part of a stop string)."""

    text: str


@dataclass
class Finished:
    """A row's end: its whole text (the deltas joined), why it ended (``"stop"``: end of
    sequence or a stop string; ``"length"``: ``max_tokens``) and its token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Failed:
    """The generation of a row failed (one line)."""

    message: str


class RowText:
    """The text of one row's new tokens as they come.

    :meth:`push` takes the next token id and returns the text that may be shown now: the
    decoded tokens (special tokens removed, leading and trailing whitespace held back as
    ``generate`` strips it), minus an unfinished multi-byte character and minus a tail that
    could begin a stop string. :attr:`done` turns True at an end-of-sequence token, a stop
    string (the text ends before it) or ``max_tokens`` tokens. The deltas add up to :attr:`text`.

    Decoding is incremental (as in text-generation-inference): a push decodes only the tokens
    read since the previous piece, once alone and once after that piece's tokens (the context a
    tokenizer needs for, e.g., a word's leading space), and appends the difference to
    :attr:`decoded` unless it ends in an unfinished character. So a push decodes a few tokens,
    not the whole answer.

    Streamed text cannot be taken back, so :attr:`text` is always the deltas joined, also once
    the row has ended. To keep decoding from rewriting earlier text, tokens are decoded without
    the clean-up of tokenization spaces (``" 's"`` -> ``"'s"``): with a tokenizer that cleans up
    by default, the text keeps those spaces where ``generate``'s would not.
    """

    def __init__(self, tokenizer, *, max_tokens: int, stop: Sequence[str] = (), eos_ids: Sequence[int] = ()):
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.stop = tuple(stop)
        self.eos_ids = frozenset(eos_ids)
        self.tokens: list[int] = []
        self.decoded = ""  # the text of tokens[:self._read], leading whitespace removed
        self.shown = ""  # the deltas so far: always a prefix of self.decoded
        self._context = self._read = 0  # tokens[_context:_read]: those of the last decoded piece
        self.finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def text(self) -> str:
        """The final text once :attr:`done`, else what has been shown so far."""
        return self.shown

    def push(self, token: int) -> str:
        """Add the next token; return the newly showable text (maybe empty)."""
        self.tokens.append(int(token))
        ending = "stop" if token in self.eos_ids else "length" if len(self.tokens) >= self.max_tokens else None
        searched = max(0, len(self.decoded) - max(map(len, self.stop), default=0) + 1)  # earlier: no stop string
        self._read_tokens(flush=ending is not None)
        cut = min((i for i in (self.decoded.find(s, searched) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.finish_reason = "stop"
            return self._show(cut)
        self.finish_reason = ending
        if self.done:
            return self._show(len(self.decoded))
        pending = self.decoded[len(self.shown):].rstrip()
        held = max((n for s in self.stop for n in range(1, min(len(s), len(pending) + 1))
                    if pending.endswith(s[:n])), default=0)
        return self._show(len(self.shown) + len(pending) - held)

    def _read_tokens(self, *, flush: bool) -> None:
        """Append the text of the tokens after ``_read`` to :attr:`decoded`, unless it ends in
        an unfinished multi-byte character (kept for the next push) and ``flush`` is False."""
        context, text = (self.tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
                         for tokens in (self.tokens[self._context:self._read], self.tokens[self._context:]))
        if len(text) > len(context) and (flush or not text.endswith(REPLACEMENT)):
            piece = text[len(context):]
            self.decoded += piece if self.decoded else piece.lstrip()
            self._context, self._read = self._read, len(self.tokens)

    def _show(self, end: int) -> str:
        """Show ``decoded[:end]`` without trailing whitespace; return the part not shown before."""
        delta = self.decoded[len(self.shown):end].rstrip()
        self.shown += delta
        return delta


@dataclass
class RowRequest:
    """One waiting or running row: its prompt token ids, interventions (None: unsteered),
    sampling ``(temperature, top_p, generator)`` or None (greedy), its :class:`RowText` and the
    ``emit`` callback. :meth:`cancel` ends it at the next token (nothing more is emitted)."""

    prompt_ids: list[int]
    interventions: list | None
    sampling: tuple | None
    text: RowText
    emit: Callable[[object], None]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()


class RowMonitor(StoppingCriteria):
    """Feeds each running row its newest token after every generation step, emits its text and
    tells ``generate`` which rows are done (a ``(B,)`` bool tensor)."""

    def __init__(self, rows: list[RowRequest], tokenizer_lock: threading.Lock):
        self.rows = rows
        self.tokenizer_lock = tokenizer_lock

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        newest = input_ids[:, -1].tolist()
        with self.tokenizer_lock:
            for row, token in zip(self.rows, newest):
                if not (row.text.done or row.cancelled.is_set()):
                    _advance(row, token)
        return torch.tensor([row.text.done or row.cancelled.is_set() for row in self.rows], device=input_ids.device)


def _advance(row: RowRequest, token: int) -> None:
    delta = row.text.push(token)
    if delta:
        row.emit(Delta(delta))
    if row.text.done:
        row.emit(Finished(row.text.text, row.text.finish_reason, len(row.prompt_ids), len(row.text.tokens)))


def _eos_ids(lm) -> list[int]:
    """The token ids that end a row in ``lm.model.generate`` (its generation config)."""
    eos = lm.model.generation_config.eos_token_id
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


class BatchingEngine:
    """Answers requests in batches on one worker thread that owns ``lm`` (see the module docs).

    Parameters
    ----------
    lm : the :class:`~steerkit.lm.LanguageModel` (used only by the worker thread).
    max_batch : most rows per generation.
    max_queue : most waiting requests; :meth:`submit` raises :class:`QueueFull` beyond.
    max_wait_s : how long the worker waits for more requests before starting a batch (s).

    Attributes
    ----------
    batches : number of generations run.
    largest_batch : most rows in one generation so far.
    running : rows in the generation now running (0 when idle).
    tokenizer_lock : held while the worker decodes; :meth:`encode` takes it too (a fast
        tokenizer must not be used by two threads at once).
    """

    def __init__(self, lm, *, max_batch: int = 16, max_queue: int = 64, max_wait_s: float = 0.005):
        for name, value in (("max_batch", max_batch), ("max_queue", max_queue)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.lm = lm
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.eos_ids = _eos_ids(lm)
        self.batches = self.largest_batch = self.running = 0
        self.tokenizer_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._serve, name="steerkit-engine", daemon=True)
        self._worker.start()

    def encode(self, prompt: str) -> list[int]:
        """Token ids of a formatted ``prompt`` (special tokens as ``generate`` adds them)."""
        with self.tokenizer_lock:
            return self.lm.tokenizer(prompt, add_special_tokens=self.lm.adds_special_tokens)["input_ids"]

    def submit(self, prompt_ids: list[int], emit: Callable[[object], None], *, interventions=None,
               temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None, max_tokens: int = 64,
               stop: Sequence[str] = ()) -> RowRequest:
        """Queue one prompt (token ids, already within the model's context); return its request.

        ``emit`` is called from the worker thread with :class:`Delta`, then :class:`Finished`
        or :class:`Failed`. Sampling arguments as in ``steerkit.lm.generation.generate``
        (ValueError when invalid); ``max_tokens`` new tokens at most; the text ends before the
        first of the ``stop`` strings. Raises :class:`QueueFull` when ``max_queue`` requests wait.
        """
        if self._closed.is_set():
            raise RuntimeError("the engine is closed")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        [sampling] = _row_sampling(1, temperature, top_p, seed)
        text = RowText(self.lm.tokenizer, max_tokens=max_tokens, stop=stop, eos_ids=self.eos_ids)
        request = RowRequest(list(prompt_ids), interventions or None, sampling, text, emit)
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise QueueFull(f"{self._queue.maxsize} requests are already waiting: retry shortly") from None
        return request

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker after the running batch; waiting requests get :class:`Failed`."""
        self._closed.set()
        self._worker.join(timeout)
        while True:
            try:
                self._queue.get_nowait().emit(Failed("the server is shutting down"))
            except queue.Empty:
                return

    # -- worker thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                batch = [self._queue.get(timeout=0.1)]
            except queue.Empty:
                continue
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            batch = [row for row in batch if not row.cancelled.is_set()]
            if batch:
                self._generate(batch)

    def _generate(self, rows: list[RowRequest]) -> None:
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(rows))
        self.running = len(rows)
        try:
            sampler = RowSampler([row.sampling for row in rows])
            with contextlib.ExitStack() as stack:
                if any(row.interventions for row in rows):
                    stack.enter_context(Intervening(self.lm)).set_rows([row.interventions for row in rows])
                with torch.inference_mode():
                    _generate_batch(self.lm, [row.prompt_ids for row in rows], max(row.text.max_tokens for row in rows),
                                    sampler if sampler.samples else None,
                                    stopping_criteria=[RowMonitor(rows, self.tokenizer_lock)], decode=False)
            for row in rows:  # the monitor ends every row; never leave a request waiting for ever
                if not (row.text.done or row.cancelled.is_set()):
                    row.emit(Failed("generation ended before this row finished"))
        except Exception as err:  # one failed batch must not stop the server
            message = " ".join(f"{type(err).__name__}: {err}".split())
            for row in rows:
                if not row.text.done:
                    row.emit(Failed(f"generation failed ({message})"))
        finally:
            self.running = 0
