#!/bin/sh
# meshgwctl: runs a meshgw process supervised where there is no systemd
# (containers, plain hosts, a mesh on one machine). Each process is a session
# of its own: a loop restarting the command a second after it exits; stopping
# signals the whole session, so nothing is left behind.
#
#   meshgwctl start RUN_DIR NAME LOG COMMAND...  (re)start NAME, append output to LOG
#   meshgwctl stop RUN_DIR NAME                  SIGTERM, wait up to 15 s, then SIGKILL
#   meshgwctl status RUN_DIR NAME                exit 0 if running
#   meshgwctl wait URL SECONDS                   poll URL until it answers 2xx
set -eu
usage() { echo "usage: meshgwctl start|stop|status RUN_DIR NAME [LOG COMMAND...] | wait URL SECONDS" >&2; exit 2; }
[ $# -ge 3 ] || usage
op=$1

if [ "$op" = wait ]; then
  url=$2 n=$(($3 * 10)) i=0
  until curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -ge $n ]; then echo "meshgwctl: $url not ready after $3 s" >&2; exit 1; fi
    sleep 0.1
  done
  exit 0
fi

run=$2 name=$3
shift 3
pidf="$run/$name.pid"

alive() { [ -s "$pidf" ] && kill -0 "-$(cat "$pidf")" 2>/dev/null; }

stop() {
  if ! alive; then rm -f "$pidf"; return 0; fi
  pg=$(cat "$pidf")
  kill -TERM "-$pg" 2>/dev/null || true
  i=0
  while kill -0 "-$pg" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -ge 150 ]; then
      echo "meshgwctl: $name did not stop within 15 s of SIGTERM; killing it" >&2
      kill -KILL "-$pg" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$pidf"
}

case "$op" in
start)
  [ $# -ge 2 ] || usage
  log=$1
  shift
  mkdir -p "$run" "$(dirname "$log")"
  stop
  # setsid: a new session (and process group) whose id the loop records.
  setsid sh -c 'echo $$ > "$0"; while :; do "$@"; echo "meshgwctl: exited with $?; restarting in 1 s"; sleep 1; done' \
    "$pidf" "$@" </dev/null >>"$log" 2>&1 &
  i=0
  until [ -s "$pidf" ]; do
    i=$((i + 1))
    if [ $i -ge 50 ]; then echo "meshgwctl: $name did not start" >&2; exit 1; fi
    sleep 0.1
  done
  echo "meshgwctl: started $name (session $(cat "$pidf")), log $log"
  ;;
stop) stop ;;
status)
  if alive; then echo "$name running (session $(cat "$pidf"))"; else echo "$name stopped"; exit 3; fi
  ;;
*) usage ;;
esac
