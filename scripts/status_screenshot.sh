#!/usr/bin/env bash
# Saves docs/status-page.png, the admin listener's status page in headless Chromium under load, for the
# README: the status page's own test takes it (tests/test_e2e_status_page.py). Needs chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
SCREENSHOT_TO="$(pwd)/docs/status-page.png" python -m pytest -q tests/test_e2e_status_page.py
echo "wrote docs/status-page.png"
