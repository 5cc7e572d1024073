"""Verdicts never pass silently: broken registrations are flagged, every property gets its own
verdict, and the oracle's blind spots (non-finite, ill-conditioned references) are covered."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import pytest
import torch
from corpus._amp import matmul_cast
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.engine.runner import fuzz_target
from fuzzgrad.integrations.cli import main
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.registry.target import make_target

CORPUS = Path(__file__).parent / "corpus"
BROKEN = load_targets([str(CORPUS / "broken.py")])


@pytest.mark.parametrize("target", BROKEN, ids=[t.name for t in BROKEN])
def test_broken_registration_is_flagged(target, tmp_path):
    broken = target.options["broken"]
    result = fuzz_target(target, max_examples=100, derandomize=True, report_dir=tmp_path)
    if broken["flag"] == "reference_disagreement":
        assert result.status == "failed", (result.status, result.error)
        (failure,) = [f for f in result.failures if f.property == "reference_disagreement"]
        text = failure.message
        elements = sum(max(1, a.numel()) for a in failure.case.args if hasattr(a, "numel"))
        assert failure.shrunk and elements <= 16, failure.inputs
    else:
        assert result.status == "error", (result.status, result.failures)
        assert result.error["kind"] == broken["flag"], result.error
        text = result.error["message"]
        if broken["flag"] == "discards":
            assert len(result.error["examples"]) == 2  # two example inputs
    assert target.name in text or broken["flag"] != "registration", text
    for word in broken["words"]:
        assert word in text, text


# NoPropertyApplies: the CLI's run loop once passed it with 0 examples (no property to loop on)
@pytest.mark.parametrize("name", ["ReferenceReturnsOneOutput", "NoPropertyApplies"])
def test_cli_exits_2_on_a_registration_the_cases_show_wrong(name, tmp_path, capsys):
    code = main(
        ["fuzz", str(CORPUS / "broken.py"), "-k", name, "--no-isolate",
         "--max-examples", "20", "--seed", "0", "--report", str(tmp_path), "--database", "none"]
    )  # fmt: skip
    assert code == 2
    assert name in capsys.readouterr().err


def test_a_target_with_nothing_differentiable_is_a_registration_error():
    with pytest.raises(fg.InvalidRegistration, match="nothing .*differentiable"):
        make_target(_Double, reference=lambda x: x * 2, dtypes=[torch.int64])


def test_a_module_that_fails_to_import_exits_2_naming_it(tmp_path, capsys):
    bad = tmp_path / "badmod.py"
    bad.write_text("import fuzzgrad as fg\n\ndef helper():\n    return 1 / 0\n\nhelper()\n")
    code = main(["fuzz", str(bad), "--no-isolate", "--report", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "badmod.py" in err and "ZeroDivisionError" in err and "helper" in err
    assert "Traceback" not in err


def test_two_targets_of_one_name_are_an_error_naming_both_places(tmp_path):
    text = (
        "import torch, fuzzgrad as fg\n"
        "from torch.autograd import Function\n"
        "@fg.register(reference=lambda x: x * 2, name='dup')\n"
        "class D(Function):\n"
        "    @staticmethod\n"
        "    def forward(ctx, x):\n"
        "        return x * 2\n"
        "    @staticmethod\n"
        "    def backward(ctx, g):\n"
        "        return g * 2\n"
    )
    (tmp_path / "one.py").write_text(text)
    (tmp_path / "two.py").write_text(text)
    with pytest.raises(fg.InvalidRegistration) as info:
        load_targets([str(tmp_path)])
    assert "one.py:3" in str(info.value) and "two.py:3" in str(info.value)  # the decorator


def test_file_safe_names_never_collide():
    from fuzzgrad.registry.target import file_safe

    assert file_safe("plain_name.1") == "plain_name.1"
    assert file_safe("dup x") != file_safe("dup/x")
    assert file_safe("dup x").startswith("dup_x-")
    assert len(file_safe("n" * 300)) <= 80


class _Double(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


# --- every property gets its own verdict --------------------------------------------------------


class _WrongForwardAndDoubleBackward(Function):
    """Its outputs are off by 1e-3 and its backward is not differentiable correctly (a saved
    intermediate): a forward failure must not hide the second-order one."""

    @staticmethod
    def forward(ctx, x):
        c = x.cos()  # computed without a graph: treated as a constant by double backward
        ctx.save_for_backward(c)
        return x.sin() * (1 + 1e-3)

    @staticmethod
    def backward(ctx, g):
        (c,) = ctx.saved_tensors
        return g * c


def test_a_forward_failure_does_not_hide_a_second_order_one():
    target = make_target(
        _WrongForwardAndDoubleBackward,
        reference=lambda x: x.sin(),
        jax_reference=lambda x: jnp.sin(x),
        name="forward_and_second_order",
        dtypes=[torch.float64],
    )
    result = fuzz_target(target, max_examples=50, derandomize=True)
    found = {f.property: f for f in result.failures}
    assert {"forward", "second_order"} <= set(found), sorted(found)
    assert "max_order=1" in found["second_order"].message
    assert "computed and saved without a graph" in found["second_order"].message


class _SinKnownSecondOrderNewVjp(Function):
    """sin whose double backward is known to be wrong (it saves cos without a graph), and whose
    backward has a second, new bug where cos x < 0 (a lost sign)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x.detach().cos())
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (c,) = ctx.saved_tensors
        return g * c.abs()


