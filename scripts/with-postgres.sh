#!/usr/bin/env bash
# Run a command (the test suite) with a PostgreSQL server behind ENPHASE_TEST_POSTGRES_DSN.
#
#   scripts/with-postgres.sh .venv/bin/pytest -x
#
# * ENPHASE_TEST_POSTGRES_DSN already set: the user's own server is used; nothing is started.
# * Otherwise a throwaway cluster is created in a temporary directory, listening on a free
#   loopback port (trust authentication, loopback only), and removed when the command ends,
#   whether it passed, failed or was interrupted.
# * initdb/pg_ctl missing: as root with apt-get, Debian's `postgresql` package is installed.
# * No server to be had: under CI=true this fails loudly; elsewhere the command runs without
#   a DSN and the PostgreSQL tests are skipped (they say why).
#
# Also exported: ENPHASE_TEST_POSTGRES_CTL, a command prefix that runs pg_ctl on the throwaway
# cluster (unset for a user's own server). The tests that restart PostgreSQL run this script
# again for a throwaway server of their own (tests/support/postgres.py), which they restart
# with it: the shared one serves every pytest-xdist worker at once.
set -euo pipefail

log() { echo "with-postgres: $*" >&2; }

if [[ -n "${ENPHASE_TEST_POSTGRES_DSN:-}" ]]; then
    log "using the server in ENPHASE_TEST_POSTGRES_DSN"
    exec "$@"
fi

no_server() {
    if [[ "${CI:-}" == "true" ]]; then
        log "FATAL: no PostgreSQL server could be had ($1); CI must not skip the PostgreSQL tests"
        exit 1
    fi
    log "no PostgreSQL server ($1): the PostgreSQL tests will be skipped"
    exec "$@"
}

# The directory holding initdb and pg_ctl of one installation (never mix versions).
find_bindir() {
    local path
    path="$(command -v initdb 2>/dev/null || true)"
    if [[ -n "$path" ]]; then
        path="$(readlink -f "$path")"
        if [[ -x "$(dirname "$path")/pg_ctl" ]]; then
            dirname "$path"
            return 0
        fi
    fi
    # Debian keeps them off PATH, one directory per major version: take the newest.
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
        echo "$dir"
        return 0
    fi
    return 1
}

bindir="$(find_bindir || true)"
if [[ -z "$bindir" ]]; then
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
        log "initdb/pg_ctl not found: installing Debian's postgresql package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || log "apt-get update failed; trying the install anyway"
        apt-get install -y -qq postgresql >&2 || no_server "apt-get install postgresql failed" "$@"
        bindir="$(find_bindir || true)"
    fi
fi
[[ -n "$bindir" ]] || no_server "initdb/pg_ctl not found and cannot be installed" "$@"

# PostgreSQL refuses to run as root: run the server as the `postgres` user then.
as_owner=()
if [[ "$(id -u)" == "0" ]]; then
    id postgres >/dev/null 2>&1 || no_server "running as root and there is no postgres user" "$@"
    as_owner=(runuser -u postgres --)
fi

workdir="$(mktemp -d "${TMPDIR:-/tmp}/enphase-pg.XXXXXX")"
chmod 0755 "$workdir"
datadir="$workdir/data"
mkdir "$datadir"
if [[ ${#as_owner[@]} -gt 0 ]]; then
    chown postgres: "$workdir" "$datadir"
fi

cleanup() {
    local status=$?
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$datadir" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$workdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free loopback port: bind port 0, read what the kernel gave, let it go.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

"${as_owner[@]}" "$bindir/initdb" -D "$datadir" -U postgres --auth=trust --no-sync \
    -E UTF8 --locale=C.UTF-8 >"$workdir/initdb.log" 2>&1 \
    || { cat "$workdir/initdb.log" >&2; no_server "initdb failed" "$@"; }

# fsync off: a throwaway cluster need not survive a power cut, and tests run faster.
# ENPHASE_PG_DURABLE=1 (the benchmarks) keeps the defaults, so commits cost what they cost.
options="-c listen_addresses=127.0.0.1 -p $port -k $workdir -c max_connections=200"
if [[ "${ENPHASE_PG_DURABLE:-}" != "1" ]]; then
    options+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi
if ! "${as_owner[@]}" "$bindir/pg_ctl" -D "$datadir" -o "$options" -l "$workdir/server.log" \
    -w -t 60 start >/dev/null; then
    cat "$workdir/server.log" >&2 || true
    no_server "the server did not start" "$@"
fi

export ENPHASE_TEST_POSTGRES_DSN="postgresql://postgres@127.0.0.1:$port/postgres"
printf -v ctl '%q ' "${as_owner[@]}" "$bindir/pg_ctl" -D "$datadir" -l "$workdir/server.log"
export ENPHASE_TEST_POSTGRES_CTL="$ctl"
log "$("$bindir/pg_ctl" --version) on 127.0.0.1:$port (throwaway, removed at exit)"

# Not exec: the trap must stop the server when the command is done.
set +e
"$@"
