# bash completion for kcopy(1)                              -*- shell-script -*-
#
# `meson install` puts this file, as "kcopy", in bash-completion's completions
# directory (loaded on the first Tab after "kcopy"). Without bash-completion:
#     source /path/to/kcopy.bash
#
# Completes:
# - options, read from `kcopy --help` (so that they are always those of the
#   kcopy being run), once per shell and binary;
# - the values of --io-engine, and files for options whose value is a FILE;
# - regions: block devices (all of /dev's when nothing is typed yet), regular
#   files and directories; not character devices, FIFOs or sockets, which kcopy
#   refuses. A path may contain ':' (/dev/disk/by-path/pci-0000:00:1f.2-...):
#   the word is taken from the command line up to the cursor, not from bash's
#   colon-split words.
# Needs nothing from the bash-completion package.

# _kcopy_options CMD: prints "NAME TYPE" per option of CMD's --help (TYPE empty
# for a flag), cached in _kcopy_options_cache for the binary CMD resolves to.
_kcopy_options() {
    local cmd=$1 bin line first names type n
    bin=$(type -P -- "$cmd" 2>/dev/null) || bin=$cmd
    if [[ ${_kcopy_options_for:-} != "$bin" ]]; then
        _kcopy_options_cache=
        while IFS= read -r line; do
            line=${line#"${line%%[![:space:]]*}"} # leading blanks
            [[ $line == -* ]] || continue
            first=${line%%  *}   # the first column: "-n,--dry-run", "--pages N"
            names=${first%% *}
            type=${first#"$names"}
            type=${type# }
            for n in ${names//,/ }; do
                n=${n%%\{*} # CLI11's "{false}" of a negated flag
                _kcopy_options_cache+="$n $type"$'\n'
            done
        done < <("$bin" --help 2>/dev/null)
        if [[ -z $_kcopy_options_cache ]]; then
            # No kcopy to ask: the options of this file's version.
            _kcopy_options_cache=$'--pages N\n--io-size SIZE\n--ignore-errors \n--io-engine ENGINE\n--buffered \n--no-flush \n--zero \n--write-seq \n--verify \n--sparse \n--throttle PERCENT\n--max-rate RATE\n--mapfile FILE\n--mapfile-interval SECONDS\n--nbd-timeout SECONDS\n-f \n--force \n--progress \n--no-progress \n--json \n-n \n--dry-run \n-v \n--verbose \n-q \n--quiet \n--version \n-h \n--help \n'
        fi
        _kcopy_options_for=$bin
    fi
    printf '%s' "$_kcopy_options_cache"
}

# _kcopy_regions CUR: block devices, regular files and directories starting with CUR.
_kcopy_regions() {
    local cur=$1 f
    local -a out=()
    if [[ -z $cur ]]; then
        for f in /dev/*; do
            [[ -b $f ]] && out+=("$f")
        done
    fi
    while IFS= read -r f; do
        [[ -d $f || -b $f || -f $f ]] && out+=("$f")
    done < <(compgen -f -- "$cur")
    ((${#out[@]})) && printf '%s\n' "${out[@]}"
}

_kcopy() {
    local cmd=${1:-kcopy} line cur prev rest word opts n type after_dashdash=0
    local -a words
    # The word under the cursor and the one before it, split at blanks only
    # (bash splits words at ':' too, which would cut paths with ':' apart).
    line=${COMP_LINE:0:COMP_POINT}
    cur=${line##*[[:blank:]]}
    rest=${line%"$cur"}
    rest=${rest%"${rest##*[![:blank:]]}"} # trailing blanks
    prev=${rest##*[[:blank:]]}
    read -ra words <<<"$rest"
    for word in "${words[@]}"; do
        [[ $word == -- ]] && after_dashdash=1
    done

    COMPREPLY=()
    opts=$(_kcopy_options "$cmd")
    if ((!after_dashdash)) && [[ $prev == -* ]]; then
        type=$(while read -r n type; do [[ $n == "$prev" ]] && printf '%s' "$type"; done <<<"$opts")
        case $type in
        "") ;; # a flag: the next word is anything
        ENGINE)
            mapfile -t COMPREPLY < <(compgen -W "io_uring libaio sync auto" -- "$cur")
            return 0
            ;;
        FILE | PATH)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return 0
            ;;
        *) return 0 ;; # a number or size: nothing to offer
        esac
    fi
    if ((!after_dashdash)) && [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(while read -r n type; do printf '%s ' "$n"; done <<<"$opts")" -- "$cur")
        return 0
    fi
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(_kcopy_regions "$cur")
    # Readline replaces only the part of the word after its last ':'.
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local colon_prefix=${cur%"${cur##*:}"}
        COMPREPLY=("${COMPREPLY[@]#"$colon_prefix"}")
    fi
    return 0
}

complete -F _kcopy kcopy
