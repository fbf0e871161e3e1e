#!/usr/bin/env bash
# Run `make run` in another terminal, then: bash examples/curl.sh
set -euo pipefail
URL=${NMPROXY_URL:-http://127.0.0.1:8787/v1}
curl -sS -i "$URL/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "demo-chat", "temperature": 0, "messages": [{"role": "user", "content": "Hello from curl"}]}'
echo
curl -sS -N "$URL/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "demo-chat", "stream": true, "messages": [{"role": "user", "content": "Stream please"}]}'
