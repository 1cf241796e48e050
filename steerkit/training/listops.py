"""ListOps (Nangia & Bowman 2018; Long Range Arena), the task of seed 002: nested list operations on digits.

An expression is a sequence of space-separated symbols (its *tokens*): a list opens with an
operator, holds digits 0–9 or nested lists, and closes with ``]``::

    [MAX 2 9 [MIN 4 7 ] 0 ]        →  MIN(4, 7) = 4;  MAX(2, 9, 4, 0) = 9

The operators, with the rules of LRA's reference generator
(google-research/long-range-arena, ``lra_benchmarks/data/listops.py``):

- ``[MAX`` and ``[MIN``: the largest and the smallest item;
- ``[MED``: the median, ``int(np.median(items))`` in LRA; for an even count this is the mean of
  the two middle items rounded down (``[MED 3 8 ]`` → 5.5 → 5);
- ``[SM``: the sum modulo 10.

Every value is therefore one digit. The generator follows LRA's: a list has 2 to ``max_args``
arguments (uniform), each argument is a nested list with probability 0.25 while the depth
allows it, else a uniform digit, and the operator is uniform; a whole expression longer than
``max_length`` tokens is drawn again. Depth counts nested lists (``[MAX 1 2 ]`` has depth 1),
so LRA's ``max_depth = D`` (which counts the digit level and lets the root be a bare digit,
later removed by its minimum length) is ``max_depth = D - 1`` here, with the root always a list.
"""

from __future__ import annotations

import numbers
import random
import re
from dataclasses import dataclass
from typing import NamedTuple, Sequence


def _median(items: list[int]) -> int:
    ordered = sorted(items)
    return (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) // 2


def _sum_mod_10(items: list[int]) -> int:
    return sum(items) % 10


_OPERATIONS = {"[MAX": max, "[MIN": min, "[MED": _median, "[SM": _sum_mod_10}
OPERATORS = tuple(_OPERATIONS)
"""The opening symbols of a list: ``[MAX``, ``[MIN``, ``[MED``, ``[SM``."""
CLOSE = "]"
DIGITS = tuple(str(d) for d in range(10))
_LIST_PROBABILITY = 0.25  # LRA's VALUE_P: chance that an argument (above the depth limit) is a nested list
_MIN_LIST_TOKENS = 4  # the shortest list, e.g. "[MAX 1 2 ]"
_MAX_DUPLICATE_RUN = 10_000  # draws in a row that give no new expression before giving up

LISTOPS_INSTRUCTION = (
    "Evaluate the ListOps expression. Each list starts with an operator and ends with ]; inner "
    "lists are evaluated first. [MAX is the largest item, [MIN the smallest, [MED the median (for an "
    "even number of items, the mean of the two middle items rounded down) and [SM the sum of the "
    "items modulo 10. Answer with a single digit."
)
"""The instruction that opens every :func:`listops_prompt`."""

_STANDALONE_DIGIT = re.compile(r"(?<!\w)(?<!\d\.)[0-9](?!\w)(?!\.\d)")


class ListOpsExample(NamedTuple):
    """One expression and its value, a digit 0–9; unpacks as ``(expression, answer)``."""

    expression: str
    answer: int


@dataclass(frozen=True)
class ListOpsSplits:
    """Train, validation and test examples; no expression occurs twice across the three."""

    train: list[ListOpsExample]
    validation: list[ListOpsExample]
    test: list[ListOpsExample]


