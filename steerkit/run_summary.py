"""The typed record of one finished run: what ``summary.json``, the command line and the HTML
report read.

Plain data only (no model, no fitted estimator): :func:`steerkit.workflow.run_concept` builds
it, :meth:`RunSummary.save` writes it into the run folder and :meth:`RunSummary.load` reads it
back from there, so a report can be drawn again later without a model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from steerkit._io import write_json, write_text
from steerkit.run_settings import RunSettings

HELD_OUT_COLUMNS = ("utility", "concept", "coherence")


@dataclass
class RunSummary:
    """Everything one run of one concept found, as plain data.

    Attributes
    ----------
    concept, description : the concept's name and its one-sentence description.
    model, dtype : the model's name and its dtype without the ``torch.`` prefix.
    settings : the run's :class:`~steerkit.run_settings.RunSettings`.
    filter : the judge filter's counts: ``contrasts``, ``kept`` (and ``fallback`` when all were kept).
    recommendation : GRACE's recommendation: ``construction``, ``search_space``, ``layers``,
        ``n_trials``, ``pilot``, ``reasons``.
    statistics : the geometry summary statistics (scalars over the summary layers).
    best : the search's winner: ``layer``, ``coefficient``, ``construction``, ``search_utility``
        (0–100), ``trials_to_95``.
    held_out : DataFrame, one row per contender (``unsteered``, ``prompting``, ``steered``) with
        ``utility``, ``concept``, ``coherence`` (0–100, NaN when unscored).
    answers : DataFrame of the held-out answers: ``question`` and one column per contender.
    trials : DataFrame of the search's trials in order (``search.history_``): the parameters,
        ``score``, ``best_so_far``, ``cached``, ``state``, ``seconds``.
    figures : PNG bytes of the diagnostic plots, by their path relative to the run folder, in
        the order the report shows them.
    n_search_questions, n_held_out : how many evaluation questions the search and the
        held-out comparison used.
    gguf : the llama.cpp control vector's path, or why there is none.
    timings_s : seconds per stage, by stage name.
    """

    concept: str
    description: str
    model: str
    dtype: str
    settings: RunSettings
    filter: dict
    recommendation: dict
    statistics: dict
    best: dict
    held_out: pd.DataFrame
    answers: pd.DataFrame
    trials: pd.DataFrame
    figures: dict[str, bytes]
    n_search_questions: int
    n_held_out: int
    gguf: str
    timings_s: dict

    def to_dict(self) -> dict:
        """The content of ``summary.json``: every field but the tables and figures, which it
        names (``figures``: their paths in the run folder) and which are saved beside it."""
        return {
            "concept": self.concept, "description": self.description, "model": self.model, "dtype": self.dtype,
            "settings": asdict(self.settings), "filter": self.filter, "recommendation": self.recommendation,
            "statistics": self.statistics, "best": self.best,
            "held_out": self.held_out.loc[:, list(HELD_OUT_COLUMNS)].to_dict(orient="index"),
            "n_search_questions": self.n_search_questions, "n_held_out": self.n_held_out,
            "gguf": self.gguf, "timings_s": self.timings_s, "figures": list(self.figures),
        }

    def save(self, folder) -> None:
        """Write ``summary.json``, ``trials.csv`` and ``held_out_answers.csv`` into ``folder``
        (the figures are the diagnostic plots already there)."""
        folder = Path(folder)
        write_text(folder / "trials.csv", self.trials.to_csv(index=False))
        write_text(folder / "held_out_answers.csv", self.answers.to_csv(index=False))
        write_json(folder / "summary.json", self.to_dict())

    @classmethod
    def load(cls, folder) -> RunSummary:
        """The summary of the finished run in ``folder`` (``OUT/<concept>``), read from
        ``summary.json``, the two CSV tables and the diagnostic plots; no model needed.

        Raises FileNotFoundError naming the missing file when the run did not finish.
        """
        folder = Path(folder)
        data = json.loads((folder / "summary.json").read_text())
        held_out = pd.DataFrame.from_dict(data["held_out"], orient="index", dtype=float)
        return cls(
            concept=data["concept"], description=data["description"], model=data["model"], dtype=data["dtype"],
            settings=RunSettings(**data["settings"]), filter=data["filter"],
            recommendation=data["recommendation"], statistics=data["statistics"], best=data["best"],
            held_out=held_out,
            answers=pd.read_csv(folder / "held_out_answers.csv", dtype=object, keep_default_na=False),
            trials=pd.read_csv(folder / "trials.csv"),
            figures={name: (folder / name).read_bytes() for name in data["figures"]},
            n_search_questions=data["n_search_questions"], n_held_out=data["n_held_out"],
            gguf=data["gguf"], timings_s=data["timings_s"],
        )
