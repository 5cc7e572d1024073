"""``-k`` expressions for ``fuzzgrad fuzz`` and ``fuzzgrad list``, read as pytest reads its own.

A name matches a target when it is a case-insensitive substring of the target's name or of its
module (import name, or file path relative to the project); names combine with ``and``, ``or``,
``not`` and parentheses: ``-k "norm and not rms"``. The pytest plugin gets pytest's own ``-k``,
matched against the same strings (see `fuzzgrad.integrations.pytest_plugin`). pytest's parser is
private (``_pytest.mark.expression``), so this is a small one of our own with the same grammar::

    expr:     and_expr ('or' and_expr)*
    and_expr: not_expr ('and' not_expr)*
    not_expr: 'not' not_expr | '(' expr ')' | name
    name:     (letters, digits, _ : + - . [ ] \\ /)+
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

from fuzzgrad.errors import FuzzgradError, TargetNotFound

_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<name>(?:\w|[:+\-.\[\]\\/])+)|(?P<bad>\S))")
_WORDS = ("and", "or", "not")
_EXAMPLE = 'e.g. -k "norm and not rms"'

Matcher = Callable[[Sequence[str]], bool]


class KeywordError(FuzzgradError, ValueError):
    """A ``-k`` expression that cannot be parsed."""


class Expression:
    """A parsed ``-k`` expression; `matches` tests it against a target's strings."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.names: list[str] = []
        self._tokens = self._scan(text)
        self._pos = 0
        self._match = self._expr()
        if self._peek() is not None:
            self._fail(f"expected 'and', 'or' or the end; got {self._got()}")

    def matches(self, strings: Sequence[str]) -> bool:
        return self._match([s.lower() for s in strings])

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    # -- scanning and parsing ---------------------------------------------------------------
    def _scan(self, text: str) -> list[tuple[int, str, str]]:
        tokens = []
        for m in _TOKEN.finditer(text):
            if m.group("bad"):
                self._fail(f"unexpected character {m.group('bad')!r}", m.start("bad"))
            kind = m.lastgroup or "name"
            value = m.group(kind)
            tokens.append((m.start(kind), value if value in _WORDS else kind, value))
        return tokens

    def _peek(self) -> tuple[int, str, str] | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self, kind: str, value: str | None = None) -> bool:
        token = self._peek()
        if token and token[1] == kind and (value is None or token[2] == value):
            self._pos += 1
            return True
        return False

    def _expr(self) -> Matcher:
        parts = [self._and()]
        while self._take("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda s: any(p(s) for p in parts))

    def _and(self) -> Matcher:
        parts = [self._not()]
        while self._take("and"):
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else (lambda s: all(p(s) for p in parts))

    def _not(self) -> Matcher:
        if self._take("not"):
            inner = self._not()
            return lambda s: not inner(s)
        if self._take("paren", "("):
            inner = self._expr()
            if not self._take("paren", ")"):
                self._fail(f"expected ')'; got {self._got()}")
            return inner
        token = self._peek()
        if token is None or token[1] != "name":
            self._fail(f"expected a name, 'not' or '('; got {self._got()}")
        self._pos += 1
        name = token[2].lower()
        self.names.append(token[2])
        return lambda s: any(name in x for x in s)

    def _got(self) -> str:
        token = self._peek()
        return "the end of the expression" if token is None else repr(token[2])

    def _fail(self, what: str, column: int | None = None) -> NoReturn:
        if column is None:
            token = self._peek()
            column = token[0] if token else len(self.text)
        raise KeywordError(
            f"fuzzgrad: -k {self.text!r}: at column {column + 1}: {what}. Use names joined by "
            f"and, or, not and parentheses, {_EXAMPLE}."
        )


def target_strings(target: Any) -> list[str]:
    """What ``-k`` matches a target against: its name and its module as shown to people."""
    return [target.name, target.display_module]


def select(targets: list[Any], expressions: Iterable[str] | None) -> list[Any]:
    """The targets that match any of ``expressions`` (a repeated ``-k``); all of them when none
    is given (or only empty ones, as pytest's ``-k ""``). Nothing matching is a `TargetNotFound`
    that lists the close names."""
    texts = [e for e in expressions or () if e.strip()]
    if not texts:
        return targets
    parsed = [Expression(t) for t in texts]
    chosen = [t for t in targets if any(e.matches(target_strings(t)) for e in parsed)]
    if chosen:
        return chosen
    asked = " or ".join(repr(t) for t in texts)
    by_name = [t.name for t in targets if any(e.matches([t.name]) for e in parsed)]
    if by_name:  # `not rms` also left out every target of a module named `norms`
        hint = (
            f"as in pytest, names match modules too; by target names alone it would select "
            f"{', '.join(by_name[:5])}{', ...' if len(by_name) > 5 else ''}; "
        )
    else:
        close = _close_names([n for e in parsed for n in e.names], [t.name for t in targets])
        hint = f"close names: {', '.join(close)}; " if close else ""
    raise TargetNotFound(
        f"fuzzgrad: -k {asked} matches none of the {len(targets)} targets (by name or module); "
        f"{hint}`fuzzgrad list` shows them all."
    )


def _close_names(asked: list[str], known: list[str], limit: int = 5) -> list[str]:
    lowered = {k.lower(): k for k in known}
    out: list[str] = []
    for name in asked:
        for hit in difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=0.5):
            if lowered[hit] not in out:
                out.append(lowered[hit])
    return out[:limit]
