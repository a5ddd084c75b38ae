#!/usr/bin/env bash
# Print the path of the newest Python X.Y interpreter found (X.Y is $1, e.g. 3.13):
# `pythonX.Y` on PATH, else pyenv's newest X.Y.* version; exit 1 with a message if none
# (naming $2, the make variable that overrides it: HA_PYTHON by default).
# Used by `make test-ha` and `make test-pins` (Home Assistant needs a newer Python than the
# SDK's floor) and by `make test-min` (the floor itself).
set -euo pipefail
want="${1:?usage: find-python.sh X.Y [VARIABLE]}"
variable="${2:-HA_PYTHON}"
candidates=()
if command -v "python$want" >/dev/null 2>&1; then
    candidates+=("$(command -v "python$want")")
fi
root="${PYENV_ROOT:-}"
if [ -z "$root" ] && command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root)"
fi
root="${root:-$HOME/.pyenv}"
if [ -d "$root/versions" ]; then
    # Newest patch release first (3.13.10 after 3.13.9).
    while IFS= read -r dir; do
        [ -x "$root/versions/$dir/bin/python$want" ] && candidates+=("$root/versions/$dir/bin/python$want")
    done < <(ls "$root/versions" | grep -E "^${want//./\\.}\.[0-9]+$" | sort -t. -k3,3nr)
fi
for python in "${candidates[@]}"; do
    if "$python" -c "import sys, venv; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" 2>/dev/null; then
        echo "$python"
        exit 0
    fi
done
echo "no Python $want found (looked for python$want on PATH and in $root/versions);" \
     "install it (pyenv install $want) or set $variable=/path/to/python$want" >&2
exit 1
