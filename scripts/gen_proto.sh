#!/usr/bin/env bash
# Regenerate the Python modules of proto/linewatch/v1/*.proto.
# Usage: scripts/gen_proto.sh [OUT_ROOT]   (default: proto; tests pass a temp dir)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/proto}
python=${PYTHON:-$here/.venv/bin/python}
mkdir -p "$out/linewatch/v1"
"$python" -m grpc_tools.protoc -I "$here/proto" \
    --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
    "$here"/proto/linewatch/v1/*.proto
