#!/bin/sh
# runc for privileged containers on a machine whose capability bounding set lacks some capabilities (this sandbox has
# no CAP_SYS_RESOURCE): Docker 20.10 asks for every capability for --privileged and runc then fails with "unable to
# apply caps". This keeps, in the OCI spec runc is given, only capabilities the bounding set has, then runs runc.
# Used by dockerd --add-runtime/--default-runtime in tests; needs jq and capsh.
spec= prev=
for a in "$@"; do
  case $prev in --bundle|-b) spec=$a/config.json ;; --process|-p) spec=$a ;; esac
  case $a in --bundle=*) spec=${a#--bundle=}/config.json ;; --process=*) spec=${a#--process=} ;; esac
  prev=$a
done
if [ -n "$spec" ] && [ -f "$spec" ]; then
  held=$(capsh --decode="0x$(awk '/^CapBnd:/ {print $2}' /proc/self/status)" | sed 's/^[^=]*=//' | tr a-z A-Z)
  jq -c --arg held "$held" '
    ($held | split(",")) as $ok
    | def keep: map(select(. as $c | $ok | index($c)));
      if .process.capabilities then .process.capabilities |= map_values(keep) else . end
    | if .capabilities then .capabilities |= map_values(keep) else . end' "$spec" > "$spec.bounded" &&
    mv "$spec.bounded" "$spec"
fi
exec runc "$@"
