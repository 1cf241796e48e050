import json

import numpy as np
import pandas as pd
import pytest

from steerkit.activations import ActivationSet
from steerkit.cli import main
from steerkit.estimators.files import load_vector


@pytest.mark.parametrize("command", ["extract", "fit", "generate"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in {"extract": ["--n-questions", "--max-new-tokens", "--model", "--dtype", "--force"],
                   "fit": ["--construction", "--position", "--layer"],
                   "generate": ["--layer", "--coefficient", "--positions", "--compare"]}[command]:
        assert option in text


def test_extract_fit_generate_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["extract", "pirate", "--out", str(out), "--n-questions", "2", "--max-new-tokens", "8"]) == 0
    acts = ActivationSet.load(out / "pirate" / "activations.safetensors")
    judged = pd.read_csv(out / "pirate" / "filtered_answers.csv")
    assert acts.n_contrasts in (judged.loc[judged["kept"], "contrast_id"].nunique(), 10)  # kept (or all, too few)
    assert acts.n_layers == 31 and acts.concept == "pirate"
    # a re-run reuses the cached answers instead of regenerating
    assert main(["extract", "pirate", "--out", str(out), "--n-questions", "2", "--max-new-tokens", "8"]) == 0
    assert "reusing 20 cached answers" in capsys.readouterr().err

    assert main(["fit", str(out / "pirate" / "activations.safetensors"), "--layer", "18"]) == 0
    vector, sidecar = load_vector(out / "pirate" / "vectors" / "pv")
    assert vector.shape == (31, 576)
    assert sidecar["layer"] == 18 and sidecar["construction"] == "pv" and sidecar["concept"] == "pirate"
    np.testing.assert_allclose(vector, acts.differences().mean(0), rtol=1e-5, atol=1e-5)

    answers = tmp_path / "answers.json"
    code = main(["generate", str(out / "pirate" / "vectors" / "unit_mean.safetensors"), "--n-questions", "2",
                 "--max-new-tokens", "8", "--compare", "--out", str(answers)])
    assert code == 0
    record = json.loads(answers.read_text())
    assert record["layer"] == 18 and len(record["answers"]) == 2
    assert {"question", "steered", "unsteered"} <= set(record["answers"][0])


def test_bad_input_gives_clear_error(tmp_path, capsys):
    assert main(["extract", "no-such-concept", "--out", str(tmp_path)]) == 2
    assert "unknown concept" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "missing.safetensors")]) == 2
    assert "no ActivationSet file" in capsys.readouterr().err
