#!/usr/bin/env bash
# Build the Dockerfile with rootful podman and smoke-test the image, all on 127.0.0.1 (`make container-test`).
#
# There is no container registry here: the base named on the Dockerfile's FROM line (debian:bookworm-slim) is
# made locally with debootstrap (minbase, slimmed the way the official -slim images are) and tagged with that
# exact name; the build runs with --pull=never. Facts behind the podman settings: shared/reference/container-ci.md
# (runc, not crun; ulimits within the VM's hard limits; this machine's CA bundle mounted at build time only).
#
# Locally the debootstrapped base is kept in podman's storage and reused (NMPROXY_REBUILD_BASE=1 rebuilds it);
# under CI (CI=true) it is always made afresh and removed at the end. Skips (exit 0, with a message) when
# podman, runc or debootstrap is missing, unless NMPROXY_REQUIRE_CONTAINER=1.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=localhost/nmproxy:ci-smoke
BASE_FROM=debian:bookworm-slim                       # exactly the FROM line of the Dockerfile
BASE_TAGS=("localhost/$BASE_FROM" "docker.io/library/$BASE_FROM")
UID_EXPECTED=10001
CI_MODE=${CI:-}
T0=$SECONDS
step() { printf '[container-test %4ss] %s\n' "$((SECONDS - T0))" "$*"; }
fail() { printf '[container-test] FAIL: %s\n' "$*" >&2; exit 1; }

missing=()
for tool in podman runc debootstrap slirp4netns curl python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  msg="container test SKIPPED: missing ${missing[*]} (apt-get install podman runc debootstrap slirp4netns curl)"
  if [ "${NMPROXY_REQUIRE_CONTAINER:-}" = 1 ]; then fail "$msg"; fi
  echo "$msg"; exit 0
fi
[ "$(id -u)" = 0 ] || { echo "container test SKIPPED: needs root (rootful podman)"; exit 0; }
grep -q '^FROM debian:bookworm-slim AS base$' Dockerfile || fail "the Dockerfile's FROM line changed: update BASE_FROM here"

