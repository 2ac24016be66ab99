# shellcheck shell=bash
# nbd_lib.sh — NBD servers for kcopy's NBD integration tests.  Sourced after
# lib.sh, never run.
#
# Servers listen on Unix sockets in $SCRATCH only (nothing leaves the machine);
# their URIs are nbd+unix:///?socket=PATH (nbdkit's and qemu-nbd's default
# export name is empty).  Every server started here is recorded in a file (so
# that one started inside run_case's subshell is known too) and killed by an
# EXIT trap that runs before lib.sh's cleanup (chained, as hold_exclusive does):
# no server outlives the test, and none holds a file in $SCRATCH when it goes.
# nbdkit also runs with --exit-with-parent, so it ends with the shell that
# started it even if this shell is killed with SIGKILL.
#
#   need_nbdkit                          skip (77) unless nbdkit, nbdcopy and nbdinfo are installed
#   nbd_start NAME NBDKIT-ARGS...        nbdkit -U $SCRATCH/NAME.sock NBDKIT-ARGS; sets NBD_URI,
#                                        NBD_PID, NBD_SOCK (call it directly, never in "$(...)")
#   nbd_uri NAME                         the URI of server NAME
#   nbd_pid NAME                         its PID
#   nbd_kill NAME                        SIGKILL it and wait until it is gone
#   need_qemu_nbd / qemu_nbd_start NAME QEMU-NBD-ARGS... IMAGE
#                                        the same for qemu-nbd (forks; ends by itself when its
#                                        last client goes, unless given -t)
#   nbd_fetch URI FILE                   the whole export, read with nbdcopy (not kcopy), into FILE
#   wait_gone PID SECONDS                wait until process PID has ended
#   expect_report STATUS [FIELD=VALUE]   the last --json report is valid (check_report.py)
#   restore_file FILE ORIG               ORIG written back into FILE in place (served files)
#   ere TEXT                             TEXT quoted for an ERE (stderr_line_with)
#   error_line_about WHO                 stderr reports an error about WHO ("destination 2")
#   now_ms                               milliseconds since the epoch

_NBD_PIDS_FILE=$SCRATCH/.nbd_pids # "NAME PID" per line
: >"$_NBD_PIDS_FILE"

# need_nbdkit: skip (77) unless nbdkit and libnbd's nbdcopy and nbdinfo are installed.
need_nbdkit() {
    command -v nbdkit >/dev/null || skip "nbdkit not installed (apt-get install nbdkit)"
    command -v nbdcopy >/dev/null || skip "nbdcopy not installed (apt-get install libnbd-bin)"
    command -v nbdinfo >/dev/null || skip "nbdinfo not installed (apt-get install libnbd-bin)"
}

# need_qemu_nbd: skip (77) unless qemu-nbd and qemu-img are installed.
need_qemu_nbd() {
    command -v qemu-nbd >/dev/null || skip "qemu-nbd not installed (apt-get install qemu-utils)"
    command -v qemu-img >/dev/null || skip "qemu-img not installed (apt-get install qemu-utils)"
}

# _alive PID: PID is a process that has not ended (a zombie has: its files
# and sockets are closed; only its parent can reap it).
_alive() {
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n $stat && $stat != Z* ]]
}

# wait_gone PID SECONDS: true once PID has ended (reaped if it is our child).
wait_gone() {
    local pid=$1 limit=$2 i
    for ((i = 0; i < limit * 20; i++)); do
        _alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.05
    done
    return 1
}

# _is_server PID: PID is still an NBD server (not a process that reused the
# number after a server started in a run_case subshell ended with it).
_is_server() {
    local comm
    comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 1
    [[ $comm == nbdkit || $comm == qemu-nbd ]]
}

_nbd_stop_all() {
    local name pid
    while read -r name pid; do
        if [[ -z $pid ]] || ! _is_server "$pid"; then continue; fi
        kill -KILL "$pid" 2>/dev/null || true # also a stopped (SIGSTOP) one
        wait_gone "$pid" 5 || echo "cleanup: NBD server $name (PID $pid) did not end" >&2
    done <"$_NBD_PIDS_FILE"
    : >"$_NBD_PIDS_FILE"
}

_nbd_stop_then_cleanup() {
    local rc=$?
    set +e
    # kcopy first (it may be talking to the servers), as cleanup would.
    if [[ -n $_CHILD_PID ]]; then
        kill -TERM "$_CHILD_PID" 2>/dev/null
        wait "$_CHILD_PID" 2>/dev/null
        _CHILD_PID=
    fi
    _nbd_stop_all
    _status_is "$rc"
    cleanup # takes its exit status from $?, i.e. rc
}
trap _nbd_stop_then_cleanup EXIT

# nbd_pid NAME / nbd_uri NAME / nbd_sock NAME
nbd_pid() {
    local name pid found=
    while read -r name pid; do
        [[ $name == "$1" ]] && found=$pid # the last server started under that name
    done <"$_NBD_PIDS_FILE"
    [[ -n $found ]] || fail "no NBD server named $1"
    printf '%s\n' "$found"
}
nbd_sock() { printf '%s\n' "$SCRATCH/$1.sock"; }
nbd_uri() { printf 'nbd+unix:///?socket=%s\n' "$SCRATCH/$1.sock"; }

# _nbd_wait_ready NAME PID PIDFILE WHAT: wait until PIDFILE is written (the
# server listens on its socket by then), or fail showing its log.
_nbd_wait_ready() {
    local name=$1 pid=$2 pidfile=$3 what=$4 log=$SCRATCH/$1.log
    for _ in $(seq 200); do
        [[ -s $pidfile && -S $SCRATCH/$name.sock ]] && return 0
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            sed "s/^/    $what: /" "$log" >&2
            fail "$what for $name exited before it listened on $SCRATCH/$name.sock"
        fi
        sleep 0.05
    done
    sed "s/^/    $what: /" "$log" >&2
    fail "$what for $name did not listen on $SCRATCH/$name.sock within 10 s"
}

