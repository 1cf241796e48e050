"""Forward hooks that read or change activations at a :class:`~steerkit.lm.sites.Site`.

Reading and steering use the same place, so steering at a site changes exactly what reading
there sees (steering hooks are prepended so they run before any reader on the same module).
:class:`Intervening` installs :mod:`~steerkit.lm.interventions` for all rows of a batch alike
or for each row its own (per-row steering in one batched pass).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from steerkit.lm.interventions import ForwardContext, Intervention, position_mask
from steerkit.lm.sites import Site, as_site

# A site hook gets the activations (B, T, d) and returns replacements (or None to keep).
SiteFn = Callable[[torch.Tensor], "torch.Tensor | None"]


def check_layer(lm, layer: int) -> int:
    """Validate a layer index against ``lm`` (0..L) and return it as an int."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise TypeError(f"layer must be an integer in 0..{lm.n_blocks}, got {layer!r}")
    if not 0 <= layer <= lm.n_blocks:
        raise ValueError(
            f"layer {layer} is out of range for {lm.name} ({lm.n_blocks} blocks): use 0..{lm.n_blocks} "
            "(0 = embedding output, l = output of block l)"
        )
    return int(layer)


def check_site(lm, site) -> Site:
    """``site`` (a :class:`Site` or a layer integer) as a Site whose layer exists in ``lm``."""
    site = as_site(site)
    check_layer(lm, site.layer)
    return site


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output, new):
    return (new, *output[1:]) if isinstance(output, tuple) else new


def add_site_hook(lm, site, fn: SiteFn, *, prepend: bool = False):
    """Install ``fn`` on the activations at ``site`` (or a layer integer); return the handle."""
    site = check_site(lm, site)
    if site.layer == 0:
        def pre_hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            new = fn(hidden)
            if new is None:
                return None
            if args:
                return (new, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": new}

        return lm.blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True, prepend=prepend)

    def hook(module, args, output):
        new = fn(_first(output))
        return None if new is None else _replace_first(output, new)

    return lm.site_module(site).register_forward_hook(hook, prepend=prepend)


def add_residual_hook(lm, layer: int, fn: SiteFn, *, prepend: bool = False):
    """Install ``fn`` on the residual stream at ``layer``; return the removable handle."""
    return add_site_hook(lm, check_layer(lm, layer), fn, prepend=prepend)


@contextlib.contextmanager
def record_activations(lm, sites) -> Iterator[dict]:
    """Record the activations at ``sites`` (Sites or layer integers) for every forward pass
    inside the block.

    Yields ``{site: [tensor (B, T, d), ...]}`` keyed as given, one detached copy per forward
    call (a generation makes one call per new token). Hooks are removed on exit, even after
    an error.
    """
    records: dict = {site if isinstance(site, Site) else int(site): [] for site in sites}
    handles = []
    try:
        for site, store in records.items():
            handles.append(add_site_hook(lm, site, lambda h, store=store: store.append(h.detach().clone())))
        yield records
    finally:
        for handle in handles:
            handle.remove()


def _forward_context(args, kwargs) -> ForwardContext:
    cache = kwargs.get("past_key_values")
    past = 0 if cache is None else int(cache.get_seq_length()) if hasattr(cache, "get_seq_length") else len(cache)
    return ForwardContext(prefill=past == 0, attention_mask=kwargs.get("attention_mask"), past=past)


