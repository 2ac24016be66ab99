#!/usr/bin/env bash
# A destination on the same device as the source may overlap the source range,
# in either direction and by any amount: the result is memmove's, i.e. what a
# copy through a buffer the size of the whole range gives.  The reference is
# computed by reference.py from a pristine image (the source range read in
# full, then written at the destination offset), and the WHOLE device is
# compared with it, so the bytes outside the destination range are checked too.
# Ranges of 16-64 MiB with 64 KiB and default sub-jobs keep hundreds of
# sub-jobs in flight.  Two destinations that need opposite orders are refused
# (exit 128, nothing written); two that do not, work.
# Every case runs (in a subshell) even when an earlier one fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python

img=$(make_image dev.img 64M) # 131072 sectors
orig=$(pristine_copy "$img")
dev=$(attach "$img")
other_img=$(make_image other.img 64M)
other_orig=$(pristine_copy "$other_img")
other=$(attach "$other_img")
expected=$SCRATCH/expected.img
expected_other=$SCRATCH/expected-other.img

# After a failed case, put the devices back for the next one.
on_case_failure() {
    restore_device "$dev" "$orig"
    restore_device "$other" "$other_orig"
}

# moved SS COUNT DS [KCOPY OPTIONS...]: kcopy OPTIONS $dev:SS:COUNT $dev:DS
# exits 0 and leaves the device equal to the memmove reference.
moved() {
    local ss=$1 count=$2 ds=$3
    shift 3
    reference copy "$orig" "$ss" "$count" "$orig" "$expected" "$ds" || fail "reference.py failed"
    restore_device "$dev" "$orig"
    kcopy_ok "$@" "$dev:$ss:$count" "$dev:$ds"
    check "the whole device is the memmove reference (the range and everything around it)"
    expect_same_sectors "moved range" "$dev" "$ds" "$expected" "$ds" "$count"
    expect_matches_model "whole device" "$dev" "$expected"
}

S=40000     # not a multiple of 128 or 2048: sub-jobs are not aligned to it
N=32768     # 16 MiB: 256 sub-jobs of 64 KiB, 16 of 1 MiB
io64=(--io-size 64K) # 128 sectors

# shift_case LABEL DELTA [OPTIONS...]: S:N moved by DELTA sectors (up when > 0).
shift_case() {
    local label=$1 delta=$2
    shift 2
    run_case "$label" moved "$S" "$N" $((S + delta)) "$@"
}

for dir in up down; do
    sign=1
    [[ $dir == up ]] || sign=-1
    shift_case "64K sub-jobs, $dir by 1 sector" $((sign * 1)) "${io64[@]}"
    shift_case "64K sub-jobs, $dir by 50 sectors (less than one sub-job)" $((sign * 50)) "${io64[@]}"
    shift_case "64K sub-jobs, $dir by 128 sectors (exactly one sub-job)" $((sign * 128)) "${io64[@]}"
    shift_case "64K sub-jobs, $dir by 129 sectors (one sub-job and a sector)" $((sign * 129)) "${io64[@]}"
    shift_case "64K sub-jobs, $dir by 1000 sectors (several sub-jobs)" $((sign * 1000)) "${io64[@]}"
    shift_case "64K sub-jobs, $dir by 20000 sectors (many sub-jobs)" $((sign * 20000)) "${io64[@]}"
    shift_case "64K sub-jobs, $dir by N-1 sectors (one sector overlaps)" $((sign * (N - 1))) "${io64[@]}"
    shift_case "64K sub-jobs, $dir by N (adjacent, no overlap)" $((sign * N)) "${io64[@]}"
    shift_case "defaults, $dir by 100 sectors" $((sign * 100))
    shift_case "defaults, $dir by 2048 sectors" $((sign * 2048))
    shift_case "defaults, $dir by 5000 sectors" $((sign * 5000))
    shift_case "defaults, $dir by 20000 sectors" $((sign * 20000))
    shift_case "1M sub-jobs, $dir by 2048 sectors (exactly one sub-job)" $((sign * 2048)) --io-size 1M
    shift_case "1M sub-jobs, $dir by 1000 sectors (less than one sub-job)" $((sign * 1000)) --io-size 1M
    shift_case "one 64K sub-job in flight (--pages 16), $dir by 200" $((sign * 200)) --io-size 64K --pages 16
    shift_case "4K sub-jobs, $dir by 3 sectors" $((sign * 3)) --io-size 4K
    shift_case "buffered, 64K sub-jobs, $dir by 300" $((sign * 300)) --buffered "${io64[@]}"
    # A source aligned to the sub-jobs: 32768 is a multiple of 128 and 2048.
    run_case "aligned source, 64K sub-jobs, $dir by 128" moved 32768 "$N" $((32768 + sign * 128)) "${io64[@]}"
    run_case "aligned source, defaults, $dir by 2048" moved 32768 "$N" $((32768 + sign * 2048))
