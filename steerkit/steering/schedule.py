"""``SteeringSchedule``: switch which interventions steer each row during ONE generation (the
seed's "orchestrator": sequential switching between domain vectors).

A schedule is a list of :class:`Phase` s. Every row starts in phase 0; a phase's ``until``
condition moves the row to the next phase, the last phase lasts to the end. Conditions look
only at what the row produced *in its current phase*:

- :class:`AfterTokens` ``(n)``: the phase has produced ``n`` tokens;
- :class:`TextMatches` ``(pattern)``: the text the phase produced matches a regular expression;
- :class:`ProjectionCrosses` ``(direction, site, threshold)``: a monitor, the projection of the
  newest position's activation at ``site`` on the unit ``direction``, reached the threshold
  (the monitor reads the stream after the steering at that site).

Timing: generation makes one forward pass per token (pass 0 is the prompt, pass ``p`` feeds
answer token ``p - 1`` and predicts token ``p``). Before every pass each row's condition is
checked on the tokens fed so far and the monitor readings of the previous pass; a met
condition switches that row's interventions for this pass onwards. So a phase with
``AfterTokens(n)`` predicts exactly ``n`` answer tokens. Rows switch independently, through the
per-row interventions of :class:`~steerkit.lm.hooks.Intervening`: each row's answer equals the
one it gets generated alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from steerkit._values import check_finite
from steerkit.lm.generation import _generate_batch, check_context, length_sorted_batches
from steerkit.lm.hooks import Intervening, add_site_hook, check_site
from steerkit.lm.interventions import Intervention, _unit
from steerkit.lm.sites import Site, as_site


@dataclass(frozen=True)
class AfterTokens:
    """Met once the current phase has produced ``n`` (>= 1) answer tokens."""

    n: int

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise ValueError(f"AfterTokens needs an integer n >= 1, got {self.n!r}")


@dataclass(frozen=True)
class TextMatches:
    """Met once the text the current phase produced matches ``pattern`` (``re.search``; case is
    ignored unless ``case_sensitive``)."""

    pattern: str
    case_sensitive: bool = False

    def __post_init__(self):
        if not isinstance(self.pattern, str) or not self.pattern:
            raise ValueError(f"TextMatches needs a non-empty regular expression, got {self.pattern!r}")
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise ValueError(f"TextMatches pattern {self.pattern!r} is not a regular expression ({error})") from None

    @property
    def regex(self) -> re.Pattern:
        return re.compile(self.pattern, 0 if self.case_sensitive else re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class ProjectionCrosses:
    """A monitor: met once ``h · u >= threshold`` (``above``) or ``h · u <= threshold`` (not
    ``above``), where ``h`` (activation units) is the activation at ``site`` (a Site or layer) of
    the position a pass of the current phase fed, and ``u`` the unit ``direction`` (d,)."""

    direction: np.ndarray
    site: Site | int
    threshold: float
    above: bool = True

    def __post_init__(self):
        object.__setattr__(self, "direction", _unit(self.direction, "monitor direction").numpy())
        object.__setattr__(self, "site", as_site(self.site))
        threshold = check_finite(np.asarray(self.threshold, dtype=float), "monitor threshold", "pass a finite number")
        object.__setattr__(self, "threshold", float(threshold))

    def met(self, projection: float) -> bool:
        return projection >= self.threshold if self.above else projection <= self.threshold


CONDITIONS = (AfterTokens, TextMatches, ProjectionCrosses)


@dataclass(frozen=True, eq=False)
class Phase:
    """Apply ``interventions`` (empty: unsteered) until ``until`` (a condition; None: to the end)."""

    interventions: tuple[Intervention, ...] = ()
    until: AfterTokens | TextMatches | ProjectionCrosses | None = None
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "interventions", tuple(self.interventions))
        for intervention in self.interventions:
            if not isinstance(intervention, Intervention):
                raise TypeError(f"phase {self.name!r}: expected interventions from steerkit.lm.interventions, "
                                f"got {type(intervention).__name__}")
        if self.until is not None and not isinstance(self.until, CONDITIONS):
            raise TypeError(f"phase {self.name!r}: until must be one of {[c.__name__ for c in CONDITIONS]} or None, "
                            f"got {type(self.until).__name__}")


class SteeringSchedule:
    """Phases applied in order during one generation; every phase but the last needs ``until``.

    Example
    -------
    >>> schedule = SteeringSchedule([
    ...     Phase([AddVector(code, site=12, coefficient=4)], until=AfterTokens(20), name="code"),
    ...     Phase([AddVector(bug, site=12, coefficient=4)], until=TextMatches(r"\\bfix"), name="bug"),
    ...     Phase([], name="free"),
    ... ])
    >>> answers = generate_scheduled(lm, prompts, schedule, max_new_tokens=64)
    """

    def __init__(self, phases):
        self.phases = list(phases)
        if not self.phases:
            raise ValueError("a SteeringSchedule needs at least one phase")
        for index, phase in enumerate(self.phases):
            if not isinstance(phase, Phase):
                raise TypeError(f"phase {index} must be a Phase, got {type(phase).__name__}")
            last = index == len(self.phases) - 1
            if phase.until is None and not last:
                raise ValueError(f"phase {index} ({phase.name!r}) has no until condition but is not the last "
                                 "phase: give it one, or drop the phases after it")
            if phase.until is not None and last:
                raise ValueError(f"the last phase ({phase.name!r}) has an until condition but no phase follows: "
                                 "remove it, or add a phase after it")

    def __repr__(self) -> str:
        return f"SteeringSchedule({[phase.name or i for i, phase in enumerate(self.phases)]})"

    @property
    def monitors(self) -> list[ProjectionCrosses]:
        """The monitor conditions of the phases, in phase order."""
        return [phase.until for phase in self.phases if isinstance(phase.until, ProjectionCrosses)]


class _PhaseTracker:
    """Per-row phase bookkeeping for one left-padded batch (see the module docs for the timing).

    ``phase`` (B,) is each row's phase, ``start`` (B,) the pass at which it began, ``switches[i]``
    the passes at which row ``i`` entered phases 1, 2, ...; rows stop moving after an EOS token.
    """

    def __init__(self, lm, schedule: SteeringSchedule, installed: Intervening, n_rows: int):
        self.lm, self.schedule, self.installed = lm, schedule, installed
        self.phase = np.zeros(n_rows, dtype=int)
        self.start = np.zeros(n_rows, dtype=int)
        self.switches: list[list[int]] = [[] for _ in range(n_rows)]
        self.tokens: torch.Tensor | None = None  # (B, passes so far - 1): the answer tokens fed
        self.readings: dict[int, torch.Tensor] = {}  # id(monitor) -> (B,) projections of the last pass
        eos = lm.model.generation_config.eos_token_id
        eos = lm.tokenizer.eos_token_id if eos is None else eos
        self.eos = torch.tensor(eos if isinstance(eos, (list, tuple)) else [eos])

    def install(self) -> list:
        """Hook the tracker into the model; returns the removable handles."""
        handles = [self.lm.model.base_model.register_forward_pre_hook(self._before_pass, with_kwargs=True)]
        for monitor in self.schedule.monitors:
            handles.append(add_site_hook(self.lm, monitor.site, lambda h, m=monitor: self._read(h, m)))
        return handles

    def _read(self, hidden: torch.Tensor, monitor: ProjectionCrosses) -> None:
        direction = torch.as_tensor(monitor.direction, device=hidden.device)
        self.readings[id(monitor)] = (hidden[:, -1].float() @ direction).cpu()

    def _before_pass(self, module, args, kwargs):
        fed = kwargs.get("input_ids", args[0] if args else None)
        if self.tokens is None:
            self.tokens = fed.new_empty((fed.shape[0], 0)).cpu()
        else:
            self.tokens = torch.cat([self.tokens, fed.cpu()], dim=1)
            self._advance()
        self.installed.set_rows([self.schedule.phases[p].interventions for p in self.phase])

    def _advance(self) -> None:
        passes = self.tokens.shape[1]  # the coming pass's index = answer tokens fed so far
        finished = torch.isin(self.tokens, self.eos).any(dim=1)
        for row, phase in enumerate(self.schedule.phases[p] for p in self.phase):
            if phase.until is not None and not finished[row] and self._met(phase.until, row, passes):
                self.phase[row] += 1
                self.start[row] = passes
                self.switches[row].append(passes)

    def _met(self, condition, row: int, passes: int) -> bool:
        produced = self.tokens[row, self.start[row]:]
        if isinstance(condition, AfterTokens):
            return len(produced) >= condition.n
        if isinstance(condition, TextMatches):
            text = self.lm.tokenizer.decode(produced, skip_special_tokens=True)
            return condition.regex.search(text) is not None
        return passes - 1 >= self.start[row] and condition.met(float(self.readings[id(condition)][row]))


@torch.inference_mode()
def generate_scheduled(lm, prompts: list[str], schedule: SteeringSchedule, *, max_new_tokens: int = 64,
                       batch_size: int = 16, progress: bool = False, return_switches: bool = False):
    """Greedy answers to formatted ``prompts`` with each row steered by ``schedule``.

    Batching, padding and the context check are those of :func:`steerkit.lm.generation.generate`;
    each answer equals the one its prompt gets alone. With ``return_switches`` also returns,
    per prompt, the answer-token indices at which it entered phases 1, 2, ... (a switch at
    ``k`` means tokens ``k, k+1, ...`` were predicted under the new phase).
    """
    if not isinstance(schedule, SteeringSchedule):
        raise TypeError(f"schedule must be a SteeringSchedule, got {type(schedule).__name__}")
    for monitor in schedule.monitors:
        check_site(lm, monitor.site)
        if monitor.direction.shape[0] != lm.hidden_size:
            raise ValueError(f"a monitor direction has {monitor.direction.shape[0]} values but {lm.name} has "
                             f"hidden size {lm.hidden_size}")
    encoded = [lm.tokenizer(p, add_special_tokens=lm.adds_special_tokens)["input_ids"] for p in prompts]
    check_context(lm, [len(e) for e in encoded], [f"prompt {p[:60]!r}" for p in prompts], max_new_tokens=max_new_tokens)
    answers, switches = [""] * len(prompts), [[] for _ in prompts]
    with Intervening(lm) as installed:
        for batch in tqdm(length_sorted_batches([len(e) for e in encoded], batch_size), desc="generating",
                          disable=not progress, unit="batch"):
            tracker = _PhaseTracker(lm, schedule, installed, len(batch))
            handles = tracker.install()
            try:
                batch_answers = _generate_batch(lm, [encoded[i] for i in batch], max_new_tokens)
            finally:
                for handle in handles:
                    handle.remove()
            for row, i in enumerate(batch):
                answers[i], switches[i] = batch_answers[row], tracker.switches[row]
    return (answers, switches) if return_switches else answers
