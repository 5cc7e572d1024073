"""Registration: both forms, defaults, and clear errors that name the target."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.registry.target import make_target


class Mul(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y, g * x


class SetupStyle(Function):
    @staticmethod
    def forward(x):
        return x * 2

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        return 2 * g


def test_default_inputs_share_one_shape_per_argument():
    t = make_target(Mul, reference=lambda x, y: x * y, name="mul")
    assert t.name == "mul" and len(t.inputs) == 2
    assert all(spec.shape is None for spec in t.inputs)
    assert t.fn == Mul.apply and t.function is Mul


def test_setup_context_style_arity_has_no_ctx():
    t = make_target(SetupStyle, reference=lambda x: 2 * x)
    assert len(t.inputs) == 1


def test_shape_strings_are_parsed_at_registration():
    t = make_target(
        Mul,
        reference=lambda x, y: x * y,
        inputs=[fg.tensor("*batch n"), fg.tensor("#n", low=-3, high=3)],
    )
    dims = t.inputs[0].dims
    assert dims[0].variadic and dims[0].name == "batch" and dims[1].name == "n"
    assert t.inputs[1].dims[0].broadcast


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(inputs=[fg.tensor("b n!"), fg.tensor("n")]), ["'Mul'", "inputs[0]", "'n!'"]),
        (dict(inputs=[fg.tensor("*a *b"), fg.tensor("n")]), ["'Mul'", "more than one variadic"]),
        (dict(reference=lambda x: x), ["'Mul'", "reference takes 1", "Function takes 2"]),
        (dict(jax_reference=lambda x, y, z: x), ["'Mul'", "jax_reference takes 3"]),
        (dict(reference=3), ["'Mul'", "reference must be callable"]),
        (dict(inputs=[fg.tensor()]), ["'Mul'", "inputs has 1 specs", "forward takes 2"]),
        (dict(xfail=True), ["'Mul'", "xfail must be a string"]),
        (dict(xfail={}), ["'Mul'", "xfail must be a string", "mapping from property"]),
        (dict(xfail={"vjpp": "F1"}), ["'Mul'", "'vjpp', which is not a property", "vjp,"]),
        (dict(xfail={"vjp": ""}), ["'Mul'", "xfail['vjp'] must say why"]),
        (dict(tolerances={torch.float32: 1e-3}), ["'Mul'", "pair (rtol, atol)"]),
        (dict(dtypes=["float32"]), ["'Mul'", "torch dtypes"]),
        (dict(inputs=[1, 2]), ["'Mul'", "inputs[0] must be fuzzgrad.tensor"]),
        (dict(options={"properties": ["vjp", "bogus"]}), ["'Mul'", "properties must be"]),
        (dict(options={"precision": "exact"}), ["'Mul'", "precision must be", "'fused'"]),
    ],
)
def test_bad_registrations_name_the_target_and_the_fix(kwargs, words):
    kwargs.setdefault("reference", lambda x, y: x * y)
    with pytest.raises(fg.InvalidRegistration) as info:
        make_target(Mul, **kwargs)
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, fg.FuzzgradError)


def test_non_callable_is_rejected():
    with pytest.raises(fg.InvalidRegistration, match="expected a torch.autograd.Function"):
        make_target(42, reference=lambda x: x)


def test_plain_callable_without_reference_is_rejected():
    with pytest.raises(fg.InvalidRegistration, match="needs reference="):
        make_target(lambda x: x, name="plain")


def test_bad_shape_type_names_the_value():
    with pytest.raises(fg.ShapeSpecError, match="got 3"):
        fg.tensor(3)


def test_decorator_and_call_forms_register_in_the_calling_module(write_module):
    path = write_module(
        "regmod",
        "import torch, fuzzgrad as fg\n"
        "from torch.autograd import Function\n"
        "@fg.register(reference=lambda x: 3 * x, name='triple_deco')\n"
        "class Triple(Function):\n"
        "    @staticmethod\n"
        "    def forward(ctx, x):\n"
        "        return 3 * x\n"
        "    @staticmethod\n"
        "    def backward(ctx, g):\n"
        "        return 3 * g\n"
        "def triple(x):\n"
        "    return Triple.apply(x)\n"
        "fg.register(triple, reference=lambda x: 3 * x, name='triple_call')\n",
    )
    targets = load_targets([str(path)])
    assert sorted(t.name for t in targets) == ["triple_call", "triple_deco"]
    assert load_targets([str(path)], ["triple_call"])[0].function is None
    with pytest.raises(fg.TargetNotFound, match="known targets: triple_call, triple_deco"):
        load_targets([str(path)], ["nope"])


def test_discovery_of_folder_and_module_and_missing(write_module, tmp_path):
    write_module(
        "one",
        "import fuzzgrad as fg, torch\n"
        "fg.register(lambda x: torch.sin(x), reference=torch.sin, name='sin_folder')\n",
    )
    assert [t.name for t in load_targets([str(tmp_path)])] == ["sin_folder"]
    assert {"MyActivation", "MyElementWise", "MyComplexOp"} <= {
        t.name for t in load_targets(["fuzzgrad.targets.seed"])
    }
    with pytest.raises(fg.TargetNotFound, match="neither a module"):
        load_targets(["no_such_module_xyz"])
    with pytest.raises(fg.TargetNotFound, match="no such file"):
        load_targets(["missing/file.py"])


def test_duplicate_names_from_different_places_are_an_error():
    def cos(x):
        return torch.cos(x)

    def tan(x):
        return torch.tan(x)

    fg.register(cos, reference=torch.cos, name="dup_cos_test", inputs=[fg.tensor()])
    fg.register(cos, reference=torch.cos, name="dup_cos_test")  # the same object again is fine
    with pytest.raises(fg.InvalidRegistration, match="registered twice"):
        fg.register(tan, reference=torch.tan, name="dup_cos_test")


def test_same_name_in_two_loaded_modules_is_an_error(write_module, tmp_path):
    for mod in ("first", "second"):
        write_module(
            mod,
            "import fuzzgrad as fg, torch\n"
            "fg.register(lambda x: torch.sin(x), reference=torch.sin, name='clash')\n",
        )
    with pytest.raises(fg.InvalidRegistration, match="two targets are named 'clash'"):
        load_targets([str(tmp_path)])


def test_an_unknown_register_option_is_an_error_naming_the_closest_one():
    """A typo in a keyword option (``max_ordre=1``) was kept and ignored: the target was fuzzed
    as if it were not there. It is a registration error naming the target and the option meant."""
    import fuzzgrad as fg
    from fuzzgrad.errors import InvalidRegistration
    from fuzzgrad.registry.options import OPTIONS

    with pytest.raises(InvalidRegistration, match=r"'typo'.*'max_ordre'.*Did you mean 'max_order'"):
        fg.register(lambda x: x * 2, reference=lambda x: x * 2, name="typo", max_ordre=1)
    with pytest.raises(InvalidRegistration, match=r"'frobnicate'\.(?! Did)"):
        fg.register(lambda x: x * 2, reference=lambda x: x * 2, name="t2", frobnicate=1)
    # every option the table lists is accepted
    assert {"max_order", "nonfinite_ok", "mutates_inputs", "sizes", "slow"} <= set(OPTIONS)
