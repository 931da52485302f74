#!/usr/bin/env bash
# Writes the seed corpus of each fuzz target into OUTDIR/<target>/, from files the repository
# already keeps in step with the code: the sample events and the decoder's test corpus, the
# example and test configurations, the recorded Jira responses of the unit tests.
#
#   tests/fuzz/seeds.sh OUTDIR [TARGET...]     (default: every target)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:?usage: seeds.sh OUTDIR [TARGET...]}
shift
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(event config jira request mapping)
want() { [[ " ${wanted[*]} " == *" $1 "* ]]; }
for t in "${wanted[@]}"; do
    rm -rf "${out:?}/$t"
    mkdir -p "$out/$t"
done

byte() { printf '%b' "\\x$(printf %02x "$1")"; }

# Every non-blank, non-comment line of a JSON Lines file as its own seed.
split_lines() { # file target prefix
    local n=0 line
    while IFS= read -r line || [ -n "$line" ]; do
        [[ -z ${line// /} || $line == \#* ]] && continue
        n=$((n + 1))
        printf '%s' "$line" >"$out/$2/$3-$n"
    done <"$1"
}

# event: the samples, the JSON Lines files line by line, the decoder's valid/invalid corpus.
if want event; then
    cp "$root"/config/samples/*.json "$out/event/"
    split_lines "$root/config/samples/invalid.jsonl" event invalid
    split_lines "$root/config/samples/demo.jsonl" event demo
    for f in "$root"/tests/unit/data/events/valid/*.json "$root"/tests/unit/data/events/invalid/*.json; do
        cp "$f" "$out/event/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
fi

# config: the example and the unit tests' configurations.
if want config; then
    cp "$root/config/jiraprov.example.yaml" "$out/config/example.yaml"
    for f in "$root"/tests/unit/data/config/*.yaml; do
        cp "$f" "$out/config/test-$(basename "$f")"
    done
fi

# jira: byte 0 picks the parser (12 of them), byte 1 the status (index 0 = 200, 7 = 409);
# every recorded response with every parser, as a 200 and as a 409.
want jira && for f in "$root"/tests/unit/data/jira/*.json; do
    base=$(basename "$f" .json)
    for p in 0 1 2 3 4 5 6 7 8 9 10 11; do
        for s in 0 7; do
            { byte "$p"; byte "$s"; cat "$f"; } >"$out/jira/$base-p$p-s$s"
        done
    done
done

# mapping: SCIM users as Jira returns them.
if want mapping; then
    cp "$root/tests/unit/data/mapping/scim_user.json" "$out/mapping/mapping-scim_user.json"
    for f in "$root"/tests/unit/data/jira/scim_user*.json; do
        cp "$f" "$out/mapping/jira-$(basename "$f")"
    done
fi

# request: byte 0 picks the builder (33 of them), then NUL-separated strings. Realistic values
# for each builder, and the hostile ones the unit tests name.
req() { # name builder strings...
    local name=$1 b=$2
    shift 2
    {
        byte "$b"
        local first=1 s
        for s in "$@"; do
            [ "$first" = 1 ] || printf '\0'
            first=0
            printf '%s' "$s"
        done
    } >"$out/request/$name"
}
if want request; then
    values=('jdoe@demo.example' 'a/b' '..' '?x=1#frag' '100%' '"quoted" \back' $'cr\rlf\n'
        'Zoë.東京' 'DEMO-12' 'DEMO' '5b10ac8d82e05b22cc7d4ef5' 'idhub-ref-HR-1' 'HR-2024-0042')
    for b in $(seq 0 32); do
        i=0
        for v in "${values[@]}"; do
            i=$((i + 1))
            req "b$b-v$i" "$b" "$v" '5b10ac8d82e05b22cc7d4ef5' 'Summary' 'label'
        done
    done
    req issue-create 30 DEMO Task 'Laptop for Jane' hardware
    req issue-edit 31 DEMO-12 Task 'New summary' label
    req find-label 27 DEMO HR-2024-0042
    req find-property 28 '' HR-2024-0042
    req search 29 'project = "DEMO" ORDER BY created' token-1
    req transition 26 DEMO-12 31
fi
echo "seeds: $(find "$out" -type f | wc -l) files in $out"
