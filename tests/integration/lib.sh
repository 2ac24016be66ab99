# lib.sh — shared helpers for kcopy's integration tests.  Sourced, never run.
#
# Every test runs kcopy against real loop devices (see /work/shared/TESTING.md)
# and checks results byte-exact against models built from pristine copies of
# the images, never against the destination itself.
#
# Exit status of a test: 0 pass, 1 fail, 77 skipped (meson's convention).
#
# Everything a test creates (scratch dir, loop devices, mounts) is recorded and
# undone by the single EXIT trap installed here, on every path: success,
# failure, `set -e` aborts and SIGHUP/SIGINT/SIGTERM.  Records are kept in a file
# so that helpers called inside "$(...)" (a subshell) are cleaned up too.
#
# Run one by hand as root:  tests/integration/one_destination.sh
#   KCOPY=/path/to/kcopy       the binary under test (default: build/kcopy)
#   KCOPY_TEST_TMPDIR=/dir     where scratch images go (default: /var/tmp)
#   KCOPY_TEST_TIMEOUT=SECS    limit on one kcopy run (default: 60)
#   KCOPY_TEST_IO_ENGINE=NAME  run every kcopy with --io-engine NAME (meson runs
#                              the fault, signal and overlap tests once more with libaio)

# The binary under test: meson passes $KCOPY; otherwise the build dir of this tree.
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KCOPY=${KCOPY:-$(cd "$TESTS_DIR/../.." && pwd)/build/kcopy}
# Upper bound in seconds on one kcopy run, so a hang fails instead of stalling.
KCOPY_TEST_TIMEOUT=${KCOPY_TEST_TIMEOUT:-60}
TEST_NAME=$(basename "$0" .sh)

# --- reporting --------------------------------------------------------------

# fail MSG...: print the failure and end the test with status 1.
fail() {
    printf 'FAIL: %s: %s\n' "$TEST_NAME" "$*" >&2
    exit 1
}

# skip MSG...: end the test as skipped (77).
skip() {
    printf 'SKIP: %s: %s\n' "$TEST_NAME" "$*"
    exit 77
}

# pass: end the test successfully.
pass() {
    printf 'PASS: %s\n' "$TEST_NAME"
    exit 0
}

# check MSG...: announce the property about to be checked.
check() {
    printf 'check: %s\n' "$*"
}

# --- scratch space and cleanup ----------------------------------------------

# A scratch base on a real file system: images there can be looped with
# --direct-io=on, and a tmpfs /tmp would eat RAM.  KCOPY_TEST_TMPDIR overrides.
_scratch_base() {
    local d
    for d in "${KCOPY_TEST_TMPDIR:-}" /var/tmp "${TMPDIR:-}" /tmp; do
        [[ -n $d && -d $d && -w $d ]] || continue
        [[ $(stat -f -c %T "$d") == tmpfs ]] && continue
        printf '%s\n' "$d"
        return 0
    done
    printf '%s\n' /var/tmp # all tmpfs: still works, without direct I/O loops
}

SCRATCH=$(mktemp -d "$(_scratch_base)/kcopy-test.$TEST_NAME.XXXXXX")
_CLEANUP_LIST=$SCRATCH/.cleanup # "KIND<TAB>ARG[<TAB>ARG2]" per line, undone in reverse
: >"$_CLEANUP_LIST"
STDOUT_FILE=$SCRATCH/.stdout    # stdout of the last expect_status command
STDERR_FILE=$SCRATCH/.stderr    # stderr of the last expect_status command
: >"$STDOUT_FILE"
: >"$STDERR_FILE"
_CHILD_PID=                     # the command expect_status is waiting for

# With KCOPY_TEST_IO_ENGINE, $KCOPY becomes a wrapper that execs the binary
# with --io-engine (exec: signals sent to the wrapper's PID reach kcopy).
if [[ -n ${KCOPY_TEST_IO_ENGINE:-} && -x $KCOPY ]]; then
    printf '#!/bin/sh\nexec %q --io-engine %q "$@"\n' "$KCOPY" "$KCOPY_TEST_IO_ENGINE" >"$SCRATCH/kcopy"
    chmod +x "$SCRATCH/kcopy"
    KCOPY=$SCRATCH/kcopy
    printf 'kcopy runs with --io-engine %s\n' "$KCOPY_TEST_IO_ENGINE"
fi

_push_cleanup() {
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$_CLEANUP_LIST"
}

