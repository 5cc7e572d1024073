"""Mutation operators: small, realistic mistakes planted in a backward pass's syntax tree.

Each operator is a `NodeTransformer` that numbers the places (sites) where it could apply and
rewrites exactly one of them, so one operator on one function yields one mutant per site. The
operators model the bugs people actually write in hand-derived gradients: a forgotten
grad_output factor, a sign, a wrong constant or dim, swapped outputs, a missing transpose, a
mean for a sum, precision lost by skipping an upcast, a write into grad_output, ``.view`` on a
tensor that may not be contiguous, and a saved tensor detached (wrong second order).

Obviously equivalent rewrites are not generated (a grad_output used only for its ``dtype`` or
``new_zeros``, a dim written as ``-1`` is left to `WrongDim`, not `ChangeConstant`); subtler
equivalent mutants are found by the benchmark and listed, not counted (see `equivalent.py`).
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field

#: Attributes of a tensor that read only its metadata: dropping or flipping them is no bug.
META_ATTRS = {
    "dtype",
    "shape",
    "device",
    "new_zeros",
    "new_ones",
    "new_full",
    "new_empty",
    "size",
    "dim",
    "ndim",
    "numel",
}
#: Methods and ``torch.`` functions that take a dim: method form first positional, function
#: form second positional, or ``dim=``.
DIM_CALLS = {
    "sum",
    "mean",
    "amax",
    "amin",
    "max",
    "min",
    "prod",
    "cumsum",
    "cumprod",
    "flip",
    "softmax",
    "log_softmax",
    "logsumexp",
    "gather",
    "scatter",
    "scatter_add",
    "index_add",
    "index_select",
    "index_fill",
    "vector_norm",
    "norm",
    "std",
    "var",
    "cat",
    "stack",
    "unsqueeze",
    "squeeze",
}
TRANSPOSE_ATTRS = {"T", "mT", "H", "mH"}
TRANSPOSE_CALLS = {"t", "transpose", "swapaxes", "swapdims"}
#: Names the mutants may call; `mutants.build` puts them in the mutated module's namespace.
HALF = "_mutant_half"
MEAN_LEADING = "_mutant_mean_leading"


@dataclass
class FunctionInfo:
    """What the operators need to know about the function being mutated."""

    grads: set[str]  # parameters that receive grad_output
    aliases: set[str] = field(default_factory=set)  # names bound to grad_output (maybe upcast)
    saved: list[str] = field(default_factory=list)  # names unpacked from ctx.saved_tensors
    constants: dict[str, float] = field(default_factory=dict)  # numeric module-level names


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else _name(f)


def _is_torch_call(node: ast.Call) -> bool:
    f = node.func
    return isinstance(f, ast.Attribute) and (
        _name(f.value) == "torch" or ast.unparse(f.value) in ("torch.linalg", "torch.special")
    )


def _int_of(node: ast.AST) -> int | None:
    """The value of an int literal, ``3`` or ``-1``; None for anything else."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_of(node.operand)
        return None if inner is None else -inner
    return None


def dim_arg(call: ast.Call) -> ast.AST | None:
    """The int-literal dim argument of a reduction-like call, if it has one."""
    if _call_name(call) not in DIM_CALLS:
        return None
    for kw in call.keywords:
        if kw.arg == "dim" and _int_of(kw.value) is not None:
            return kw.value
    pos = 1 if _is_torch_call(call) else 0
    if len(call.args) > pos and _int_of(call.args[pos]) is not None:
        return call.args[pos]
    return None


def analyse(func: ast.FunctionDef, grads: set[str], constants: dict[str, float]) -> FunctionInfo:
    """Find grad_output's aliases (``g = upcast(grad)``) and the saved tensors' names."""
    info = FunctionInfo(set(grads), constants=dict(constants))
    info.aliases = set(grads)
    for node in ast.walk(func):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        if isinstance(value, ast.Attribute) and value.attr == "saved_tensors":
            elts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
            info.saved += [e.id for e in elts if isinstance(e, ast.Name)]
            continue
        pairs = (
            zip(target.elts, value.elts)
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
            else [(target, value)]
        )
        for t, v in pairs:
            if isinstance(t, ast.Name) and _grad_like(v, info.aliases):
                info.aliases.add(t.id)
    return info


def _grad_like(node: ast.AST, aliases: set[str]) -> bool:
    """``grad``, an alias of it, or ``upcast(...)`` of one (the same tensor in float32/64)."""
    if isinstance(node, ast.Name):
        return node.id in aliases
    return (
        isinstance(node, ast.Call)
        and _name(node.func) == "upcast"
        and len(node.args) == 1
        and _grad_like(node.args[0], aliases)
    )


