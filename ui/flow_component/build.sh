#!/bin/sh
# Rebuilds build/ from upstream streamlit-flow at 751d62b with PATCH.diff (needs git, Node 20
# and npm): sh ui/flow_component/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q https://github.com/dkapur17/streamlit-flow "$work/repo"
cd "$work/repo"
git checkout -q 751d62b
git apply "$here/PATCH.diff"
cd streamlit_flow/frontend
npm ci --no-audit --no-fund
npm run build
rm -f build/static/js/*.map
rm -rf "$here/build"
cp -r build "$here/build"
