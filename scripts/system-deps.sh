#!/usr/bin/env bash
# Installs the Debian packages that browser tests, speech benchmarks and the SIP conformance
# traces need, when missing.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
# Asterisk English prompts (-wav: the audio; the base package: transcripts and the sounds/en link)
dpkg -s asterisk-core-sounds-en-wav >/dev/null 2>&1 || need+=(asterisk-core-sounds-en-wav)
dpkg -s asterisk-core-sounds-en >/dev/null 2>&1 || need+=(asterisk-core-sounds-en)
# sipp places the real SIP calls of the e* traces against the simulator (tests/sim/test_conformance.py)
[ -x /usr/bin/sipp ] || need+=(sip-tester)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root or: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
