#!/usr/bin/env bash
# Set up nexusbayes for development: find a Python >= 3.12, make a virtual environment (default .venv) and
# install the package with its test dependencies into it (`pip install -e '.[dev]'`).
#
#   ./setup.sh                 # makes .venv (an existing .venv of Python >= 3.12 is reused and updated)
#   ./setup.sh /tmp/nb-venv    # elsewhere
#   ./setup.sh --find-python   # only print the interpreter it would use
#
# Why a script rather than `python3.12 -m venv .venv`: on machines where Python comes from pyenv,
# `python3.12` is a shim that fails ("command not found ... exists in these Python versions") unless a
# version is selected, although the interpreter is installed. The script looks for one the way pyenv stores them.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${1:-.venv}

works() {   # is "$1" a Python >= 3.12 that runs?
  "$1" -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1
}

find_python() {
  # 1. python3.12 / python3.13 / python3 on PATH, as users have them
  local exe
  for exe in python3.12 python3.13 python3; do
    if command -v "$exe" >/dev/null 2>&1 && works "$exe"; then
      command -v "$exe"; return 0
    fi
  done
  # 2. pyenv: its shims need a selected version; the interpreters themselves live under $(pyenv root)/versions
  if command -v pyenv >/dev/null 2>&1; then
    local dir
    for dir in "$(pyenv root)"/versions/3.1[2-9]*; do
      if [ -x "$dir/bin/python3" ] && works "$dir/bin/python3"; then
        echo "$dir/bin/python3"; return 0
      fi
    done
  fi
  echo "setup.sh: no Python >= 3.12 found (tried python3.12, python3.13, python3 and pyenv's versions);" \
       "install one, e.g. 'pyenv install 3.12'" >&2
  return 1
}

if [ "$VENV" = "--find-python" ]; then
  find_python; exit
fi
if [ -x "$VENV/bin/python" ] && works "$VENV/bin/python"; then
  echo "Using the existing $VENV ($("$VENV/bin/python" --version))"
elif [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
  echo "setup.sh: $VENV exists and is not a virtual environment; move it away or name another folder" >&2
  exit 1
else
  PY=$(find_python)
  echo "Making $VENV with $PY ($("$PY" --version))"
  "$PY" -m venv --clear "$VENV"   # --clear: an old environment of an older Python is replaced
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
echo "Installing nexusbayes and its test dependencies into $VENV (a few minutes the first time) ..."
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
echo "Done: $VENV/bin/nexusbayes --help; tests: $VENV/bin/python -m pytest"
