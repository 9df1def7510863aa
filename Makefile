# make serve: set up and run the embedded default instance (./var/).
# make test:  set up, lint (ruff, mypy, import-linter) and run every test but the soak
#             (about 3 minutes on 2 cores).
# make soak:  the long runs: 2 000 sequential sessions (descriptors and threads flat) and
#             5 rounds of bench/chaos.py (serve and sweep SIGKILLed mid-work; loopback).
# make bench: issue 17's targets table, intake vs OpenSSH sshd and vsftpd side by side
#             (bench/targets.py, as root, about 5 minutes; JSON in bench/out/targets.json).
# make bench-more: the single-topic benches (1 GiB per cipher, FTPS login burst, catalog
#             scan, sweep), each on its own.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: serve test soak lint bench bench-more clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/intake serve

lint: $(STAMP)
	$(BIN)/ruff check intake tests bench
	$(BIN)/ruff format --check intake tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -n 4 -q

soak: $(STAMP)
	$(BIN)/pytest -p no:xdist -q -m soak
	$(BIN)/python bench/chaos.py 5

bench: $(STAMP)
	$(BIN)/python bench/targets.py

bench-more: $(STAMP)
	$(BIN)/python bench/sftp_upload.py
	$(BIN)/python bench/ftps_upload.py
	$(BIN)/python bench/catalog_scan.py all
	$(BIN)/python bench/sweep.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
