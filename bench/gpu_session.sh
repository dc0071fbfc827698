#!/usr/bin/env bash
# The one GPU call: install the wheels carried in .whl/ (the GPU machine lacks webdataset,
# braceexpand, torch-fidelity and pytest; it has no network), then run bench/gpu_session.py.
#   bench/gpu_session.sh --wheels      here, with network: download those wheels into .whl/
#   bench/gpu_session.sh [ARGS]        there (run with carry [".whl"]): install them, run the session
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="webdataset braceexpand torch-fidelity pytest pluggy iniconfig pygments"
if [ "${1:-}" = "--wheels" ]; then
  mkdir -p .whl  # ignored by .gitignore
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $WHEELS
  ls -1 .whl
  exit 0
fi
if compgen -G ".whl/*.whl" > /dev/null; then
  site=${FACEGAN_SITE:-/tmp/site}
  python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --target "$site" .whl/*.whl
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
exec python3 bench/gpu_session.py "$@"
