#!/usr/bin/env bash
# Python tools the test suites use, pinned, in a git-ignored virtual environment of the project
# (.venv-tools/): schemathesis fuzzes the HTTP API against its OpenAPI document
# (scripts/contract.sh). Idempotent: reinstalls only when the pinned versions change.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1;34m[tools]\033[0m %s\n' "$*"; }

VENV=.venv-tools
# Bump deliberately: a new schemathesis can generate new cases (and find new failures).
REQUIREMENTS="schemathesis==4.32.5"

if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.requirements" 2>/dev/null)" = "$REQUIREMENTS" ]; then
  say "tools: $REQUIREMENTS present"
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 is missing (scripts/setup.sh packages installs it)" >&2; exit 1; }
say "tools: installing $REQUIREMENTS into $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS
echo "$REQUIREMENTS" > "$VENV/.requirements"
"$VENV/bin/schemathesis" --version
