#!/bin/bash
# Measures failed client connections while a PostgreSQL primary behind balancerd stops
# (issue #23): a primary and a hot standby (PostgreSQL 15, Debian's packages) behind an
# active-passive service checked every 500 ms (rise 2, fall 3) with the given check type;
# 10 s of client connections through balancerd; the primary stopped after 4 s with
# `pg_ctl -m immediate`, or `-m smart` with a session held open.
#
#   scripts/pg-failover.sh tcp|postgres pgbench|psql [immediate|smart]
#
# pgbench: `pgbench -C -S -c 8 -j 2 -T 10` (a client that fails to connect is aborted, so
# at most 8 failures show); psql: four loops of one psql connection after the other, every
# failure counted. Run as root (the servers run as the postgres user); uses ports
# 15432-15434 and 15901 on 127.0.0.1 and a folder under /tmp.
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
type=$1; client=$2; mode=${3:-immediate}
B=/usr/lib/postgresql/15/bin
W=/tmp/pg-failover/$type-$client-$mode
rm -rf $W; mkdir -p $W; chown postgres: $W
P1=15432; P2=15433; LB=15434; ADMIN=15901
as_pg() { runuser -u postgres -- "$@"; }
as_pg $B/initdb -D $W/p1 -A trust -U postgres --no-sync >/dev/null
printf "listen_addresses='127.0.0.1'\nport=$P1\nunix_socket_directories='$W'\nfsync=off\nmax_connections=200\n" >> $W/p1/postgresql.conf
as_pg $B/pg_ctl -D $W/p1 -l $W/p1.log -w start >/dev/null
as_pg $B/pgbench -i -s 1 -h 127.0.0.1 -p $P1 -U postgres postgres >/dev/null 2>&1
as_pg $B/pg_basebackup -h 127.0.0.1 -p $P1 -U postgres -D $W/p2 -R -X stream
printf "port=$P2\n" >> $W/p2/postgresql.conf
as_pg $B/pg_ctl -D $W/p2 -l $W/p2.log -w start >/dev/null
cat > $W/lb.yaml <<YAML
admin:
  listen: 127.0.0.1:$ADMIN
services:
  - name: db
    listen: 127.0.0.1:$LB
    mode: active-passive
    healthCheck: {interval: 500ms, timeout: 1s, rise: 2, fall: 3, type: $type}
    endpoints:
      - 127.0.0.1:$P1
      - 127.0.0.1:$P2
YAML
$root/.build/debug/balancerd --config $W/lb.yaml --log-level debug 2> $W/lb.log &
LBPID=$!
sleep 1.5
if [ $client = pgbench ]; then
  (as_pg $B/pgbench -C -S -n -c 8 -j 2 -T 10 -h 127.0.0.1 -p $LB -U postgres postgres > $W/bench.out 2> $W/bench.err) &
  BENCH=$!
else
  # 4 loops of one connection (psql) each after the other, for 10 s; counts failures.
  for i in 1 2 3 4; do
    ( ok=0; bad=0; end=$((SECONDS+10)); while [ $SECONDS -lt $end ]; do
        if $B/psql -h 127.0.0.1 -p $LB -U postgres -X -Atc 'select 1' postgres >/dev/null 2>>$W/psql.err; then ok=$((ok+1)); else bad=$((bad+1)); fi
      done; echo "$ok $bad" > $W/loop$i ) &
    LOOPS="${LOOPS:-} $!"
  done
  BENCH=""
fi
sleep 4
if [ $mode = smart ]; then
  # A session held open on the primary: a smart shutdown waits for it.
  $B/psql -h 127.0.0.1 -p $P1 -U postgres -X -qc 'select pg_sleep(20)' postgres >/dev/null 2>&1 &
  SESSION=$!
  sleep 0.5
  as_pg $B/pg_ctl -D $W/p1 -m smart -W stop >/dev/null
else
  as_pg $B/pg_ctl -D $W/p1 -m immediate stop >/dev/null
fi
if [ -n "$BENCH" ]; then wait $BENCH; else for p in $LOOPS; do wait $p; done; fi
sleep 0.2
kill $LBPID; wait $LBPID 2>/dev/null
[ $mode = smart ] && { kill $SESSION; as_pg $B/pg_ctl -D $W/p1 -m immediate stop >/dev/null 2>&1; }
as_pg $B/pg_ctl -D $W/p2 -m immediate stop >/dev/null
echo "== $type $client $mode"
if [ $client = pgbench ]; then
  grep -E "number of transactions|failed|aborted|tps" $W/bench.out
  echo "aborted clients: $(grep -c "client [0-9]* aborted" $W/bench.err)"; grep -m3 -E "FATAL|error" $W/bench.err
else
  cat $W/loop* | awk '{ok+=$1; bad+=$2} END {print "connections ok", ok, "failed", bad}'
  sort $W/psql.err | uniq -c | head -5
fi
grep -E "endpoint 127.0.0.1:$P1 (down|up)" $W/lb.log
rm -rf "$W/p1" "$W/p2"
