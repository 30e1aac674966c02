#!/usr/bin/env bash
# The test command: set up, build, then run every test file (unit and end-to-end) with node:test + tsx.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
shopt -s globstar nullglob
files=(test/**/*.test.ts)
if [ ${#files[@]} -eq 0 ]; then echo "test: no test files found" >&2; exit 1; fi
if [ $# -gt 0 ]; then files=("$@"); fi
# A hung test (a leaked child keeping a test file alive) fails the run after 25 minutes instead of using up CI's.
exec timeout --kill-after=30 1500 node --import tsx --test --test-concurrency=2 --test-timeout=600000 "${files[@]}"
