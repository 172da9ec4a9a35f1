# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv when it is
# missing and installs vlkit (editable) with the extras it needs; nothing else needs doing by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo

.PHONY: demo test lint bench clean browser java fixtures app-screenshot

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,openclip,video,app]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/vlkit demo --out $(DEMO_OUT)

# The README's screenshot of `vlkit app` (docs/images/app.png), taken by the app's browser test with the
# demo's best captioner (run `make demo` first).
app-screenshot: $(VENV)/.installed browser
	mkdir -p docs/images
	VLKIT_APP_DEMO=$(DEMO_OUT) VLKIT_APP_SCREENSHOT=docs/images/app.png VLKIT_REQUIRE_BROWSER=1 \
		$(PY) -m pytest -q tests/pipelines/test_app.py -k chromium

# The report test renders in headless Chromium: Debian's package, installed here when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the report test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null; }

# The comparisons with pycocoevalcap run its Java tokenizer, METEOR and SPICE: Debian's JRE, installed here
# when no `java` is on the PATH.
java:
	@command -v java >/dev/null 2>&1 || { \
		echo "installing Debian's JRE for the comparisons with pycocoevalcap"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends default-jre-headless >/dev/null; }

# GPT-2's byte-level BPE ranks, for the tests of the real GPT-2 tokenizer, fetched once: they ship inside
# openai-whisper's source distribution (whisper/assets/gpt2.tiktoken), which pip downloads but never installs.
WHISPER_VERSION := 20250625
FIXTURES := .cache/fixtures
GPT2_RANKS := $(FIXTURES)/gpt2.tiktoken
GPT2_RANKS_SHA256 := 306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930

fixtures: $(GPT2_RANKS)

$(GPT2_RANKS): | $(VENV)/.installed
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
		openai-whisper==$(WHISPER_VERSION) -d $(FIXTURES)
	tar -xzf $(FIXTURES)/openai_whisper-$(WHISPER_VERSION).tar.gz -O \
		openai_whisper-$(WHISPER_VERSION)/whisper/assets/gpt2.tiktoken > $@.part
	$(PY) -c 'import hashlib, sys; got = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest(); \
		sys.exit(got != sys.argv[2] and f"{sys.argv[1]}: sha256 {got}, expected {sys.argv[2]}")' \
		$@.part $(GPT2_RANKS_SHA256)
	mv $@.part $@

# Browser, Java and fixtures all required: without them the report test, the Java comparisons and the real
# GPT-2 tokenizer's tests would fail instead of skipping. Two pytest workers (pytest-xdist), one per core:
# each test runs one torch thread, so two at a time cut the wall time; `--dist loadfile` keeps a file's
# tests (and its module fixtures, such as the real-size models) on one worker.
test: $(VENV)/.installed browser java fixtures
	$(VENV)/bin/ruff check src tests bench
	VLKIT_REQUIRE_BROWSER=1 VLKIT_REQUIRE_JAVA=1 VLKIT_REQUIRE_FIXTURES=1 $(PY) -m pytest -q -n 2 --dist loadfile

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PY) -m bench

clean:
	rm -rf runs .pytest_cache
