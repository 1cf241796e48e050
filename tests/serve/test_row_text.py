"""RowText: streamed deltas never split a character or show a stop string, and add up to the text."""

import pytest

from steerkit.serve.engine import REPLACEMENT, RowText

TEXT = "  Ahoy! Café crème, naïve 🏴‍☠️ pirates sail the 海 sea; ¡olé! 😀  "


def stream(tokenizer, text, **options):
    row = RowText(tokenizer, **{"max_tokens": 1000, **options})
    deltas = []
    for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
        deltas.append(row.push(token))
        if row.done:
            break
    return row, deltas


def test_deltas_add_up_to_the_stripped_text_and_never_split_a_character(tokenizer):
    row, deltas = stream(tokenizer, TEXT)
    assert "".join(deltas) == TEXT.strip() == row.text
    assert not any(REPLACEMENT in d for d in deltas)
    assert len([d for d in deltas if d]) > 10  # it does stream


def test_a_stop_string_ends_the_text_and_is_never_shown(tokenizer):
    row, deltas = stream(tokenizer, TEXT, stop=["sea;", "zzz"])
    assert "".join(deltas) == row.text == "Ahoy! Café crème, naïve 🏴‍☠️ pirates sail the 海"
    assert row.finish_reason == "stop"


@pytest.mark.parametrize("max_tokens", [1, 5])
def test_max_tokens_ends_the_row(tokenizer, max_tokens):
    row, deltas = stream(tokenizer, TEXT, max_tokens=max_tokens)
    assert (row.finish_reason, len(row.tokens)) == ("length", max_tokens)
    assert row.text == tokenizer.decode(row.tokens).strip() and "".join(deltas) == row.text


def test_an_end_of_sequence_token_ends_the_row_unshown(tokenizer):
    row = RowText(tokenizer, max_tokens=100, eos_ids=[tokenizer.eos_token_id])
    shown = [row.push(t) for t in tokenizer("Hello there", add_special_tokens=False)["input_ids"]]
    shown.append(row.push(tokenizer.eos_token_id))
    assert ("".join(shown), row.finish_reason) == ("Hello there", "stop")


class Recording:
    """``tokenizer`` recording the number of token ids of each ``decode`` call."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.lengths: list[int] = []

    def __call__(self, *args, **kwargs):
        return self.tokenizer(*args, **kwargs)

    def decode(self, ids, **kwargs):
        self.lengths.append(len(ids))
        return self.tokenizer.decode(ids, **kwargs)


def test_each_push_decodes_a_bounded_number_of_tokens(tokenizer):
    recording = Recording(tokenizer)
    row, deltas = stream(recording, TEXT * 20, max_tokens=100_000, stop=["zzz"])
    assert "".join(deltas) == (TEXT * 20).strip() == row.text
    assert len(row.tokens) > 400
    assert len(recording.lengths) <= 2 * len(row.tokens) and max(recording.lengths) <= 8


class CleaningUp(Recording):
    """``tokenizer`` that cleans up tokenization spaces unless told not to (``" 's"`` -> ``"'s"``,
    ``" ."`` -> ``"."``), so decoding more tokens rewrites text decoded before."""

    def decode(self, ids, clean_up_tokenization_spaces=True, **kwargs):
        text = super().decode(ids, **kwargs)
        return self.tokenizer.clean_up_tokenization(text) if clean_up_tokenization_spaces else text


def test_the_final_text_is_what_was_streamed_when_decoding_rewrites_earlier_text(tokenizer):
    cleaning = CleaningUp(tokenizer)
    assert cleaning.decode(tokenizer("it 's a dog . Yes", add_special_tokens=False)["input_ids"]) == "it's a dog. Yes"
    row, deltas = stream(cleaning, "it 's a dog . Yes", max_tokens=7)
    assert row.finish_reason == "length"
    assert "".join(deltas) == row.text == "it 's a dog . Yes"