# Detach loop device DEV if it still loops IMAGE (the number may already have
# been reused by another test).  A device still held open gets autoclear from
# the kernel instead, so wait until it is really gone.
_detach() {
    local dev=$1 image=$2 back
    for _ in $(seq 50); do
        back=$(losetup -n -O BACK-FILE "$dev" 2>/dev/null) || return 0
        [[ $back == "$image" || $back == "$image (deleted)" ]] || return 0
        losetup -d "$dev" 2>/dev/null || true
        sleep 0.1
    done
    return 1
}

# Unmount, retrying while a just-detached loop device still holds a file in it.
_umount() {
    local mnt=$1
    for _ in $(seq 50); do
        mountpoint -q "$mnt" || return 0
        umount "$mnt" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

cleanup() {
    local rc=$? kind arg arg2 leaked=0
    trap '' HUP INT TERM
    set +e
    if [[ -n $_CHILD_PID ]]; then
        kill -TERM "$_CHILD_PID" 2>/dev/null
        wait "$_CHILD_PID" 2>/dev/null
    fi
    if [[ -f $_CLEANUP_LIST ]]; then
        while IFS=$'\t' read -r kind arg arg2; do
            case $kind in
            detach) _detach "$arg" "$arg2" || { echo "cleanup: could not detach $arg" >&2; leaked=1; } ;;
            umount) _umount "$arg" || { echo "cleanup: could not unmount $arg" >&2; leaked=1; } ;;
            esac
        done < <(tac "$_CLEANUP_LIST")
    fi
    if ((leaked)); then
        echo "cleanup: leaving $SCRATCH in place" >&2
        ((rc == 0)) && rc=1
    else
        rm -rf --one-file-system -- "$SCRATCH"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- preconditions ----------------------------------------------------------

# need_root: skip (77) unless we can make loop devices.
need_root() {
    ((EUID == 0)) || skip "needs root"
    [[ -e /dev/loop-control ]] || skip "no /dev/loop-control"
    command -v losetup >/dev/null || skip "losetup not installed"
}

# need_kcopy: fail unless the binary under test exists.
need_kcopy() {
    [[ -x $KCOPY ]] || fail "kcopy binary not found at $KCOPY (build it, or set KCOPY)"
}

# --- devices ----------------------------------------------------------------

# make_image NAME SIZE: SIZE bytes (head -c suffixes: 16M = 16 MiB) of random
# data in $SCRATCH/NAME; prints the path.
make_image() {
    local path=$SCRATCH/$1
    head -c "$2" /dev/urandom >"$path" || fail "cannot create image $path"
    printf '%s\n' "$path"
}

# pristine_copy IMAGE [COPY]: a copy of IMAGE taken now (before kcopy touches
# it), kept as the reference and as the base of expected results; COPY
# defaults to IMAGE.orig.  Prints the copy's path.
pristine_copy() {
    local copy=${2:-$1.orig}
    cp --sparse=always -- "$1" "$copy" || fail "cannot copy $1"
    printf '%s\n' "$copy"
}

# attach IMAGE [LOSETUP ARGS...]: loop IMAGE on a free loop device (direct I/O
# unless the image is on tmpfs); records it for cleanup; prints the device.
attach() {
    local image=$1 dev
    shift
    local dio=()
    [[ $(stat -f -c %T "$image") == tmpfs ]] || dio=(--direct-io=on)
    # Another test may grab the free device between find and attach: retry.
    for _ in 1 2 3 4 5; do
        if dev=$(losetup -f --show "${dio[@]}" "$@" -- "$image"); then
            _push_cleanup detach "$dev" "$(realpath -- "$image")"
            printf '%s\n' "$dev"
            return 0
        fi
        sleep 0.2
    done
    fail "cannot attach $image to a loop device"
}

# mount_tmpfs SIZE_LIMIT: a fresh tmpfs of at most SIZE_LIMIT bytes, recorded
# for cleanup; prints the mount point.
mount_tmpfs() {
    local mnt
    mnt=$(mktemp -d "$SCRATCH/tmpfs.XXXXXX")
    mount -t tmpfs -o "size=$1,mode=0700" kcopy-test "$mnt" || fail "cannot mount tmpfs on $mnt"
    _push_cleanup umount "$mnt"
    printf '%s\n' "$mnt"
}

