#!/usr/bin/env bash
# suite.sh — librdkafka's own integration test suite against a running broker.
#
# Usage:
#   suite.sh build                         fetch + build the suite (once; cached)
#   suite.sh run --bootstrap HOST:PORT --list FILE [--results FILE] [--parallel N] [--all]
#
# build: librdkafka 2.0.2 from Debian's source package (the version of Debian's kcat; a
#   registry package, so this script may build it), configured without SSL/GSSAPI/curl, its
#   libraries and `tests/test-runner` built under ${TERN_CACHE:-$HOME/.cache/tern}/librdkafka-2.0.2
#   (outside the clone). Adds a deb-src entry mirroring /etc/apt/sources.list.d/debian.sources.
# run: runs every test named in FILE whose status is `pass` (with --all: also `fail`; see
#   tests.txt: one test per line, `<name> <pass|retry|fail|exclude> <reason>`), one process per
#   test, in quick mode (-Q), each under a 180 s timeout, N at a time (default 2). A test listed
#   `retry` must pass too, but gets up to 3 attempts: it is racy inside librdkafka itself, and
#   its reason line says how (measured against Apache Kafka as well).
#   Writes `<name> <PASSED|FAILED|TIMEOUT> <seconds>` lines to the results file and exits 1 if
#   a test listed `pass` did not pass. A test listed `fail` that passes is reported as
#   "now passing" (update tests.txt) but does not fail the run.
set -euo pipefail

readonly VERSION="2.0.2"
readonly DEBIAN_VERSION="2.0.2-1"
readonly CACHE="${TERN_CACHE:-$HOME/.cache/tern}/librdkafka-${VERSION}"
readonly TESTS_DIR="$CACHE/src/tests"
readonly TEST_TIMEOUT_S=180

die() { echo "suite.sh: $*" >&2; exit 1; }

build() {
    if [[ -x "$TESTS_DIR/test-runner" ]]; then return; fi
    mkdir -p "$CACHE"
    local sources=/etc/apt/sources.list.d/tern-deb-src.sources
    if [[ ! -f "$sources" ]]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$sources"
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev zlib1g-dev libzstd-dev \
        liblz4-dev rapidjson-dev python3 > /dev/null
    (cd "$CACHE" && apt-get source -qq --download-only "librdkafka=${DEBIAN_VERSION}" \
        && rm -rf src && dpkg-source -x "librdkafka_${DEBIAN_VERSION}.dsc" src > /dev/null)
    (cd "$CACHE/src" && ./configure --disable-ssl --disable-gssapi --disable-curl > ../configure.log \
        && make -j2 libs > ../make-libs.log && make -C tests -j2 build > ../make-tests.log) \
        || die "build failed; logs in $CACHE"
}

# A name `<test>@<function>` runs only the sub-tests of <test> whose name contains <function>
# (the runner's SUBTESTS filter): how a test that mixes applicable and inapplicable parts
# (0081_admin's ACL sub-tests) is counted part by part.
run_one() {  # name bootstrap_conf results_dir attempts
    local name="$1" conf="$2" dir="$3" attempts="$4" attempt=0 start status test subtests=""
    test="${name%%@*}"
    [[ "$name" == *@* ]] && subtests="${name#*@}"
    start=$(date +%s)
    while (( attempt < attempts )); do
        attempt=$(( attempt + 1 ))
        # Earlier attempts' logs are kept beside the last one (`<name>.log.<attempt>`).
        if [[ -f "$dir/$name.log" ]]; then mv "$dir/$name.log" "$dir/$name.log.$(( attempt - 1 ))"; fi
        if (cd "$TESTS_DIR" && LD_LIBRARY_PATH=../src:../src-cpp RDKAFKA_TEST_CONF="$conf" \
                SUBTESTS="$subtests" TEST_KAFKA_VERSION=3.9.0 timeout "$TEST_TIMEOUT_S" \
                ./test-runner -Q -p1 -S "$test" > "$dir/$name.log" 2>&1); then
            status=PASSED
            break
        elif [[ $? -eq 124 ]]; then
            status=TIMEOUT
        else
            status=FAILED
        fi
    done
    echo "$name $status $(( $(date +%s) - start )) $attempt"
}

run() {
    local bootstrap="" list="" results="" parallel=2 statuses="pass retry"
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --bootstrap) bootstrap="$2"; shift 2 ;;
            --list) list="$2"; shift 2 ;;
            --results) results="$2"; shift 2 ;;
            --parallel) parallel="$2"; shift 2 ;;
            --all) statuses="pass retry fail"; shift ;;
            *) die "unknown argument $1" ;;
        esac
    done
    [[ -n "$bootstrap" && -f "$list" ]] || die "run needs --bootstrap and --list"
    [[ -x "$TESTS_DIR/test-runner" ]] || die "not built: run suite.sh build first"
    local work; work="$(mktemp -d)"
    results="${results:-$work/results.txt}"
    echo "bootstrap.servers=$bootstrap" > "$work/test.conf"
    export -f run_one
    export TESTS_DIR TEST_TIMEOUT_S
    # Parts of one test (`<test>@<function>`) run one after another in a lane of their own:
    # run side by side, two 0081_admin processes once drew the same "random" topic names and
    # the second failed on TOPIC_ALREADY_EXISTS. Whole tests share the other lanes.
    # One line per test: its name and how many attempts it gets.
    local wanted; wanted="$(awk -v wanted=" $statuses " \
        'index(wanted, " " $2 " ") { print $1, ($2 == "retry" ? 3 : 1) }' "$list")"
    local lanes=$(( parallel > 1 ? parallel - 1 : 1 ))
    run_entries() { # lanes
        xargs -r -P "$1" -L1 bash -c 'run_one "$3" "$1" "$2" "$4" 2> /dev/null' _ \
            "$work/test.conf" "$work"
    }
    {
        awk 'index($0, "@") == 0' <<<"$wanted" | run_entries "$lanes" &
        awk 'index($0, "@") > 0' <<<"$wanted" | run_entries 1
        wait
    } | sort > "$results"
    local broken=0
    while read -r name status seconds attempts; do
        expected="$(awk -v n="$name" '$1 == n { print $2 }' "$list")"
        if [[ "$expected" == retry && "$status" == PASSED && "$attempts" -gt 1 ]]; then
            echo "passed at attempt $attempts of a test racy in librdkafka: $name;" \
                "earlier logs: $work/$name.log.*"
        fi
        if [[ "$expected" =~ ^(pass|retry)$ && "$status" != PASSED ]]; then
            echo "REGRESSION: $name $status (${seconds}s, $attempts attempts); log: $work/$name.log"
            tail -20 "$work/$name.log" | sed 's/^/    /'
            broken=1
        elif [[ "$expected" == fail && "$status" == PASSED ]]; then
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
    *) die "usage: suite.sh build | run --bootstrap HOST:PORT --list FILE [--results FILE]" ;;
esac
