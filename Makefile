# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv when it is
# missing and installs vlkit (editable) with the extras it needs; nothing else needs doing by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo

.PHONY: demo test lint bench clean browser java

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,openclip]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/vlkit demo --out $(DEMO_OUT)

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

# Both required: without them the report test and the Java comparisons would fail instead of skipping.
test: $(VENV)/.installed browser java
	$(VENV)/bin/ruff check src tests bench
	VLKIT_REQUIRE_BROWSER=1 VLKIT_REQUIRE_JAVA=1 $(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench

bench: $(VENV)/.installed
	$(PY) -m bench

clean:
	rm -rf runs .pytest_cache