# mount_device DEV: mount the file system on DEV (recorded for cleanup);
# prints the mount point.
mount_device() {
    local mnt
    mnt=$(mktemp -d "$SCRATCH/mnt.XXXXXX")
    mount "$1" "$mnt" || fail "cannot mount $1 on $mnt"
    _push_cleanup umount "$mnt"
    printf '%s\n' "$mnt"
}

# tmpfs_full_device SIZE_LIMIT IMAGE_SIZE: a loop device of IMAGE_SIZE bytes
# over a sparse image in a tmpfs of SIZE_LIMIT bytes: writes succeed until the
# tmpfs is full, then fail (ENOSPC, or EIO from the block layer).  Prints the device.
tmpfs_full_device() {
    local mnt
    mnt=$(mount_tmpfs "$1")
    truncate -s "$2" "$mnt/full.img" || fail "cannot create $mnt/full.img"
    attach "$mnt/full.img"
}

# empty_full_device DEV: free the space of a tmpfs_full_device again (punch
# the whole backing image), so the next copy fails at the same point.
empty_full_device() {
    local back
    back=$(losetup -n -O BACK-FILE "$1") || fail "$1 is not a loop device"
    back=${back%% (deleted)}
    fallocate --punch-hole --offset 0 --length "$(stat -c %s "$back")" "$back" ||
        fail "cannot punch $back"
}

# restore_device DEV ORIG: write the pristine copy ORIG back over DEV (a loop
# device of the same size), to start the next case from known contents.
restore_device() {
    dd if="$2" of="$1" bs=1M oflag=direct status=none || fail "cannot restore $1 from $2"
}

# --- reading and comparing sectors -------------------------------------------

# size_bytes FILE: size of a block device or regular file in bytes.
size_bytes() {
    if [[ -b $1 ]]; then blockdev --getsize64 "$1"; else stat -L -c %s "$1"; fi
}

# size_sectors FILE: size in 512-byte sectors.
size_sectors() {
    echo $(($(size_bytes "$1") / 512))
}

# read_sectors FILE SECTOR COUNT: write exactly those 512-byte sectors to
# stdout.  A block device is read with O_DIRECT (after dropping its page
# cache), so we see what reached the device, not stale cached pages.
read_sectors() {
    local file=$1 sector=$2 count=$3 size flags=skip_bytes,count_bytes
    size=$(size_bytes "$file") || fail "cannot stat $file"
    (((sector + count) * 512 <= size)) ||
        fail "read_sectors: $file has $((size / 512)) sectors, asked for $sector+$count"
    ((count > 0)) || return 0
    if [[ -b $file ]]; then
        blockdev --flushbufs "$file" || fail "cannot flush buffers of $file"
        local ss
        ss=$(blockdev --getss "$file")
        (((sector * 512) % ss == 0 && (count * 512) % ss == 0)) && flags+=,direct
    fi
    local rc=0
    dd if="$file" bs=1M iflag="$flags" skip=$((sector * 512)) count=$((count * 512)) status=none || rc=$?
    # 141: SIGPIPE, the reader (cmp) stopped at a difference and reports it.
    ((rc == 0 || rc == 141)) || fail "cannot read $file sectors $sector+$count"
    return "$rc"
}

# sectors_sha FILE SECTOR COUNT: sha256 (hex) of exactly those sectors.
sectors_sha() {
    local sum
    sum=$(read_sectors "$@" | sha256sum) || fail "cannot checksum $1"
    printf '%s\n' "${sum%% *}"
}

# device_sha FILE: sha256 of the whole device or file.
device_sha() {
    sectors_sha "$1" 0 "$(size_sectors "$1")"
}

# expect_same_sectors WHAT A A_SECTOR B B_SECTOR COUNT: the COUNT sectors of A
# at A_SECTOR equal those of B at B_SECTOR; on a difference, names the first
# differing sector (relative to A_SECTOR).
expect_same_sectors() {
    local what=$1 a=$2 as=$3 b=$4 bs=$5 count=$6 out
    if ! out=$(cmp -- <(read_sectors "$a" "$as" "$count") <(read_sectors "$b" "$bs" "$count") 2>&1); then
        local byte
        byte=$(sed -n 's/.* differ: \(byte\|char\) \([0-9]*\),.*/\2/p' <<<"$out")
        [[ -n $byte ]] && out="first difference in sector $((as + (byte - 1) / 512)) of $a (sector $((bs + (byte - 1) / 512)) of $b)"
        fail "$what: $out"
    fi
}

