#!/usr/bin/env bash
# suite.sh — segmentio/kafka-go's own test suite against a broker on localhost:9092.
#
# Usage:
#   suite.sh build                                     fetch + compile the suite (once; cached)
#   suite.sh run --list FILE [--results FILE] [--parallel N] [--all]
#
# build: `go mod download` fetches github.com/segmentio/kafka-go at $VERSION from the Go module
#   proxy into ${TERN_CACHE:-$HOME/.cache/tern}/kafka-go-$VERSION/mod (outside the clone),
#   copies the module to src/ there and compiles one test binary per package that talks to a
#   broker (bin/<package>.test). Nothing is rebuilt while the binaries exist.
# run: runs every test named in FILE whose status is `pass` (with --all: every listed test;
#   see tests.txt: one test per line, `<package>/<Test> <pass|fail|exclude> <reason>`, package
#   `.` being kafka-go's root package; `<package>/<Test>/<subtest> <fail|exclude> <reason>`
#   skips that sub-test of a test listed `pass`, except with --all), one process per test,
#   each under a $TEST_TIMEOUT_S s timeout, N at a time (default 3), with the environment
#   kafka-go's own CI sets
#   (KAFKA_VERSION, KAFKA_SKIP_NETTEST). kafka-go's tests dial localhost:9092 (hard-coded), so
#   the caller runs the broker there — engine/tests/kafka_go_suite.rs does it in a private
#   network namespace. Writes `<test> <PASSED|FAILED|SKIPPED|TIMEOUT> <seconds>` lines to the
#   results file and exits 1 if a test listed `pass` did not pass. A test listed `fail` (fails
#   today; not asserted) or `exclude` that passes under --all is reported as "now passing".
set -euo pipefail

readonly VERSION="v0.4.51"
readonly MODULE="github.com/segmentio/kafka-go"
readonly CACHE="${TERN_CACHE:-$HOME/.cache/tern}/kafka-go-${VERSION}"
readonly PACKAGES=". compress sasl topics"
readonly TEST_TIMEOUT_S=150
# The newest broker version kafka-go's CI names; its tests gate features on it.
readonly SUITE_KAFKA_VERSION="4.0.0"

die() { echo "suite.sh: $*" >&2; exit 1; }

binary_of() { [[ "$1" == . ]] && echo "$CACHE/bin/kafka-go.test" || echo "$CACHE/bin/$1.test"; }

build() {
    command -v go > /dev/null || die "go is not installed (.ci/run installs it: apt-get install golang)"
    local package missing=0
    for package in $PACKAGES; do [[ -x "$(binary_of "$package")" ]] || missing=1; done
    [[ "$missing" == 1 ]] || return 0
    mkdir -p "$CACHE/bin"
    export GOMODCACHE="$CACHE/mod" GOFLAGS="-modcacherw -mod=mod" GOTOOLCHAIN=local
    local directory
    directory="$(cd "$CACHE" && go mod download -json "$MODULE@$VERSION" \
        | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
    [[ -d "$directory" ]] || die "go mod download $MODULE@$VERSION failed"
    rm -rf "$CACHE/src" && cp -r "$directory" "$CACHE/src" && chmod -R u+w "$CACHE/src"
    for package in $PACKAGES; do
        (cd "$CACHE/src" && go test -c -o "$(binary_of "$package")" "./$package") \
            || die "compiling kafka-go's $package tests failed"
    done
}

# The -test.skip pattern for the sub-tests of <test> that the list marks other than `pass`
# (`<package>/<Test>/<subtest> <fail|exclude> <reason>`), unless --all.
skip_pattern() {  # package test
    [[ "$ALL" == 1 ]] && return 0
    awk -v prefix="$1/$2/" -v test="$2" 'index($1, prefix) == 1 && $2 != "pass" {
        sub(prefix, "", $1); pattern = pattern sep test "/^" $1 "$"; sep = "|" }
        END { print pattern }' "$LIST"
}

run_one() {  # name results_dir
    local name="$1" dir="$2" package test start status log skip
    package="${name%%/*}" test="${name#*/}" log="$dir/${name//\//_}.log"
    skip="$(skip_pattern "$package" "$test")"
    start=$(date +%s)
    # Tests read fixtures relative to their package directory.
    if (cd "$CACHE/src/$package" && KAFKA_VERSION="$SUITE_KAFKA_VERSION" KAFKA_SKIP_NETTEST=1 \
            timeout "$TEST_TIMEOUT_S" "$(binary_of "$package")" -test.run "^${test}\$" \
            ${skip:+-test.skip "$skip"} -test.v -test.count 1 > "$log" 2>&1); then
        if grep -q -- "^--- SKIP: $test " "$log"; then status=SKIPPED; else status=PASSED; fi
    elif [[ $? -eq 124 ]]; then
        status=TIMEOUT
    else
        status=FAILED
    fi
    grep -q -- "^=== RUN   $test\$" "$log" || status=NOT_RUN
    echo "$name $status $(( $(date +%s) - start ))"
}

run() {
    local list="" results="" parallel=3 statuses="pass"
    ALL=0
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --list) list="$2"; shift 2 ;;
            --results) results="$2"; shift 2 ;;
            --parallel) parallel="$2"; shift 2 ;;
            --all) statuses="pass fail exclude"; ALL=1; shift ;;
            *) die "unknown argument $1" ;;
        esac
    done
    [[ -f "$list" ]] || die "run needs --list"
    local package
    for package in $PACKAGES; do
        [[ -x "$(binary_of "$package")" ]] || die "not built: run suite.sh build first"
    done
    local work; work="$(mktemp -d)"
    results="${results:-$work/results.txt}"
    LIST="$list"
    export -f run_one binary_of skip_pattern
    export CACHE TEST_TIMEOUT_S SUITE_KAFKA_VERSION LIST ALL
    # Sub-test lines (two slashes) refine their test's run; they are not run on their own.
    awk -v wanted=" $statuses " '!/^#/ && $1 !~ /\/.*\// && index(wanted, " " $2 " ") {
        print $1 }' "$list" \
        | xargs -P "$parallel" -I{} bash -c 'run_one "$1" "$2"' _ {} "$work" \
        | sort > "$results"
    local broken=0 name status seconds expected
    while read -r name status seconds; do
        expected="$(awk -v n="$name" '$1 == n { print $2 }' "$list")"
        if [[ "$expected" == pass && "$status" != PASSED ]]; then
            echo "REGRESSION: $name $status (${seconds}s); log: $work/${name//\//_}.log"
            tail -25 "$work/${name//\//_}.log" | sed 's/^/    /'
            broken=1
        elif [[ "$expected" != pass && "$status" == PASSED ]]; then
            echo "now passing: $name (mark it pass in the list)"
        fi
    done < "$results"
    echo "suite.sh: $(grep -c ' PASSED ' "$results" || true) passed," \
        "$(grep -c -v ' PASSED ' "$results" || true) not; results in $results"
    return "$broken"
}

case "${1:-}" in
    build) build ;;
    run) shift; run "$@" ;;
    *) die "usage: suite.sh build | run --list FILE [--results FILE] [--parallel N] [--all]" ;;
esac
