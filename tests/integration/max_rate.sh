#!/usr/bin/env bash
# --max-rate holds for any sub-job size (issue 19, row 7, and row 13's
# "--max-rate 512 is not applied to a copy of one sub-job"), on RAM-backed
# loop devices (far faster than the rates asked). Each copy should take
# SIZE / RATE; it must take at least 95% of that (the rate is a maximum) and
# at most 150% (generous: the machine may be busy; a loop that sleeps a
# fixed tick per held sub-job takes 2-3 times as long at these sizes):
#   - 64 MiB with --io-size 16K --max-rate 32M: 2 s;
#   - 200 MiB with --io-size 64K --max-rate 100M: 2 s;
#   - 8 KiB (one sub-job) with --max-rate 4K: 2 s.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

ram=$(mount_tmpfs 512M)
src_img=$ram/src.img
head -c 200M /dev/urandom >"$src_img"
src=$(attach "$src_img")
dst_img=$ram/dst.img
truncate -s 200M "$dst_img"
dst=$(attach "$dst_img")

_now_us() { echo "${EPOCHREALTIME/./}"; }

# paced SECTORS EXPECTED_MS KCOPY_OPTIONS...: copy SECTORS of the source with
# the options; it must take 95% to 150% of EXPECTED_MS and be exact.
paced() {
    local sectors=$1 expected_ms=$2 t0 ms
    shift 2
    t0=$(_now_us)
    expect_status 0 "$KCOPY" "$@" "$src:0:$sectors" "$dst"
    ms=$((($(_now_us) - t0) / 1000))
    printf '    took %d ms, expected %d ms\n' "$ms" "$expected_ms"
    ((ms >= expected_ms * 95 / 100)) || fail "took $ms ms: faster than the rate ($expected_ms ms)"
    ((ms <= expected_ms * 150 / 100)) || fail "took $ms ms: far slower than the rate ($expected_ms ms)"
    expect_same_sectors "the paced copy" "$dst" 0 "$src_img" 0 "$sectors"
}

check "64 MiB in 16 KiB sub-jobs at --max-rate 32M: 2 s"
paced 131072 2000 --io-size 16K --max-rate 32M
check "200 MiB in 64 KiB sub-jobs at --max-rate 100M: 2 s"
paced 409600 2000 --io-size 64K --max-rate 100M
check "a copy of one sub-job (8 KiB) at --max-rate 4K: 2 s"
paced 16 2000 --max-rate 4K
pass
