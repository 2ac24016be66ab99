#!/usr/bin/env bash
# The bash completion (scripts/completion/kcopy.bash), sourced in a bash without
# the bash-completion package, as a user's Tab would run it:
#   - options from a prefix ("--io-" gives exactly --io-engine and --io-size),
#     taken from the --help of the kcopy under test; the values of --io-engine;
#     nothing after an option that takes a number;
#   - regions: block devices (a loop device, not the character device
#     /dev/loop-control), files and directories; a path with ':' in it; all of
#     /dev's block devices for an empty word; after "--" even "-x" is a region.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kcopy
COMPLETION=$TESTS_DIR/../../scripts/completion/kcopy.bash
[[ -f $COMPLETION ]] || fail "no $COMPLETION"

# completions LINE: what Tab offers at the end of LINE (COMPREPLY, one a line, sorted).
completions() {
    bash --norc --noprofile -c '
        source "$1" || exit 1
        COMP_LINE=$3 COMP_POINT=${#3}
        read -ra COMP_WORDS <<<"$COMP_LINE"
        [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        _kcopy "$2" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        ((${#COMPREPLY[@]})) && printf "%s\n" "${COMPREPLY[@]}" | sort
        exit 0' _ "$COMPLETION" "$KCOPY" "$1"
}

# expect_completions LINE WORD...: Tab at the end of LINE offers exactly WORDs.
expect_completions() {
    local line=$1 got want
    shift
    got=$(completions "$line") || fail "completion failed for '$line'"
    want=$(if (($#)); then printf '%s\n' "$@" | sort; fi)
    [[ $got == "$want" ]] || fail "'$line<Tab>' offers [${got//$'\n'/ }], want [${want//$'\n'/ }]"
    printf '    %s<Tab> -> %s\n' "$line" "${got//$'\n'/ }"
}

# expect_offers LINE WORD / expect_not_offered LINE WORD: WORD is (not) among the completions.
expect_offers() {
    grep -qxF -- "$2" <(completions "$1") || fail "'$1<Tab>' does not offer '$2'"
}
expect_not_offered() {
    ! grep -qxF -- "$2" <(completions "$1") || fail "'$1<Tab>' offers '$2'"
}

check "options from a prefix, and option values"
expect_completions "kcopy --io-" --io-engine --io-size
expect_completions "kcopy --dry" --dry-run
expect_completions "kcopy --no-" --no-flush --no-progress
expect_completions "kcopy src.img --js" --json
expect_completions "kcopy --io-engine " auto io_uring libaio sync
expect_completions "kcopy --io-engine io_" io_uring
expect_completions "kcopy --pages "
for o in --pages --io-size --ignore-errors --io-engine --buffered --no-flush --force --progress --json --dry-run \
    --verbose --quiet --version --help -n -f -v -q -h; do
    expect_offers "kcopy -" "$o"
done

check "regions: files and directories, not what kcopy refuses"
mkdir "$SCRATCH/subdir"
: >"$SCRATCH/src.img"
mkfifo "$SCRATCH/sfifo"
expect_completions "kcopy $SCRATCH/s" "$SCRATCH/src.img" "$SCRATCH/subdir"
expect_completions "kcopy -v $SCRATCH/src.img $SCRATCH/sr" "$SCRATCH/src.img"
expect_completions "kcopy -- $SCRATCH/s" "$SCRATCH/src.img" "$SCRATCH/subdir"

check "after --, a word starting with '-' is a region"
: >"$SCRATCH/-x.img"
(
    cd "$SCRATCH"
    expect_completions "kcopy -- -" "-x.img"
    expect_not_offered "kcopy -" "-x.img"
)

check "a path with ':' in it: completed after its last ':', as readline replaces"
: >"$SCRATCH/pci-0000:00:1f.2-ata-1"
expect_completions "kcopy $SCRATCH/pci-0000:00:1f" "1f.2-ata-1"

if ((EUID == 0)) && [[ -e /dev/loop-control ]] && command -v losetup >/dev/null; then
    check "block devices: a loop device from its prefix, not /dev/loop-control; all of them for an empty word"
    loop=$(attach "$(make_image disk.img 1M)")
    expect_offers "kcopy /dev/loo" "$loop"
    expect_not_offered "kcopy /dev/loo" /dev/loop-control
    expect_offers "kcopy " "$loop"
    expect_offers "kcopy $SCRATCH/src.img " "$loop"
    expect_not_offered "kcopy " /dev/null
else
    echo "    (not root: block devices not checked)"
fi

pass