def evaluate_listops(expression: str) -> int:
    """The value (0–9) of a ListOps expression: its space-separated symbols parsed with a stack.

    A bare digit is an expression too. Raises ValueError naming the 1-based token position for an
    empty expression, an unknown symbol, a list without arguments, a ``]`` that closes nothing, a
    list never closed, or a symbol after the complete expression.
    """
    tokens = expression.split()
    if not tokens:
        raise ValueError("ListOps expression is empty; give space-separated symbols such as '[MAX 2 9 ]'")
    open_lists: list[tuple[int, str, list[int]]] = []  # (opening position, operator, item values so far)
    value = None
    for position, token in enumerate(tokens, start=1):
        if value is not None and not open_lists:
            raise ValueError(f"ListOps expression: token {position} ({token!r}) follows the complete expression; "
                             f"put all items inside one outer list")
        if token in _OPERATIONS:
            open_lists.append((position, token, []))
            continue
        if token == CLOSE:
            if not open_lists:
                raise ValueError(f"ListOps expression: token {position} (']') closes no open list; remove it")
            _, operator, items = open_lists.pop()
            if not items:
                raise ValueError(f"ListOps expression: token {position} (']') closes an {operator} list with no items; "
                                 f"give it at least one digit or list")
            value = _OPERATIONS[operator](items)
        elif token in DIGITS:
            value = int(token)
        else:
            raise ValueError(f"ListOps expression: token {position} ({token!r}) is not a digit 0-9, ']' or one of "
                             f"{', '.join(OPERATORS)}; separate symbols by spaces")
        if open_lists:
            open_lists[-1][2].append(value)
    if open_lists:
        position, operator, _ = open_lists[-1]
        raise ValueError(f"ListOps expression: the {operator} list opened at token {position} is never closed; "
                         f"add ']' after its items")
    return value


def _check_limits(max_depth: int, max_args: int, max_length: int) -> None:
    if max_depth < 1:
        raise ValueError(f"max_depth={max_depth} allows no list; give max_depth >= 1")
    if max_args < 2:
        raise ValueError(f"max_args={max_args}: a ListOps list has at least 2 items; give max_args >= 2")
    if max_length < _MIN_LIST_TOKENS:
        raise ValueError(f"max_length={max_length} tokens is shorter than the shortest expression '[MAX 1 2 ]'; "
                         f"give max_length >= {_MIN_LIST_TOKENS}")


def _extend_with_list(tokens: list[str], rng: random.Random, depth: int,
                      max_depth: int, max_args: int, max_length: int) -> bool:
    """Append a random list at nesting ``depth`` (1 = outermost) to ``tokens``.

    Returns False, leaving the list unfinished, as soon as ``tokens`` would exceed
    ``max_length`` (the whole expression is then drawn again).
    """
    tokens.append(rng.choice(OPERATORS))
    for _ in range(rng.randint(2, max_args)):
        if depth < max_depth and rng.random() < _LIST_PROBABILITY:
            if not _extend_with_list(tokens, rng, depth + 1, max_depth, max_args, max_length):
                return False
        else:
            tokens.append(rng.choice(DIGITS))
        if len(tokens) + depth > max_length:  # no room left for the ']' of every open list
            return False
    tokens.append(CLOSE)
    return True


def random_listops_expression(rng: random.Random, *, max_depth: int = 3, max_args: int = 5,
                              max_length: int = 40) -> str:
    """One random expression: lists nested at most ``max_depth`` deep, each with 2 to ``max_args``
    items, at most ``max_length`` tokens in all (see the module docstring for the distribution)."""
    _check_limits(max_depth, max_args, max_length)
    while True:
        tokens: list[str] = []
        if _extend_with_list(tokens, rng, 1, max_depth, max_args, max_length):
            return " ".join(tokens)