WORK=$(mktemp -d /tmp/nmproxy-ctr.XXXXXX)
export CONTAINERS_CONF=$WORK/containers.conf   # our podman settings; /etc/containers stays untouched
RUN_ID=$$
C=nmproxy-ci-$RUN_ID                      # the long-running container
VOL=nmproxy-ci-data-$RUN_ID
BARE_PID= UP_PID=
cleanup() {
  set +e
  [ -n "$BARE_PID" ] && kill "$BARE_PID" 2>/dev/null
  [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null
  podman rm -f -v -t 2 "$C" "$C-bad" "$C-drain" >/dev/null 2>&1
  podman volume rm -f "$VOL" >/dev/null 2>&1
  podman rmi -f "$IMAGE" >/dev/null 2>&1
  if [ -n "$CI_MODE" ]; then podman rmi -f "${BASE_TAGS[@]}" >/dev/null 2>&1; podman image prune -f >/dev/null 2>&1; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# podman 4.3 on these VMs: crun refuses the hybrid cgroup layout -> runc; podman's default rlimits exceed the
# VM's hard limits -> explicit ulimits no higher than allowed (nproc above 32768 was refused).
NOFILE=$(ulimit -Hn); NPROC=$(ulimit -Hu)
if [ "$NOFILE" = unlimited ] || [ "$NOFILE" -gt 1048576 ]; then NOFILE=1048576; fi
if [ "$NPROC" = unlimited ] || [ "$NPROC" -gt 32768 ]; then NPROC=32768; fi
cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]
[engine]
runtime = "runc"
CONF

# ---- base image ------------------------------------------------------------------------------------------
have_base() { podman image exists "localhost/$BASE_FROM" && podman image exists "docker.io/library/$BASE_FROM"; }
if [ -n "$CI_MODE" ] || [ "${NMPROXY_REBUILD_BASE:-}" = 1 ] || ! have_base; then
  step "debootstrap bookworm minbase -> $BASE_FROM"
  podman rmi -f "${BASE_TAGS[@]}" >/dev/null 2>&1 || true
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
  ROOTFS=$WORK/rootfs
  debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -30 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
  # Slim it the way the official -slim images are: no docs, man pages or locales, now or from later apt installs.
  mkdir -p "$ROOTFS/etc/dpkg/dpkg.cfg.d"
  cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
DPKG
  find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  rm -rf "$ROOTFS"/usr/share/{man,groff,info,lintian,linda,locale}/* \
         "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/lib/apt/lists/* \
         "$ROOTFS"/var/log/* "$ROOTFS"/etc/resolv.conf "$ROOTFS"/etc/hostname
  # The same suites the official image lists (updates and security too), from this machine's mirror.
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    rm -f "$ROOTFS/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/debian.sources "$ROOTFS/etc/apt/sources.list.d/debian.sources"
  fi
  tar -C "$ROOTFS" -c . | podman import -q - "localhost/$BASE_FROM" >/dev/null
  podman tag "localhost/$BASE_FROM" "docker.io/library/$BASE_FROM"
  rm -rf "$ROOTFS"
else
  step "reusing the local $BASE_FROM base (NMPROXY_REBUILD_BASE=1 to rebuild it)"
fi

# ---- lint (hadolint from the test extra, when `make test` has made .venv) -----------------------------------
if [ -x .venv/bin/hadolint ]; then
  .venv/bin/hadolint --failure-threshold warning Dockerfile || fail "hadolint found problems in the Dockerfile"
fi

# ---- build -----------------------------------------------------------------------------------------------
step "podman build --pull=never"
# pip inside the build must trust this machine's CA: bind-mounted for RUN steps only, never copied in.
CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
printf '[global]\ncert = /run/ci-ca.crt\ndisable-pip-version-check = 1\n' >"$WORK/pip.conf"
BUILD_T0=$SECONDS
podman build --pull=never --network=host --format docker \
  -v "$CA:/run/ci-ca.crt:ro" -v "$WORK/pip.conf:/etc/pip.conf:ro" \
  -t "$IMAGE" -f Dockerfile . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; fail "podman build failed"; }
BUILD_S=$((SECONDS - BUILD_T0))
SIZE_B=$(podman image inspect -f '{{.Size}}' "$IMAGE")
SIZE_MB=$((SIZE_B / 1000000))
[ "$(podman image inspect -f '{{.Config.User}}' "$IMAGE")" = "$UID_EXPECTED:$UID_EXPECTED" ] || fail "image USER is not $UID_EXPECTED"
podman image inspect -f '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q healthz || fail "image has no HEALTHCHECK on /healthz"
[ "$SIZE_MB" -le 200 ] || fail "image is $SIZE_MB MB, over the 200 MB target"

# ---- helpers ---------------------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
ADMIN_KEY=nm-admin-ci-$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
SECURE=(--read-only --read-only-tmpfs=false --cap-drop=ALL --security-opt no-new-privileges)
now_ms() { date +%s%3N; }
wait_healthy() {  # poll /healthz on the published port (60 x 0.1 s, then up to 20 x 0.5 s), then one verbose try
  for _ in $(seq 1 60); do curl -fs --max-time 2 -o /dev/null "$URL/healthz" && return 0; sleep 0.1; done
  for _ in $(seq 1 20); do curl -fs --max-time 2 -o /dev/null "$URL/healthz" && return 0; sleep 0.5; done
  podman logs "$C" 2>&1 | tail -20
  curl -fsS --max-time 2 "$URL/healthz"
}
chat() {  # chat [key] -> prints "STATUS" and leaves headers in $WORK/h, body in $WORK/b
  local auth=()
  [ -n "${1:-}" ] && auth=(-H "Authorization: Bearer $1")
  curl -s --max-time 10 -o "$WORK/b" -D "$WORK/h" -w '%{http_code}' "${auth[@]}" -H 'Content-Type: application/json' \
    -d '{"model":"demo-chat","messages":[{"role":"user","content":"hello from the container test"}]}' \
    "$URL/v1/chat/completions"
}
header() { awk -v k="$1" '{ sub(/\r$/, "") } tolower($1)==tolower(k)":" {print $2}' "$WORK/h"; }

# podman logs "unable to get systemd connection ..." around HEALTHCHECK timers (no systemd here): harmless, so
# podman's own stderr goes to $WORK/podman.err and is shown only on failure.
# ---- the long-running container --------------------------------------------------------------------------
step "run: ${SECURE[*]}, volume $VOL at /data, 127.0.0.1:$PORT -> 8787"
podman volume create "$VOL" >/dev/null
START_MS=$(now_ms)
podman run -d --name "$C" "${SECURE[@]}" --network=slirp4netns -p "127.0.0.1:$PORT:8787" \
  -v "$VOL:/data" -e NMPROXY_ADMIN_KEY="$ADMIN_KEY" "$IMAGE" >/dev/null 2>>"$WORK/podman.err" \
  || { cat "$WORK/podman.err"; fail "podman run failed"; }
wait_healthy >/dev/null || fail "/healthz never answered 200"
HEALTHY_MS=$(($(now_ms) - START_MS))
# podman runs HEALTHCHECKs through systemd, absent here: run the image's own check by hand.
podman healthcheck run "$C" >/dev/null 2>&1 || fail "the image's HEALTHCHECK failed"
[ "$(podman inspect -f '{{.State.Health.Status}}' "$C")" = healthy ] || fail "container is not healthy"
curl -fsS "$URL/healthz" | grep -q '"auth":"keys"' || fail "/healthz does not report auth=keys with NMPROXY_ADMIN_KEY set"

step "security: non-root UID, read-only root, no capabilities, no-new-privileges"
podman exec "$C" python3 - "$UID_EXPECTED" <<'PY' || fail "security checks inside the container"
import os, sys
want = sys.argv[1]
status = dict(line.split(":", 1) for line in open("/proc/1/status"))
uids = status["Uid"].split()
assert set(uids) == {want}, f"PID 1 runs as {uids}, want {want}"
assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, status["CapEff"]
assert status["NoNewPrivs"].strip() == "1", status["NoNewPrivs"]
cmd = open("/proc/1/cmdline").read().split("\0")
assert "nmproxy" in cmd[0] or "nmproxy" in cmd[1], f"PID 1 is {cmd}: exec-form entrypoint expected"
for path in ("/etc/nmproxy/x", "/opt/nmproxy/x", "/tmp/x", "/x"):
    try:
        open(path, "w").close()
    except OSError:
        continue
    raise AssertionError(f"{path} is writable: only /data should be")
open("/data/.write-test", "w").close(); os.remove("/data/.write-test")
PY

step "keys: created inside the container; keyed chat -> 200 with receipt headers, no key -> 401"
podman exec "$C" nmproxy keys create --project ci-smoke --name container-test >"$WORK/key.out" \
  || { cat "$WORK/key.out"; fail "nmproxy keys create inside the container"; }
KEY=$(awk '$1 ~ /^nm-/ {print $1; exit}' "$WORK/key.out")
[ -n "$KEY" ] || { cat "$WORK/key.out"; fail "no key printed by nmproxy keys create"; }
STATUS=000
for _ in $(seq 1 50); do  # the proxy picks new keys up from the ledger within ~0.5 s
  STATUS=$(chat "$KEY"); [ "$STATUS" = 200 ] && break; sleep 0.1
done
[ "$STATUS" = 200 ] || { cat "$WORK/b"; fail "keyed chat answered $STATUS, want 200"; }
RECEIPT=$(header x-nextmodel-receipt-id)
[ -n "$RECEIPT" ] || { cat "$WORK/h"; fail "no x-nextmodel-receipt-id header"; }
[ -n "$(header x-nextmodel-cost-usd)" ] || fail "no x-nextmodel-cost-usd header"
STATUS=$(chat "")
[ "$STATUS" = 401 ] || { cat "$WORK/b"; fail "chat without a key answered $STATUS, want 401"; }
grep -q '"error"' "$WORK/b" || fail "401 body is not an OpenAI-style error"
IDLE_RSS_KB=$(podman exec "$C" awk '/^VmRSS/{print $2}' /proc/1/status)

step "stop (SIGTERM) must exit 0 within 5 s"
STOP_T0=$(now_ms)
podman stop -t 5 "$C" >/dev/null 2>>"$WORK/podman.err"   # past 5 s podman would SIGKILL: exit 137, caught below
STOP_MS=$(($(now_ms) - STOP_T0))
EXIT=$(podman inspect -f '{{.State.ExitCode}}' "$C")
[ "$EXIT" = 0 ] || { podman logs "$C" 2>&1 | tail -20; fail "exit code after SIGTERM is $EXIT, want 0"; }

step "start again: the receipt is still in /data and receipts verify passes inside"
RESTART_MS0=$(now_ms)
podman start "$C" >/dev/null 2>>"$WORK/podman.err"
wait_healthy >/dev/null || fail "/healthz never answered 200 after restart"
RESTART_MS=$(($(now_ms) - RESTART_MS0))
podman exec "$C" nmproxy receipts show "$RECEIPT" >"$WORK/show.out" || { cat "$WORK/show.out"; fail "receipt $RECEIPT lost"; }
podman exec "$C" nmproxy receipts list | grep -q "$RECEIPT" || fail "receipts list does not show $RECEIPT"
podman exec "$C" nmproxy receipts verify >"$WORK/verify.out" 2>&1 || { cat "$WORK/verify.out"; fail "receipts verify"; }
podman exec "$C" nmproxy receipts export >"$WORK/out.csv" || fail "receipts export"
grep -q "$RECEIPT" "$WORK/out.csv" || fail "receipts export > out.csv lacks $RECEIPT"
podman exec "$C" nmproxy spend >/dev/null || fail "nmproxy spend inside the container"
[ "$(chat "$KEY")" = 200 ] || fail "keyed chat after restart"
podman stop -t 5 "$C" >/dev/null 2>>"$WORK/podman.err"
[ "$(podman inspect -f '{{.State.ExitCode}}' "$C")" = 0 ] || fail "second stop did not exit 0"

# ---- drain: SIGTERM mid-stream finishes the stream and keeps its receipt -----------------------------------
# A slow upstream (tests/fake_upstream.py, 0.2 s between chunks) on the host's 127.0.0.1, which the container
# reaches as 10.0.2.2 through slirp4netns:allow_host_loopback.
if [ -x .venv/bin/python ]; then
  step "drain: podman stop while a stream is in flight"
  UPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  .venv/bin/python tests/fake_upstream.py "$UPORT" >"$WORK/upstream.log" 2>&1 &
  UP_PID=$!
  cat >"$WORK/drain.yaml" <<YAML
providers:
  fake: {kind: openai, base_url: "http://10.0.2.2:$UPORT/v1"}
models:
  fake-slow: {provider: fake, price: {input: 1, output: 2}}
YAML
  chmod 644 "$WORK/drain.yaml"
  D=$C-drain
  podman run -d --name "$D" "${SECURE[@]}" --network=slirp4netns:allow_host_loopback=true \
    -p "127.0.0.1:$PORT:8787" -v "$VOL:/data" -v "$WORK/drain.yaml:/etc/nmproxy/providers.yaml:ro" \
    "$IMAGE" >/dev/null 2>>"$WORK/podman.err" || { cat "$WORK/podman.err"; fail "podman run (drain)"; }
  wait_healthy >/dev/null || fail "/healthz never answered 200 (drain container)"
  curl -s --max-time 20 -N -o "$WORK/stream" -D "$WORK/h" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' "$URL/v1/chat/completions" \
    -d '{"model":"fake-slow","stream":true,"messages":[{"role":"user","content":"one two three four five six seven eight nine ten"}]}' &
  CURL_PID=$!
  for _ in $(seq 1 50); do grep -q '^data: ' "$WORK/stream" 2>/dev/null && break; sleep 0.1; done
  grep -q '^data: ' "$WORK/stream" || fail "the slow stream never started"
  DRAIN_T0=$(now_ms)
  podman stop -t 10 "$D" >/dev/null 2>>"$WORK/podman.err"
  DRAIN_MS=$(($(now_ms) - DRAIN_T0))
  wait "$CURL_PID" || fail "the client's stream broke during the stop"
  kill "$UP_PID" 2>/dev/null; wait "$UP_PID" 2>/dev/null || true; UP_PID=
  [ "$(podman inspect -f '{{.State.ExitCode}}' "$D")" = 0 ] || fail "drain: exit code after SIGTERM is not 0"
  tail -1 "$WORK/stream" | grep -q '^data: \[DONE\]' || grep -q '^data: \[DONE\]' "$WORK/stream" \
    || { cat "$WORK/stream"; fail "the stream in flight at SIGTERM did not finish"; }
  DRAIN_RECEIPT=$(header x-nextmodel-receipt-id)
  podman rm -f -v "$D" >/dev/null 2>&1
  podman run --rm --no-healthcheck --network=none "${SECURE[@]}" -v "$VOL:/data" "$IMAGE" receipts show "$DRAIN_RECEIPT" \
    >"$WORK/show.out" 2>&1 || { cat "$WORK/show.out"; fail "receipt $DRAIN_RECEIPT of the drained stream is missing"; }
  printf '  stream finished and its receipt %s kept; stop took %s ms\n' "$DRAIN_RECEIPT" "$DRAIN_MS"
fi

# ---- bad input: exits non-zero with one line, no traceback, no restart loop -------------------------------
one_line_error() {  # one_line_error WHAT EXPECTED_REGEX podman-run-args... : run once, check exit and output
  local what=$1 want=$2; shift 2
  local name=$C-bad rc
  podman run -d --name "$name" "${SECURE[@]}" --network=none "$@" >/dev/null 2>>"$WORK/podman.err" \
    || { cat "$WORK/podman.err"; fail "$what: podman run"; }
  rc=$(podman wait "$name" 2>>"$WORK/podman.err")   # it must stop by itself: no restart loop
  podman logs "$name" >"$WORK/bad.out" 2>&1
  podman rm -f -v "$name" >/dev/null 2>&1
  [ "$rc" != 0 ] || fail "$what: exited 0"
  if grep -q Traceback "$WORK/bad.out"; then cat "$WORK/bad.out"; fail "$what: traceback in the logs"; fi
  [ "$(grep -c . "$WORK/bad.out")" = 1 ] || { cat "$WORK/bad.out"; fail "$what: want exactly one line"; }
  grep -Eq "$want" "$WORK/bad.out" || { cat "$WORK/bad.out"; fail "$what: message does not match /$want/"; }
  printf '  %-22s exit %s: %s\n' "$what" "$rc" "$(cat "$WORK/bad.out")"
}
step "bad input"
printf 'server: {port: lots}\nproviders: {}\n' >"$WORK/bad.yaml"
chmod 644 "$WORK/bad.yaml"
mkdir -m 0755 "$WORK/rodata"   # owned by root: UID 10001 cannot write it
one_line_error "missing config" '^Error: .*/etc/nmproxy/missing\.yaml' -e NMPROXY_CONFIG=/etc/nmproxy/missing.yaml "$IMAGE"
podman run --rm --no-healthcheck --network=none -e NMPROXY_CONFIG=/etc/nmproxy/missing.yaml "$IMAGE" check-config >"$WORK/cc.out" 2>&1 || true
cmp -s "$WORK/bad.out" "$WORK/cc.out" || { cat "$WORK/cc.out"; fail "serve's message differs from check-config's"; }
one_line_error "invalid config" '^Error: .*server\.port' -v "$WORK/bad.yaml:/etc/nmproxy/providers.yaml:ro" "$IMAGE"
podman run --rm --no-healthcheck --network=none -v "$WORK/bad.yaml:/etc/nmproxy/providers.yaml:ro" "$IMAGE" check-config >"$WORK/cc.out" 2>&1 || true
cmp -s "$WORK/bad.out" "$WORK/cc.out" || { cat "$WORK/cc.out"; fail "serve's message differs from check-config's"; }
one_line_error "read-only /data" "'/data' is not writable by UID $UID_EXPECTED" -v "$WORK/rodata:/data" "$IMAGE"
mkdir -m 0750 "$WORK/emptydata" && chown "$UID_EXPECTED:$UID_EXPECTED" "$WORK/emptydata"
one_line_error "no keys on 0.0.0.0" 'refusing to serve on 0\.0\.0\.0 without API keys' -v "$WORK/emptydata:/data" "$IMAGE"

# ---- the same steps with the bare process, for the figures (BENCHMARKS.md); nothing asserted on speed ------
BARE_HEALTHY_MS=n/a BARE_RSS_KB=n/a
if [ -x .venv/bin/nmproxy ]; then
  step "bare process for comparison (.venv/bin/nmproxy on 127.0.0.1)"
  BPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir "$WORK/bare"
  export NMPROXY_DB=$WORK/bare/nextmodel.db
  B0=$(now_ms)
  NMPROXY_ADMIN_KEY=$ADMIN_KEY .venv/bin/nmproxy serve --config providers.yaml --host 127.0.0.1 --port "$BPORT" \
    >"$WORK/bare/log" 2>&1 &
  BARE_PID=$!
  URL=http://127.0.0.1:$BPORT
  if wait_healthy >/dev/null 2>&1; then
    BARE_HEALTHY_MS=$(($(now_ms) - B0))
    KEY=$(.venv/bin/nmproxy keys create --project ci-smoke --name bare --config providers.yaml | awk '$1 ~ /^nm-/ {print $1; exit}')
    for _ in $(seq 1 50); do [ "$(chat "$KEY")" = 200 ] && break; sleep 0.1; done
    chat "" >/dev/null
    BARE_RSS_KB=$(awk '/^VmRSS/{print $2}' "/proc/$BARE_PID/status")
  else
    cat "$WORK/bare/log"
  fi
  kill -TERM "$BARE_PID"; wait "$BARE_PID" || true; BARE_PID=
  unset NMPROXY_DB
fi

step "PASS"
printf 'image size: %s MB (%s bytes); build %s s\n' "$SIZE_MB" "$SIZE_B" "$BUILD_S"
printf 'start to healthy: %s ms (first start, empty volume); after restart: %s ms\n' "$HEALTHY_MS" "$RESTART_MS"
printf 'stop (SIGTERM -> exit 0): %s ms\n' "$STOP_MS"
printf 'idle RSS after one chat: %s kB in the container, %s kB bare (same steps); bare start to healthy: %s ms\n' \
  "$IDLE_RSS_KB" "$BARE_RSS_KB" "$BARE_HEALTHY_MS"