@pytest.mark.parametrize(
    "xfail, status",
    [
        ("known wrong", "xfailed"),  # a whole-target mark covers the new bug too
        ({"second_order": "saves cos without a graph"}, "failed"),  # not a property it names
        ({"second_order": "known", "vjp": "known"}, "xfailed"),
    ],
)
def test_an_xfail_naming_properties_does_not_hide_a_bug_in_another(xfail, status, capsys):
    from fuzzgrad.nightly.recorder import print_record

    target = make_target(
        _SinKnownSecondOrderNewVjp,
        reference=torch.sin,
        jax_reference=jnp.sin,
        name="known_and_new",
        dtypes=[torch.float64],
        xfail=xfail,
        options={"properties": ["vjp", "second_order"]},
    )
    result = fuzz_target(target, max_examples=60, derandomize=True)
    found = {f.property: f for f in result.failures}
    assert set(found) == {"vjp", "second_order"} and result.status == status
    assert result.to_json()["xfail_properties"] == (None if isinstance(xfail, str) else list(xfail))
    shrunk = found["vjp"]
    assert shrunk.inputs[0]["shape"] == [] and torch.tensor(shrunk.inputs[0]["values"]).cos() < 0
    print_record(result.to_json())  # the terminal says which failure the mark does not cover
    out = capsys.readouterr().out
    if xfail == {"second_order": "saves cos without a graph"}:
        assert "    vjp (new): " in out and "    second_order (xfail): " in out
    if isinstance(xfail, str):
        assert "(new)" not in out and "(xfail)" not in out


def test_a_rebuilt_record_keeps_an_xfail_naming_properties():
    from fuzzgrad.report.events import record_status

    record = {"xfail_reason": "second_order: F2", "xfail_properties": ["second_order"]}
    fail = lambda *props: [{"property": p} for p in props]  # noqa: E731
    assert record_status({**record, "failures": fail("second_order")}) == "xfailed"
    assert record_status({**record, "failures": fail("second_order", "vjp")}) == "failed"
    assert record_status({**record, "failures": []}) == "xpassed"
    assert record_status({**record, "xfail_properties": None, "failures": fail("vjp")}) == "xfailed"


def test_max_order_1_leaves_second_order_out():
    target = make_target(
        _WrongForwardAndDoubleBackward,
        reference=lambda x: x.sin(),
        name="first_order_only",
        options={"max_order": 1},
    )
    result = fuzz_target(target, max_examples=30, derandomize=True)
    assert "second_order" not in {f.property for f in result.failures}
    assert "second_order" not in result.to_json()["checked"]


class _RaisesAlways(Function):
    @staticmethod
    def forward(ctx, x):
        raise RuntimeError("kernel not built for this platform")

    @staticmethod
    def backward(ctx, g):
        return g


