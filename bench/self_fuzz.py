"""fuzzgrad fuzzes itself: random registrations, made through the public API only, each fuzzed
for a few examples; fuzzgrad's own crashes and drawn inputs outside their spec are findings.

A registration is drawn from a seeded `random.Random`: one of a small family of Functions
(elementwise, broadcasting binary, a reduction over a `fuzzgrad.dim`, a slice by a bounded
`fuzzgrad.size`, Functions that save sparse, complex, zero-size, non-contiguous, meta or nested
tensors, return None gradients or non-tensor outputs), shape strings with named, fixed,
anonymous, variadic, broadcast and bounded dims (and ``""``), `fuzzgrad.tensor` options
(``low``/``high``, ``dtypes``, ``requires_grad``, ``structure``, ``max_side``), registration
options (``dtypes``, ``sizes``, ``max_elements``), and inputs given as a list of specs, as
``st.tuples`` of `fuzzgrad.tensor`, as an ``@st.composite`` drawing them, or with plain
Hypothesis strategies among them. Each is registered with ``fuzzgrad.register`` (call form) and
run by ``fuzz_target``. A finding is:

- an ``error`` of kind ``exception`` (fuzzgrad's own crash; the Function's own errors are
  property failures);
- a registration error whose message does not name the target, or one on a registration the
  generator made valid by construction;
- a drawn case that `fuzzgrad.strategies.contract_violation` says the spec cannot produce.

    python bench/self_fuzz.py --minutes 10
    python bench/self_fuzz.py --registrations 30 --seed 7 -v
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hypothesis import strategies as st

import fuzzgrad as fg
from fuzzgrad.registry.grammar import names, parse_shape

sys.path.insert(0, str(Path(__file__).resolve().parent))
import self_fuzz_family as fam  # noqa: E402

# -- drawing a registration --------------------------------------------------------------------

NAMES = ("n", "m", "b")
STRUCTURES = ("positive", "sorted", "unit_rows", "simplex", "symmetric", "positive_definite")
SQUARE = ("symmetric", "positive_definite", "orthogonal")
REAL = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
#: A plain Hypothesis strategy of tensors (an argument the Function does not differentiate).
PLAIN_TENSORS = st.lists(st.floats(-2, 2), max_size=4).map(fam.as_tensor)
FAMILIES = ("square", "mul", "sum_dim", "unsqueeze", "gather", "take", "saves", "double", "count")


@dataclass
class Drawn:
    """One drawn registration: what ``fuzzgrad.register`` gets, and what checks it."""

    family: str
    fn: Any
    reference: Any
    jax_reference: Any
    inputs: Any
    options: dict[str, Any] = field(default_factory=dict)
    #: Specs the drawn arguments must meet where ``inputs`` is one strategy (None: none known).
    shadow: list | None = None
    #: Why the registration may be invalid (empty: valid by construction).
    risky: list[str] = field(default_factory=list)
    #: Whether the Function is right (a failure is a false alarm of fuzzgrad's).
    correct: bool = True

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{self.family}: inputs={self.inputs!r}{', ' + opts if opts else ''}"


def _token(rng: random.Random, name: str, risky: list[str]) -> str:
    """A named dim, maybe bounded (``n>=2``, ``1<=n<=9``)."""
    roll = rng.random()
    if roll < 0.6:
        return name
    if roll < 0.75:
        return f"{name}>={rng.randint(0, 3)}"
    if roll < 0.9:
        high = rng.randint(0, 9)
        risky += [] if high else [f"{name}<={high}"]
        return f"{name}<={high}"
    low, high = rng.randint(0, 3), rng.randint(1, 12)
    risky += [] if low < high else [f"{low}<={name}<={high}"]
    return f"{low}<={name}<={high}"


def shape_string(rng: random.Random, risky: list[str], *, square: bool = False) -> str:
    """A shape string: up to three dims of every kind, at most one variadic (rarely two)."""
    if not square and rng.random() < 0.1:
        return ""
    out: list[str] = []
    variadics = 0
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("name", "name", "fixed", "anon", "variadic", "bcast", "ellipsis"))
        if kind in ("variadic", "ellipsis") and variadics and rng.random() < 0.9:
            kind = "name"
        if kind == "name":
            out.append(_token(rng, rng.choice(NAMES), risky))
        elif kind == "fixed":
            out.append(str(rng.randint(1, 4)))
        elif kind == "anon":
            out.append("_")
        elif kind == "bcast":
            out.append("#" + rng.choice(NAMES))
        else:
            variadics += 1
            out.append("..." if kind == "ellipsis" else rng.choice(("*batch", "*#batch")))
    if variadics > 1:
        risky.append("two variadic dims")
    if square:
        out.append("q q")
    return " ".join(out)


def tensor_spec(rng: random.Random, risky: list[str], *, structures: bool = False) -> Any:
    """A `fuzzgrad.tensor` with random options (some combinations invalid, noted in ``risky``)."""
    structure = rng.choice(STRUCTURES) if structures and rng.random() < 0.25 else None
    square = structure in SQUARE and rng.random() < 0.9
    shape = None if rng.random() < 0.1 else shape_string(rng, risky, square=square)
    kw: dict[str, Any] = {}
    if structure is not None:
        kw["structure"] = structure
        if structure in SQUARE and (not square or shape is None):
            risky.append("a square structure on a shape that is not square")
        last = (shape or "").split()[-1:] or [""]
        if structure in ("unit_rows", "simplex", "sorted") and (
            not last[0] or last[0][0] in "*#." or last[0] == "_"
        ):
            risky.append("a row structure without a named or fixed last dim")
    if rng.random() < 0.3:
        low, high = rng.choice((-3.0, -1.0, 0.0, 0.5)), rng.choice((0.5, 1.0, 3.0))
        kw["low"], kw["high"] = low, high
        if not low < high:
            risky.append(f"low={low} >= high={high}")
        if structure is not None:
            risky.append("low/high with a structure")
    if rng.random() < 0.2:
        kw["dtypes"] = rng.sample(REAL, rng.randint(1, 2))
    if rng.random() < 0.15:
        kw["max_side"] = rng.choice((1, 2, 8, 100, 5000))
    if rng.random() < 0.1:
        kw["requires_grad"] = False
    try:
        return fg.tensor(shape, **kw)
    except fg.InvalidRegistration:
        if not risky:
            raise
        return fg.tensor(shape)


def _broadcast_partner(rng: random.Random, shape: str | None) -> str | None:
    """A shape string broadcastable against ``shape``: a suffix of its dims (after any
    anonymous variadic), each kept, made broadcastable (``#n``, ``*#batch``) or set to 1."""
    if shape is None:
        return None
    try:
        dims = parse_shape(shape)
    except fg.ShapeSpecError:
        return shape  # registration says what is wrong with it
    start = max((i + 1 for i, d in enumerate(dims) if d.variadic and d.name == "_"), default=0)
    out = []
    for d in dims[rng.randint(start, len(dims)) :]:
        body = str(d.size) if d.name is None else d.name
        if d.variadic:
            out.append(rng.choice((f"*{body}", f"*#{body}")))
        elif d.name == "_":
            out.append("1")
        else:
            out.append(rng.choice((body, f"#{body}", "1")))
    return " ".join(out)


def _dims(spec: Any) -> tuple:
    """A tensor spec's parsed dims (none where its shape does not parse: registration says so)."""
    try:
        return spec.dims
    except fg.ShapeSpecError:
        return ()


def _names_in(specs: list) -> list[str]:
    """The named dims the tensor specs use (what ``sizes=`` may bound)."""
    return sorted({n for spec in specs for n in names(_dims(spec))})


def draw_registration(rng: random.Random) -> Drawn:
    """One random registration (see the module docstring)."""
    family = rng.choice(FAMILIES)
    risky: list[str] = []
    options: dict[str, Any] = {}
    complex_ok = family in ("square", "mul")
    if rng.random() < 0.3:
        pool = REAL + ((torch.complex128,) if complex_ok else ())
        options["dtypes"] = rng.sample(pool, rng.randint(1, 2))
    if rng.random() < 0.1:
        options["max_elements"] = rng.choice((1, 16, 256))
    if rng.random() < 0.1:
        options["nonfinite"] = True
    if rng.random() < 0.1:
        options["max_order"] = 1
    if rng.random() < 0.05:
        options["xfail"] = "drawn as known wrong"
    if family == "square":
        x = tensor_spec(rng, risky, structures=True)
        d = Drawn(family, fam.Square, fam.square, fam.square, _wrap(rng, [x]), shadow=[x])
    elif family == "mul":
        x = tensor_spec(rng, risky)
        if torch.complex128 in options.get("dtypes", ()):
            # a half x times a 0-d complex y is ComplexHalf, which torch cannot sum (the
            # reference's backward raises, so the run ends as an error of discards)
            x = x.replace(dtypes=None)
        y = fg.tensor(_broadcast_partner(rng, x.shape))
        d = Drawn(family, fam.Mul, fam.mul, fam.mul, _wrap(rng, [x, y]), shadow=[x, y])
    elif family == "sum_dim":
        x = tensor_spec(rng, risky)
        d = _sum_dim(rng, x)
        risky += [f"bounds that leave {', '.join(n)} no size"] if (n := _contradicted([x])) else []
    elif family == "unsqueeze":
        x = tensor_spec(rng, risky)
        inputs = [x, fg.dim(0, keepdim=True)]
        d = Drawn(family, fam.Unsqueeze, fam.unsqueeze, fam.unsqueeze_jax, inputs)
    elif family == "gather":
        n = rng.choice(NAMES)
        x = fg.tensor(f"{shape_string(rng, risky)} {_token(rng, n, risky)}".strip())
        idx = fg.tensor(rng.choice(("k", "", "k j", "#k")), structure="index", high=n)
        d = Drawn(family, fam.Gather, fam.gather, fam.gather, _wrap(rng, [x, idx]), shadow=[x, idx])
    elif family == "take":
        n = rng.choice(NAMES)
        x = fg.tensor(f"{shape_string(rng, risky)} {_token(rng, n, risky)}".strip())
        k = rng.choice(("k<={n}", "k<{n}", "1<=k<={n}", "1<=k<{n}", "{n}")).format(n=n)
        if k == n:
            k_spec = fg.size(n)
        else:
            k_spec = fg.size(k)
        d = Drawn(family, fam.Take, fam.take, fam.take_jax, [x, k_spec])
    elif family == "saves":
        kind = rng.choice(fam.ODD_KINDS)
        x = tensor_spec(rng, risky)
        d = Drawn(
            f"saves_{kind}", fam.SAVING[kind], fam.square, fam.square, _wrap(rng, [x]), shadow=[x]
        )
        d.correct = kind not in ("sparse", "complex")  # these take values from what they saved
    elif family == "double":
        x = tensor_spec(rng, risky)
        y = tensor_spec(rng, risky) if rng.random() < 0.7 else PLAIN_TENSORS
        d = Drawn(family, fam.Double, fam.double, fam.double, _wrap(rng, [x, y]), shadow=[x, y])
    else:
        x = tensor_spec(rng, risky)
        d = Drawn(family, fam.TripleAndCount, fam.count, fam.count_jax, _wrap(rng, [x]), shadow=[x])
    pool = d.shadow if d.shadow is not None else d.inputs if isinstance(d.inputs, list) else []
    specs = [a for a in pool if isinstance(a, fg.TensorSpec)]
    named = _names_in(specs)
    if rng.random() < 0.15 and named:
        lo, hi, name = rng.randint(0, 3), rng.randint(2, 40), rng.choice(named)
        options["sizes"] = {name: (lo, hi)}
        if lo > hi:
            risky.append(f"sizes= {lo} > {hi}")
        if any(b.name == name for spec in specs for d in _dims(spec) for b in d.bounds):
            risky.append(f"sizes= on {name!r}, which a shape bounds too")
    if specs and not any(spec.requires_grad for spec in specs):
        risky.append("no input requires grad")
    if any(a.structure for a in specs) and torch.complex128 in options.get("dtypes", ()):
        risky.append("a real structure among complex target dtypes")
    twice = [name for name, count in _bounded(pool).items() if count > 1]
    if twice:
        risky.append(f"bounds on {', '.join(twice)} in more than one place")
    empty = _contradicted(specs)
    if empty:
        risky.append(f"bounds (max_side included) that leave {', '.join(empty)} no size")
    d.options.update(options)
    d.risky += risky
    if not isinstance(d.inputs, st.SearchStrategy):
        d.shadow = None  # the contract of a spec list is the target's own
    return d


def _bounded(specs: list) -> Counter:
    """How many places (shape tokens, sizes, index tensors) bound each name: bounds from two
    places may contradict each other, and the registration be invalid."""
    count: Counter = Counter()
    for spec in specs:
        if isinstance(spec, fg.TensorSpec):
            count.update(d.name for d in _dims(spec) if d.bounds)
            count.update([spec.size_name] if spec.size_name else [])
        elif getattr(spec, "kind", None) == "size" and spec.bounds:
            count.update([spec.name] + [b.value for b in spec.bounds if isinstance(b.value, str)])
    return count


def _contradicted(specs: list) -> list[str]:
    """The names whose constant bounds, across every token of every tensor (``2<=m<=12`` and
    ``m<=1`` in one shape) and the ``max_side`` of the tensors that use them, meet no size."""
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    for spec in specs:
        for d in _dims(spec):
            if not d.name or d.name == "_":
                continue
            if spec.max_side is not None:
                high[d.name] = min(high.get(d.name, spec.max_side), spec.max_side)
            for b in d.bounds:
                if isinstance(b.value, int):
                    v = b.value + b.offset
                    if b.upper:
                        high[d.name] = min(high.get(d.name, v), v)
                    else:
                        low[d.name] = max(low.get(d.name, v), v)
    return sorted(n for n in low if n in high and low[n] > high[n])


def _wrap(rng: random.Random, specs: list) -> Any:
    """The specs as an ``inputs=`` list (half the time), or nested in a plain strategy."""
    roll = rng.random()
    if roll < 0.5:
        return list(specs)
    if roll < 0.75:
        return st.tuples(*specs)

    @st.composite
    def drawn(draw):
        return tuple(draw(s) for s in specs)

    return drawn()


def _sum_dim(rng: random.Random, x: Any) -> Drawn:
    keepdim = rng.random() < 0.5
    roll = rng.random()
    if roll < 0.4:
        inputs: Any = [x, fg.dim(0), keepdim]
    elif roll < 0.7:
        inputs = [x, fg.dim(0), st.booleans()]
    else:

        @st.composite
        def with_dim(draw):
            t = draw(x)
            r = max(t.dim(), 1)
            return t, draw(st.integers(-r, r - 1)), draw(st.booleans())

        return Drawn("sum_dim", fam.SumDim, fam.sum_dim, fam.sum_dim_jax, with_dim(), shadow=None)
    return Drawn("sum_dim", fam.SumDim, fam.sum_dim, fam.sum_dim_jax, inputs)


# -- running one -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one drawn registration gave: its status, cases run, and findings (with tracebacks)."""

    drawn: Drawn
    status: str = "unregistered"
    cases: int = 0
    findings: list[str] = field(default_factory=list)


_COUNTER = itertools.count()


def run_one(
    drawn: Drawn, *, max_examples: int, seed: int | None, report_dir: str | None
) -> Outcome:
    """Register ``drawn`` (``fuzzgrad.register``, call form), fuzz it, and judge fuzzgrad."""
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.strategies import contract_violation

    out = Outcome(drawn)
    name = f"self_fuzz_{next(_COUNTER)}_{drawn.family}"
    try:
        fg.register(
            drawn.fn,
            reference=drawn.reference,
            jax_reference=drawn.jax_reference,
            inputs=drawn.inputs,
            name=name,
            **drawn.options,
        )
    except fg.InvalidRegistration as exc:
        _judge_registration(out, name, str(exc))
        return out
    target = fg.registered()[name]
    shadow = _shadow(drawn, name)

    def on_example(case) -> None:
        out.cases += 1
        reason = contract_violation(shadow or target, case, case)
        if reason and len(out.findings) < 5:
            out.findings.append(f"a drawn input breaks its spec: {reason}; {case!r}")

    result = fuzz_target(
        target,
        max_examples=max_examples,
        seed=seed,
        derandomize=seed is None,
        report_dir=report_dir,
        on_example=on_example,
    )
    out.status = result.status
    error = result.error or {}
    if error.get("kind") == "registration":
        _judge_registration(out, name, error.get("message", ""))
    elif error.get("kind") == "exception":
        out.findings.append(f"internal exception: {error['message']}\n{error.get('traceback')}")
    elif error:  # a discard share or a timeout: no Function of the family earns one
        out.findings.append(f"an error of kind {error.get('kind')!r}: {error.get('message')}")
    for failure in result.failures if report_dir is not None else ():
        if failure.reproducer is None:
            out.findings.append(f"no reproducer written: {failure.diagnosis}")
    for failure in result.failures if drawn.correct else ():
        out.findings.append(
            f"false alarm on a correct Function: {failure.property}: {failure.message}"
            f"\n    inputs: {failure.inputs}"
        )
    return out


def _judge_registration(out: Outcome, name: str, message: str) -> None:
    out.status = "registration error"
    if name not in message:
        out.findings.append(f"a registration error that does not name the target: {message}")
    elif not out.drawn.risky:
        out.findings.append(f"a registration error on a valid registration: {message}")


def _shadow(drawn: Drawn, name: str) -> Any:
    """A spec-list target with the specs nested in ``drawn``'s strategy, whose contract the
    strategy's tensors must meet (None where the inputs are a spec list or unknown)."""
    if drawn.shadow is None:
        return None
    from fuzzgrad.registry.target import make_target

    try:
        return make_target(
            drawn.fn, reference=drawn.reference, inputs=drawn.shadow, name=name, **_opts(drawn)
        )
    except fg.InvalidRegistration:
        return None  # the nesting strategy has no registration of its own to check


def _opts(drawn: Drawn) -> dict[str, Any]:
    opts = dict(drawn.options)
    return {"dtypes": opts.pop("dtypes", None), "options": opts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=None, help="run this long (default: 1)")
    ap.add_argument("--registrations", type=int, default=None, help="or this many")
    ap.add_argument("--examples", type=int, default=12, help="max_examples per registration")
    ap.add_argument("--seed", type=int, default=0, help="seed of the registrations drawn")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every registration")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    stop = time.monotonic() + 60 * (args.minutes or (1 if args.registrations is None else 1e9))
    rng = random.Random(args.seed)
    tried = cases = 0
    statuses: dict[str, int] = {}
    findings: list[tuple[int, Outcome]] = []
    with tempfile.TemporaryDirectory() as report_dir:
        for i in itertools.count():
            if time.monotonic() >= stop or (args.registrations and i >= args.registrations):
                break
            drawn = draw_registration(rng)
            try:
                out = run_one(drawn, max_examples=args.examples, seed=i, report_dir=report_dir)
            except Exception:  # noqa: BLE001 - fuzz_target itself raised: the worst finding
                out = Outcome(drawn, "raised", findings=[traceback.format_exc()])
            tried, cases = tried + 1, cases + out.cases
            statuses[out.status] = statuses.get(out.status, 0) + 1
            if args.verbose or out.findings:
                print(f"[{i}] {out.status:>18} {out.cases:4d} cases  {drawn.describe()}")
            for f in out.findings:
                print("    " + f.replace("\n", "\n    "))
            if out.findings:
                findings.append((i, out))
    print(f"registrations tried: {tried}")
    print(f"cases run: {cases}")
    print("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    print(f"registrations with findings: {len(findings)}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
