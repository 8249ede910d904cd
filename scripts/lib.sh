# Shared set-up steps for scripts/demo.sh and scripts/test.sh (sourced, not run).
# Creates .venv with Python >= 3.11 and installs the project into it; the test command
# also makes .venv312 (Python 3.12, Django 6.1) for its second leg.

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

# Python 3.12 for the Django 6.1 leg (Django 6.x needs Python >= 3.12): $PYTHON312, then
# pyenv's 3.12 builds (the bare pyenv shim "python3.12" can fail where no 3.12 is selected),
# then python3.12 on PATH.
find_python312() {
    local candidate root
    root=$(pyenv root 2>/dev/null || true)
    for candidate in "${PYTHON312:-}" ${root:+"$root"/versions/3.12.*/bin/python} python3.12; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# Create .venv if needed and install the project, editable, with extras $1 (e.g. "all")
# and any further pip arguments (e.g. --group dev).
ensure_venv() {
    local python
    python=$(find_python) || die "Python >= 3.11 not found (set PYTHON=/path/to/python3.11)"
    ensure_venv_at .venv "$python" "$@"
}

# Create the virtualenv $1 with the interpreter $2 if needed and install the project into it,
# editable, with extras $3 and any further pip arguments. The install is skipped when this
# request's stamp in the venv holds the hash of the current pyproject.toml and the package
# imports from this checkout: one stamp per request, so demo.sh and test.sh do not undo
# each other's.
ensure_venv_at() {
    local venv=$1 python=$2 extras=$3
    shift 3
    local stamp wanted
    if [ ! -x "$venv/bin/python" ]; then
        echo "==> creating $venv with $python"
        if ! "$python" -m venv "$venv" 2>/dev/null; then
            rm -rf "$venv"
            ensure_debian_packages "false:python3-venv"
            "$python" -m venv "$venv"
        fi
    fi
    stamp=$venv/.lexigram-installed-$(printf '%s' "[$extras] $*" | sha256 "$venv" | cut -c1-16)
    wanted=$(sha256 "$venv" <pyproject.toml)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && installed_here "$venv"; then
        return 0
    fi
    rm -f "$stamp"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade "pip>=25.1"
    echo "==> pip install -e .[$extras] $* (into $venv)"
    # setuptools' editable install of a flat layout ends with an "Editable installation."
    # notice (an InformationOnly warning: "be careful with folders named like the package"),
    # which pip >= 25 shows as a boxed BuildBackendWarning on every install. It asks nothing
    # of us; silence exactly that message in the build backend, which inherits PYTHONWARNINGS.
    PYTHONWARNINGS="ignore:Editable installation" \
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]" "$@"
    installed_here "$venv" ||
        die "the editable install in $venv does not import lexigram_cache_django from $PWD"
    printf '%s\n' "$wanted" >"$stamp"
}

# sha256 of standard input, with the venv $1's Python (default .venv).
sha256() {
    "${1:-.venv}/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
}

# Whether the venv $1 (default .venv) imports the package from this checkout (not a stale
# or moved install). -I: without the current directory on sys.path, which would always find
# ./lexigram_cache_django.
installed_here() {
    "${1:-.venv}/bin/python" -I -c 'import os, sys, lexigram_cache_django as p
sys.exit(not os.path.realpath(p.__file__).startswith(os.path.realpath(sys.argv[1]) + os.sep))' \
        "$PWD" 2>/dev/null
}

# The admin's browser tests (tests/browser) drive Debian's chromium with Playwright for
# Python (declared in the test dependency group, so ensure_venv installs it; `playwright
# install` cannot download browsers here). As root, apt-get installs chromium when it is
# missing; otherwise the browser tests skip, saying so.
ensure_browser() {
    command -v chromium >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        ensure_debian_packages "chromium:chromium"
    else
        echo "==> chromium is missing and we are not root: the browser tests will skip"
    fi
}
