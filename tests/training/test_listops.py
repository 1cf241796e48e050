import collections

import numpy as np
import pytest

from steerkit.training.listops import (
    ListOpsExample,
    evaluate_listops,
    generate_listops,
    listops_accuracy,
    listops_completion,
    listops_prompt,
    listops_splits,
    parse_listops_answer,
)

HAND_WORKED = [
    ("7", 7),  # a bare digit is its own value
    ("[MIN 5 3 8 ]", 3),
    ("[SM 7 8 ]", 5),  # 7 + 8 = 15 -> 15 mod 10 = 5 (wrap-around)
    ("[SM 9 9 9 9 ]", 6),  # 36 -> 6
    ("[MED 7 1 4 ]", 4),  # sorted 1 4 7, odd count -> middle item 4
    ("[MED 1 2 ]", 1),  # even count: (1 + 2) / 2 = 1.5 -> rounded down to 1 (LRA: int(np.median))
    ("[MED 3 8 2 6 ]", 4),  # sorted 2 3 6 8: (3 + 6) / 2 = 4.5 -> 4
    ("[MED 9 8 ]", 8),  # 8.5 -> 8: rounded down, not half-up
    ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),  # MIN(4, 7) = 4; MAX(2, 9, 4, 0) = 9
    ("[SM [MAX 3 8 ] [MIN 9 6 ] 5 ]", 9),  # MAX = 8, MIN = 6; 8 + 6 + 5 = 19 -> 9
    # SM(5, 6) = 11 -> 1; MAX(0, 2) = 2; SM(4, 4) = 8, MIN(9, 8) = 8; MED(1, 2, 8, 3): sorted 1 2 3 8,
    # (2 + 3) / 2 = 2.5 -> 2
    ("[MED [SM 5 6 ] [MAX 0 2 ] [MIN 9 [SM 4 4 ] ] 3 ]", 2),
    # SM(9, 4) = 13 -> 3, MIN(3, 7) = 3; MED(0, 0, 9) = 0; MAX(3, 0) = 3
    ("[MAX [MIN [SM 9 4 ] 7 ] [MED 0 0 9 ] ]", 3),
]


@pytest.mark.parametrize("expression, answer", HAND_WORKED)
def test_evaluator_matches_hand_worked_examples(expression, answer):
    assert evaluate_listops(expression) == answer


def _lra_value(expression: str) -> int:
    """Independent evaluator: the expression rewritten as Python calls with LRA's operator rules."""
    names = {"[MAX": "max([", "[MIN": "min([", "[MED": "med([", "[SM": "sm([", "]": "]),"}
    code = " ".join(names.get(token, token + ",") for token in expression.split())
    functions = {"max": max, "min": min, "med": lambda v: int(np.median(v)), "sm": lambda v: int(np.sum(v)) % 10}
    return eval(code, functions)[0]


def test_evaluator_agrees_with_lra_rules_on_generated_expressions():
    examples = generate_listops(2000, seed=3, max_depth=4, max_args=6, max_length=60)
    assert all(_lra_value(e.expression) == e.answer == evaluate_listops(e.expression) for e in examples)


def test_even_count_median_is_lra_int_of_numpy_median_for_every_pair():
    for a in range(10):
        for b in range(10):
            assert evaluate_listops(f"[MED {a} {b} ]") == int(np.median([a, b]))


@pytest.mark.parametrize("expression, where", [
    ("", "empty"),
    ("   ", "empty"),
    ("[MAX 1 2", "token 1"),  # never closed
    ("[SM [MAX 1 2 ] 3", "token 1"),  # the outer list is never closed
    ("[MAX 1 2 ] ]", "token 5"),  # a ']' that closes nothing
    ("[MAX ]", "token 2"),  # a list without arguments
    ("[MAX 1 10 ]", "token 3"),  # 10 is not a digit
    ("[AVG 1 2 ]", "token 1"),  # unknown operator
    ("[MAX 1 2] ", "token 3"),  # '2]' is not a symbol: symbols are space-separated
    ("1 2", "token 2"),  # two values at top level
    ("[MAX 1 2 ] 3", "token 5"),  # a symbol after the complete expression
])
def test_malformed_expression_is_one_line_error_naming_the_position(expression, where):
    with pytest.raises(ValueError) as raised:
        evaluate_listops(expression)
    message = str(raised.value)
    assert where in message and "\n" not in message


def _shape(expression: str) -> tuple[int, list[int]]:
    """Nesting depth and the argument count of every list (in closing order), read off the tokens."""
    open_counts, deepest, counts = [], 0, []
    for token in expression.split():
        if token == "]":
            counts.append(open_counts.pop())
            continue
        if open_counts:
            open_counts[-1] += 1
        if token.startswith("["):
            open_counts.append(0)
            deepest = max(deepest, len(open_counts))
    return deepest, counts


def test_shape_helper_on_a_known_expression():
    assert _shape("[MAX 2 [MIN 4 7 [SM 1 1 1 1 ] ] 0 ]") == (3, [4, 3, 3])


@pytest.mark.parametrize("max_depth, max_args, max_length", [(1, 3, 5), (2, 3, 8), (3, 5, 30), (5, 8, 80)])
def test_generator_respects_and_reaches_its_limits(max_depth, max_args, max_length):
    examples = generate_listops(1500, seed=0, max_depth=max_depth, max_args=max_args, max_length=max_length)
    shapes = [_shape(e.expression) for e in examples]
    lengths = [len(e.expression.split()) for e in examples]
    assert max(d for d, _ in shapes) == max_depth and min(d for d, _ in shapes) >= 1
    argument_counts = {n for _, counts in shapes for n in counts}
    assert min(argument_counts) == 2 and max(argument_counts) == max_args
    assert max(lengths) <= max_length and max(lengths) >= max_length - 2
    assert all(e.expression.startswith("[") for e in examples)


