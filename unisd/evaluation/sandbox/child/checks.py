"""How the sandbox child runs the harness's checks: ``assert`` statements rewritten so that compared
values must be plain data (see :func:`plain_value_checks`)."""

from __future__ import annotations

import ast

def plain_value_checks():
    """``(operand, truth)`` for rewritten ``assert`` statements: compared operands that are not
    plain data become opaque, equal only to another opaque object whose own ``==`` agrees and never
    to a plain value, so an ``__eq__`` that returns ``True`` cannot pass a test; a truth value must
    come from plain data. Plain data: built-in scalars and containers (recursively), a few standard
    library types (``Counter``, ``OrderedDict``, ``deque``, ``Fraction``, ``Decimal``, dates), and
    subclasses of built-ins that override none of their comparison or container methods
    (namedtuples, ``IntEnum``). Closures over their own built-ins, so nothing the program can reach
    changes them."""
    import collections
    import datetime
    import decimal
    import fractions

    _all, _bool, _iter, _type, _name = all, bool, iter, type, (lambda v: type(v).__name__)
    mro_of, vars_of = type.__dict__["__mro__"].__get__, type.__dict__["__dict__"].__get__
    scalars = (bool, int, float, complex, str, bytes, bytearray, type(None), range)
    sequences = (list, tuple, set, frozenset)
    trusted = {collections.Counter: dict, collections.OrderedDict: dict, collections.defaultdict: dict,
               collections.deque: list, fractions.Fraction: None, decimal.Decimal: None, datetime.date: None,
               datetime.datetime: None, datetime.time: None, datetime.timedelta: None}
    methods = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__bool__", "__len__",
               "__iter__", "__contains__", "__getitem__", "keys", "items", "values")

    def kind(t):
        """The built-in whose semantics ``t`` has (``None``: not plain data)."""
        if t in scalars or t in sequences or t is dict:
            return t
        if t in trusted:
            return trusted[t] or t
        mro = mro_of(t)
        for i, c in enumerate(mro):
            if c in scalars or c in sequences or c is dict:
                overridden = any(m in vars_of(k) for k in mro[:i] for m in methods)
                return None if overridden else c
        return None

    def plain(value, depth=0) -> bool:
        k = kind(_type(value))
        if k is None or depth > 50:
            return False
        if k is dict:
            return _all(plain(a, depth + 1) and plain(b, depth + 1) for a, b in dict.items(value))
        if k in sequences:
            return _all(plain(v, depth + 1) for v in _iter(value))  # the built-in's own iteration
        return True

    class Opaque:
        __slots__ = ("value",)

        def __init__(self, value) -> None:
            self.value = value

        def __eq__(self, other) -> bool:
            return _type(other) is Opaque and _bool(self.value == other.value)

        def __ne__(self, other) -> bool:
            return not self.__eq__(other)

        def __contains__(self, item) -> bool:
            return False

        def __bool__(self) -> bool:
            raise AssertionError(f"a test's truth value came from a {_name(self.value)} object")

        __hash__ = None  # type: ignore[assignment]

    def operand(value):
        return value if plain(value) else Opaque(value)

    def truth(value):
        if not plain(value):
            raise AssertionError(f"a test's truth value came from a {_name(value)} object")
        return value

    return operand, truth


class _StrictAsserts(ast.NodeTransformer):
    """In ``assert`` tests: compared operands, ``not``/``and``/``or`` operands and bare tests go
    through the plain-value checks above."""

    def __init__(self, operand: str, truth: str) -> None:
        self.operand, self.truth = operand, truth

    def _call(self, name: str, node: ast.expr) -> ast.Call:
        return ast.copy_location(ast.Call(ast.Name(name, ast.Load()), [node], []), node)

    def _test(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Compare):
            node.left = self._call(self.operand, node.left)
            node.comparators = [self._call(self.operand, c) for c in node.comparators]
            return node
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            node.operand = self._test(node.operand)
            return node
        if isinstance(node, ast.BoolOp):
            node.values = [self._test(v) for v in node.values]
            return node
        return self._call(self.truth, node)

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        node.test = self._test(node.test)
        return node


def strict_asserts(source: str, filename: str, operand: str, truth: str):
    tree = _StrictAsserts(operand, truth).visit(ast.parse(source, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec", dont_inherit=True, optimize=0)
