#!/usr/bin/env bash
# The hostile-conditions table of issue 26, run against the installed fuzzgrad: one PASS, FAIL
# or SKIP line per row, and the seconds a Ctrl-C took to stop a run. A bench, not a test: it
# takes a few minutes (each row starts fuzzgrad, which imports torch and JAX).
#
#   bench/hostile.sh                     # python from $PYTHON, else python3
#   PYTHON=.venv/bin/python bench/hostile.sh
#
# The disk rows mount small tmpfs folders where this user may (root); else they say SKIP.
set -u
PY=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/fuzzgrad-hostile.XXXXXX)
MOUNTS=()
cleanup() {
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
FAILED=0
fg() { "$PY" -m fuzzgrad "$@"; }
say() {  # say ROW PASS|FAIL|SKIP WHAT
    printf '%-3s %-5s %s\n' "$1" "$2" "$3"
    [ "$2" = FAIL ] && FAILED=$((FAILED + 1))
    return 0
}
one_line() {  # the file holds exactly one line, no traceback
    [ "$(wc -l <"$1")" -eq 1 ] && ! grep -q Traceback "$1"
}
wait_event() {  # wait_event REPORT EVENT SECONDS: poll the event log
    local end=$((SECONDS + $3))
    while [ $SECONDS -lt $end ]; do
        grep -q "\"event\": \"$2\"" "$1/events.jsonl" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

cat >"$WORK/ops.py" <<'EOF'
import torch
import fuzzgrad as fg


@fg.register(reference=lambda x: x * 4, properties=["forward", "vjp"], dtypes=[torch.float64])
class Wrong(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 4

    @staticmethod
    def backward(ctx, g):
        return g * 3
EOF
cd "$WORK" || exit 1
QUICK=(--max-examples 5 --seed 0 --database none)

# 1: a misspelt [tool.fuzzgrad] key
mkdir -p p1 && printf '[tool.fuzzgrad]\ntragets = ["ops.py"]\n' >p1/pyproject.toml
(cd p1 && fg fuzz "${QUICK[@]}" --report r >out 2>err)
rc=$?
if [ $rc -eq 2 ] && one_line p1/err && grep -q "'targets'" p1/err && [ ! -e p1/r ]; then
    say 1 PASS "tragets: exit 2, one line naming 'targets', no built-ins fuzzed"
else say 1 FAIL "tragets: exit $rc: $(head -c 300 p1/err)"; fi

# 2, 3, 10: a run in progress; a second run on its report; Ctrl-C after its first finding
# (not through `fg`: $! must be fuzzgrad's pid, not a subshell's)
"$PY" -m fuzzgrad fuzz ops.py --budget 300s --database none --report r2 >r2.out 2>r2.err &
pid=$!
if wait_event r2 finding 300; then
    fg fuzz ops.py "${QUICK[@]}" --report r2 >r3.out 2>r3.err
    rc=$?
    if [ $rc -eq 2 ] && one_line r3.err && grep -q "another fuzzgrad run" r3.err; then
        say 3 PASS "a second run on a report in use: exit 2, one line"
    else say 3 FAIL "a second run on a report in use: exit $rc: $(head -c 300 r3.err)"; fi
    start=$("$PY" -c 'import time; print(time.monotonic())')
    kill -INT $pid
    wait $pid
    rc=$?
    took=$("$PY" -c "import time; print(f'{time.monotonic() - $start:.2f}')")
    ok=$("$PY" - <<'EOF'
import json
d = json.load(open("r2/results.json"))
(t,) = d["targets"]
print(d["run"].get("interrupted") == "SIGINT", t["status"], t.get("interrupted"), t["examples"])
EOF
)
    if [ $rc -eq 1 ] && ! grep -q Traceback r2.err && grep -q "stopped (SIGINT)" r2.out &&
        [[ $ok == True* ]]; then
        say 2 PASS "Ctrl-C after a finding: exit 1 in ${took}s, one line, a report"
    else say 2 FAIL "Ctrl-C: exit $rc in ${took}s, $ok: $(tail -c 300 r2.err)"; fi
    if [[ $ok == "True failed SIGINT"* ]] && [ "$(echo "$ok" | cut -d' ' -f4)" -gt 0 ]; then
        say 10 PASS "the interrupted target: failed, interrupted, $(echo "$ok" | cut -d' ' -f4) examples"
    else say 10 FAIL "the interrupted target: $ok"; fi
else
    kill $pid 2>/dev/null
    say 2 FAIL "no finding within 300s"
    say 3 SKIP "needs a run in progress"
    say 10 SKIP "needs a run in progress"
fi

# 2 again: Ctrl-C 2 s and 8 s into start-up (importing torch, JAX, the targets; workers starting)
for delay in 2 8; do
    "$PY" -m fuzzgrad fuzz ops.py --budget 300s --database none --report "s$delay" \
        >"s$delay.out" 2>"s$delay.err" &
    pid=$!
    sleep $delay
    start=$("$PY" -c 'import time; print(time.monotonic())')
    kill -INT $pid
    wait $pid
    rc=$?
    took=$("$PY" -c "import time; print(f'{time.monotonic() - $start:.2f}')")
    lines=$(grep -c . "s$delay.err")
    if [ $rc -eq 1 ] && [ "$lines" -le 1 ] && ! grep -q Traceback "s$delay.err"; then
        say 2 PASS "Ctrl-C ${delay}s into start-up: exit 1 in ${took}s, $lines line(s) on stderr"
    else say 2 FAIL "Ctrl-C ${delay}s into start-up: exit $rc in ${took}s: $(head -c 300 "s$delay.err")"; fi
done

# 4, 5: a read-only folder and a full disk (tmpfs)
if mkdir -p ro full && mount -t tmpfs -o size=1m,ro tmpfs ro 2>/dev/null; then
    MOUNTS+=("$WORK/ro")
    fg fuzz ops.py "${QUICK[@]}" --report ro/r >r4.out 2>r4.err
    rc=$?
    if [ $rc -eq 2 ] && one_line r4.err; then say 4 PASS "read-only --report: exit 2, one line"
    else say 4 FAIL "read-only --report: exit $rc: $(head -c 300 r4.err)"; fi
else say 4 SKIP "cannot mount a read-only tmpfs here"; fi
if mount -t tmpfs -o size=12k tmpfs full 2>/dev/null; then
    MOUNTS+=("$WORK/full")
    fg fuzz ops.py "${QUICK[@]}" --report full/r >r5.out 2>r5.err
    rc=$?
    empty=$(find full -type f -size 0 | wc -l)
    fg report full/r >r5b.out 2>r5b.err
    rrc=$?
    if [ $rc -eq 2 ] && one_line r5.err && [ "$empty" -eq 0 ] && [ $rrc -ne 0 ]; then
        say 5 PASS "full disk: exit 2, one line, no empty file, report exits $rrc (incomplete)"
    else say 5 FAIL "full disk: exit $rc, $empty empty files, report exit $rrc: $(head -c 300 r5.err)"; fi
else say 5 SKIP "cannot mount a tmpfs here"; fi

# 6: a malformed Redis URL carrying a password
fg fuzz ops.py --database 'redis://u:s3cret#pw@host:6399/0' --report r6 >r6.out 2>r6.err
rc=$?
if [ $rc -eq 2 ] && one_line r6.err && ! grep -q "s3cret\|#pw" r6.out r6.err; then
    say 6 PASS "malformed Redis URL: exit 2, one line, no part of the password"
else say 6 FAIL "malformed Redis URL: exit $rc: $(head -c 300 r6.err)"; fi

# 7: --max-examples -1
fg fuzz ops.py --max-examples -1 --report r7 >r7.out 2>r7.err
rc=$?
if [ $rc -eq 2 ] && one_line r7.err && [ ! -e r7 ]; then
    say 7 PASS "--max-examples -1: exit 2 before anything starts"
else say 7 FAIL "--max-examples -1: exit $rc: $(head -c 300 r7.err)"; fi

# 8: a grandchild that left the session (setsid, double fork)
mkdir -p t8 && cat >t8/escape.py <<EOF
import os, time
import torch
import fuzzgrad as fg


def escape(x):
    if not os.path.exists("$WORK/grandchild.pid") and os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            open("$WORK/grandchild.pid", "w").write(str(os.getpid()))
            time.sleep(600)
        os._exit(0)
    return x * 2


fg.register(escape, reference=lambda x: x * 2, properties=["forward"], dtypes=[torch.float64])
EOF
fg fuzz t8/escape.py --max-examples 3 --database none --report r8 >r8.out 2>r8.err
gpid=$(cat grandchild.pid 2>/dev/null)
alive=no
for _ in $(seq 50); do
    if [ -n "$gpid" ] && [ -e "/proc/$gpid" ] && ! grep -q ') Z' "/proc/$gpid/stat" 2>/dev/null; then
        alive=yes; sleep 0.2
    else alive=no; break; fi
done
if [ -n "$gpid" ] && [ $alive = no ]; then say 8 PASS "the setsid grandchild ($gpid) did not outlive the run"
elif [ -z "$gpid" ]; then say 8 FAIL "the target never started its grandchild: $(tail -c 300 r8.err)"
else kill -9 "$gpid"; say 8 FAIL "the grandchild $gpid outlived the run"; fi

# 9: control characters in a target's name and exception
mkdir -p t9 && "$PY" - <<'EOF'
hostile = "a\x1b[2Jb\x07c\u202ed"
open("t9/names.py", "w", encoding="utf-8").write(
    "import torch\nimport fuzzgrad as fg\n\n\n"
    f"def boom(x):\n    raise ValueError({hostile!r})\n\n\n"
    f"fg.register(boom, reference=lambda x: x, name={('t' + hostile)!r}, dtypes=[torch.float64])\n"
)
EOF
fg fuzz t9/names.py --max-examples 3 --database none --report r9 >r9.out 2>r9.err
if "$PY" - <<'EOF'
import sys
raw = {"\x1b", "\x07", "\u202e"}
bad = [n for n in ("summary.md", "index.html", "junit.xml", "results.json")
       if raw & set(open(f"r9/{n}", encoding="utf-8").read())]
bad += [n for n in ("r9.out", "r9.err") if raw & set(open(n, encoding="utf-8").read())]
sys.exit(1 if bad else 0)
EOF
then say 9 PASS "control characters neutralised on the terminal and in every report file"
else say 9 FAIL "raw control characters in r9: $(ls r9)"; fi

# 11: --database none writes nothing in the current folder
mkdir -p c11 && cp ops.py c11/ && (cd c11 && fg fuzz ops.py "${QUICK[@]}" --report ../r11 >out 2>err)
if [ ! -e c11/.hypothesis ]; then say 11 PASS "--database none: no .hypothesis in the current folder"
else say 11 FAIL "--database none wrote $(find c11/.hypothesis | head -3 | tr '\n' ' ')"; fi

# 12: replaying a nondeterministic failure
mkdir -p t12 && cat >t12/flaky.py <<'EOF'
import random
import torch
import fuzzgrad as fg


class Flaky(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 4

    @staticmethod
    def backward(ctx, g):
        return g * (3 if random.random() < 0.5 else 4)  # wrong half the time


fg.register(Flaky, reference=lambda x: x * 4, properties=["vjp"], dtypes=[torch.float64])
EOF
fg fuzz t12/flaky.py --max-examples 20 --database none --report r12 >r12.out 2>r12.err
repro=$(ls r12/repro_*.py 2>/dev/null | head -1)
if [ -n "$repro" ]; then
    fg repro "$repro" --runs 20 >r12b.out 2>&1
    rc=$?
    if [ $rc -eq 1 ] && tail -1 r12b.out | grep -q "^FLAKY: failed [0-9]* of 20"; then
        say 12 PASS "$(tail -1 r12b.out | cut -c1-40)"
    else say 12 FAIL "repro: exit $rc: $(tail -1 r12b.out | cut -c1-200)"; fi
else say 12 FAIL "the flaky target left no reproducer"; fi

echo "$FAILED row(s) failed"
exit $((FAILED > 0))
