#!/usr/bin/env bash
# Installs the command-line tools the tests and the demo use, from Debian packages, when missing:
# promtool and prometheus (alert rules checks, the demo's Prometheus server).
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "[tools] promtool/prometheus missing: install Debian's 'prometheus' package (needs root)" >&2
  exit 1
fi
echo "[tools] installing prometheus (promtool) from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || {
  echo "[tools] apt-get install prometheus failed" >&2; exit 1; }
# Debian starts the packaged server as a system service; the project runs its own when it needs one.
(systemctl stop prometheus 2>/dev/null || service prometheus stop 2>/dev/null || pkill -x prometheus) >/dev/null 2>&1 || true
