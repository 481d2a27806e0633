#!/bin/sh
# Copy the configuration rendered by `operadora asterisk-config` over the samples, then run.
set -eu
if ! ls /generated/*.conf >/dev/null 2>&1; then
  echo "no generated configuration in /generated (did asterisk-config run?)" >&2
  exit 1
fi
cp /generated/*.conf /etc/asterisk/
chown asterisk /etc/asterisk/*.conf
exec /usr/sbin/asterisk -f -U asterisk -G asterisk
