#!/usr/bin/env bash
# Install n8n (the version the shipped workflows are tested with) once, into a cache folder
# outside the clone. Re-running is a no-op when it is already installed. See
# ../shared/N8N.md: n8n 2.8.4 is the newest release that runs on Node 20; the xlsx override
# avoids a dependency hosted outside the npm registry; sqlite3 compiles against local headers.
set -euo pipefail
N8N_VERSION="${N8N_VERSION:-2.8.4}"
CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
DIR="$CACHE/n8n-$N8N_VERSION"
BIN="$DIR/node_modules/.bin/n8n"

if [ -x "$BIN" ] && [ -f "$DIR/.installed" ]; then
  echo "$BIN"
  exit 0
fi
command -v npm >/dev/null || { echo "error: npm is needed to install n8n (apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$DIR"
cat > "$DIR/package.json" <<JSON
{"private": true, "overrides": {"xlsx": "0.18.5"}, "dependencies": {"n8n": "$N8N_VERSION"}}
JSON
echo "Installing n8n $N8N_VERSION into $DIR (first time only: about 8 minutes, 2.3 GB)..." >&2
( cd "$DIR" && npm_config_nodedir=/usr npm install --no-audit --no-fund --loglevel=error >&2 )
touch "$DIR/.installed"
echo "$BIN"
