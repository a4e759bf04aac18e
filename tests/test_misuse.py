"""Misuse that once ended in a traceback, a hang or silent acceptance: each is refused by name,
before anything is written."""
import pytest

from gamelab.llm.model import TransformerPolicy
from gamelab.sweep import SpecError, execute, make_spec

BASE = dict(algorithms=["mwu"], games=["rps"], steps=10)


@pytest.mark.parametrize("extra, message", [
    ({"algorithm": 5}, "algorithm must be a table"),
    ({"algorithm": {"mwu": 5}}, r"\[algorithm.mwu\] must be a table"),
    ({"algorithm": {"mwu": {"steps": 10**20}}}, r"\[algorithm.mwu\] steps must be a positive integer"),
    ({"seeds": [2**63]}, r"seeds: 9223372036854775808 is not a whole number in \[0, 2\^31\)"),
    ({"seeds": [1, 1]}, "seeds lists a seed twice"),
    ({"games": ["rps", "comal3", "rps"]}, "games lists 'rps' more than once"),
    ({"steps": 10**20}, "steps must be a positive integer of at most 2147483647"),
    ({"record_every": 2**40}, "record_every must be a positive integer of at most"),
    ({"record_policy": "yes"}, "record_policy must be true or false"),
])
def test_bad_specs_are_refused_by_name_and_leave_no_folder(tmp_path, extra, message):
    with pytest.raises(SpecError, match=message):
        execute(make_spec(**{**BASE, **extra}), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("model, message", [
    ({"d_model": 0}, "d_model must be a positive integer"),
    ({"heads": 0}, "heads must be a positive integer"),
    ({"layers": -1}, "layers must be a positive integer"),
    ({"d_model": 6, "heads": 4}, r"d_model \(6\) must be a multiple of heads \(4\)"),
])
def test_a_transformer_of_impossible_shape_is_refused(model, message):
    with pytest.raises(ValueError, match=message):
        TransformerPolicy(4, 2, **model)