def test_a_function_that_always_raises_is_reported_once_with_its_count(tmp_path):
    """Rounds after the first leave out the failed property: the crash is not found again under
    another property's name, and later rounds count the cases it spoils."""
    import time

    from fuzzgrad.nightly.worker import fuzz_for

    target = make_target(_RaisesAlways, reference=lambda x: x * 2, name="raises_always")
    result = fuzz_for(
        target,
        until=time.monotonic() + 3,
        shrink_until=time.monotonic() + 6,
        chunk=20,
        seed=0,
        properties=None,
        report_dir=tmp_path,
        database=None,
        example_timeout=None,
    ).result
    assert [f.property for f in result.failures] == ["forward"] and result.error is None
    later = fuzz_target(
        target, max_examples=10, seed=1, properties=["vjp", "purity"], reported=("forward",)
    )
    assert later.status == "passed" and later.error is None
    assert later.stats.skipped["the Function raised (reported under forward)"] == 10


# --- blind spots of the oracle --------------------------------------------------------------------


def test_the_histogram_counts_each_compared_case_once_and_passes_stay_within_tolerance():
    (target,) = [t for t in load_targets(["fuzzgrad.targets.seed"]) if t.name == "MyElementWise"]
    result = fuzz_target(target, max_examples=60, derandomize=True).to_json()
    hist = result["error_ratio_hist"]
    assert result["status"] == "passed"
    assert 0 < sum(hist["counts"]) <= result["examples"]
    beyond = [c for e, c in zip(hist["edges"], hist["counts"]) if e >= 0]
    assert sum(beyond) == 0, hist  # nothing of a passed target lies beyond tolerance


def test_the_terminal_line_shows_discards_and_ambiguous_cases(capsys):
    from fuzzgrad.nightly.recorder import print_record

    record = {"name": "T", "status": "passed", "examples": 50, "seconds": 1.0, "failures": []}
    print_record(record)
    assert "discarded" not in capsys.readouterr().out  # nothing unjudged, nothing said
    record.update(discards={"reference raised ValueError": 7, "reference raised KeyError": 1})
    record.update(ambiguous=3)
    print_record(record)
    line = capsys.readouterr().out
    assert "8 discarded (7: reference raised ValueError)" in line and "3 ambiguous" in line


def test_compile_is_checked_past_dynamos_recompile_limit():
    """Past Dynamo's recompile limit a compiled call silently runs eagerly (in a long run the
    limit is shared by every Function compiled in the process); the compile property starts
    Dynamo afresh instead, so a compile-only bug is still seen. With a limit of 1, every new
    requires_grad pattern, dtype or rank would run eagerly: before the fix this seed passed."""
    corpus = Path(__file__).parent / "corpus"
    (target,) = [t for t in load_targets([str(corpus / "buggy_modes.py")])
                 if t.name == "GeluCompileFallback"]  # fmt: skip
    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=1):
        result = fuzz_target(target, max_examples=40, seed=0, properties=["compile"])
    assert [f.property for f in result.failures] == ["compile"], result.failures


@pytest.mark.parametrize("budget", [None, 10.0])
def test_a_target_that_ran_no_example_is_never_passed(tmp_path, budget):
    """A slice can start and end (its time spent starting up) before its first example: such
    a target judged nothing, and its record is an error, not PASSED with 0 examples."""
    from fuzzgrad.nightly.plan import Plan
    from fuzzgrad.nightly.recorder import Recorder

    (target,) = [t for t in BROKEN if t.name == "WrongJaxReference"]
    plan = Plan(specs=[], targets=[target], report_dir=tmp_path, budget=budget)
    recorder = Recorder(plan, {}, live=False)
    record = {"name": target.name, "module": target.display_module, "status": "passed",
              "examples": 0, "seconds": 3.8, "failures": []}  # fmt: skip
    try:
        recorder.done(target.name, record)
    finally:
        recorder.events.close()
    final = recorder.records[target.name]
    assert final["status"] == "error" and final["examples"] == 0
    assert final["error"]["kind"] == ("budget" if budget else "no_examples")


