import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from workbench.core.expr import Expression, parse_expression
from workbench.errors import ExpressionError


@pytest.mark.parametrize(
    ("text", "t", "expected"),
    [
        ("-0.5*(0.1 + 19.9*t)", 1.0, -10.0),
        ("-t^2", 3.0, -9.0),
        ("2^3^2", 0.0, 512.0),
        ("2**3", 0.0, 8.0),
        ("1 - 2 - 3", 0.0, -4.0),
        ("8 / 4 / 2", 0.0, 1.0),
        ("sqrt(t) * exp(0) + log(e) + sin(pi/2) + cos(0)", 4.0, 5.0),
        ("tanh(0) + abs(-t) + tan(0)", 2.5, 2.5),
        ("1.5e-1 * 2", 0.0, 0.3),
        (".5 + t", 1.0, 1.5),
        ("--t", 2.0, 2.0),
    ],
)
def test_values(text: str, t: float, expected: float) -> None:
    assert float(parse_expression(text)(t=t)) == pytest.approx(expected, rel=1e-12)


def test_numpy_and_torch_agree_and_keep_dtype() -> None:
    e = parse_expression("sqrt(0.1 + 19.9*t) * exp(-t)")
    grid = np.linspace(0, 1, 11)
    as_numpy = e(t=grid)
    as_torch = e(t=torch.from_numpy(grid))
    assert isinstance(as_torch, torch.Tensor) and as_torch.dtype == torch.float64
    np.testing.assert_allclose(as_torch.numpy(), as_numpy, rtol=1e-15)
    f32 = e(t=torch.linspace(0, 1, 5))
    assert f32.dtype == torch.float32


def test_constant_expression_broadcasts_to_the_variable_shape() -> None:
    out = parse_expression("2")(t=torch.zeros(4, dtype=torch.float64))
    assert out.shape == (4,) and torch.all(out == 2)


def test_used_names() -> None:
    e = Expression("x1 * t + x2", variables=("t", "x1", "x2", "x3"))
    assert e.used == {"t", "x1", "x2"}
    assert float(e(t=2.0, x1=3.0, x2=1.0)) == 7.0
    with pytest.raises(ExpressionError, match="no value given for x2"):
        e(t=1.0, x1=1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("t +", "column 4"),
        ("(t", "expected ')'"),
        ("foo(t)", "unknown function 'foo'"),
        ("sqr(t)", "did you mean 'sqrt'"),
        ("x * t", "unknown name 'x'"),
        ("t $ 2", "unexpected character '$' at column 3"),
        ("__import__('os')", "unexpected character"),
        ("exp t", "needs '(...)'"),
        ("2 t", "unexpected 't' at column 3"),
        ("t.real", "unexpected"),
        ("(" * 300 + "t" + ")" * 300, "nested deeper"),
    ],
)
def test_bad_expressions_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=None) as info:
        parse_expression(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@given(st.text(max_size=40))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        e = parse_expression(text)
    except ExpressionError:
        return
    value = e(t=np.array([0.5]))
    assert value.shape == (1,)


@given(st.floats(-1e3, 1e3), st.floats(0.0, 1.0))
def test_polynomial_matches_python(c: float, t: float) -> None:
    e = parse_expression(f"({c!r})*t^2 + 3*t - 1")
    assert float(e(t=t)) == pytest.approx(c * t * t + 3 * t - 1, rel=1e-12, abs=1e-12)
    assert math.isfinite(float(e(t=t)))
