"""Token-level activation streams: per-token activations at one site, on disk in shards.

:func:`write_activation_stream` runs a corpus through the model and writes the activations of
every real token (padding never; special tokens only with ``special_tokens=True``) to
``folder/shard_00000.safetensors``, ``shard_00001`` ... Each shard holds exactly
``shard_tokens`` rows (the last one fewer): ``activations (n, d)`` float32 (or bfloat16) and
``token_ids (n,)`` int64. At most one shard's rows plus one batch of texts are held in memory.
After every shard ``manifest.json`` is rewritten atomically with where the next shard starts
(text index and token offset), so re-running the same call after an interruption skips the
finished shards and writes the same remaining shards as an uninterrupted run.

:class:`TokenStream` reads such a folder: ``len`` (tokens), ``d``, and shuffled batches.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from steerkit._io import atomic_path, read_safetensors, write_json
from steerkit.lm.generation import generate, right_padded
from steerkit.lm.hooks import check_site, record_activations
from steerkit.lm.sites import Site

MANIFEST = "manifest.json"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def corpus_from_concepts(lm, concepts, *, n_sampled: int = 64, max_new_tokens: int = 64, seed: int = 0,
                         progress: bool = True) -> list[str]:
    """An offline corpus: every question of ``concepts`` (Concept objects) as plain text, then
    ``n_sampled`` chat transcripts (question prompt + the model's own sampled answer, temperature
    1, seeded) cycling over those questions."""
    questions = [q for concept in concepts for q in (*concept.extraction_questions, *concept.evaluation_questions)]
    if not questions:
        raise ValueError("corpus_from_concepts got no questions: pass concepts with extraction or evaluation questions")
    prompts = [lm.chat_prompt(questions[i % len(questions)]) for i in range(n_sampled)]
    answers = generate(lm, prompts, max_new_tokens=max_new_tokens, temperature=1.0, seed=seed, progress=progress,
                       desc="sampling corpus") if prompts else []
    return questions + [prompt + answer for prompt, answer in zip(prompts, answers)]


def read_texts(path: str | os.PathLike) -> list[str]:
    """The non-empty lines of a UTF-8 text file, one text per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: pass a UTF-8 text file with one text per line")
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _corpus_digest(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def write_activation_stream(lm, site, texts, folder: str | os.PathLike, *, shard_tokens: int = 65536,
                            batch_size: int = 8, max_length: int = 512, dtype: str = "float32",
                            special_tokens: bool = False, progress: bool = True) -> "TokenStream":
    """Write the per-token activations of ``texts`` at ``site`` to ``folder`` (see the module docs).

    Parameters
    ----------
    lm : LanguageModel
    site : Site or int (a residual layer)
    texts : list of str, or a path to a text file (one text per line)
    shard_tokens : rows per shard.
    batch_size : texts per forward pass.
    max_length : tokens per text at most (longer texts are truncated).
    dtype : "float32" or "bfloat16", the stored activation type.
    special_tokens : keep the rows of the tokenizer's special tokens (BOS, chat markers).

    Returns
    -------
    TokenStream over the finished folder.
    """
    site = check_site(lm, site)
    if not isinstance(texts, (list, tuple)):
        texts = read_texts(texts)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if shard_tokens < 1 or batch_size < 1 or max_length < 1:
        raise ValueError("shard_tokens, batch_size and max_length must be positive integers")
    folder = Path(folder)
    settings = {"model_name": lm.name, "site": str(site), "layer": site.layer, "component": site.component,
                "d": lm.hidden_size, "dtype": dtype, "shard_tokens": shard_tokens, "max_length": max_length,
                "special_tokens": special_tokens, "n_texts": len(texts), "corpus_sha256": _corpus_digest(texts)}
    manifest = _resumed_manifest(folder, settings)
    special = torch.tensor(sorted(lm.tokenizer.all_special_ids)) if not special_tokens else torch.tensor([], dtype=torch.long)
    pieces, buffered = [], 0
    bar = tqdm(total=len(texts), initial=manifest["next_text"], desc=f"activations at {site}",
               disable=not progress, unit="text")
    start, offset = manifest["next_text"], manifest["next_offset"]
    for first in range(start, len(texts), batch_size):
        for index, (acts, ids) in enumerate(_token_rows(lm, site, texts[first:first + batch_size], max_length, special),
                                            start=first):
            if index == start:
                acts, ids = acts[offset:], ids[offset:]
                text_offset = offset
            else:
                text_offset = 0
            pieces.append((index, text_offset, acts.to(_DTYPES[dtype]), ids))
            buffered += len(ids)
            while buffered >= shard_tokens:
                pieces, buffered = _write_shard(folder, manifest, pieces, shard_tokens)
        bar.update(min(batch_size, len(texts) - first))
    bar.close()
    if buffered:
        _write_shard(folder, manifest, pieces, buffered, last=True)
    manifest.update(next_text=len(texts), next_offset=0, complete=True)
    write_json(folder / MANIFEST, manifest)
    return TokenStream(folder)


def _resumed_manifest(folder: Path, settings: dict) -> dict:
    """The manifest to continue from: the existing one when its settings match, else a new one."""
    path = folder / MANIFEST
    if path.is_file():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        changed = [key for key, value in settings.items() if manifest.get("settings", {}).get(key) != value]
        if changed:
            raise ValueError(f"{path} was written for other settings ({', '.join(changed)} differ): "
                             "pass another folder or delete this one")
        return manifest
    return {"settings": settings, "shards": [], "next_text": 0, "next_offset": 0, "complete": False}


def _token_rows(lm, site: Site, texts: list[str], max_length: int, special: torch.Tensor):
    """For each text: the activations ``(n, d)`` float32 and ids ``(n,)`` of its kept tokens (real,
    and not in ``special``); token offsets in the manifest count these kept rows."""
    encoded = [lm.tokenizer(text, add_special_tokens=lm.adds_special_tokens, truncation=True,
                            max_length=max_length)["input_ids"] for text in texts]
    encoded = [ids if ids else [lm.tokenizer.eos_token_id] for ids in encoded]
    input_ids, attention = right_padded(encoded, lm.tokenizer.pad_token_id)
    with torch.inference_mode(), record_activations(lm, [site]) as records:
        lm.model(input_ids=input_ids.to(lm.device), attention_mask=attention.to(lm.device), use_cache=False)
    hidden = records[site][0].float().cpu()
    for row, ids in enumerate(encoded):
        ids = torch.tensor(ids, dtype=torch.long)
        keep = ~torch.isin(ids, special)
        yield hidden[row, : len(ids)][keep], ids[keep]


def _write_shard(folder: Path, manifest: dict, pieces: list, n: int, *, last: bool = False) -> tuple[list, int]:
    """Write the first ``n`` buffered rows as the next shard; return the remaining pieces and rows."""
    from safetensors.torch import save_file

    taken, rest, need = [], [], n
    for index, offset, acts, ids in pieces:
        if need >= len(ids):
            taken.append((acts, ids))
            need -= len(ids)
        elif need > 0:
            taken.append((acts[:need], ids[:need]))
            rest.append((index, offset + need, acts[need:], ids[need:]))
            need = 0
        else:
            rest.append((index, offset, acts, ids))
    name = f"shard_{len(manifest['shards']):05d}.safetensors"
    with atomic_path(folder / name) as tmp:
        save_file({"activations": torch.cat([a for a, _ in taken]).contiguous(),
                   "token_ids": torch.cat([i for _, i in taken]).contiguous()}, str(tmp))
    manifest["shards"].append({"file": name, "n_tokens": n})
    if not last:
        # the next shard starts at the first remaining piece, or after the last text read so far
        index, offset = (rest[0][0], rest[0][1]) if rest else (pieces[-1][0] + 1, 0)
        manifest.update(next_text=index, next_offset=offset)
        write_json(folder / MANIFEST, manifest)
    return rest, sum(len(ids) for *_, ids in rest)


class TokenStream:
    """The shards of a finished :func:`write_activation_stream` folder.

    ``len(stream)`` is the number of tokens, ``stream.d`` the activation width, ``stream.site`` and
    ``stream.model_name`` where they came from. :meth:`batches` yields shuffled float32 batches.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: pass a folder written by write_activation_stream")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not manifest.get("complete"):
            raise ValueError(f"{path} belongs to an unfinished stream: re-run write_activation_stream to complete it")
        settings = manifest["settings"]
        self.shards = [(self.folder / shard["file"], shard["n_tokens"]) for shard in manifest["shards"]]
        self.d = settings["d"]
        self.site = Site(settings["layer"], settings["component"])
        self.model_name = settings["model_name"]

    def __len__(self) -> int:
        return sum(n for _, n in self.shards)

    def __repr__(self) -> str:
        return f"TokenStream({str(self.folder)!r}, tokens={len(self)}, d={self.d}, site={self.site})"

    def read_shard(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Shard ``index``'s activations ``(n, d)`` float32 and token ids ``(n,)`` int64."""
        path = self.shards[index][0]
        tensors, _ = read_safetensors(path, "re-run write_activation_stream into a fresh folder")
        return tensors["activations"], tensors["token_ids"]

    def batches(self, batch_size: int, *, seed: int = 0, shards_at_once: int = 4):
        """One epoch of float32 batches ``(b, d)``: shards in a seeded random order, read
        ``shards_at_once`` at a time, their rows shuffled together; every token exactly once."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.shards))
        leftover = np.zeros((0, self.d), np.float32)
        for first in range(0, len(order), shards_at_once):
            rows = np.concatenate([leftover] + [self.read_shard(i)[0] for i in order[first:first + shards_at_once]])
            rows = rows[rng.permutation(len(rows))]
            n_full = len(rows) // batch_size * batch_size
            for start in range(0, n_full, batch_size):
                yield rows[start:start + batch_size]
            leftover = rows[n_full:]
        if len(leftover):
            yield leftover