@pytest.mark.parametrize(
    "x, w, ct",
    [
        ((1, 1881573.1371648475), 0.0, {"constant": 5.644719411494543}),
        ((63, 0.0), 1881.5731371648474, {"seed": 0, "scale": 1000.0}),
    ],
    ids=["row-at-1.9e6", "weight-1881-cotangents-1e3"],
)
def test_references_differing_by_their_own_rounding_noise_agree(x, w, ct):
    """torch's F.layer_norm on a one-element row at 1.9e6 (float64) gives a weight gradient of
    1.05e-7 where the exact value (JAX's) is 0: rounding of the row's mean, amplified by
    1/sqrt(var + eps), which jumps by +-3e-7 between neighbouring floats. On 63 rows of one
    zero, a weight of 1881 and cotangents of ~1e3, its input gradient is up to 2.4e-7 where the
    exact one is 0: rounding of g * w * rstd (~6e8), which moving the inputs does not show but
    moving the cotangents does. Not a wrong reference (the built-in LayerNorm failed 30 s runs
    both ways); a reference that is off by more than its own noise still is."""
    import torch.nn.functional as F

    from fuzzgrad.engine.diagnose import failure_on
    from fuzzgrad.properties.checker import Checker
    from fuzzgrad.strategies import Case, CotangentRecipe, Values

    def exact(x, w, b):
        centred = x - x.mean(-1, keepdims=True)
        return centred / jnp.sqrt((centred * centred).mean(-1, keepdims=True) + 1e-5) * w + b

    def layer_norm(x, w, b):
        return F.layer_norm(x, x.shape[-1:], w, b, 1e-5)

    def one(v):
        return torch.tensor([v], dtype=torch.float64)

    rows, value = x
    case = Case(
        args=(torch.full((rows, 1), value, dtype=torch.float64), one(w), one(0.0)),
        requires_grad=(True, True, True),
        cotangents=(CotangentRecipe(Values(**ct)),),
        dtype=torch.float64,
    )
    target = make_target(layer_norm, reference=layer_norm, jax_reference=exact, name="ln")
    assert failure_on(target, "reference_disagreement", case) is False
    checker = Checker(target, properties=["reference_disagreement"], jax_share=1.0)
    checker.check(case)  # passes, and says why it did not judge the difference
    assert checker.stats.skipped["references differ within their own rounding noise"] == 1
    wrong = make_target(
        layer_norm, reference=lambda x, w, b: layer_norm(x, w, b) + 1e-6 * x,
        jax_reference=exact, name="ln_wrong",
    )  # fmt: skip
    found = failure_on(wrong, "reference_disagreement", case)
    assert found and "disagree" in str(found)


def test_a_cast_declared_for_another_device_is_not_held_against_this_one(tmp_path):
    """``custom_fwd(device_type="cuda", cast_inputs=...)`` changes nothing under the CPU's
    autocast: there the Function is held to the reference under the same autocast, not to a
    float32 run (which failed it with a bfloat16-sized error)."""
    target = make_target(
        matmul_cast("cuda", custom_bwd=True),  # its matmul runs in bfloat16 under the CPU's
        reference=lambda x, w: x @ w,
        inputs=[fg.tensor("m k"), fg.tensor("k n")],
        dtypes=[torch.float32],
        options={"properties": ["autocast"]},
    )
    result = fuzz_target(target, max_examples=60, derandomize=True, report_dir=tmp_path)
    assert result.error is None and not result.failures, result.failures
    assert result.examples == 60


def test_opcheck_on_a_zero_size_input_with_two_empty_dims_blames_no_operator(tmp_path):
    """torch's opcheck fails to copy a contiguous (0, 0, 5, 7) tensor (a negative storage
    size): the correct `fuzzgradcorpus::sin` custom op failed `custom_op` on it, in a
    600-example run of the meta corpus (seed 3)."""
    (sin,) = [t for t in load_targets([str(CORPUS / "correct_ops.py")])
              if t.name == "fuzzgradcorpus::sin"]  # fmt: skip
    target = make_target(
        sin.fn,
        reference=torch.sin,
        inputs=[fg.tensor("0 0 5 7")],
        options={"properties": ["custom_op"]},
    )
    result = fuzz_target(target, max_examples=20, derandomize=True, report_dir=tmp_path)
    assert result.error is None and not result.failures, result.failures


