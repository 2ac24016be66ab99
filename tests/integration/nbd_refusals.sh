#!/usr/bin/env bash
# What kcopy refuses about NBD regions it refuses before it writes anything
# (exit 128, one "kcopy: " line naming the region), and it never prints a
# URI's secrets:
#   - a read-only export (nbdkit -r) as a destination: exit 128, the line says
#     read-only; neither it nor a loop destination before it is written
#     (also with --json: an "error", nothing written);
#   - an export too small for the copy (nbdkit memory, nbdkit file; also too
#     small only because of the destination offset): exit 128, nothing written,
#     the served file not grown;
#   - a URI to a socket nobody listens on, as source and as destination: 128,
#     one line naming it;
#   - URIs with secrets in the query (tls-psk-file, password): whatever
#     happens, neither stderr nor stdout (--json, --dry-run, -v) holds the
#     secret; a failed connection's message shows the URI with the secret
#     as "…".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/nbd_lib.sh"
need_root
need_kcopy
need_nbdkit
need_python

ELLIPSIS=$'\u2026'

src_img=$(make_image src.img 32M) # 65536 sectors
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
dl_img=$(make_image dl.img 32M)
dl_orig=$(pristine_copy "$dl_img")
dl=$(attach "$dl_img")
ro_img=$(make_image ro.img 32M)
ro_orig=$(pristine_copy "$ro_img")
eq_img=$(make_image eq.img 32M) # exactly the source's size
eq_orig=$(pristine_copy "$eq_img")
small_img=$(make_image small.img 16M)
small_orig=$(pristine_copy "$small_img")

nbd_start ro -r file "$ro_img"
u_ro=$NBD_URI
nbd_start eq file "$eq_img"
u_eq=$NBD_URI
nbd_start small file "$small_img"
u_small=$NBD_URI
nbd_start mem16 memory 16M
u_mem16=$NBD_URI

# refused_one_line ERE...: the last run wrote exactly one "kcopy: " line, and
# it matches every ERE.
refused_one_line() {
    expect_one_error_line
    stderr_line_with "$@" || fail "the message does not match /$*/"
}

# expect_nothing_written: every destination image is as it was.
expect_nothing_written() {
    expect_matches_model "the loop destination" "$dl" "$dl_orig"
    cmp -s -- "$ro_img" "$ro_orig" || fail "the read-only export's file changed"
    cmp -s -- "$eq_img" "$eq_orig" || fail "$eq_img changed"
    cmp -s -- "$small_img" "$small_orig" || fail "$small_img changed (now $(stat -c %s "$small_img") bytes)"
    expect_matches_model "the source" "$src" "$src_orig"
}

read_only_export() {
    check "a read-only export as destination 2: kcopy $src $dl $u_ro exits 128, nothing written"
    expect_status 128 "$KCOPY" "$src" "$dl" "$u_ro"
    refused_one_line "destination 2 '$(ere "$u_ro")'" "read-only"
    expect_nothing_written
    check "the same with --json: the report has the error, nothing written"
    expect_status 128 "$KCOPY" --json "$src" "$dl" "$u_ro"
    expect_report 128
    grep -q "read-only" <<<"$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$STDOUT_FILE")" ||
        fail "the report's error does not say read-only"
    expect_nothing_written
    check "the same with --dry-run: refused too"
    expect_status 128 "$KCOPY" --dry-run "$src" "$u_ro"
    refused_one_line "destination 1 '$(ere "$u_ro")'" "read-only"
    check "a read-only export as the source is fine: kcopy $u_ro $dl exits 0"
    kcopy_ok "$u_ro" "$dl"
    expect_matches_model "the loop destination" "$dl" "$ro_orig"
    restore_device "$dl" "$dl_orig"
}

too_small() {
    check "a 16 MiB export (nbdkit memory) for a 32 MiB copy: kcopy $src $dl $u_mem16 exits 128"
    expect_status 128 "$KCOPY" "$src" "$dl" "$u_mem16"
    refused_one_line "destination 2 '$(ere "$u_mem16")'" "ends past the end of the device \\(32768 sectors\\)"
    expect_nothing_written
    nbd_fetch "$u_mem16" "$SCRATCH/mem16.img"
    cmp -s -- "$SCRATCH/mem16.img" <(head -c 16M /dev/zero) || fail "the memory export was written"
    check "a 16 MiB file export: kcopy $src $u_small exits 128, the file is not grown"
    expect_status 128 "$KCOPY" "$src" "$u_small"
    refused_one_line "destination 1 '$(ere "$u_small")'" "ends past the end of the device \\(32768 sectors\\)"
    [[ $(stat -c %s "$small_img") == $((16 << 20)) ]] || fail "the served file was grown to $(stat -c %s "$small_img") bytes"
    expect_nothing_written
    check "an export as large as the source, one sector in: kcopy $src $dl $u_eq:1 exits 128"
    expect_status 128 "$KCOPY" "$src" "$dl" "$u_eq:1"
    refused_one_line "destination 2 '$(ere "$u_eq")'" "ends past the end of the device \\(65536 sectors\\)"
    expect_nothing_written
    check "...and at sector 0 it fits: kcopy $src $u_eq exits 0"
    kcopy_ok "$src" "$u_eq"
    cmp -s -- "$eq_img" "$src_orig" || fail "$eq_img is not the source's copy"
    restore_file "$eq_img" "$eq_orig"
}