# nbd_start NAME NBDKIT-ARGS...: nbdkit -f --exit-with-parent -U
# $SCRATCH/NAME.sock -P $SCRATCH/NAME.pid NBDKIT-ARGS, its messages (injected
# errors...) in $SCRATCH/NAME.log.  Returns once it listens.  Sets NBD_URI,
# NBD_SOCK and NBD_PID.  Call it directly, never in "$(...)": nbdkit would end
# with the subshell (--exit-with-parent).
nbd_start() {
    local name=$1 sock=$SCRATCH/$1.sock pidfile=$SCRATCH/$1.pid pid
    shift
    rm -f -- "$sock" "$pidfile"
    printf '  nbdkit server %s: nbdkit -U %s %s\n' "$name" "$sock" "$*"
    nbdkit -f --exit-with-parent -U "$sock" -P "$pidfile" "$@" </dev/null >"$SCRATCH/$name.log" 2>&1 &
    pid=$!
    disown "$pid" # no "Killed" job notice when a test kills it (bash still reaps it)
    printf '%s %s\n' "$name" "$pid" >>"$_NBD_PIDS_FILE"
    _nbd_wait_ready "$name" "$pid" "$pidfile" nbdkit
    [[ $(cat "$pidfile") == "$pid" ]] || fail "nbdkit for $name wrote PID $(cat "$pidfile"), started as $pid"
    # shellcheck disable=SC2034 # for the tests
    NBD_PID=$pid NBD_SOCK=$sock NBD_URI=$(nbd_uri "$name")
}

# qemu_nbd_start NAME QEMU-NBD-ARGS... IMAGE: qemu-nbd --fork -k
# $SCRATCH/NAME.sock --pid-file $SCRATCH/NAME.pid QEMU-NBD-ARGS IMAGE (it
# returns once the server listens).  Sets NBD_URI, NBD_SOCK and NBD_PID.
qemu_nbd_start() {
    local name=$1 sock=$SCRATCH/$1.sock pidfile=$SCRATCH/$1.pid pid
    shift
    rm -f -- "$sock" "$pidfile"
    printf '  qemu-nbd server %s: qemu-nbd -k %s %s\n' "$name" "$sock" "$*"
    # --fork: qemu-nbd returns once it listens (no --exit-with-parent here:
    # only the EXIT trap ends it, or, without -t, the end of its last client).
    if ! qemu-nbd --fork -k "$sock" --pid-file "$pidfile" "$@" </dev/null >"$SCRATCH/$name.log" 2>&1; then
        sed 's/^/    qemu-nbd: /' "$SCRATCH/$name.log" >&2
        fail "qemu-nbd for $name failed to start"
    fi
    _nbd_wait_ready "$name" "" "$pidfile" qemu-nbd
    pid=$(cat "$pidfile")
    printf '%s %s\n' "$name" "$pid" >>"$_NBD_PIDS_FILE"
    # shellcheck disable=SC2034 # for the tests
    NBD_PID=$pid NBD_SOCK=$sock NBD_URI=$(nbd_uri "$name")
}

# nbd_kill NAME: SIGKILL server NAME (as a crash would end it) and wait until
# it is gone.
nbd_kill() {
    local pid
    pid=$(nbd_pid "$1")
    _is_server "$pid" || fail "NBD server $1 (PID $pid) is not running"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || fail "NBD server $1 (PID $pid) did not end after SIGKILL"
}

# nbd_fetch URI FILE: the whole export at URI, read through the server with
# nbdcopy (independent of kcopy), into FILE.
nbd_fetch() {
    rm -f -- "$2"
    nbdcopy -- "$1" "$2" || fail "nbdcopy could not read $1"
}

# now_ms: milliseconds since the epoch.
now_ms() {
    local t
    t=$(date +%s%N)
    echo $((t / 1000000))
}

# expect_report WANT_STATUS [FIELD=VALUE...]: the last stdout is a valid --json
# report (tests/integration/check_report.py) of a run that exited WANT_STATUS,
# with those fields.  Needs need_python.
CHECK_REPORT=$TESTS_DIR/check_report.py
expect_report() {
    local statuses
    statuses=$("$PYTHON" "$CHECK_REPORT" "$STDOUT_FILE" "$@") || {
        sed 's/^/    stdout: /' "$STDOUT_FILE" >&2
        fail "the JSON report is wrong (see above)"
    }
    printf '    report: exit %s, destinations: %s\n' "$1" "$statuses"
}

# restore_file FILE ORIG: put the pristine ORIG back into FILE in place (the
# same inode: an nbdkit file server keeps it open).
restore_file() {
    dd if="$2" of="$1" bs=1M conv=notrunc,fsync status=none || fail "cannot restore $1 from $2"
}

# ere TEXT: TEXT as an extended regular expression that matches it literally
# (for stderr_line_with: URIs hold '+', '?', '.').
ere() {
    printf '%s\n' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'
}

# error_line_about WHO: true if a line of the last stderr reports an error
# about WHO ("source", "destination 2", "destination [0-9]"): "kcopy: WHO
# 'PATH': ..." with "error" or "failed" after the quoted path (the scratch
# paths hold the test's name, e.g. nbd_read_error, so the path itself is not
# searched).
error_line_about() {
    stderr_line_with "^kcopy: (warning: )?$1 '[^']*': .*([Ee]rror|failed|[Tt]imed out)"
}
