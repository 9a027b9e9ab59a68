#!/usr/bin/env bash
# One command to try MambaScope: installs what is missing, builds, and opens the desktop app on
# the bundled default model (no download, no GPU needed). Arguments go to the app.
# Without a display it renders the window headless and writes build/screenshot.png instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "run-app: no display found; rendering the app headless to build/screenshot.png"
  QT_QPA_PLATFORM=offscreen exec build/app/mambascope --prompt "Once upon a time" --max-tokens 48 \
    --screenshot build/screenshot.png "$@"
fi
exec build/app/mambascope "$@"
