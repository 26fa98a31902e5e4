#!/bin/sh
# Installs what tabad needs to build and test on Debian 12 (bookworm).
# Runs apt-get directly as root, through sudo otherwise. systemd (systemd-analyze),
# dpkg-dev (dpkg-shlibdeps for cpack's .deb) and file serve the packaging tests;
# chromium (headless) serves the web page's test; python3, python3-venv and
# python3-gunicorn (a real pre-fork server) the
# Python client's tests (clients/python/, one installs it with pip in a venv);
# libfaketime the nemesis run's clock steps (tests/nemesis/).
set -eu
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config ca-certificates curl \
  libuv1-dev node-llhttp libhiredis-dev libsimdjson-dev libfmt-dev libcxxopts-dev \
  catch2 libtomlplusplus-dev zlib1g-dev libre2-dev redis-server redis-sentinel prometheus \
  python3 python3-venv python3-gunicorn libfaketime \
  systemd dpkg-dev file chromium >/dev/null
echo "install-deps: done"