def test_answer_distribution_is_not_degenerate():
    examples = generate_listops(4000, seed=1)
    answers = collections.Counter(e.answer for e in examples)
    operators = collections.Counter(e.expression.split()[0] for e in examples)
    assert set(answers) == set(range(10))
    assert min(answers.values()) >= 250 and max(answers.values()) <= 600  # 400 each if uniform
    assert set(operators) == {"[MAX", "[MIN", "[MED", "[SM"} and min(operators.values()) >= 800


def test_generator_is_deterministic_for_a_seed_and_distinct():
    first = generate_listops(300, seed=5)
    assert first == generate_listops(300, seed=5)
    assert len({e.expression for e in first}) == 300
    other = generate_listops(300, seed=6)
    assert len({e.expression for e in first} & {e.expression for e in other}) < 150


def test_splits_are_disjoint_sized_deterministic_and_test_set_stable():
    splits = listops_splits(400, 50, 100, seed=2, max_depth=2, max_args=4, max_length=16)
    assert [len(splits.train), len(splits.validation), len(splits.test)] == [400, 50, 100]
    sets = [{e.expression for e in part} for part in (splits.train, splits.validation, splits.test)]
    assert sum(map(len, sets)) == len(set().union(*sets)) == 550
    assert all(isinstance(e, ListOpsExample) and e.answer == evaluate_listops(e.expression)
               for e in splits.train + splits.validation + splits.test)
    assert splits == listops_splits(400, 50, 100, seed=2, max_depth=2, max_args=4, max_length=16)
    bigger = listops_splits(900, 50, 100, seed=2, max_depth=2, max_args=4, max_length=16)
    assert bigger.test == splits.test and bigger.validation == splits.validation  # more training data, same evaluation
    assert listops_splits(400, 50, 100, seed=3, max_depth=2, max_args=4, max_length=16).test != splits.test


def test_asking_for_more_distinct_expressions_than_exist_is_an_error():
    # depth 1, two arguments: 4 operators x 10 x 10 = 400 distinct expressions
    assert len(generate_listops(400, seed=0, max_depth=1, max_args=2, max_length=4)) == 400
    with pytest.raises(ValueError, match="distinct"):
        generate_listops(401, seed=0, max_depth=1, max_args=2, max_length=4)


@pytest.mark.parametrize("limits, name", [
    (dict(max_depth=0), "max_depth"), (dict(max_args=1), "max_args"), (dict(max_length=3), "max_length"),
])
def test_impossible_limits_are_errors_naming_the_option(limits, name):
    with pytest.raises(ValueError, match=name):
        generate_listops(10, seed=0, **limits)


def test_prompt_explains_operators_and_ends_with_the_expression():
    expression = "[MAX 2 9 [MIN 4 7 ] 0 ]"
    prompt = listops_prompt(expression)
    for word in ("[MAX", "[MIN", "[MED", "[SM", "median", "modulo 10", "rounded down", "single digit"):
        assert word in prompt
    assert prompt.endswith(expression)
    assert listops_completion(9) == "9"


def test_few_shot_prompt_shows_the_shots_in_order_before_the_query():
    shots = [ListOpsExample("[SM 7 8 ]", 5), ("[MED 1 2 ]", 1)]
    prompt = listops_prompt("[MIN 3 4 ]", shots=shots)
    first, second, query = (prompt.index(s) for s in ("[SM 7 8 ]\nAnswer: 5", "[MED 1 2 ]\nAnswer: 1", "[MIN 3 4 ]"))
    assert first < second < query and prompt.endswith("[MIN 3 4 ]")
    assert prompt.startswith(listops_prompt("[MIN 3 4 ]").split("\n\n")[0])  # same instruction
    with pytest.raises(ValueError, match=r"shots\[1\]"):
        listops_prompt("[MIN 3 4 ]", shots=[("[SM 7 8 ]", 5), ("[MED 1 2 ]", 2)])  # the median of 1 2 is 1
    with pytest.raises(ValueError, match="token 1"):
        listops_prompt("[MIN 3 4")  # the list opened at token 1 is never closed


@pytest.mark.parametrize("answer", [10, -1, 2.0, "7", True])
def test_completion_rejects_non_digit_answers(answer):
    with pytest.raises(ValueError, match="answer"):
        listops_completion(answer)


@pytest.mark.parametrize("text, digit", [
    ("7", 7), (" 7\n", 7), ("The answer is 7.", 7), ("Answer: 3", 3), ("[MAX 2 9 ] gives 9", 9),
    ("7 or 8", 8), ("Step 1: MIN is 4", 4), ("(5)", 5), ("**6**", 6),
    ("12", None), ("4.5", None), ("5th", None), ("x9", None), ("no digit here", None), ("", None),
    ("The answer is 4.5, so 4", 4), ("9 is more than 10", 9),
])
def test_parse_answer_takes_the_last_standalone_digit(text, digit):
    assert parse_listops_answer(text) == digit


def test_accuracy_is_exact_match_of_parsed_digits():
    answers = ["9", "The answer is 4", "12", "", "Answer: 0"]
    assert listops_accuracy(answers, [9, 4, 2, 0, 0]) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="targets"):
        listops_accuracy(answers, [9, 4])
    with pytest.raises(ValueError, match="answers"):
        listops_accuracy([], [])
    with pytest.raises(ValueError, match="target"):
        listops_accuracy(["9"], [10])