def _parents(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child._parent = node  # type: ignore[attr-defined]


def _call(func: ast.expr, *args: ast.expr) -> ast.Call:
    return ast.Call(func=func, args=list(args), keywords=[])


def _method(obj: ast.expr, name: str, *args: ast.expr) -> ast.Call:
    return _call(ast.Attribute(value=obj, attr=name, ctx=ast.Load()), *args)


class Operator(ast.NodeTransformer):
    """Rewrites site number ``index`` (in visiting order); ``index=-1`` only counts sites."""

    name = "operator"
    description = ""

    def __init__(self, info: FunctionInfo, index: int = -1):
        self.info = info
        self.index = index
        self.sites = 0

    def hit(self) -> bool:
        """Count a site; True if it is the one to rewrite."""
        self.sites += 1
        return self.sites - 1 == self.index


class DropGrad(Operator):
    name, description = "drop_grad", "grad_output (or its upcast alias) replaced by ones"

    def visit_Name(self, node):
        parent = getattr(node, "_parent", None)
        if (
            not isinstance(node.ctx, ast.Load)
            or node.id not in self.info.aliases
            or isinstance(parent, ast.Compare)
            or isinstance(parent, ast.Attribute)
            and parent.attr in META_ATTRS
        ):
            return node
        if self.hit():
            return _call(ast.parse("torch.ones_like", mode="eval").body, node)
        return node


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _negated(node: ast.expr) -> ast.expr:
    """``-node``; for ``None if c else g`` (an optional gradient), the gradient's branch."""
    if isinstance(node, ast.IfExp) and (_is_none(node.body) or _is_none(node.orelse)):
        if _is_none(node.body):
            return ast.IfExp(test=node.test, body=node.body, orelse=_negated(node.orelse))
        return ast.IfExp(test=node.test, body=_negated(node.body), orelse=node.orelse)
    return ast.UnaryOp(op=ast.USub(), operand=node)


class FlipSign(Operator):
    name, description = "flip_sign", "+ <-> -, a unary minus dropped, or a returned grad negated"

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, (ast.Add, ast.Sub)) and self.hit():
            node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.USub) and _int_of(node) is None and self.hit():
            return node.operand
        return node

    def visit_Return(self, node):
        self.generic_visit(node)
        if node.value is None:
            return node
        single = not isinstance(node.value, ast.Tuple)
        elts = [node.value] if single else node.value.elts
        for k, e in enumerate(elts):
            if _is_none(e) or isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
                continue  # a None gradient, or one whose minus the rule above drops
            if self.hit():
                elts[k] = _negated(e)
        if single:
            node.value = elts[0]
        return node


class ChangeConstant(Operator):
    name, description = "change_constant", "a numeric literal or module constant changed"

    @staticmethod
    def _changed(value):
        if type(value) is int:
            return value + 1
        return value * 2 if value else 1.0

    def _is_dim(self, node) -> bool:
        parent = getattr(node, "_parent", None)
        if isinstance(parent, ast.UnaryOp):
            node, parent = parent, getattr(parent, "_parent", None)
        if isinstance(parent, ast.keyword):
            return parent.arg == "dim"
        return isinstance(parent, ast.Call) and dim_arg(parent) is node

    def visit_Constant(self, node):
        if type(node.value) in (int, float) and not self._is_dim(node) and self.hit():
            return ast.Constant(self._changed(node.value))
        return node

    def visit_Name(self, node):
        value = self.info.constants.get(node.id)
        if value is not None and isinstance(node.ctx, ast.Load) and self.hit():
            return ast.Constant(self._changed(value))
        return node


class SwapGrads(Operator):
    name, description = "swap_grads", "two returned gradients swapped"

    def visit_Return(self, node):
        if not isinstance(node.value, ast.Tuple):
            return node
        elts = node.value.elts
        real = [k for k, e in enumerate(elts) if not _is_none(e)]
        for a in real:
            for b in real:
                if a < b and self.hit():
                    elts[a], elts[b] = elts[b], elts[a]
        return node


class MeanForSum(Operator):
    name, description = "mean_for_sum", "a sum reduction computed as a mean"

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "sum" and self.hit():
            f.attr = "mean"
        elif _name(f) == "sum_leading" and self.hit():
            node.func = ast.Name(id=MEAN_LEADING, ctx=ast.Load())
        return node