def generate_listops(n: int, *, seed: int, max_depth: int = 3, max_args: int = 5,
                     max_length: int = 40) -> list[ListOpsExample]:
    """``n`` distinct random examples (expression and value), the same for the same seed and limits.

    The defaults suit a small chat model (expressions of up to 40 tokens); LRA's long-range task
    used ``max_depth=9, max_args=10, max_length=2000`` in this module's terms. Raises ValueError
    when the limits admit too few distinct expressions for ``n``.
    """
    _check_limits(max_depth, max_args, max_length)
    rng = random.Random(seed)
    examples: dict[str, ListOpsExample] = {}
    duplicate_run = 0
    while len(examples) < n:
        expression = random_listops_expression(rng, max_depth=max_depth, max_args=max_args, max_length=max_length)
        if expression in examples:
            duplicate_run += 1
            if duplicate_run >= _MAX_DUPLICATE_RUN:
                raise ValueError(f"found only {len(examples)} distinct ListOps expressions of the {n} asked for "
                                 f"(max_depth={max_depth}, max_args={max_args}, max_length={max_length}); "
                                 f"raise these limits or ask for fewer examples")
            continue
        duplicate_run = 0
        examples[expression] = ListOpsExample(expression, evaluate_listops(expression))
    return list(examples.values())


def listops_splits(n_train: int, n_validation: int, n_test: int, *, seed: int, max_depth: int = 3,
                   max_args: int = 5, max_length: int = 40) -> ListOpsSplits:
    """Train/validation/test examples from one stream of distinct expressions (:func:`generate_listops`).

    The test examples are drawn first, then validation, then train, so for a seed and limits the
    test and validation sets do not change when only ``n_train`` does.
    """
    examples = generate_listops(n_test + n_validation + n_train, seed=seed, max_depth=max_depth,
                                max_args=max_args, max_length=max_length)
    return ListOpsSplits(train=examples[n_test + n_validation:], validation=examples[n_test:n_test + n_validation],
                         test=examples[:n_test])


def _check_digit(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= 9:
        raise ValueError(f"{name} must be an integer digit 0-9, got {value!r}")
    return int(value)


def listops_completion(answer: int) -> str:
    """The target completion for training: the answer digit alone (``9`` → ``"9"``)."""
    return str(_check_digit(answer, "ListOps answer"))


def listops_prompt(expression: str, shots: Sequence[tuple[str, int]] = ()) -> str:
    """The user message asking a chat model for the value of ``expression``.

    :data:`LISTOPS_INSTRUCTION`, then one ``"Expression: …\\nAnswer: d"`` block per shot
    (``(expression, answer)`` pairs or :class:`ListOpsExample`), then ``"Expression: …"``; blocks
    are separated by blank lines. A malformed expression (:func:`evaluate_listops`) or a shot whose
    answer is not its expression's value is a ValueError.
    """
    evaluate_listops(expression)
    blocks = [LISTOPS_INSTRUCTION]
    for index, (shot, answer) in enumerate(shots):
        value = evaluate_listops(shot)
        if _check_digit(answer, f"shots[{index}] answer") != value:
            raise ValueError(f"shots[{index}]: answer {answer} is wrong for {shot!r}, whose value is {value}")
        blocks.append(f"Expression: {shot}\nAnswer: {listops_completion(answer)}")
    blocks.append(f"Expression: {expression}")
    return "\n\n".join(blocks)


def parse_listops_answer(text: str) -> int | None:
    """The last standalone digit 0–9 in a model's answer, or None if there is none.

    Standalone: not part of a longer number, a decimal or a word, i.e. no letter, digit or
    underscore right before or after it, and no ``digit.`` before or ``.digit`` after it
    (``"The answer is 7."`` → 7, ``"7 or 8"`` → 8, ``"12"``, ``"4.5"`` and ``"5th"`` → None).
    """
    digits = _STANDALONE_DIGIT.findall(text)
    return int(digits[-1]) if digits else None


def listops_accuracy(answers: list[str], targets: list[int]) -> float:
    """Exact-match accuracy: the fraction of answers whose :func:`parse_listops_answer` is the target."""
    if len(answers) != len(targets):
        raise ValueError(f"listops_accuracy got {len(answers)} answers but {len(targets)} targets; give one target per answer")
    if not answers:
        raise ValueError("listops_accuracy got no answers; give at least one")
    targets = [_check_digit(t, f"targets[{i}]") for i, t in enumerate(targets)]
    return sum(parse_listops_answer(a) == t for a, t in zip(answers, targets)) / len(answers)
