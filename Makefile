# The two commands of the README's quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOG    := $(VENV)/install.log

.PHONY: test demo venv tools bench nab clean

# pip's and setuptools' own output (the editable-install banner) goes to $(LOG), shown only on failure.
$(STAMP): pyproject.toml
	@echo "installing rnnstream and its dependencies into $(VENV) (log: $(LOG))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@( $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e '.[test]' ) > $(LOG) 2>&1 \
	  || { cat $(LOG); echo "pip install failed; full log in $(LOG)" >&2; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

# promtool, systemd-analyze and Java: installed with apt-get when missing (as root), else the exact
# command is printed and `make test` stops.
tools:
	@tools/ensure-test-tools

test: $(STAMP) tools
	$(PY) -m pytest -q

demo: $(STAMP)
	@$(PY) -m rnnstream.demo

nab: $(STAMP)
	$(VENV)/bin/rnnstream eval nab --data ../shared/nab --config config/nab.yaml --out out/nab

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache out