@pytest.mark.parametrize("layout", ["transposed", "sliced", "expanded"])
def test_finite_differences_step_non_contiguous_inputs(layout):
    """`grad_elements` wrote its step through ``reshape(-1)`` of a clone, which keeps a
    transposed input's strides, so the step went into a copy: every estimate was 0, and a wrong
    gradient there was excused as "reference derivative far above finite differences" (the
    planted FlatCumsumLostWrite passed `vjp` on transposed inputs)."""
    from fuzzgrad.oracles.numerical import grad_elements
    from fuzzgrad.strategies import Layout, arrange

    x = arrange(torch.arange(1.0, 13.0, dtype=torch.float64).reshape(3, 4), Layout(layout))
    assert not x.is_contiguous()
    ct = torch.ones(3, 4, dtype=torch.float64)
    estimates = grad_elements(lambda a: a * a, [x], [0], [ct], [(0, j) for j in range(12)])
    assert estimates == pytest.approx((2 * x).reshape(-1).tolist(), rel=1e-6)


def test_a_zero_gradient_on_a_transposed_input_fails_vjp():
    from fuzzgrad.properties.checker import Checker
    from fuzzgrad.strategies import CotangentRecipe, Values
    from fuzzgrad.strategies._cases import Case

    (target,) = [t for t in load_targets([str(CORPUS / "buggy_layout.py")])
                 if t.name == "FlatCumsumLostWrite"]  # fmt: skip
    x = torch.randn(4, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).mT
    case = Case((x,), (True,), (CotangentRecipe(Values(seed=0)),), (None,), torch.float64, "cpu")
    failures = Checker(target, properties=["vjp"]).run(case)
    assert "vjp" in failures and "got 0" in failures["vjp"].message


def test_in_the_overflow_regime_references_that_differ_on_the_outputs_judge_no_gradient():
    """The built-in LayerNorm on a float64 row of three 1.34e154 (sqrt of the largest float64),
    with the weight not requiring grad: both references' input gradients are ~0 (torch's
    intermediates overflow; JAX's mean rounds), the exact one, the Function's, ~300 (LayerNorm
    is shift-invariant). The references' outputs differ (0 and 1), which says neither can be
    trusted there: ambiguous, not a failure of `requires_grad_subsets` (a 3000-example run
    failed so). A gradient far off where the references agree on the outputs still fails."""
    from fuzzgrad.properties.checker import Checker
    from fuzzgrad.strategies import CotangentRecipe, Values
    from fuzzgrad.strategies._cases import Case

    (target,) = [t for t in load_targets() if t.name == "LayerNorm"]
    x = torch.full((3,), 1.3407807929942596e154, dtype=torch.float64)
    w, b = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    case = Case((x, w, b), (True, False, True), (CotangentRecipe(Values(seed=0)),),
                (None,) * 3, torch.float64, "cpu")  # fmt: skip
    checker = Checker(target, properties=["requires_grad_subsets"], jax_share=1.0)
    assert checker.run(case) == {}
    assert checker.stats.ambiguous >= 1

    class Doubled(Function):
        @staticmethod
        def forward(ctx, x, w, b):
            return target.fn(x, w, b) * 1.0

        @staticmethod
        def backward(ctx, g):
            return g * 0 + 1.0, None, g

    wrong = make_target(Doubled, reference=target.reference, jax_reference=target.jax_reference,
                        inputs=target.inputs, name="ln_wrong")  # fmt: skip
    small = Case((x / 1e150, w, b), (True, False, True), (CotangentRecipe(Values(seed=0)),),
                 (None,) * 3, torch.float64, "cpu")  # fmt: skip
    found = Checker(wrong, properties=["requires_grad_subsets"]).run(small)
    assert "requires_grad_subsets" in found