class Intervening:
    """Context manager applying interventions to the rows of the batches run inside it.

    :meth:`add` installs an intervention for every row; :meth:`set_rows` gives each row of the
    next batches its own list (``None`` = unsteered). A row's list is applied in order at each
    site, so every row is steered exactly as it would be alone. Hooks are removed on exit, also
    when the body raises. The position context (prefill or decode, padding) is read from the
    arguments of ``lm.model.base_model``, so it holds for ``lm.model.generate`` and plain
    forward passes alike.
    """

    def __init__(self, lm):
        self.lm = lm
        self._shared: list[Intervention] = []
        self._groups: list[tuple[list[Intervention], torch.Tensor]] = []  # (interventions, rows (B,) bool)
        self._handles: dict[Site, object] = {}
        self._context_handle = None
        self._context = ForwardContext()
        self.token_mask: torch.Tensor | None = None

    # -- what is applied -------------------------------------------------------------------
    def add(self, intervention: Intervention) -> Intervention:
        """Apply ``intervention`` to every row (after the per-row ones at the same site)."""
        self._shared.append(self._prepared(intervention))
        self._install_sites()
        return intervention

    def remove(self, intervention: Intervention) -> None:
        """Stop applying the shared ``intervention``."""
        self._shared = [other for other in self._shared if other is not intervention]

    def set_rows(self, per_row: Sequence[Sequence[Intervention] | None] | None) -> None:
        """Give row ``i`` of the next batches the interventions ``per_row[i]`` (None: none)."""
        groups: dict[tuple[int, ...], tuple[list[Intervention], list[int]]] = {}
        for row, interventions in enumerate(per_row or []):
            if interventions:
                key = tuple(id(intervention) for intervention in interventions)
                groups.setdefault(key, ([self._prepared(i) for i in interventions], []))[1].append(row)
        self._groups = [(interventions, self._row_mask(len(per_row), rows)) for interventions, rows in groups.values()]
        self._install_sites()

    def _row_mask(self, n: int, rows: list[int]) -> torch.Tensor:
        mask = torch.zeros(n, dtype=torch.bool)
        mask[rows] = True
        return mask.to(self.lm.device)

    def _prepared(self, intervention: Intervention) -> Intervention:
        if not isinstance(intervention, Intervention):
            raise TypeError(f"expected an intervention from steerkit.lm.interventions, got {type(intervention).__name__}")
        check_site(self.lm, intervention.site)
        if intervention.width is not None and intervention.width != self.lm.hidden_size:
            raise ValueError(f"{type(intervention).__name__} has width {intervention.width} but {self.lm.name} has "
                             f"hidden size {self.lm.hidden_size}")
        return intervention.to(device=self.lm.device, dtype=self.lm.dtype)

    def _sites(self) -> set[Site]:
        return {i.site for i in self._shared} | {i.site for group, _ in self._groups for i in group}

    # -- hook plumbing ---------------------------------------------------------------------
    def __enter__(self) -> "Intervening":
        if self._context_handle is not None:
            raise RuntimeError("these interventions are already installed")
        self._context_handle = self.lm.model.base_model.register_forward_pre_hook(self._note_context, with_kwargs=True)
        try:
            self._install_sites()
        except BaseException:  # e.g. a sublayer that cannot be found: leave no hook behind
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles.values():
            handle.remove()
        self._handles.clear()
        if self._context_handle is not None:
            self._context_handle.remove()
            self._context_handle = None

    def _note_context(self, module, args, kwargs):
        self._context = _forward_context(args, kwargs)

    def _install_sites(self) -> None:
        if self._context_handle is None:
            return
        for site in sorted(self._sites() - set(self._handles), key=lambda site: (site.layer, site.component)):
            self._handles[site] = add_site_hook(self.lm, site, lambda h, site=site: self._apply(h, site), prepend=True)

    def _apply(self, hidden: torch.Tensor, site: Site) -> torch.Tensor | None:
        new = hidden
        for interventions, rows in self._groups:
            if len(rows) != hidden.shape[0]:
                raise ValueError(f"per-row interventions were set for {len(rows)} rows but the batch has "
                                 f"{hidden.shape[0]}: call set_rows with one entry per row")
            for intervention in interventions:
                if intervention.site == site:
                    mask = self._mask(intervention, new)
                    mask = rows.unsqueeze(1).expand(new.shape[:2]) if mask is None else mask & rows.unsqueeze(1)
                    new = intervention(new, mask)
        for intervention in self._shared:
            if intervention.site == site:
                new = intervention(new, self._mask(intervention, new))
        return None if new is hidden else new

    def _mask(self, intervention: Intervention, hidden: torch.Tensor) -> torch.Tensor | None:
        positions = intervention.positions if self.token_mask is None else self.token_mask
        return position_mask(positions, self._context, hidden)


@contextlib.contextmanager
def intervene(lm, interventions: Sequence[Intervention] = (), *, per_row=None) -> Iterator[Intervening]:
    """Apply ``interventions`` to every row, and ``per_row[i]`` (a list, or None) to row ``i``
    of every batch run inside the block (a plain forward pass, teacher-forced scoring).

    Example
    -------
    >>> with intervene(lm, per_row=[None, [AddVector(v, site=Site(12, "mlp"))]]):
    ...     logits = lm.model(input_ids, attention_mask=mask).logits   # row 0 unsteered
    """
    with Intervening(lm) as installed:
        for intervention in interventions:
            installed.add(intervention)
        if per_row is not None:
            installed.set_rows(per_row)
        yield installed
