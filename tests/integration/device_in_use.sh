#!/usr/bin/env bash
# Destinations kcopy must not write are refused before anything is written:
# a mounted or otherwise held (O_EXCL) block device, a read-only device, a file
# the user may not write, and the source range itself.  Each refusal: exit 128,
# exactly one "kcopy: " line naming the destination and saying why, and every
# device byte for byte unchanged.  --force writes to a held device (and only
# there: not to a read-only one).
# Every case runs (in a subshell) even when an earlier one fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 not installed"
command -v setpriv >/dev/null || skip "setpriv not installed"

src_img=$(make_image src.img 16M) # 32768 sectors
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
dst_img=$(make_image dst.img 16M)
dst_orig=$(pristine_copy "$dst_img")
dst=$(attach "$dst_img")

# refused_because DEV ERE... : the last run exited 128 (checked by the caller's
# expect_status) with exactly one line, which names DEV and matches every ERE
# (case-insensitive).
refused_because() {
    local dev=$1
    shift
    expect_one_error_line
    expect_stderr_has "$dev"
    (
        shopt -s nocasematch
        stderr_line_with "$@"
    ) || fail "the message does not match all of: $*"
}

# --- a mounted destination ---------------------------------------------------
fs_img=$(make_image fs.img 32M)
fs=$(attach "$fs_img")
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$fs" || fail "mkfs.ext4 $fs failed"
mnt=$(mount_device "$fs")

mounted_rw() {
    # Sectors 0-1 lie below ext4's superblock: the file system never writes
    # them, so they must be exactly as before.
    local head
    head=$(sectors_sha "$fs" 0 2)
    check "a mounted (rw) ext4 loop device as destination is refused: 128, in use, --force"
    expect_status 128 "$KCOPY" "$src:0:2" "$fs"
    refused_because "$fs" "in use" "--force"
    [[ $(sectors_sha "$fs" 0 2) == "$head" ]] || fail "the mounted device was written (sectors 0-1 changed)"
    mountpoint -q "$mnt" || fail "$mnt is no longer mounted"

    check "the mounted device as the 2nd of two destinations: refused, nothing written to the 1st"
    expect_status 128 "$KCOPY" "$src:0:2" "$dst:0" "$fs:0"
    refused_because "$fs" "in use" "--force"
    expect_matches_model "first destination" "$dst" "$dst_orig"
    [[ $(sectors_sha "$fs" 0 2) == "$head" ]] || fail "the mounted device was written (sectors 0-1 changed)"
}
run_case "mounted read-write" mounted_rw

mounted_ro() {
    # A read-only mount still holds the device exclusively and writes nothing:
    # the whole device must stay byte for byte as it is now.
    mount -o remount,ro "$mnt" || fail "cannot remount $mnt read-only"
    local before
    before=$(device_sha "$fs")
    check "a device mounted read-only is in use too: refused, whole device unchanged"
    expect_status 128 "$KCOPY" "$src:0:4096" "$fs:8192"
    refused_because "$fs" "in use" "--force"
    [[ $(device_sha "$fs") == "$before" ]] || fail "the read-only mounted device changed"
}
run_case "mounted read-only" mounted_ro
if mountpoint -q "$mnt"; then umount "$mnt" || fail "cannot unmount $mnt"; fi

# --- a device held open with O_EXCL by another program ------------------------
hold_exclusive "$dst"

held() {
    check "a loop device held with O_EXCL by another process is refused: 128, in use, --force"
    expect_status 128 "$KCOPY" "$src:2048:4096" "$dst:100"
    refused_because "$dst" "in use" "--force"
    expect_matches_model "held destination" "$dst" "$dst_orig"
    expect_matches_model "source" "$src" "$src_orig"
}
run_case "held with O_EXCL" held

held_force() {
    local opt=$1 expected
    expected=$(pristine_copy "$dst_orig" "$SCRATCH/expected.img")
    model_copy "$expected" "$src_orig" 2048 100 4096
    restore_device "$dst" "$dst_orig"
    check "$opt writes to the held device anyway: exit 0, byte-exact"
    kcopy_ok "$opt" "$src:2048:4096" "$dst:100"
    expect_same_sectors "copied range" "$dst" 100 "$src_orig" 2048 4096
    expect_same_sectors "sector before the range" "$dst" 99 "$dst_orig" 99 1
    expect_same_sectors "sector after the range" "$dst" 4196 "$dst_orig" 4196 1
    expect_matches_model "whole destination" "$dst" "$expected"
    expect_matches_model "source" "$src" "$src_orig"
    restore_device "$dst" "$dst_orig"
}
run_case "held with O_EXCL, --force" held_force --force
run_case "held with O_EXCL, -f" held_force -f
release_holds

not_held() {
    local expected
    expected=$(pristine_copy "$dst_orig" "$SCRATCH/expected.img")
    model_copy "$expected" "$src_orig" 2048 100 4096
    restore_device "$dst" "$dst_orig"
    check "once the holder is gone the same copy works without --force"
    kcopy_ok "$src:2048:4096" "$dst:100"
    expect_matches_model "whole destination" "$dst" "$expected"
    restore_device "$dst" "$dst_orig"
}
run_case "no longer held" not_held

# --- read-only devices ---------------------------------------------------------
ro_img=$(make_image ro.img 16M)
ro_orig=$(pristine_copy "$ro_img")
ro=$(attach "$ro_img")

