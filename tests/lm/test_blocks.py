import pytest
from torch import nn

from steerkit.lm import BlocksNotFoundError, LanguageModel, find_decoder_blocks
from tests.conftest import ARCHES, EXPECTED_BLOCK_PATHS, build_tiny


@pytest.mark.parametrize("arch", ARCHES)
def test_blocks_found_by_general_rule(arch, tokenizer):
    lm = build_tiny(arch, tokenizer)
    assert lm.block_path == EXPECTED_BLOCK_PATHS[arch]
    assert lm.n_blocks == 3
    assert lm.hidden_size == 64


def test_n_layers_is_a_deprecated_alias_of_n_blocks(tiny_llama):
    with pytest.warns(DeprecationWarning, match="use n_blocks"):
        assert tiny_llama.n_layers == tiny_llama.n_blocks == len(tiny_llama.blocks) == 3
    assert "blocks=3," in repr(tiny_llama) and "layers=" not in repr(tiny_llama)


def test_explicit_block_path_overrides_search(tiny_llama):
    path, blocks = find_decoder_blocks(tiny_llama.model, "model.layers")
    assert path == "model.layers" and len(blocks) == 3


def test_bad_block_path_names_class_and_fix(tiny_llama):
    with pytest.raises(BlocksNotFoundError, match=r"LlamaForCausalLM.*block_path="):
        find_decoder_blocks(tiny_llama.model, "model.nothing")
    with pytest.raises(BlocksNotFoundError, match="not a non-empty nn.ModuleList"):
        find_decoder_blocks(tiny_llama.model, "model.norm")


class Odd(nn.Module):
    """A model whose blocks sit in two equally plausible lists and whose config says nothing."""

    def __init__(self):
        super().__init__()
        self.a = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
        self.b = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])


def test_ambiguous_model_gets_actionable_error():
    with pytest.raises(BlocksNotFoundError, match=r"Could not find the decoder blocks of Odd.*'a', 'b'.*block_path"):
        find_decoder_blocks(Odd())
    assert find_decoder_blocks(Odd(), "b")[0] == "b"


def test_blocks_matching_config_depth_beat_longer_lists(tokenizer):
    lm = build_tiny("llama", tokenizer)
    lm.model.extra = nn.ModuleList([nn.Linear(2, 2) for _ in range(7)])  # e.g. a vision tower
    assert find_decoder_blocks(lm.model)[0] == "model.layers"


def test_language_model_sets_missing_pad_token(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.pad_token = None
    lm = LanguageModel(build_tiny("llama", tokenizer).model, tok)
    assert tok.pad_token == tok.eos_token and lm.tokenizer.pad_token_id is not None


def test_sklearn_clone_shares_the_model(tiny_llama):
    from sklearn.base import clone

    from steerkit.steering import SteeredModel

    copy = clone(SteeredModel(model=tiny_llama, layer=1))
    assert copy.model is tiny_llama
