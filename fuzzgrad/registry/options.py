"""The keyword options of `fuzzgrad.register` beyond its named parameters, each with what it does.

One table serves three readers: `fuzzgrad.registry.target.make_target` rejects a keyword that is
not in it (a typo such as ``max_ordre=1`` would otherwise be kept and ignored, and the target
fuzzed as if it were not there), naming the closest option; the documentation's reference page
is generated from it; and a message that tells the user to pass an option names one of these.
"""

from __future__ import annotations

import difflib

#: option name -> (an example value, what it does). Sorted by name in the reference.
OPTIONS: dict[str, tuple[str, str]] = {
    "autocast": (
        "True",
        "run the `autocast` property although the Function does not use `custom_fwd`/`custom_bwd`",
    ),
    "broken": (
        '{"flag": "registration", "words": [...]}',
        "fuzzgrad's own meta-corpus: how a broken registration must be flagged (read by its tests)",
    ),
    "compile_backend": (
        '"aot_eager"',
        "the `torch.compile` backend of the opt-in `compile` property (default `inductor`)",
    ),
    "devices": (
        '["cuda"]',
        "the device types its cases are drawn on, where this machine has them",
    ),
    "max_discards": (
        "0.5",
        "the share of cases the reference may reject (raise on) before the target ends as an "
        "error (default 0.2)",
    ),
    "max_elements": ("1024", "the most elements of each input tensor (default 4096)"),
    "max_order": (
        "1",
        "1: first derivatives only, `second_order` is not checked (a backward that is not "
        "twice differentiable); 2, the default, checks Hessian-vector products",
    ),
    "mutates_inputs": (
        "[0]",
        "the inputs the Function writes in place (`True`: all): stride-0 layouts, which torch "
        "refuses to write, are never drawn for them",
    ),
    "nonfinite": (
        "True",
        "draw NaN and inf among the input values too (off by default: most math is undefined "
        "there)",
    ),
    "nonfinite_ok": (
        '("vjp",)',
        "properties in which a NaN or inf is accepted where the reference run at the case's "
        "dtype gives one too",
    ),
    "oracle": (
        '"differences"',
        "with no reference: judge the backward by finite differences of the forward, not "
        "autograd of it (a forward whose autograd is not its derivative, as an iterative "
        "solver's)",
    ),
    "planted": (
        '{"property": "vjp", "bug_class": "..."}',
        "fuzzgrad's own meta-corpus: the planted bug this target carries (read by its tests)",
    ),
    "planted_pair": (
        '("vjp", "vjp")',
        "fuzzgrad's own meta-corpus: the two bugs of a planted pair (read by its tests)",
    ),
    "planted_properties": (
        '["vjp", "second_order"]',
        "fuzzgrad's own meta-corpus: the properties a planted pair's bugs show in",
    ),
    "precision": (
        '"fused"',
        "half-precision results are computed in float32 or wider and rounded once, and are "
        "held to that (default `native`)",
    ),
    "properties": ('["forward", "vjp"]', "only these properties (default: every one that applies)"),
    "sizes": ('{"n": (3, 300)}', "bounds on named sizes, for every input (`None` for an open end)"),
    "slow": ("True", "left out of default runs (`fuzzgrad fuzz --slow`, `pytest --fuzzgrad-slow`)"),
}


def unknown_option(name: str) -> str:
    """What to say about a keyword of `register` that is not an option: the closest options."""
    close = difflib.get_close_matches(name, OPTIONS, n=2, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"register() got an unknown option {name!r}.{hint} Its options are the parameters "
        f"reference, jax_reference, inputs, name, dtypes, xfail, tolerances and the keywords "
        f"{', '.join(sorted(OPTIONS))}."
    )
