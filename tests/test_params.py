"""One source of truth for every experiment's parameters: the chapters' wrapper calls and
``curvlib run``'s registered calls resolve to the same parameters, hence the same cache key."""
import dataclasses

import pytest

from curvlib import experiments, runner
from curvlib.config import get_profile

E = experiments  # every experiment module, registered on import


class _Called(Exception):
    def __init__(self, name, params):
        super().__init__(name)
        self.name, self.params = name, params


def _capture(monkeypatch, call):
    """(experiment name, parameter overrides) a wrapper hands to runner.run."""
    def fake(name, model_name, profile, *, checkpoint=None, refresh=False, **params):
        raise _Called(name, params)

    monkeypatch.setattr(runner, "run", fake)
    with pytest.raises(_Called) as e:
        call()
    return e.value.name, e.value.params


#: How the chapters call each experiment, given one of its registered calls (the overrides ``curvlib run`` uses).
CHAPTER_CALLS = {
    "calibration": lambda m, p, c: E.calibration.predictions(m, p),
    "robustness": lambda m, p, c: E.robustness.robustness_experiment(m, p, kind=c["kind"]),
    "travel": lambda m, p, c: E.travel.travel_experiment(m, p, kind=c["kind"]),
    "travel_check": lambda m, p, c: E.travel_check.check_experiment(m, p, kind=c["kind"]),
    "theta": lambda m, p, c: E.theta.theta_experiment(m, p, kind=c["kind"], protocol=c["protocol"],
                                                    saturation=c["saturation"]),
    "theta_step": lambda m, p, c: E.theta.theta_step_experiment(m, p),
    "curvature": lambda m, p, c: E.curvature.curvature_experiment(m, p, kind=c["kind"]),
    "random_jump": lambda m, p, c: E.random_jump.jump_experiment(m, p, eps_r=c["eps_r"]),
    "random_jump_relative": lambda m, p, c: E.random_jump.relative_jump_experiment(m, p, fraction=c["fraction"]),
    "jump_path": lambda m, p, c: E.random_jump.jump_path_experiment(m, p),
    "mesh": lambda m, p, c: E.mesh.mesh_experiment(m, p, step=0.01, n_steps=2),  # no registered call: the grid is data
    "attention": lambda m, p, c: E.attention.attention_experiment(m, p),
    "surgery_path": lambda m, p, c: E.surgery.path_experiment(m, p, surgery=c["surgery"]),
    "surgery_travel": lambda m, p, c: E.surgery.travel_experiment(m, p, surgery=c["surgery"], kind=c["kind"]),
    "surgery_turning": lambda m, p, c: E.surgery.turning_experiment(m, p, kind="fgsm"),
}


def test_every_experiment_has_a_chapter_call():
    assert set(CHAPTER_CALLS) == set(experiments.registry())


@pytest.mark.parametrize("profile_name", ["embedded", "smoke"])
@pytest.mark.parametrize("name", sorted(CHAPTER_CALLS))
def test_a_chapter_call_and_the_cli_resolve_to_the_same_parameters(name, profile_name, monkeypatch):
    p = get_profile(profile_name)
    for call in experiments.registry()[name].calls:
        got_name, overrides = _capture(monkeypatch, lambda: CHAPTER_CALLS[name]("resnet", p, call))
        assert got_name == name
        assert runner.params_for(name, p, **overrides) == runner.params_for(name, p, **call)


@pytest.mark.parametrize("name", sorted(CHAPTER_CALLS))
def test_parameters_are_one_frozen_dataclass_with_a_default_for_every_field(name):
    cls = experiments.registry()[name].params
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    params = runner.params_for(name, get_profile("embedded"))
    assert list(params) == [f.name for f in dataclasses.fields(cls)]
    for f in dataclasses.fields(cls):  # a field without a value must say where the profile gives it
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if f.default is None:
            assert "profile" in f.metadata, f"{name}.{f.name} defaults to None without a profile rule"


def test_profile_rules_follow_the_profile_and_explicit_values_win():
    small, big = get_profile("smoke"), get_profile("embedded")
    assert runner.params_for("travel", small)["n"] == small.n_travel
    assert runner.params_for("travel", big)["n"] == big.n_travel
    assert runner.params_for("travel", big, n=7)["n"] == 7
    assert runner.params_for("attention", small)["n"] == min(16, small.n_travel)
    assert runner.params_for("travel", big, search="careful")["search"] == "careful"
    with pytest.raises(TypeError, match="has no parameter"):
        runner.params_for("travel", big, budget=3)


def _wrappers():
    import inspect

    from curvlib.experiments import examples
    mods = [m for m in vars(E).values() if inspect.ismodule(m) and m.__name__.startswith("curvlib.experiments.")]
    for mod in mods:
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if fn.__module__ == mod.__name__ and (name.endswith(("_experiment", "_results")) or name == "predictions"
                                                  or (mod is examples and not name.startswith("_"))):
                yield f"{mod.__name__.rsplit('.', 1)[1]}.{name}", fn


@pytest.mark.parametrize("name,fn", list(_wrappers()), ids=[n for n, _ in _wrappers()])
def test_every_wrapper_takes_the_profile_in_one_place_and_the_rest_by_keyword(name, fn):
    """(model_name, profile=None, *, …) for a per-model wrapper; a profile-wide one starts at the profile (or
    at the results it reads, then the profile)."""
    import inspect

    ps = list(inspect.signature(fn).parameters.values())
    at = [p.name for p in ps].index("profile")
    assert at <= 1 and ps[at].default is None, f"{name}: profile must be the first or second parameter, default None"
    rest = ps[at + 1:]
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in rest), \
        f"{name}: parameters after profile must be keyword-only: {[p.name for p in rest if p.kind != p.KEYWORD_ONLY]}"
