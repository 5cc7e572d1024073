"""The comparison rule: per-dtype tolerances, calibration, non-finite semantics, messages."""

from __future__ import annotations

import math

import torch

from fuzzgrad.verdict.compare import compare


def t(*values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def test_exact_and_within_tolerance_pass():
    assert compare("x", t(1.0, 2.0), t(1.0, 2.0))[0] is None
    assert compare("x", t(1.0 + 1e-9), t(1.0))[0] is None


def test_a_wrong_value_is_reported_with_path_index_and_numbers():
    m, ratio = compare("grad[input=1]", t(1.0, 2.5, 3.0), t(1.0, 2.0, 3.0))
    assert m is not None and ratio > 1
    text = str(m)
    assert text.startswith("grad[input=1]: 1 of 3 elements differ")
    assert "index (1,)" in text and "got 2.5" in text and "expected 2" in text


def test_float32_is_judged_with_the_reference_error_at_float32():
    exact = t(0.1, 1.0 / 3.0)
    actual = exact.to(torch.float32)
    assert compare("y", actual, exact)[0] is None
    # an error far beyond float32 rounding is caught even with calibration
    assert compare("y", actual * 1.01, exact, calib=actual)[0] is not None


def test_calibration_widens_where_the_reference_itself_errs():
    exact = t(1.0)
    actual = t(1.2, dtype=torch.float16)
    assert compare("y", actual, exact)[0] is not None
    assert compare("y", actual, exact, calib=t(1.1, dtype=torch.float16))[0] is None


def test_nonfinite_semantics():
    nan, inf = math.nan, math.inf
    assert compare("y", t(nan), t(nan))[0] is None
    assert compare("y", t(inf), t(inf))[0] is None
    assert compare("y", t(nan), t(inf))[0] is None  # both say "overflow"
    assert compare("y", t(0.0), t(nan))[0] is None  # undefined math accepts any value
    assert compare("y", t(-inf), t(inf))[0] is not None
    assert compare("y", t(nan), t(1.0))[0] is not None  # NaN where the oracle is finite
    assert compare("y", t(inf), t(1.0))[0] is not None
    # the reference at float16 overflows too: the input is past what float16 math can do
    assert (
        compare("y", t(0.0, dtype=torch.float16), t(1e6), calib=t(inf, dtype=torch.float16))[0]
        is None
    )
    # near float16's max, any evaluation order may overflow
    assert compare("y", t(inf, dtype=torch.float16), t(60000.0))[0] is None


def test_shape_dtype_and_none_handling():
    assert "shape (2,)" in str(compare("y", t(1.0, 2.0), t(1.0))[0])
    assert "dtype torch.float64" in str(compare("y", t(1.0), t(1.0), check_dtype=torch.float32)[0])
    assert compare("y", None, t(0.0, 0.0))[0] is None  # an unused input's None grad is zero
    assert compare("y", None, t(0.0, 1.0))[0] is not None
    assert compare("y", torch.empty(0), torch.empty(0, dtype=torch.float64))[0] is None


def test_integer_outputs_compare_exactly():
    assert compare("idx", torch.tensor([1, 2]), torch.tensor([1, 2]))[0] is None
    assert "1 of 2 elements differ" in str(
        compare("idx", torch.tensor([1, 3]), torch.tensor([1, 2]))[0]
    )


def test_target_overrides_take_precedence():
    over = {torch.float64: (1e-2, 1e-2)}
    assert compare("y", t(1.005), t(1.0), overrides=over)[0] is None


def test_overflow_regime_judges_no_tensor_whose_reference_overflowed():
    got = torch.tensor([349.0, 1.0], dtype=torch.float64)
    overflowed = torch.tensor([0.0, float("nan")], dtype=torch.float64)
    assert compare("g", got, overflowed, overflow_regime=True)[0] is None
    assert compare("g", got, overflowed, overflow_regime=False)[0] is not None
    finite = torch.tensor([0.0, 1.0], dtype=torch.float64)  # wrong finite values still count
    assert compare("g", got, finite, overflow_regime=True)[0] is not None


def test_near_overflow_any_non_finite_value_is_an_overflowed_intermediate():
    """Found by exploration (Bilinear, float32): a triple product of values near sqrt(max)
    overflowed in the Function's contraction order to +inf where the exact result is -8e37."""
    expected = torch.tensor([-8.04e37, 1.0], dtype=torch.float64)
    for got in (float("inf"), float("-inf"), float("nan")):
        actual = torch.tensor([got, 1.0], dtype=torch.float32)
        assert compare("g", actual, expected)[0] is None
    far = torch.tensor([-8.04e35, 1.0], dtype=torch.float64)  # 400x below max: a finding
    assert compare("g", torch.tensor([math.inf, 1.0]), far)[0] is not None


def test_complex_results_are_compared_and_their_mismatch_described():
    expected = torch.tensor([1 + 1j, 2 - 1j], dtype=torch.complex128)
    assert compare("z", expected.to(torch.complex64), expected)[0] is None
    m = compare("z", (expected * 1.1).to(torch.complex64), expected)[0]
    assert m is not None and "2 of 2 elements differ" in m.message


def test_an_overflow_regime_mask_excuses_only_the_elements_it_reaches():
    """With the reach of the large inputs known (`fuzzgrad.verdict.overflow.find_reach`), an inf or
    NaN elsewhere in the tensor is judged, and ``judge_reach=False`` leaves the reached
    elements out."""
    expected = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    got = torch.tensor([math.nan, 2.0, math.nan])
    reach = torch.tensor([True, False, False])
    assert compare("g", got, expected, overflow_regime=True)[0] is None
    m = compare("g", got, expected, overflow_regime=reach)[0]
    assert m is not None and m.index == (2,)
    assert (
        compare("g", got, expected, overflow_regime=reach | torch.tensor([0, 0, 1]).bool())[0]
        is None
    )
    # the reference overflowed where the large inputs reach: nothing there is judged
    overflowed = torch.tensor([math.nan, 2.0, 3.0], dtype=torch.float64)
    wrong_there = torch.tensor([7.0, 2.0, 3.0])
    assert compare("g", wrong_there, overflowed, overflow_regime=reach)[0] is None
    assert compare("g", wrong_there + 1, overflowed, overflow_regime=reach)[0] is not None
    # judge_reach=False: a wrong finite value where the large inputs reach is not judged
    wrong = torch.tensor([9.0, 2.0, 3.0])
    assert compare("g", wrong, expected, overflow_regime=reach)[0] is not None
    assert compare("g", wrong, expected, overflow_regime=reach, judge_reach=False)[0] is None
    # a mask of another shape is no mask: every element is excused
    assert compare("g", got, expected, overflow_regime=torch.tensor([True]))[0] is None


def test_where_the_oracle_overflowed_a_finite_calibration_may_judge():
    """Found by a 4-minute sweep (CumProd, float64 double backward): torch's reference overflowed
    to inf where JAX's order gave 2.0789e305, as the Function did; judged against the other
    reference, the Function's value passes, and a wrong one is still caught."""
    oracle = torch.tensor([math.inf, 1.0], dtype=torch.float64)
    other = torch.tensor([2.0788689837904043e305, 1.0], dtype=torch.float64)
    right = torch.tensor([2.078868983790405e305, 1.0], dtype=torch.float64)
    assert compare("g", right, oracle)[0] is not None
    assert compare("g", right, oracle, calib=other)[0] is None
    assert compare("g", right * 1.01, oracle, calib=other)[0] is not None


def test_products_of_large_inputs_widen_where_a_result_may_overflow():
    """A second derivative of a product is the product over two inputs: with inputs near 4e6,
    its terms overflow while the result is 34x below max (found in CumProd's double backward)."""
    from fuzzgrad.verdict.overflow import magnitudes, product_margin

    x = torch.tensor([3.84e6, -2.0, float("inf")], dtype=torch.float64)
    margin = product_margin(magnitudes([x]), 2)
    assert margin == 16.0 * 3.84e6**2  # an infinite input does not count: it is the regime's
    # inputs below 1 shrink nothing
    assert product_margin(magnitudes([torch.tensor([0.5])]), 2) == 16.0
    assert product_margin(magnitudes([torch.tensor([1e300], dtype=torch.float64)]), 2) == math.inf
    exact = torch.tensor([5.29e306, 1.0], dtype=torch.float64)
    got = torch.tensor([-math.inf, 1.0], dtype=torch.float64)
    assert compare("g", got, exact)[0] is not None
    assert compare("g", got, exact, near_overflow=margin)[0] is None
    # a finite wrong value there is still wrong
    wrong = torch.tensor([5.29e305, 1.0], dtype=torch.float64)
    assert compare("g", wrong, exact, near_overflow=margin)[0] is not None
