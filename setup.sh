#!/usr/bin/env bash
# Installs what gameday needs on a fresh machine. `./setup.sh` for running game days,
# `./setup.sh --test` also for the project's own tests (headless Chromium for the report test, tmux
# for the live-progress test).
# Python packages at the exact versions in constraints.txt, so every machine and CI run the same set.
set -euo pipefail
cd "$(dirname "$0")"

python3 -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'

# Allure Report 3 (npm package `allure`), used offline by `gameday report`.
if command -v npm >/dev/null 2>&1; then
  npm ci --silent --no-audit --no-fund >/dev/null
else
  echo "setup: npm not found: game days run, but 'gameday report' cannot build the HTML report" >&2
fi

if [ "${1:-}" = "--test" ]; then
  # Chromium for the report test, tmux for the live-progress test (a real terminal to draw on).
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
      || ! command -v tmux >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium chromium-driver tmux >/dev/null
  fi
fi
