#!/bin/sh
# sd-event-object.sh LIBSYSTEMD_A OUTPUT LD OBJCOPY NM
# One relocatable object holding the part of a static libsystemd that the service uses (sd-event
# and sd-daemon's fd helpers, with what they need of systemd's internals), in which nothing but
# the sd_* API stays global: systemd's internal helpers (strv_free, signal_from_string, ...) would
# otherwise collide with ours in a static link.
set -eu
archive=$1 out=$2 ld=$3 objcopy=$4 nm=$5

undefined=
for sym in $("$nm" -g --defined-only "$archive" 2>/dev/null |
        awk '$2 == "T" && $3 ~ /^sd_(event_|listen_fds|is_|notify|pid_notify|booted|watchdog_enabled)/ { print $3 }' |
        sort -u); do
        undefined="$undefined -u $sym"
done
[ -n "$undefined" ] || { echo "sd-event-object: no sd_event symbols in $archive" >&2; exit 1; }
# shellcheck disable=SC2086 # one word per option
"$ld" -r --gc-sections -o "$out.tmp" $undefined "$archive"
"$objcopy" --wildcard --keep-global-symbol='sd_*' --strip-unneeded "$out.tmp" "$out"
rm -f "$out.tmp"
