# One-command entry points. `make report` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= output/run
ARGS ?=
# the PDF engine: weasyprint (default) or chromium
PDF_ENGINE ?=

.PHONY: venv report test format bench faults lab page clean

# The environment is stamped with a hash of pyproject.toml's contents, so any change to it (an edit,
# a checkout, a copy with an old timestamp) re-installs, and a mere touch does not.
PYPROJECT_HASH := $(shell $(PYTHON) -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest()[:16])' 2>/dev/null)
STAMP := $(VENV)/.installed-$(PYPROJECT_HASH)

# git stores notebooks/*.ipynb through this clean filter (.gitattributes), as `nbstripout --install` sets up: the
# outputs a run in the Lab saves stay on disk, git never sees them; the Jupyter post-save hook installed with the
# venv keeps `git status` clean too (helpers/jobs/notebooks.py)
NB_FILTER := $(BIN)/python -m helpers.jobs.notebooks clean %f

venv: $(STAMP)
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && [ "$$(git config filter.notebook.clean)" != '$(NB_FILTER)' ]; then \
		git config filter.notebook.clean '$(NB_FILTER)' && echo "git: notebooks/*.ipynb are stored without outputs (filter.notebook.clean)"; fi

$(STAMP):
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed, this is " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,fast]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (charrnn)" >/dev/null
	mkdir -p $(VENV)/etc/jupyter
	echo '{"FileContentsManager": {"post_save_hook": "helpers.jobs.notebooks.after_save"}}' \
		> $(VENV)/etc/jupyter/jupyter_server_config.json
	rm -f $(VENV)/.installed $(VENV)/.installed-*
	touch $@

## report: run the five notebooks with papermill into $(OUT) and render report.html and report.pdf
report: venv
	$(BIN)/python -m helpers.jobs.pipeline --out-dir $(OUT) $(if $(PDF_ENGINE),--pdf-engine '$(PDF_ENGINE)') $(ARGS)

LINTED := helpers tests benchmarks faults notebooks

## test: ruff (lint and format), the layer contracts (import-linter), then the test suite
test: venv
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

## format: ruff's fixes and format, then the notebooks back in their committed form
format: venv
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)
	$(BIN)/python -m helpers.jobs.notebooks normalize

## bench: training and synthesis speed, printed as a table
bench: venv
	$(BIN)/python -m benchmarks.bench $(ARGS)

## faults: kill trainings, a Dask worker and a scheduler on purpose, and count what survived (a few minutes)
faults: venv
	$(BIN)/python -m faults $(ARGS)

## page: the model live in one self-contained HTML page (a sampler and the neuron explorer, no network) from
## CHECKPOINT (default $(OUT)/best.npz) into PAGE (default $(OUT)/model.html), to mail or host anywhere
CHECKPOINT ?= $(OUT)/best.npz
PAGE ?= $(OUT)/model.html
page: venv
	$(BIN)/python -m helpers.runs.live '$(CHECKPOINT)' '$(PAGE)' $(ARGS)

## lab: JupyterLab with the project's environment, on the repository (README, helpers/, output/), opened in notebooks/
lab: venv
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf output .pytest_cache .hypothesis

# sweep: the grid and the parameters all of its points share, as JSON; SCHEDULER=tcp://host:8786 runs on a cluster
GRID ?= {"eta": [0.05, 0.1], "m": [50, 100]}
BASE ?= {"n_updates": 100000}
SCHEDULER ?=
SWEEP_OUT ?= output/sweep

.PHONY: sweep

## sweep: train once per point of GRID with papermill on Dask (a local cluster, or SCHEDULER) into $(SWEEP_OUT)
sweep: venv
	$(BIN)/python -m helpers.jobs.sweep --grid '$(GRID)' --base '$(BASE)' --scheduler '$(SCHEDULER)' --out-dir $(SWEEP_OUT) $(ARGS)

COMPARE_OUT ?= output/compare
.PHONY: compare

## compare: train the five comparison models (notebooks/06_compare.ipynb) into $(COMPARE_OUT)
compare: venv
	mkdir -p $(COMPARE_OUT)
	$(BIN)/papermill notebooks/06_compare.ipynb $(COMPARE_OUT)/06_compare.ipynb -p out_dir $(COMPARE_OUT) $(ARGS)

# best: the quality recipe for the book (docs/quality.md): validation loss <= 1.05 nats/char (bar 1.10) on the
# last 5% within 15 minutes of wall time on a 2-core machine, test loss on the 5% before it; the cosine schedule
# runs over the time budget and training stops when it is spent
BEST_OUT ?= output/best
BEST_RECIPE ?= -p cell gru -p m 512 -p n_layers 2 -p dropout 0.2 -p batch_size 32 -p seq_length 50 \
	-p optimizer adam -p eta 0.005 -p clip_norm 50 -p lr_schedule cosine -p warmup 100 -p time_budget 870 -p dtype float32 \
	-p engine auto -p val_fraction 0.05 -p test_fraction 0.05 -p n_updates 100000 -p eval_every 1000 \
	-p checkpoint_every 1000 -p sample_every 2500 -p sample_until 10000 -p log_every 50
BASELINE_OUT ?= output/baseline
.PHONY: best baseline

## best: train the best recipe (02_train with BEST_RECIPE) into $(BEST_OUT); metrics.json has the validation and test loss
best: venv
	mkdir -p $(BEST_OUT)
	$(BIN)/papermill notebooks/02_train.ipynb $(BEST_OUT)/02_train.ipynb -p out_dir $(BEST_OUT) $(BEST_RECIPE) $(ARGS)

## baseline: the assignment's vanilla RNN (02_train's defaults) with the same validation and test parts, for the reference points
baseline: venv
	mkdir -p $(BASELINE_OUT)
	$(BIN)/papermill notebooks/02_train.ipynb $(BASELINE_OUT)/02_train.ipynb -p out_dir $(BASELINE_OUT) \
		-p val_fraction 0.05 -p test_fraction 0.05 -p eval_every 10000 -p engine numba $(ARGS)
