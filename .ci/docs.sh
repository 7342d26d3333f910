#!/usr/bin/env bash
# The documentation site, for CI's every-extra pass (.ci/run calls it): install the [docs] extra, build
# the site with --strict (no broken link, anchor or reference; offline), then the docs tests: the
# examples of every page run, the CLI reference matches the parsers, the built site has its pages and
# loads nothing from the network, and its search works in Debian's headless Chromium (playwright from
# the [tracking-tests] extra drives it; no browser download).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev,docs,tracking-tests]"
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
export NO_MKDOCS_2_WARNING=1   # Material's banner about MkDocs 2.0 (a notice, not a warning of this build)

site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
python -m mkdocs build --strict --site-dir "$site"
python -m pytest tests/docs -p no:cacheprovider
