#!/usr/bin/env bash
# libkcopy as a program sees it: `meson install --destdir` into a scratch root,
# the example program of kcopyd(3) built with pkg-config against that root as
# C and as C++, run on loop devices with hundreds of jobs queued at once; the
# installed library exports only its API.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
[[ -n ${KCOPY_BUILD_ROOT:-} ]] || skip "KCOPY_BUILD_ROOT (the meson build directory) is not set"
command -v pkg-config >/dev/null && command -v cc >/dev/null && command -v c++ >/dev/null ||
    skip "pkg-config, cc or c++ is missing"

check "meson install --destdir puts the library, headers, kcopy.pc and kcopyd(3) in a scratch root"
root=$SCRATCH/root
meson install -C "$KCOPY_BUILD_ROOT" --no-rebuild --destdir "$root" >"$SCRATCH/install.log" 2>&1 ||
    fail "meson install failed: $(tail -3 "$SCRATCH/install.log")"
pc=$(find "$root" -name kcopy.pc | head -1)
[[ -n $pc ]] || fail "no kcopy.pc installed"
lib=$(find "$root" -name 'libkcopy.so.0' | head -1)
[[ -n $lib ]] || fail "no libkcopy.so.0 installed"
[[ $(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p') == libkcopy.so.0 ]] || fail "the soname is not libkcopy.so.0"
[[ -n $(find "$root" -path '*/include/kcopy/kcopyd.h') ]] || fail "kcopy/kcopyd.h is not installed"
[[ -n $(find "$root" -path '*/include/kcopy/kcopyd.hpp') ]] || fail "kcopy/kcopyd.hpp is not installed"
[[ -n $(find "$root" -path '*/man3/kcopyd.3') ]] || fail "kcopyd(3) is not installed"

check "nm -D --defined-only lists only the API: the kcopyd_* functions and kcopy:: names, no std:: or fmt::"
nm -D --defined-only "$lib" | awk '{print $3}' | c++filt >"$SCRATCH/symbols"
c_api=$(grep -E '^kcopyd_' "$SCRATCH/symbols" | sed 's/@.*//' | sort | tr '\n' ' ')
[[ $c_api == "kcopyd_bdev_close kcopyd_bdev_logical_block_size kcopyd_bdev_open kcopyd_bdev_sectors kcopyd_client_create kcopyd_client_destroy kcopyd_copy kcopyd_last_error kcopyd_zero " ]] ||
    fail "the C functions exported are: $c_api"
others=$(grep -vE '^(kcopyd_[a-z_]+@@KCOPY_0|KCOPY_0|kcopy::[A-Za-z_]+(::~?[A-Za-z_]+)?(\[abi:cxx11\])?\(.*|(typeinfo|typeinfo name|vtable) for kcopy::Error@@KCOPY_0)$' "$SCRATCH/symbols" || true)
[[ -z $others ]] || fail "symbols outside the API are exported: $(head -5 <<<"$others")"
! grep -qE '^(std::|fmt::|__gnu|operator )' "$SCRATCH/symbols" || fail "std::, fmt:: or operator symbols are exported"

check "the example of kcopyd(3) builds with \$(pkg-config --cflags --libs kcopy), as C99 and as C++"
example=$SCRATCH/kcopyd-example.c
sed -n '/^# EXAMPLE/,/^# /p' "$TESTS_DIR/../../man/kcopyd.3.scd" | sed -n '/^```$/,/^```$/p' | sed '1d;$d' >"$example"
[[ -s $example ]] || fail "no example program found in man/kcopyd.3.scd"
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$root pkg-config --cflags --libs kcopy)
# shellcheck disable=SC2086
cc -std=c99 -Wall -Wextra -Werror -o "$SCRATCH/example-c" "$example" $flags 2>"$SCRATCH/cc.log" ||
    fail "cc failed: $(head -5 "$SCRATCH/cc.log")"
# shellcheck disable=SC2086
c++ -x c++ -std=c++17 -Wall -Wextra -Werror -o "$SCRATCH/example-cxx" "$example" $flags 2>"$SCRATCH/cxx.log" ||
    fail "c++ failed: $(head -5 "$SCRATCH/cxx.log")"
check "every installed C++ header compiles on its own from the installed tree (C++20)"
headers=$(find "$root" -type d -path '*/include/kcopy' | head -1)
[[ -n $headers ]] || fail "no include/kcopy directory was installed"
for h in "$headers"/*.hpp; do
    # shellcheck disable=SC2086
    printf '#include <kcopy/%s>\n' "$(basename "$h")" | c++ -x c++ -std=c++20 -fsyntax-only - $flags 2>"$SCRATCH/hdr.log" ||
        fail "installed <kcopy/$(basename "$h")> does not compile: $(head -3 "$SCRATCH/hdr.log")"
done
export LD_LIBRARY_PATH
LD_LIBRARY_PATH=$(dirname "$lib")

src_img=$(make_image src.img 32M)
d1_img=$(make_image d1.img 32M)
d2_img=$(make_image d2.img 32M)
src_orig=$(pristine_copy "$src_img")
d1_orig=$(pristine_copy "$d1_img")
d2_orig=$(pristine_copy "$d2_img")
src=$(attach "$src_img")
d1=$(attach "$d1_img")
d2=$(attach "$d2_img")

for build in c cxx; do
    check "example ($build): 512 jobs of 64 KiB queued at once to two loop devices: all clean, both byte-exact"
    restore_device "$d1" "$d1_orig"
    restore_device "$d2" "$d2_orig"  # each build's copy is checked on its own
    timeout 60 "$SCRATCH/example-$build" "$src" "$d1" "$d2" 64 >"$SCRATCH/out" 2>"$SCRATCH/err" ||
        fail "exit $?: $(cat "$SCRATCH/out" "$SCRATCH/err" | head -5)"
    [[ $(cat "$SCRATCH/out") == "512 jobs, 0 failed" ]] || fail "output: $(head -3 "$SCRATCH/out")"
    expect_matches_model "destination 1" "$d1" "$src_orig"
    expect_matches_model "destination 2" "$d2" "$src_orig"
done

check "destination 2 on a full tmpfs with room for about 16 MiB: the jobs from the first that finds no room to 511 report write_err=2, no other, destination 1 is complete"
restore_device "$d1" "$d1_orig"
mnt=$(mount_tmpfs 24M)
truncate -s 32M "$mnt/full.img"
fallocate -o 0 -l 16M "$mnt/full.img"  # the first 16 MiB are stored: writing there needs no more room
dd if=/dev/zero of="$mnt/filler" bs=4K status=none 2>/dev/null || true  # fill the rest, to the last page
full=$(attach "$mnt/full.img")
status=0
timeout 60 "$SCRATCH/example-c" "$src" "$d1" "$full" 64 >"$SCRATCH/out" 2>"$SCRATCH/err" || status=$?
((status == 1)) || fail "exit $status, expected 1: $(head -3 "$SCRATCH/err")"
# tmpfs counts its blocks with per-CPU counters, so its limit is approximate: a
# few hundred KiB more may fit than the filler left (jobs up to 260 were let
# through). So the first failed job is 256 or a little later (up to 1 MiB), and
# every job from it on fails, on destination 2 only.
first=$(sed -n 's/^job \([0-9]*\) .*/\1/p' "$SCRATCH/out" | head -1)
[[ -n $first ]] && ((first >= 256 && first <= 272)) || fail "first failed job: '${first:-none}', expected 256-272"
expected=$(for j in $(seq "$first" 511); do echo "job $j at sector $((j * 128)): read_err=0 write_err=2"; done
    echo "512 jobs, $((512 - first)) failed")
diff <(echo "$expected") "$SCRATCH/out" >"$SCRATCH/diff" || fail "failed jobs differ from $first-511: $(head -6 "$SCRATCH/diff")"
expect_matches_model "destination 1" "$d1" "$src_orig"
# Only the first 16 MiB (jobs 0-255, stored before the copy) can be checked: a job
# past them that tmpfs let through may still have lost its data, as the loop driver
# ends a short write to its backing file as a success (seen here: jobs 256-260
# reported clean, with zeroes in the file).
expect_same_sectors "destination 2 (its first 16 MiB)" "$full" 0 "$src_orig" 0 32768
pass
