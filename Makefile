# Quick start: `make run` (workbench on http://127.0.0.1:8501) and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: run test demo demo-ui lint bench bench-full browser-deps clean-demo vqa-asset

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# The optional Ray engine, for the tests only (`make run` stays lean).
RAY_STAMP := $(VENV)/.installed-ray
$(RAY_STAMP): requirements-ray.txt $(STAMP)
	$(PY) -m pip install -q -r requirements-ray.txt
	touch $(RAY_STAMP)

# --frames-later: the index comes from the shipped vectors and the demo's frames render in a
# background process while the workbench already works (bench/RESULTS.md section 15).
run: $(STAMP)
	$(PY) -m core.cli demo --prepare-only --frames-later
	$(PY) -m core.cli workbench --host $(HOST) --port $(PORT)

demo: $(STAMP)
	$(PY) -m core.cli demo

demo-ui: $(STAMP)
	$(PY) -m core.cli demo --prepare-only --frames-later
	$(PY) -m core.cli demo-ui --host $(HOST)

# Installs what the tests need first (the venv, Debian's Chromium), so it passes on a fresh machine.
test: $(STAMP) $(RAY_STAMP) browser-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -ra

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The benchmark suite (bench/README.md). `make bench`: every script in --quick mode, a check that
# each still runs, in under 15 min on 2 idle cores (~10 min of CPU measured); its figures mean
# nothing. `make bench-full`: the runs behind bench/RESULTS.md, about an hour on 2 idle cores (more
# the first time: the fine-tuning bench renders the bundled recipe's training data once).
BENCH_QUICK := synth_speed embed_throughput map_scale token_pruning token_localisation finetune_weak \
	quantize familiarity load_gradio clip_path
bench: $(STAMP)
	$(PY) -m core.cli demo --prepare-only  # familiarity measures against the demo index
	set -e; for b in $(BENCH_QUICK); do echo "== bench/$$b.py --quick"; $(PY) bench/$$b.py --quick; done

bench-full: $(STAMP)
	$(PY) bench/synth_speed.py --frames 400
	$(PY) bench/embed_throughput.py
	$(PY) bench/map_scale.py --warmup
	$(PY) bench/map_scale.py --sizes 100000 --epochs 0 --no-transform --warmup
	$(PY) bench/token_pruning.py --train 1500 --test 600 --png bench/token_pruning.png
	$(PY) bench/token_localisation.py --scenes 30
	$(PY) bench/finetune_weak.py
	$(PY) bench/quantize.py --index 1500 --queries 500 --calibration 200
	$(PY) -m core.cli demo --prepare-only
	$(PY) bench/familiarity.py --index indexes/demo --synthetic 300

# The bundled VLM assets/scenescope-vqa-tiny (bench/RESULTS.md section 14), from our own synthetic
# world: renders 3000 scenes + 120 clips with their question bank, then trains (one torch thread:
# on a shared CPU, more threads spin instead of working): a base run on the LM loss, then five stage-2
# epochs from it with the multiple-choice ranking loss on a sample (RESULTS 14e-14h), one on all the
# world's rows, and one on all of a second world's (14i). About 3 CPU hours.
# A stage-2 fine-tune epoch with the ranking loss, from --init; SAMPLE: the first five epochs' row sample.
TRAIN_VQA := OMP_NUM_THREADS=1 $(PY) -m core.cli train-vqa
VQA_FT := --text-epochs 0 --stage1-epochs 0 --batch-size 32 --lr-qa 1e-3 --lr-align 1e-3 --seed 0 --mc-loss 1
VQA_SAMPLE := --max-frames 2000 --max-rows 16000
vqa-asset: $(STAMP)
	$(PY) -m core.cli synth --out workspace/vqa-train/data --scenes 3000 --clips 120 --seed 1901 --qa
	$(TRAIN_VQA) --data workspace/vqa-train/data --out workspace/vqa-train/base \
	  --max-frames 2000 --max-rows 8000 --text-epochs 1 --stage1-epochs 1 --stage2-epochs 5 --batch-size 32 \
	  --hidden 96 --layers 2 --heads 4 --intermediate 256 --vocab-size 512 --lr-qa 2e-3 --lr-align 2e-3 --seed 0
	$(TRAIN_VQA) --data workspace/vqa-train/data --out workspace/vqa-train/ft --init workspace/vqa-train/base \
	  $(VQA_SAMPLE) $(VQA_FT) --stage2-epochs 2
	$(TRAIN_VQA) --data workspace/vqa-train/data --out workspace/vqa-train/ft2 --init workspace/vqa-train/ft \
	  $(VQA_SAMPLE) $(VQA_FT) --stage2-epochs 1
	$(TRAIN_VQA) --data workspace/vqa-train/data --out workspace/vqa-train/ft3 --init workspace/vqa-train/ft2 \
	  $(VQA_SAMPLE) $(VQA_FT) --stage2-epochs 1
	$(TRAIN_VQA) --data workspace/vqa-train/data --out workspace/vqa-train/ft4 --init workspace/vqa-train/ft3 \
	  $(VQA_SAMPLE) $(VQA_FT) --stage2-epochs 1
	$(TRAIN_VQA) --data workspace/vqa-train/data --out workspace/vqa-train/ft5 --init workspace/vqa-train/ft4 \
	  $(VQA_FT) --stage2-epochs 1
	$(PY) -m core.cli synth --out workspace/vqa-train/data2 --scenes 3000 --clips 120 --seed 1902 --qa
	$(TRAIN_VQA) --data workspace/vqa-train/data2 --out assets/scenescope-vqa-tiny --init workspace/vqa-train/ft5 \
	  $(VQA_FT) --stage2-epochs 1

# Debian's Chromium for the real-browser test (never a browser downloaded by a tool): apt-get as
# root, else through sudo.
CHROMIUM := /usr/bin/chromium
browser-deps:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; \
	  else echo "$(CHROMIUM) is missing; installing Debian's chromium needs root or sudo" >&2; exit 1; fi; \
	  echo "installing Debian's chromium and chromium-driver for the browser test (apt-get)"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

clean-demo:
	rm -rf indexes/demo workspace/demo-data
