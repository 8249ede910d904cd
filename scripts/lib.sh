# Shared set-up steps for scripts/demo.sh and scripts/test.sh (sourced, not run).
# Creates .venv with Python >= 3.11 and installs the project into it.

die() { printf '\n*** %s\n' "$*" >&2; exit 1; }

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# apt-get install the given Debian packages when their command is missing.
# Arguments: pairs of "command:package".
ensure_debian_packages() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing Debian packages: ${missing[*]} (run as root on Debian, or install them yourself)"
    fi
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Create .venv if needed and install the project, editable, with extras $1 (e.g. "all")
# and any further pip arguments (e.g. --group dev).
ensure_venv() {
    local extras=$1
    shift
    local python
    python=$(find_python) || die "Python >= 3.11 not found (set PYTHON=/path/to/python3.11)"
    if [ ! -x .venv/bin/python ]; then
        echo "==> creating .venv with $python"
        if ! "$python" -m venv .venv 2>/dev/null; then
            rm -rf .venv
            ensure_debian_packages "false:python3-venv"
            "$python" -m venv .venv
        fi
    fi
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=25.1"
    echo "==> pip install -e .[$extras] $*"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]" "$@"
}