class DropTranspose(Operator):
    name, description = "drop_transpose", "a .T/.mT/.t()/.transpose() or einsum transpose dropped"

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if node.attr in TRANSPOSE_ATTRS and isinstance(node.ctx, ast.Load) and self.hit():
            return node.value
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if (
            isinstance(f, ast.Attribute)
            and f.attr in TRANSPOSE_CALLS
            and not _is_torch_call(node)
            and self.hit()
        ):
            return f.value
        if (
            _call_name(node) == "einsum"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            spec = node.args[0].value
            inputs, _, output = spec.partition("->")
            ops = inputs.split(",")
            for k, op in enumerate(ops):
                if len(op) >= 2 and op[-1] != op[-2] and self.hit():
                    ops[k] = op[:-2] + op[-1] + op[-2]
                    node.args[0] = ast.Constant(",".join(ops) + "->" + output)
        return node


class WrongDim(Operator):
    name, description = "wrong_dim", "a reduction/scan/index dim changed (-1 <-> -2, 0 <-> 1)"
    SWAP = {-1: -2, -2: -1, 0: 1, 1: 0}

    def visit_Call(self, node):
        self.generic_visit(node)
        arg = dim_arg(node)
        if arg is not None and self.hit():
            d = _int_of(arg)
            new = ast.Constant(self.SWAP.get(d, d - 1))
            for kw in node.keywords:
                if kw.value is arg:
                    kw.value = new
            node.args = [new if a is arg else a for a in node.args]
        return node


class SkipLoopTail(Operator):
    name, description = "skip_loop_tail", "break after a loop's first iteration"

    def _loop(self, node):
        self.generic_visit(node)
        if self.hit():
            node.body = [*node.body, ast.Break()]
        return node

    visit_For = visit_While = _loop


class LowPrecision(Operator):
    name, description = "low_precision", "an upcast removed, or an intermediate cast to half"

    def visit_Call(self, node):
        self.generic_visit(node)
        if _name(node.func) == "upcast" and len(node.args) == 1 and self.hit():
            return node.args[0]
        f = node.func
        if (
            isinstance(f, ast.Attribute)
            and f.attr in ("float", "double")
            and not node.args
            and self.hit()
        ):
            return f.value
        return node

    def visit_Assign(self, node):
        self.generic_visit(node)
        if (
            len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.BinOp)
            and self.hit()
        ):
            node.value = _call(ast.Name(id=HALF, ctx=ast.Load()), node.value)
        return node


class InplaceGrad(Operator):
    name, description = "inplace_grad", "grad_output * y written as grad_output.mul_(y)"
    METHODS = {ast.Mult: "mul_", ast.Add: "add_", ast.Sub: "sub_", ast.Div: "div_"}

    def visit_BinOp(self, node):
        self.generic_visit(node)
        method = self.METHODS.get(type(node.op))
        if method is None:
            return node
        if _grad_like(node.left, self.info.aliases) and self.hit():
            return _method(node.left, method, node.right)
        commutes = isinstance(node.op, (ast.Mult, ast.Add))
        if commutes and _grad_like(node.right, self.info.aliases) and self.hit():
            return _method(node.right, method, node.left)
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if (
            isinstance(node.op, ast.USub)
            and _grad_like(node.operand, self.info.aliases)
            and self.hit()
        ):
            return _method(node.operand, "neg_")
        return node


class ViewForReshape(Operator):
    name, description = "view_for_reshape", ".reshape(...) written as .view(...)"

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in ("reshape", "reshape_as") and self.hit():
            f.attr = f.attr.replace("reshape", "view")
        return node


class DetachSaved(Operator):
    name, description = "detach_saved", "a saved tensor detached in backward (no double backward)"

    def visit_FunctionDef(self, node):
        body = []
        for stmt in node.body:
            body.append(stmt)
            if (
                isinstance(stmt, ast.Assign)
                and isinstance(stmt.value, ast.Attribute)
                and stmt.value.attr == "saved_tensors"
            ):
                for name in self.info.saved:
                    if self.hit():
                        body.append(ast.parse(f"{name} = {name}.detach()").body[0])
        node.body = body
        return node


OPERATORS: dict[str, type[Operator]] = {
    op.name: op
    for op in (
        DropGrad,
        FlipSign,
        ChangeConstant,
        SwapGrads,
        MeanForSum,
        DropTranspose,
        WrongDim,
        SkipLoopTail,
        LowPrecision,
        InplaceGrad,
        ViewForReshape,
        DetachSaved,
    )
}


def mutations(func: ast.FunctionDef, operator: str, info: FunctionInfo) -> list[ast.FunctionDef]:
    """Every single-site mutation of ``func`` by ``operator``, as new trees (``func`` is kept)."""
    cls = OPERATORS[operator]
    counter = cls(info)
    probe = copy.deepcopy(func)
    _parents(probe)
    counter.visit(probe)
    out = []
    for k in range(counter.sites):
        tree = copy.deepcopy(func)
        _parents(tree)
        tree = cls(info, k).visit(tree)
        out.append(ast.fix_missing_locations(tree))
    return out
