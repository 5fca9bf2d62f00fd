# shellcheck shell=bash
# Sourced by scripts/test and scripts/start from the repository root. Makes sure .venv exists and
# holds the project installed in editable mode with its dev extras.

# Reinstalls only when pyproject.toml changed since the last install; its hash is kept in .venv.
ensure_venv() {
    local python=${PYTHON:-python3}
    local stamp=.venv/.strata-pyproject.sha256
    local wanted installed

    if [[ ! -x .venv/bin/python ]]; then
        if ! command -v "$python" >/dev/null 2>&1; then
            echo "error: '$python' not found; install Python 3.11 or newer (or set PYTHON)" >&2
            return 1
        fi
        _require_python_311 "$python" || return 1
        echo "Creating .venv with $("$python" -V 2>&1) ..." >&2
        # --clear: a .venv whose interpreter is gone is broken beyond repair.
        "$python" -m venv --clear .venv || return 1
    fi
    _require_python_311 .venv/bin/python || {
        echo "       remove .venv and run again with Python 3.11+ (PYTHON=python3.11)" >&2
        return 1
    }

    wanted=$(.venv/bin/python -c \
        'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())') \
        || return 1
    installed=$(cat "$stamp" 2>/dev/null || true)
    if [[ "$wanted" != "$installed" ]]; then
        echo "Installing strata with its dev tools into .venv ..." >&2
        rm -f "$stamp"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" \
            || return 1
        printf '%s\n' "$wanted" >"$stamp"
    fi
}

_require_python_311() {
    if ! "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "error: strata needs Python 3.11 or newer; $1 is $("$1" -V 2>&1)" >&2
        return 1
    fi
}