# expect_zero_sectors WHAT FILE SECTOR COUNT: those sectors read as zeroes.
expect_zero_sectors() {
    local what=$1 file=$2 sector=$3 count=$4
    cmp -s -- <(read_sectors "$file" "$sector" "$count") <(head -c $((count * 512)) /dev/zero) ||
        fail "$what: $file sectors $sector+$count are not all zero"
}

# model_copy EXPECTED SRC SRC_SECTOR DST_SECTOR COUNT: apply to the model file
# EXPECTED the copy that kcopy should make (read from the image file SRC).
model_copy() {
    local expected=$1 src=$2 ss=$3 ds=$4 count=$5
    dd if="$src" of="$expected" bs=512 skip="$ss" seek="$ds" count="$count" conv=notrunc status=none ||
        fail "cannot build model $expected"
}

# expect_matches_model WHAT DEV EXPECTED: DEV (device or file) is byte for byte
# the model EXPECTED, same size.
expect_matches_model() {
    local what=$1 dev=$2 expected=$3 dsize esize
    dsize=$(size_bytes "$dev")
    esize=$(size_bytes "$expected")
    ((dsize == esize)) || fail "$what: $dev is $dsize bytes, expected $esize"
    expect_same_sectors "$what" "$dev" 0 "$expected" 0 $((dsize / 512))
}

# --- running kcopy ------------------------------------------------------------

# show_cmd CMD...: the command, shell-quoted, with the binary shown as "kcopy".
show_cmd() {
    local out="" a
    for a in "$@"; do
        [[ $a == "$KCOPY" ]] && a=kcopy
        out+=" $(printf '%q' "$a")"
    done
    printf '%s\n' "${out# }"
}

# expect_status WANT CMD...: run CMD (stdout to $STDOUT_FILE, stderr to
# $STDERR_FILE, bounded by KCOPY_TEST_TIMEOUT) and fail unless it exits WANT.
# Sets LAST_STATUS.  Runs in the background so a signal to the test is handled
# at once (cleanup then stops the command).  timeout(1) gives the command
# default signal dispositions again.
expect_status() {
    local want=$1 rc=0
    shift
    printf '  $ %s   # want exit %s\n' "$(show_cmd "$@")" "$want"
    timeout -k 5 "$KCOPY_TEST_TIMEOUT" "$@" >"$STDOUT_FILE" 2>"$STDERR_FILE" </dev/null &
    _CHILD_PID=$!
    wait "$_CHILD_PID" || rc=$?
    _CHILD_PID=
    # shellcheck disable=SC2034 # for tests that look at it
    LAST_STATUS=$rc
    if [[ -s $STDERR_FILE ]]; then sed 's/^/    stderr: /' "$STDERR_FILE"; fi
    ((rc != 124)) || fail "timed out after ${KCOPY_TEST_TIMEOUT}s: $(show_cmd "$@")"
    ((rc == want)) || fail "exit status $rc, want $want: $(show_cmd "$@")"
}

# kcopy_ok ARGS...: kcopy ARGS must exit 0.
kcopy_ok() {
    expect_status 0 "$KCOPY" "$@"
}

# expect_one_error_line: the last stderr is exactly one newline-terminated
# line starting with "kcopy: ".
expect_one_error_line() {
    local lines
    lines=$(wc -l <"$STDERR_FILE")
    [[ -s $STDERR_FILE && $(tail -c 1 "$STDERR_FILE" | od -An -c | tr -d ' ') == '\n' ]] ||
        fail "stderr is not one newline-terminated line: $(cat -A "$STDERR_FILE")"
    ((lines == 1)) || fail "stderr has $lines lines, want exactly 1"
    [[ $(head -c 7 "$STDERR_FILE") == "kcopy: " ]] ||
        fail "stderr does not start with 'kcopy: ': $(cat "$STDERR_FILE")"
}

# expect_stderr_has TEXT...: the last stderr contains every TEXT (fixed strings).
expect_stderr_has() {
    local t
    for t in "$@"; do
        grep -qF -- "$t" "$STDERR_FILE" || fail "stderr does not mention '$t'"
    done
}

# expect_stderr_lacks TEXT...: the last stderr contains none of TEXT.
expect_stderr_lacks() {
    local t
    for t in "$@"; do
        ! grep -qF -- "$t" "$STDERR_FILE" || fail "stderr mentions '$t' but should not"
    done
}

