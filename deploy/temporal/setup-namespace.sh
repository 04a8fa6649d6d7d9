#!/bin/sh
# One-shot (temporalio/admin-tools): register Offboard's namespace and its
# five search attributes. Safe to run again: what exists is left alone.
set -eu

addr=${TEMPORAL_ADDRESS:-temporal:7233}
ns=${TEMPORAL_NAMESPACE:-default}
# Closed runs stay in Temporal this long; evidence is archived when a run closes.
retention=${NAMESPACE_RETENTION:-720h}

tries=0
until temporal operator cluster health --address "$addr" >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "Temporal at $addr is not serving"; exit 1; }
  echo "waiting for Temporal at $addr"
  sleep 2
done

if temporal operator namespace describe --namespace "$ns" --address "$addr" >/dev/null 2>&1; then
  echo "namespace $ns exists"
else
  temporal operator namespace create --namespace "$ns" --retention "$retention" --address "$addr"
fi

# A new namespace takes a few seconds to reach every frontend's cache.
tries=0
until existing=$(temporal operator search-attribute list --namespace "$ns" --address "$addr" 2>/dev/null); do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "namespace $ns is not visible yet"; exit 1; }
  sleep 1
done
# The names and types workflows/types.go declares (SAEmployeeID …).
for sa in EmployeeId:Keyword DeprovisionStatus:Keyword Privileged:Bool LegalHold:Bool SLABreached:Bool; do
  name=${sa%%:*}
  type=${sa#*:}
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --namespace "$ns" --address "$addr" --name "$name" --type "$type"
  fi
done
# Each frontend maps search attributes through its namespace cache, refreshed
# every few seconds: until then a start that sets them is refused ("no mapping
# defined for search attribute"). Ready means a query naming all five works.
query="EmployeeId = 'x' AND DeprovisionStatus = 'x' AND Privileged = false AND LegalHold = false AND SLABreached = false"
tries=0
until temporal workflow count --namespace "$ns" --address "$addr" --query "$query" >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "the search attributes of $ns are not usable yet"; exit 1; }
  [ "$tries" -gt 1 ] || echo "waiting for the search attributes to reach the frontend"
  sleep 1
done
echo "namespace $ns is ready"