done
# Nearly the whole device (64 MiB less 1000 sectors), 1016 sub-jobs of 64K.
run_case "whole device less 1000 sectors, up by 1000" moved 0 130072 1000 "${io64[@]}"
run_case "whole device less 1000 sectors, down by 1000" moved 1000 130072 0 "${io64[@]}"
run_case "whole device less 7 sectors, up by 7, defaults" moved 0 131065 7
run_case "whole device less 7 sectors, down by 7, defaults" moved 7 131065 0

# --- two destinations ------------------------------------------------------------

# opposite_orders D1 D2 [OPTIONS...]: $dev:S:N to $dev:D1 and $dev:D2 is refused.
opposite_orders() {
    local d1=$1 d2=$2
    shift 2
    restore_device "$dev" "$orig"
    check "destinations above and below the source, both overlapping it: refused, nothing written"
    expect_status 128 "$KCOPY" "$@" "$dev:$S:$N" "$dev:$d1" "$dev:$d2"
    expect_one_error_line
    stderr_line_with "destination 2|$dev" || fail "the message names neither 'destination 2' nor $dev"
    (
        shopt -s nocasematch
        stderr_line_with "overlap|order|direction|opposite"
    ) || fail "the message says nothing of overlap or order"
    expect_matches_model "whole device" "$dev" "$orig"
}
# The two destinations must not overlap each other (that is refused for
# another reason): up by a and down by b with a + b >= N.
run_case "two destinations needing opposite orders (up N/2+1000, down N/2+1000)" \
    opposite_orders $((S + N / 2 + 1000)) $((S - N / 2 - 1000)) "${io64[@]}"
run_case "two destinations needing opposite orders (down 50, up N-50: adjacent), defaults" \
    opposite_orders $((S - 50)) $((S + N - 50))
run_case "opposite orders, each overlapping the source by a single sector" \
    opposite_orders $((S + N - 1)) $((S - N + 1)) "${io64[@]}"

# compatible DESCRIPTION D1 D2 [OPTIONS...]: $dev:S:N to $dev:D1 and $dev:D2
# (both on the source's device, not overlapping each other) works: the device
# is the original with the ORIGINAL source range written at both.
compatible() {
    local d1=$1 d2=$2
    shift 2
    reference copy "$orig" "$S" "$N" "$orig" "$expected" "$d1" "$d2" || fail "reference.py failed"
    restore_device "$dev" "$orig"
    kcopy_ok "$@" "$dev:$S:$N" "$dev:$d1" "$dev:$d2"
    check "the whole device is the original with the source range written at $d1 and $d2"
    expect_matches_model "whole device" "$dev" "$expected"
}
run_case "two destinations: up 1000 (overlapping) and further up (not overlapping)" \
    compatible $((S + 1000)) $((S + 1000 + N)) "${io64[@]}"
run_case "two destinations: down 1000 (overlapping) and further down (not overlapping)" \
    compatible $((S - 1000)) $((S - 1000 - N)) "${io64[@]}"
run_case "two destinations: up 1000 (overlapping) and below, not overlapping (no order needed)" \
    compatible $((S + 1000)) $((S - N - 10)) "${io64[@]}"
run_case "two destinations: down 77 (overlapping) and above, not overlapping, defaults" \
    compatible $((S - 77)) $((S + N + 5))

# other_device ORDER D1 [OPTIONS...]: $dev:S:N to $dev:D1 (overlapping) and to
# the other device at 4096 (given first when ORDER is "other-first"): both
# right, from the original source data.
other_device() {
    local order=$1 d1=$2
    shift 2
    local dests=("$dev:$d1" "$other:4096")
    [[ $order != other-first ]] || dests=("$other:4096" "$dev:$d1")
    reference copy "$orig" "$S" "$N" "$orig" "$expected" "$d1" || fail "reference.py failed"
    reference copy "$orig" "$S" "$N" "$other_orig" "$expected_other" 4096 || fail "reference.py failed"
    restore_device "$dev" "$orig"
    restore_device "$other" "$other_orig"
    kcopy_ok "$@" "$dev:$S:$N" "${dests[@]}"
    check "the source's device is the memmove reference"
    expect_matches_model "whole device" "$dev" "$expected"
    check "the other device holds the ORIGINAL source range at 4096, nothing else changed"
    expect_matches_model "other device" "$other" "$expected_other"
    restore_device "$other" "$other_orig"
}
run_case "an overlapping destination (up 500) and one on another device" \
    other_device same-first $((S + 500)) "${io64[@]}"
run_case "another device first, then an overlapping destination (down 500)" \
    other_device other-first $((S - 500)) "${io64[@]}"

if ((${#failed[@]})); then
    printf 'failed case: %s\n' "${failed[@]}" >&2
    fail "${#failed[@]} case(s) failed"
fi
pass
