#!/usr/bin/env bash
# Run a command (the test suite) with the servers the tests need: InfluxDB 1.x and
# Prometheus binaries, then PostgreSQL through scripts/with-postgres.sh.
#
#   scripts/with-servers.sh .venv/bin/pytest -x
#
# * influxd / prometheus missing: as root with apt-get, Debian's `influxdb` and
#   `prometheus` packages are installed (their services are not started: the packages'
#   own units are left alone).
# * ENPHASE_TEST_INFLUXD and ENPHASE_TEST_PROMETHEUS are exported with the binaries'
#   paths. The tests (tests/support/servers.py) start throwaway instances of their own from them,
#   on free loopback ports in temporary directories, restart them when a test needs it,
#   and stop them at the end.
# * A binary that cannot be had: under CI=true this fails loudly; elsewhere the tests that
#   need it are skipped (they say why).
set -euo pipefail

log() { echo "with-servers: $*" >&2; }

missing=()
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)

if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing Debian's ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || log "apt-get update failed; trying the install anyway"
        # policy-rc.d may refuse to start the packages' services: that is what we want.
        apt-get install -y -qq "${missing[@]}" >&2 || log "apt-get install ${missing[*]} failed"
    fi
fi

for pair in "influxd:ENPHASE_TEST_INFLUXD" "prometheus:ENPHASE_TEST_PROMETHEUS"; do
    name="${pair%%:*}"
    variable="${pair##*:}"
    if path="$(command -v "$name" 2>/dev/null)"; then
        export "$variable=$path"
        log "$name: $path"
    elif [[ "${CI:-}" == "true" ]]; then
        log "FATAL: no $name binary; CI must not skip the tests that need it"
        exit 1
    else
        log "no $name binary: the tests that need it will be skipped"
    fi
done

# Debian's packages start their services where systemd runs: ours use their own ports,
# so a running system instance does not matter.
exec "$(dirname "$0")/with-postgres.sh" "$@"
