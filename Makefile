# The README's commands. Each creates .venv (Python 3.11, exact pins) when it is missing.
#   make reproduce   tiny reproduction end to end (snakemake --cores all; FROM_SCRATCH=1 retrains all)
#   make test        the test suite
#   make tables      the paper's tables from the pulled evaluation results (nothing recomputed)
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
SNAKEMAKE_ARGS ?=

.PHONY: venv reproduce tables test dryrun lock clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The teachers and student baselines are pulled from the DVC remote in this repository (dvc-store/)
# instead of being retrained, unless FROM_SCRATCH=1 or other Snakemake arguments are given (a pull
# is only valid for the default tiny config). Pulled files get Snakemake records with --touch.
PULL := $(if $(FROM_SCRATCH)$(SNAKEMAKE_ARGS),,yes)
# From scratch, each teacher trains with 2 threads, so on 2 cores they run one after the other (as
# the pushed ones were trained: ~1 h 25 min for both; two 1-thread jobs side by side take over 2 h).
SCRATCH_THREADS := $(if $(FROM_SCRATCH),--set-threads train_teacher=2)

reproduce: $(STAMP)
ifeq ($(PULL),yes)
	snakemake --cores all tokenizers
	dvc pull --quiet teachers students && snakemake --cores all --touch teachers students \
	  || echo "make reproduce: no pulled artifacts; they will be trained"
endif
	snakemake --cores all $(SCRATCH_THREADS) $(SNAKEMAKE_ARGS)

# The paper's tables from the evaluation results in the DVC remote, training and evaluating nothing:
# --allowed-rules takes the pulled results as given (the remote does not carry the distilled
# models behind them); --forcerun rebuilds tables that git already holds.
tables: $(STAMP)
	dvc pull --quiet evaluation
	snakemake --cores 1 --allowed-rules tables --forcerun tables -- tables

# pytest exits 5 when it collects no test: that is a broken suite, reported as such.
test: $(STAMP)
	@python -m pytest -n 2 --dist loadfile; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests collected - the suite's set-up is broken" >&2; fi; \
	exit $$rc

dryrun: $(STAMP)
	snakemake -n $(SNAKEMAKE_ARGS)

# Refresh constraints.txt from the current environment (after changing a pin in pyproject.toml).
lock: $(STAMP)
	$(VENV)/bin/pip freeze --exclude-editable | grep -v "^tide" | sed "s/^torch==\(.*\)+cpu$$/torch==\1/" > constraints.txt

clean-venv:
	rm -rf $(VENV)
