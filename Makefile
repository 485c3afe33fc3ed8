# The two set-up commands of the README. Both work from a fresh clone with only Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   := build/demo
# pytest-xdist workers for the tests
JOBS   ?= 2

.PHONY: demo test test-long bench clean

# (ir/_transpose.c is compiled by this install: an edit to it needs the install again)
$(BIN)/irconv: pyproject.toml ir/_transpose.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.test-deps: pyproject.toml $(BIN)/irconv
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps DALL-E==0.1
	@touch $@

# Convert the committed tiny BERT with nothing but irconv's core dependencies (no torch).
demo: $(BIN)/irconv
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/irconv ls examples/tiny-bert
	$(BIN)/irconv import pt examples/tiny-bert | $(BIN)/irconv export pt $(DEMO)/tiny-bert-bin --bin
	$(BIN)/irconv convert $(DEMO)/tiny-bert-bin $(DEMO)/tiny-bert --to pt
	$(BIN)/irconv diff examples/tiny-bert $(DEMO)/tiny-bert
	$(BIN)/irconv convert examples/tiny-bert $(DEMO)/tiny-bert-tf2 --to tf2
	$(BIN)/irconv diff examples/tiny-bert $(DEMO)/tiny-bert-tf2
	@echo "demo: tiny-bert -> pytorch_model.bin -> model.safetensors and -> tf_model.h5, every tensor identical; see $(DEMO)/"

# The fast set, on $(JOBS) workers: every test but the full forms of the slow oracle checks.
# --dist loadfile: a module's tests stay on one worker, so its oracle fixtures (one keras_hub,
# TF or transformers world per module) are built once, not once per worker.
test: $(VENV)/.test-deps
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile -m "not slow"

# The round-trip properties at 5000 walks with a fixed seed set, and the slow oracle checks.
test-long: $(VENV)/.test-deps
	IRCONV_TEST_LONG=1 $(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile -m "property or slow"

bench: $(BIN)/irconv
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build
