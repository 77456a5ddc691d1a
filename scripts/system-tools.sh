#!/usr/bin/env bash
# Install the Debian packages the tests use, if any is missing: `apt-get update` once, then
# `apt-get install` of the missing ones only. With all present it only asks dpkg and returns.
# Add a package here when a test starts to use a tool from it.
set -euo pipefail

PACKAGES=(
  prometheus  # promtool: checks and unit-tests deploy/prometheus/*.yml
  openssl     # the openssl CLI: independent checks of certificates, CRLs, OCSP, TLS
  haproxy     # tests/server/test_haproxy.py: replicas behind deploy/haproxy/haproxy.cfg
  lego        # an ACME client (tests/acme/test_lego.py): real http-01 orders against serve
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "system-tools: missing Debian packages: ${missing[*]}; install them as root:" >&2
    echo "  apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
echo "system-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
