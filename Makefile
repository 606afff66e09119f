# The README's entry points. `make demo` and `make test` install what is missing (Debian packages
# only), configure, build and run; nothing here needs Python (`make conformance` and
# `make fixtures` are the optional Python parts).
BUILD   ?= build
JOBS    ?= $(shell nproc)
PYTHON  ?= /usr/bin/python3
CMAKE_FLAGS ?=
# ctest labels left out: cuda (no GPU in CI); test-sanitize adds no_sanitize.
TEST_EXCLUDE ?= cuda

.PHONY: all deps build test test-sanitize demo gpu-bundle bench bench-sft bench-parallel bench-threads bench-convert bench-preprocess conformance fixtures clean
all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# TEST_TMPDIR (GoogleTest's TempDir()): the tests' scratch files under the build folder, so that two
# suites run at once (build and build-asan) never share a folder.
test: build
	mkdir -p $(BUILD)/test-tmp
	cd $(BUILD) && TEST_TMPDIR=$(abspath $(BUILD))/test-tmp/ ctest --output-on-failure -j $(JOBS) -LE '$(TEST_EXCLUDE)'

# The test suite again under AddressSanitizer + UndefinedBehaviorSanitizer (CS_SANITIZE: any finding
# fails its test), in its own build folder, optimised (RelWithDebInfo) so that it fits CI's time;
# tests labelled no_sanitize are left out (docs/development.md says which and why). The CUDA backend
# is left out of this build: its code runs on the GPU, where the host sanitizers see nothing.
test-sanitize:
	@$(MAKE) --no-print-directory test BUILD=build-asan TEST_EXCLUDE='cuda|no_sanitize' \
	  CMAKE_FLAGS="-DCS_SANITIZE=ON -DCS_WITH_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_BUILD_BENCH=OFF $(CMAKE_FLAGS)"

demo: build
	@scripts/demo.sh $(BUILD)

bench: build
	@scripts/bench.sh $(BUILD)

# What bench/gpu_check.sh runs on a GPU machine (docs/gpu.md): gpu-bundle.tar.xz, from a CUDA build.
gpu-bundle: build
	@scripts/gpu_bundle.sh $(BUILD)

# Tokens/s at 1, 2 and 4 MPI ranks for DP, TP and PP, scaling efficiency, bytes sent vs the analytic count.
# Instruction fine-tuning (packed and padded) against pretraining, same model and length.
bench-sft: build
	@scripts/bench_sft.sh $(BUILD)

bench-parallel: build
	@scripts/bench_parallel.sh $(BUILD)

# A training run on cores another process shares: --threads 2, --threads 1 and --adaptive-threads
# beside LOAD busy loops (needs make demo's out/demo).
bench-threads: build
	@scripts/bench_threads.sh $(BUILD)

# Checkpoint conversion throughput and peak RSS on a synthetic Baichuan-7B-shaped checkpoint
# (needs Python torch + safetensors to make it, ~16 GB free under WORK=/tmp/cs_bench_convert).
bench-convert: build
	@scripts/bench_convert.sh $(BUILD)

# Preprocess throughput vs SentencePiece alone and the Python pipeline (a 64 MB corpus; ~2 minutes).
bench-preprocess: build
	@scripts/bench_preprocess.sh $(BUILD)

# Optional: checks our outputs with the real libraries (PyTorch, safetensors, TensorBoard, Megatron).
conformance: build
	@scripts/conformance.sh $(BUILD)

# Regenerates the committed model fixtures with the PyTorch reference (needs scripts/deps.sh --python).
fixtures:
	$(PYTHON) tools/reference/make_fixtures.py

clean:
	rm -rf $(BUILD) build-asan out