setro_device() {
    # The ro flag of /dev/loopN outlives the detach: clear it on every path.
    trap 'blockdev --setrw "$ro"' EXIT
    blockdev --setro "$ro" || fail "blockdev --setro $ro failed"
    local opts
    for opts in "" "--force"; do
        check "a device made read-only with blockdev --setro${opts:+, even with $opts}: 128, read-only, unchanged"
        # shellcheck disable=SC2086
        expect_status 128 "$KCOPY" $opts "$src:0:2048" "$ro:1000"
        refused_because "$ro" "read-only|cannot be opened for writing"
        expect_matches_model "read-only device" "$ro" "$ro_orig"
    done
}
run_case "blockdev --setro" setro_device

losetup_ro() {
    local rodev
    rodev=$(attach "$ro_img" --read-only)
    check "a read-only loop device (losetup --read-only): 128, read-only, unchanged"
    expect_status 128 "$KCOPY" "$src:0:2048" "$rodev:1000"
    refused_because "$rodev" "read-only|cannot be opened for writing"
    expect_matches_model "read-only loop device" "$rodev" "$ro_orig"
    expect_matches_model "its backing file" "$ro_img" "$ro_orig"
}
run_case "losetup --read-only" losetup_ro

# --- a file the user may not write (kcopy run as nobody) ----------------------
# $SCRATCH (mode 0700) is made traversable; perm/ is root's and not writable
# by nobody; perm/open/ is writable by everybody.
chmod 0711 "$SCRATCH"
pdir=$SCRATCH/perm
mkdir -m 0755 "$pdir" "$pdir/open"
chmod 0777 "$pdir/open"
psrc=$pdir/src.img
head -c 1M /dev/urandom >"$psrc"
chmod 0644 "$psrc"
pdst=$pdir/readonly.img
head -c 1M /dev/urandom >"$pdst"
chmod 0444 "$pdst"
pdst_orig=$(pristine_copy "$pdst" "$SCRATCH/readonly.img.orig")
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
"${as_nobody[@]}" test -x "$KCOPY" -a -r "$psrc" || skip "user nobody cannot run $KCOPY or read $psrc"

no_permission() {
    check "as nobody: a 0444 regular file of root's as destination: 128, permission denied, unchanged"
    expect_status 128 "${as_nobody[@]}" "$KCOPY" "$psrc:0:16" "$pdst:8"
    refused_because "$pdst" "permission denied"
    expect_matches_model "0444 destination" "$pdst" "$pdst_orig"
    [[ $(stat -c %a "$pdst") == 444 ]] || fail "the mode of $pdst changed"

    check "as nobody: a new file in a directory nobody may not write: 128, permission denied, not created"
    expect_status 128 "${as_nobody[@]}" "$KCOPY" "$psrc:0:16" "$pdir/new.img"
    refused_because "$pdir/new.img" "permission denied"
    [[ ! -e $pdir/new.img ]] || fail "$pdir/new.img was created"

    # The same user, source and command to a place it may write: works, so
    # the refusals above are about the destination's permission.
    check "as nobody: the same copy to a file in a directory nobody may write: exit 0, byte-exact"
    expect_status 0 "${as_nobody[@]}" "$KCOPY" "$psrc:0:16" "$pdir/open/new.img:8"
    [[ $(size_bytes "$pdir/open/new.img") == $((24 * 512)) ]] || fail "$pdir/open/new.img is not 24 sectors"
    expect_same_sectors "copy as nobody" "$pdir/open/new.img" 8 "$psrc" 0 16
    expect_zero_sectors "created file's head" "$pdir/open/new.img" 0 8
}
run_case "permission denied" no_permission

# --- the source range itself ----------------------------------------------------
ln -s "$src" "$SCRATCH/alias-of-src"
itself() {
    while IFS='|' read -r label s d; do
        check "$label: kcopy $s $d: 128, the source range itself, nothing written"
        expect_status 128 "$KCOPY" "$s" "$d"
        refused_because "$(cut -d: -f1 <<<"$d")" "itself"
        expect_matches_model "source" "$src" "$src_orig"
    done <<EOF
a range onto itself|$src:0:100|$src:0
a range in the middle onto itself|$src:5000:100|$src:5000:100
the whole device onto itself|$src|$src
a range onto itself through a symlink to the device|$src:0:100|$SCRATCH/alias-of-src:0
EOF
    local f=$SCRATCH/self.img f_orig
    head -c 1M /dev/urandom >"$f"
    f_orig=$(pristine_copy "$f")
    check "a regular file's range onto itself: 128, the source range itself, unchanged"
    expect_status 128 "$KCOPY" "$f:8:100" "$f:8"
    refused_because "$f" "itself"
    expect_matches_model "file" "$f" "$f_orig"
    check "the same, the destination named by another path ($SCRATCH/./self.img)"
    expect_status 128 "$KCOPY" "$f:8:100" "$SCRATCH/./self.img:8"
    refused_because "self.img" "itself"
    expect_matches_model "file" "$f" "$f_orig"
}
run_case "the source range itself" itself

if ((${#failed[@]})); then
    printf 'failed case: %s\n' "${failed[@]}" >&2
    fail "${#failed[@]} case(s) failed"
fi
pass