nobody_listening() {
    local u="nbd+unix:///?socket=$SCRATCH/nobody.sock"
    check "a destination socket nobody listens on: kcopy $src $dl $u exits 128, nothing written"
    expect_status 128 "$KCOPY" "$src" "$dl" "$u"
    refused_one_line "destination 2 '$(ere "$u")'" "cannot connect"
    expect_nothing_written
    check "a source socket nobody listens on: kcopy $u $dl exits 128"
    expect_status 128 "$KCOPY" "$u" "$dl"
    refused_one_line "source '$(ere "$u")'" "cannot connect"
    expect_nothing_written
}

# expect_no_secret SECRET: neither the last stdout nor stderr holds SECRET.
expect_no_secret() {
    ! grep -qF -- "$1" "$STDERR_FILE" || fail "stderr shows the secret '$1'"
    ! grep -qF -- "$1" "$STDOUT_FILE" || { sed 's/^/    stdout: /' "$STDOUT_FILE"; fail "stdout shows the secret '$1'"; }
}

secrets_failed_connection() {
    local secret=psk-S3CR3T-4711 scheme u shown
    for scheme in nbd+unix nbds+unix; do
        u="$scheme:///?socket=$SCRATCH/nobody.sock&tls-psk-file=/etc/kcopy-$secret.key"
        shown="$scheme:///?socket=$SCRATCH/nobody.sock&tls-psk-file=$ELLIPSIS"
        check "$scheme with tls-psk-file, nobody listening: exit 128, the file name is shown as …"
        expect_status 128 "$KCOPY" "$src" "$u"
        expect_no_secret "$secret"
        refused_one_line "destination 1 '$(ere "$shown")'"
        expect_status 128 "$KCOPY" --json "$src" "$u:0"
        expect_no_secret "$secret"
        expect_status 128 "$KCOPY" -v --dry-run "$u" "$dl"
        expect_no_secret "$secret"
        stderr_line_with "^kcopy: source '$(ere "$shown")'" || fail "no stderr line names the source as '$shown'"
    done
    expect_nothing_written
}

secrets_live_server() {
    local secret=hunter2-S3CR3T u want=0
    u="$u_eq&password=$secret"
    # Whether libnbd takes a query parameter it does not know decides what
    # kcopy can do; the secret must stay hidden either way.
    nbdinfo --size "$u" >/dev/null 2>&1 || want=128
    check "a password query parameter to a live server (libnbd: $([[ $want == 0 ]] && echo accepts || echo refuses) it): kcopy -v --json exits $want, no secret shown"
    expect_status "$want" "$KCOPY" -v --json "$src" "$u"
    expect_no_secret "$secret"
    if ((want == 0)); then
        cmp -s -- "$eq_img" "$src_orig" || fail "$eq_img is not the source's copy"
        restore_file "$eq_img" "$eq_orig"
    fi
    expect_status "$want" "$KCOPY" -v --dry-run "$src" "$u"
    expect_no_secret "$secret"
    check "the same as a user's password: nbd+unix://user:PASSWORD@/?socket=..."
    u="nbd+unix://kcopy:$secret@/?socket=$SCRATCH/eq.sock"
    want=0
    nbdinfo --size "$u" >/dev/null 2>&1 || want=128
    expect_status "$want" "$KCOPY" -v "$src" "$u"
    expect_no_secret "$secret"
    if ((want == 0)); then
        cmp -s -- "$eq_img" "$src_orig" || fail "$eq_img is not the source's copy"
        restore_file "$eq_img" "$eq_orig"
    fi
}

run_case "a read-only export as a destination" read_only_export
run_case "exports too small" too_small
run_case "nobody listening" nobody_listening
run_case "secrets in a URI whose connection fails" secrets_failed_connection
run_case "secrets in a URI to a live server" secrets_live_server

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