# expect_no_stray_files PATH...: no file named "PATH:..." exists, i.e. kcopy did
# not take a region with bad fields for a new regular file to create.  Removes
# any it finds (they would litter /dev) and fails.
expect_no_stray_files() {
    local p f found=()
    for p in "$@"; do
        for f in "$p":*; do
            [[ -e $f || -L $f ]] && found+=("$f")
        done
    done
    if ((${#found[@]})); then
        rm -f -- "${found[@]}"
        fail "kcopy created ${found[*]} (removed)"
    fi
}

# stderr_line_with ERE...: true if one single line of the last stderr matches
# every extended regular expression given.
stderr_line_with() {
    local line p ok
    while IFS= read -r line || [[ -n $line ]]; do
        ok=1
        for p in "$@"; do
            [[ $line =~ $p ]] || { ok=0; break; }
        done
        ((ok)) && return 0
    done <"$STDERR_FILE"
    return 1
}

# --- fault fixtures: FUSE faulty disks (tests/integration/faulty_disk.py) ----
# A loop device over a FUSE file whose reads/writes fail with EIO at chosen
# 512-byte sectors.  The loop device is made WITHOUT --direct-io and the file
# system is mounted with direct_io, so each loop request reaches faulty_disk.py
# with its real offset and size: exactly the chosen sectors fail, their
# neighbours work.  Writes land in (and are refused from) the backing image.
# Requests to the loop device are limited to 64 KiB (see faulty_device): a
# request that touches a bad sector fails whole, as on a disk, and the block
# layer may merge adjacent requests (up to 64 KiB) into one that then fails
# whole, also as on a disk.  (The limit stays on a detached loop device:
# faulty_disk.py resets it when it ends.)

FAULTY_DISK_PY=$TESTS_DIR/faulty_disk.py

# _faulty_python: a python3 that can import fusepy (Debian's python3-fusepy is
# for /usr/bin/python3, which a pyenv or venv python3 earlier in PATH lacks).
_faulty_python() {
    local py
    for py in /usr/bin/python3 "$(command -v python3 2>/dev/null)"; do
        [[ -n $py && -x $py ]] || continue
        "$py" -c 'try:
    import fusepy
except ImportError:
    import fuse' 2>/dev/null && { printf '%s\n' "$py"; return 0; }
    done
    return 1
}

# need_faulty_disk: skip (77) unless FUSE faulty disks can be made here.
# Call it at the top of the test (faulty_device runs in "$(...)", where a skip
# would lose its message).
need_faulty_disk() {
    [[ -c /dev/fuse ]] || skip "no /dev/fuse"
    _faulty_python >/dev/null || skip "python3 fusepy not installed (apt-get install python3-fusepy)"
    command -v umount >/dev/null || skip "umount not installed"
}

# faulty_file IMAGE [OPTIONS...]: the FUSE faulty disk of IMAGE (options as for
# faulty_device below) as a FILE, with no loop device: prints the path of the
# file (MNT/disk). kcopy then opens a regular file on FUSE, whose I/O method it
# chooses itself (never io_uring there).
faulty_file() {
    local image=$1 py mnt pid log out
    shift
    [[ -f $image ]] || fail "faulty_file: $image is not a regular file"
    py=$(_faulty_python) || fail "faulty_file: no python3 with fusepy (call need_faulty_disk first)"
    mnt=$(mktemp -d "$SCRATCH/fuse.XXXXXX")
    log=$SCRATCH/$(basename -- "$image").faulty.log
    out=$mnt.out
    # Recorded before mounting: undone after the detach below (the list is
    # undone in reverse), and harmless if the mount never happened.
    _push_cleanup umount "$mnt"
    # setsid: a ^C or a signal to the test's process group reaches the test,
    # whose cleanup then tears down in order; faulty_disk.py is not killed first.
    setsid "$py" "$FAULTY_DISK_PY" --watch-pid $$ --log "$log" --loops-file "$mnt.loops" "$@" -- "$image" "$mnt" \
        >"$out" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 100); do
        [[ -f $mnt/disk ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            local rc=0
            wait "$pid" || rc=$?
            sed 's/^/    faulty_disk: /' "$out" >&2
            ((rc == 77)) && skip "faulty_disk.py cannot run here"
            fail "faulty_disk.py exited with status $rc before mounting $mnt"
        fi
        sleep 0.1
    done
    [[ -f $mnt/disk ]] || { sed 's/^/    faulty_disk: /' "$out" >&2; fail "faulty_disk.py did not mount $mnt within 10 s"; }
    printf '%s\n' "$mnt/disk"
}

# faulty_device IMAGE [faulty_disk.py OPTIONS...]: a loop device over IMAGE
# whose I/O fails where OPTIONS say, in 512-byte sectors of IMAGE:
#   --read-error START:COUNT      reads touching these sectors fail (EIO)
#   --write-error START:COUNT     writes touching these sectors fail (EIO),
#                                 and leave IMAGE's old bytes there
#   --lose-writes START:COUNT     writes touching these sectors succeed but
#                                 store nothing there (IMAGE keeps its old
#                                 bytes; the rest of each write is stored)
#   --read-errors-from FILE, --write-errors-from FILE, --lose-writes-from FILE
#                                 (one START:COUNT a line)
# All repeatable.  Mounts the FUSE file system on $SCRATCH/fuse.XXXXXX, loops
# its file, records both for cleanup (loop detached first, then the unmount,
# which ends faulty_disk.py; its guard process ends it too should this test
# die without cleaning up) and prints the loop device.  Every failed request
# is appended to $SCRATCH/NAME.faulty.log ("read|write OFFSET SIZE" in bytes;
# NAME the basename of IMAGE), and every write that lost bytes ("lost OFFSET
# SIZE", the whole write), with request counts when the daemon stops.
faulty_device() {
    local image=$1 mnt dev
    mnt=$(faulty_file "$@")
    mnt=${mnt%/disk}
    for _ in 1 2 3 4 5; do
        if dev=$(losetup -f --show -- "$mnt/disk"); then
            _push_cleanup detach "$dev" "$mnt/disk"
            # faulty_disk.py resets the limit set here once the device is free.
            printf '%s\n' "$dev" >>"$mnt.loops"
            # At most 64 KiB per request, so that the loop driver turns each
            # request into ONE FUSE request (<= 32 pages, <= max_write): a
            # request split over several FUSE requests whose later part fails
            # is completed as a short write, which the loop driver reports as
            # success (measured: a 1 MiB write over a bad sector "succeeded"
            # with 392 KiB missing).  With one FUSE request each, a request
            # that touches a bad sector fails whole with EIO, as on a disk.
            echo 64 >"/sys/block/${dev#/dev/}/queue/max_sectors_kb" ||
                fail "cannot limit requests of $dev to 64 KiB"
            printf '%s\n' "$dev"
            return 0
        fi
        sleep 0.2
    done
    fail "cannot attach $mnt/disk to a loop device"
}

# faulty_log IMAGE: the log faulty_device keeps for IMAGE (failed requests).
faulty_log() {
    printf '%s\n' "$SCRATCH/$(basename -- "$1").faulty.log"
}

# restore_backing IMAGE ORIG: write ORIG back into the backing IMAGE of a
# faulty device in place (its write-error sectors refuse writes through the
# device), and drop DEV's cached pages if a device is given as 3rd argument.
restore_backing() {
    dd if="$2" of="$1" bs=1M conv=notrunc,fsync status=none || fail "cannot restore $1 from $2"
    [[ -z ${3:-} ]] || blockdev --flushbufs "$3" || fail "cannot flush buffers of $3"
}

# bad_range_line WHAT PATH A B: the exact stderr line kcopy prints for a
# failed range A-B (inclusive, 512-byte sectors).  WHAT: "source" or
# "destination N".  Read errors name the source; write errors a destination.
bad_range_line() {
    local what=$1 path=$2 a=$3 b=$4 kind=read
    [[ $what == source ]] || kind="write"
    local n=$((b - a + 1)) unit=sectors
    ((n == 1)) && unit=sector
    printf "kcopy: %s '%s': %s error at sectors %s-%s (%s %s): Input/output error\n" \
        "$what" "$path" "$kind" "$a" "$b" "$n" "$unit"
}

# model_zero EXPECTED SECTOR COUNT: zero those sectors of the model file
# (what --ignore-errors writes over unreadable source blocks).
model_zero() {
    dd if=/dev/zero of="$1" bs=512 seek="$2" count="$3" conv=notrunc status=none ||
        fail "cannot zero sectors $2+$3 of model $1"
}

# clipped_bad_ranges LO HI: the test's BAD_RANGES (START:COUNT, in sectors)
# clipped to sectors [LO, HI); prints "A B" (half-open) per non-empty piece.
clipped_bad_ranges() {
    local lo=$1 hi=$2 r a b
    for r in "${BAD_RANGES[@]}"; do
        a=${r%:*} b=$((${r%:*} + ${r#*:}))
        ((a < lo)) && a=$lo
        ((b > hi)) && b=$hi
        ((a < b)) && printf '%s %s\n' "$a" "$b"
    done
    return 0
}

# expect_error_report ROLE DEV FIRST LAST: the last stderr's "read error at" (for
# ROLE source) or "write error at" lines are exactly BAD_RANGES clipped to
# sectors FIRST-LAST (inclusive), one line per range, in ascending order.
expect_error_report() {
    local role=$1 dev=$2 first=$3 last=$4 kind=write a b
    [[ $role == source ]] && kind=read
    : >"$SCRATCH/want.txt"
    while read -r a b; do
        bad_range_line "$role" "$dev" "$a" $((b - 1)) >>"$SCRATCH/want.txt"
    done < <(clipped_bad_ranges "$first" $((last + 1)))
    grep -F " $kind error at " "$STDERR_FILE" >"$SCRATCH/got.txt" || true
    diff -u --label expected --label stderr "$SCRATCH/want.txt" "$SCRATCH/got.txt" >&2 ||
        fail "the $kind errors reported are not exactly the bad ranges of $role (diff above)"
}

# count_copied_sectors WHAT DEV DEV_SECTOR SRC SRC_SECTOR OLD COUNT: for an
# incomplete copy: each of the COUNT sectors of DEV at DEV_SECTOR must hold
# either the source's sector (SRC at SRC_SECTOR, a pristine copy) or its own
# old contents (OLD, DEV's pristine copy, at DEV_SECTOR); fails naming the first
# sector that holds neither.  Prints the number of sectors that hold the
# source's; lists the copied ranges on stderr (relative to DEV_SECTOR).
count_copied_sectors() {
    local what=$1 dev=$2 ds=$3 src=$4 ss=$5 old=$6 count=$7 now
    now=$SCRATCH/.now.$$
    read_sectors "$dev" "$ds" "$count" >"$now" || fail "$what: cannot read $dev"
    python3 - "$what" "$now" "$src" "$ss" "$old" "$ds" "$count" "$dev" <<'PY' || fail "$what: see above"
import sys
what, now, src, ss, old, ds, count, dev = sys.argv[1:]
ss, ds, count = int(ss), int(ds), int(count)
S = 512
with open(now, "rb") as f:
    d = f.read()
with open(src, "rb") as f:
    f.seek(ss * S); s = f.read(count * S)
with open(old, "rb") as f:
    f.seek(ds * S); o = f.read(count * S)
assert len(d) == len(s) == len(o) == count * S, "short read"
copied, ranges, start = 0, [], None
for i in range(count):
    a = d[i * S:(i + 1) * S]
    if a == s[i * S:(i + 1) * S]:
        copied += 1
        if start is None:
            start = i
        continue
    if start is not None:
        ranges.append((start, i - 1)); start = None
    if a != o[i * S:(i + 1) * S]:
        kind = "zeroes" if a == bytes(S) else "other bytes"
        print(f"FAIL: {what}: sector {ds + i} of {dev} holds {kind}: neither the source's "
              f"sector {ss + i} nor its old contents", file=sys.stderr)
        sys.exit(1)
if start is not None:
    ranges.append((start, count - 1))
shown = ", ".join(f"{a}-{b}" for a, b in ranges[:8]) + (" ..." if len(ranges) > 8 else "")
print(f"    {what}: {copied} of {count} sectors copied ({len(ranges)} ranges: {shown or 'none'}), "
      f"the rest unchanged", file=sys.stderr)
print(copied)
PY
    rm -f -- "$now"
}

# reported_ranges KIND WHAT PATH: the ranges of the last stderr's lines
# "kcopy: WHAT 'PATH': KIND error at sectors A-B (N sectors): ..." ("1 sector"), one "A B N"
# per line, in the order printed.
reported_ranges() {
    local kind=$1 what=$2 path=$3 line re
    re="^kcopy: $what '(.*)': $kind error at sectors ([0-9]+)-([0-9]+) \(([0-9]+) sectors?\): "
    while IFS= read -r line || [[ -n $line ]]; do
        [[ $line =~ $re && ${BASH_REMATCH[1]} == "$path" ]] || continue
        printf '%s %s %s\n' "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" "${BASH_REMATCH[4]}"
    done <"$STDERR_FILE"
}

# --- fixtures for devices in use, overlap, 4Kn devices and interruption ------
# (device_in_use.sh, overlap.sh, logical_block_4k.sh, interrupt.sh)

REFERENCE_PY=$TESTS_DIR/reference.py

# need_python: skip (77) unless a python3 is there; sets PYTHON (stdlib only).
need_python() {
    local py
    for py in "$(command -v python3 2>/dev/null)" /usr/bin/python3; do
        [[ -n $py && -x $py ]] && { PYTHON=$py; return 0; }
    done
    skip "python3 not installed"
}

# reference ARGS...: run reference.py (the independent models: memmove-style
# copies, chunk checks of interrupted copies; see its docstring).
reference() {
    "$PYTHON" "$REFERENCE_PY" "$@"
}

# hold_exclusive DEV: keep block device DEV open with O_EXCL in a background
# process (as a mount holds it: another O_EXCL open gets EBUSY; plain opens
# still work) until release_holds or the end of the test.  Call it directly,
# never in "$(...)": it records the holder in HOLD_PIDS and chains the EXIT
# trap, so the holder is gone before cleanup detaches the loop devices (a held
# loop device cannot be detached).  The holder also ends by itself when this
# shell is gone.  Needs need_python.
HOLD_PIDS=()
hold_exclusive() {
    local dev=$1 ready pid
    ready=$(mktemp -u "$SCRATCH/hold.XXXXXX")
    setsid "$PYTHON" -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
open(sys.argv[2], "w").close()
parent = int(sys.argv[3])
while True:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    time.sleep(0.1)
' "$dev" "$ready" $$ </dev/null >"$ready.out" 2>&1 &
    pid=$!
    HOLD_PIDS+=("$pid")
    ((${#HOLD_PIDS[@]} > 1)) || trap '_release_holds_then_cleanup' EXIT
    for _ in $(seq 100); do
        [[ -e $ready ]] && return 0
        kill -0 "$pid" 2>/dev/null || { sed 's/^/    holder: /' "$ready.out" >&2; fail "cannot hold $dev with O_EXCL"; }
        sleep 0.1
    done
    fail "the O_EXCL holder of $dev did not start within 10 s"
}

# release_holds: end every hold_exclusive holder (and wait for it).
release_holds() {
    local pid
    for pid in "${HOLD_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true # 143: it ended by that SIGTERM
    done
    HOLD_PIDS=()
    return 0
}

_status_is() { return "$1"; }
_release_holds_then_cleanup() {
    local rc=$?
    set +e
    release_holds
    _status_is "$rc"
    cleanup # takes its exit status from $?, i.e. rc
}

# direct_sha DEV: sha256 of all of DEV as the device holds it now: read with
# O_DIRECT and WITHOUT flushing DEV's page cache first (read_sectors flushes,
# which would write back dirty pages a program left behind).  Needs
# need_python (Python's sha256 is several times faster than sha256sum's).
direct_sha() {
    reference digest "$1" || fail "cannot read $1"
}

# --- table-driven cases -------------------------------------------------------

# run_case DESCRIPTION COMMAND...: runs one case in a subshell with set -e, so that
# a failing case is recorded in failed[] and the next case still runs. A test may
# define on_case_failure (e.g. to put its devices back) to run after a failure. A
# case that calls skip (exit 77) is skipped alone; the other cases still count.
failed=()
run_case() {
    local desc=$1 rc
    shift
    printf '\n== %s\n' "$desc"
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    if ((rc == 77)); then
        printf '(case skipped: %s)\n' "$desc"  # skip() inside a case skips that case, not the test
    elif ((rc != 0)); then
        failed+=("$desc")
        if declare -F on_case_failure >/dev/null; then on_case_failure; fi
    fi
    return 0
}

# --- the JSON report ------------------------------------------------------------

# json EXPR (needs jq): jq's compact value of EXPR in the last stdout (the --json report).
json() {
    local out
    out=$(jq -c "$1" "$STDOUT_FILE" 2>&1) || fail "the --json report cannot be read by jq ($out): $(head -c 300 "$STDOUT_FILE")"
    printf '%s\n' "$out"
}

# expect_json EXPR WANT...: the JSON value of EXPR in the last report is WANT
# (compared as jq prints it compactly: numbers bare, strings quoted).
expect_json() {
    local expr=$1 want=$2 got
    got=$(json "$expr")
    [[ $got == "$want" ]] || fail "--json: $expr is $got, want $want"
}
