"""Strategies over a real (small) library: nesting, equalities, scorings, the API and the CLI."""

import json
import sys

import numpy as np
import pytest

import lever
from lever import LeverError
from lever.cli import main
from lever.compose import compose_actions, offline_evaluate
from lever.library import PolicyLibrary
from lever.worlds.objectives import Objective
from lever.retrieval import prepare_layout, retrieve
from lever.search import compose, search
from lever.strategies import Beam, Exhaustive, Hybrid, Targeted, grid

STUDY_OBJECTIVES = ("path", "gold", "lever", "hazard", "hazard+lever", "path+gold", "path+gold+hazard",
                    "path+gold+hazard+lever")
QUERIES = ("path+gold+hazard", "path+gold", "gold+hazard+lever", "path+hazard", "lever")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """grid8, two layouts, two budgets, the study's objectives, few episodes: 32 policies."""
    root = tmp_path_factory.mktemp("library")
    return PolicyLibrary.build(root, setting="grid8", layout_seeds=(0, 1), budgets=("X1", "X5"),
                               objectives=STUDY_OBJECTIVES, episodes=600, jobs=1, progress=False)


@pytest.fixture(scope="module")
def prepared(library):
    return [prepare_layout(library, layout_id) for layout_id in library.layout_ids]


def test_candidates_are_relevant_and_ranked(prepared):
    for prep in prepared:
        candidates = retrieve(prep, Objective.parse("path+gold+hazard"))
        assert candidates.components == ("path", "gold", "hazard")
        for c, rows, scores in zip((0, 1, 2), candidates.rows, candidates.scores):
            assert all(prep.objectives[r].weights[c] != 0 for r in rows)
            assert np.all(np.diff(scores) <= 0)
            # every policy trained on the component is a candidate, ranked by w_c ψ_c(start):
            # signatures hold the return of each component set (indexed by mask), and under the
            # study's rules the component alone is the one-component set {c}, mask 1 << c.
            assert rows.size == sum(o.weights[c] != 0 for o in prep.objectives)
            np.testing.assert_allclose(scores, prep.signatures[rows, 1 << c])


def test_strategy_scores_are_nested(prepared):
    # All strategies take prefixes of one ranked candidate list, so the scored
    # sets are nested and so are the best offline scores.
    for prep in prepared:
        for objective in QUERIES:
            for operator in ("sum", "max"):
                scores = [search(prep, objective, strategy, operator=operator).offline_return
                          for strategy in (Targeted(), Hybrid(2), Beam(width=2, k=2), Exhaustive())]
                assert scores[0] <= scores[1] <= scores[2] <= scores[3], (objective, operator, scores)


def test_hybrid_with_every_candidate_equals_exhaustive(prepared):
    for prep in prepared:
        for objective in QUERIES:
            most = max(r.size for r in retrieve(prep, Objective.parse(objective)).rows)
            full = search(prep, objective, Hybrid(most))
            exhaustive = search(prep, objective, Exhaustive())
            assert full.policy_ids == exhaustive.policy_ids
            assert full.offline_return == exhaustive.offline_return
            assert full.combinations_tried == exhaustive.combinations_tried


def test_exhaustive_finds_the_best_combination_by_brute_force(prepared):
    prep = prepared[0]
    candidates = retrieve(prep, Objective.parse("path+gold+hazard"))
    combos = grid(candidates.rows)
    actions, _ = compose_actions(prep.stack, combos, "path+gold+hazard")
    offline = offline_evaluate(prep.stack, combos, actions, "path+gold+hazard")
    result = search(prep, "path+gold+hazard", Exhaustive())
    assert result.combinations_tried == combos.shape[0]
    assert result.offline_return == offline.returns.max()
    best = tuple(int(prep.stack.policy_ids[r]) for r in combos[np.argmax(offline.returns)])
    assert result.policy_ids == best


def test_result_fields_are_consistent(library, prepared):
    prep = prepared[0]
    result = search(prep, "path+gold+hazard", Hybrid(2), plan=False)
    assert result.combinations_tried == 8
    assert result.strategy == "hybrid(k=2)"
    assert len(result.policy_ids) == 3
    assert all(library.record(p).objective.weights[c] != 0 for p, c in zip(result.policy_ids, (0, 1, 2)))
    truth = lever.rollout(prep.layout, result.policy.actions, "path+gold+hazard")
    assert result.true_return == truth.ret
    assert result.true_end == truth.end
    assert result.true_return_vector == tuple(truth.return_vector)
    assert 0 < result.support_coverage <= 1
    assert result.route_on_support == 1.0
    assert result.total_s == pytest.approx(result.retrieval_s + result.composition_s
                                              + result.scoring_s + result.planning_s)
    assert min(result.retrieval_s, result.composition_s, result.scoring_s) > 0
    # same inputs, same answer
    again = search(prep, "path+gold+hazard", Hybrid(2))
    assert (again.policy_ids, again.offline_return, again.true_return) == \
        (result.policy_ids, result.offline_return, result.true_return)


def test_sf_and_ridge_scorings(prepared):
    prep = prepared[1]
    candidates = retrieve(prep, Objective.parse("path+gold+hazard"))
    combos = grid(candidates.prefix(3))
    # sf adds each member's predicted return of its own component, ψ_{c}(start) (set mask 1 << c).
    predicted = sum(prep.signatures[combos[:, j], 1 << c] for j, c in enumerate((0, 1, 2)))
    sf = search(prep, "path+gold+hazard", Hybrid(3), scoring="sf")
    assert sf.score == pytest.approx(predicted.max())
    assert sf.scoring == "sf" and sf.composition_s < 1.0
    ridge = search(prep, "path+gold+hazard", Exhaustive(), scoring="ridge")
    exhaustive = search(prep, "path+gold+hazard", Exhaustive())
    assert ridge.combinations_tried == exhaustive.combinations_tried
    assert ridge.offline_return <= exhaustive.offline_return


def test_compose_api_matches_search_and_gives_a_gymnasium_policy(library, prepared):
    layout_id = library.layout_ids[0]
    result = lever.compose(library, "path+gold+hazard", layout=layout_id, strategy="beam", k=2, width=3,
                           operator="max")
    direct = search(prepared[0], "path+gold+hazard", Beam(width=3, k=2), operator="max")
    assert result.policy_ids == direct.policy_ids
    assert result.offline_return == direct.offline_return
    policy = result.policy
    assert policy.actions.shape == (library.layout(layout_id).n_states,)
    assert policy(library.layout(layout_id).start) == policy.actions[library.layout(layout_id).start]
    by_layout = compose(library, "path+gold", layout=library.layout(layout_id), strategy="targeted")
    assert by_layout.layout_id == layout_id


def test_bad_input_is_a_clear_error(library, tmp_path):
    layout_id = library.layout_ids[0]
    with pytest.raises(LeverError, match="unknown objective component"):
        compose(library, "path+treasure", layout=layout_id)
    with pytest.raises(LeverError, match="holds no layout"):
        compose(library, "path", layout="0123456789ab")
    with pytest.raises(LeverError, match="holds 2 layouts"):
        compose(library, "path")
    with pytest.raises(LeverError, match="unknown objective component"):  # named before the layout
        compose(library, "path+treasure")
    with pytest.raises(LeverError, match="unknown strategy"):
        compose(library, "path", layout=layout_id, strategy="random")
    with pytest.raises(LeverError, match="unknown scoring"):
        compose(library, "path", layout=layout_id, scoring="vibes")
    with pytest.raises(LeverError, match="operator"):
        compose(library, "path", layout=layout_id, operator="product")
    with pytest.raises(LeverError, match="hybrid k"):
        compose(library, "path", layout=layout_id, k=0)
    small = PolicyLibrary.build(tmp_path / "small", setting="grid8", objectives=("path", "gold"),
                                episodes=100, jobs=1, progress=False)
    with pytest.raises(LeverError, match="no candidate policy for component 'hazard'"):
        compose(small, "path+hazard")


def test_cli_compose_json_and_table(library, capsys):
    layout_id = library.layout_ids[1]
    status = main(["compose", str(library.root), "--objective", "path+gold+hazard", "--strategy", "hybrid",
                   "-k", "2", "--layout", layout_id, "--json"])
    assert status == 0
    doc = json.loads(capsys.readouterr().out)
    expected = compose(library, "path+gold+hazard", layout=layout_id, strategy="hybrid", k=2)
    assert doc["policy_ids"] == list(expected.policy_ids)
    assert doc["offline_return"] == expected.offline_return
    assert doc["combinations_tried"] == 8
    assert doc["repeats"] == 5 and 0 < doc["warm_median_s"] < 60
    status = main(["compose", str(library.root), "--objective", "path+gold", "--strategy", "beam",
                   "--width", "2", "--operator", "max", "--plan", "--layout", layout_id, "--repeats", "3"])
    out = capsys.readouterr().out
    assert status == 0
    assert "beam(width=2, k=3)" in out and "true return" in out
    assert "first call" in out and "warm median" in out and "over 3 repeats" in out
    status = main(["compose", str(library.root), "--objective", "path+gold", "--layout", layout_id,
                   "--repeats", "0", "--json"])
    assert status == 0 and json.loads(capsys.readouterr().out)["warm_median_s"] is None
    assert main(["compose", str(library.root), "--objective", "path+gold", "--repeats", "-1"]) == 2
    assert "--repeats must be >= 0" in capsys.readouterr().err
    status = main(["compose", str(library.root), "--objective", "path+gold", "--layout", "nope"])
    assert status == 2
    assert "holds no layout" in capsys.readouterr().err
    seed = library.records_for(layout_id)[0].layout_seed
    status = main(["compose", str(library.root), "--objective", "path+gold", "--seed", str(seed), "--json"])
    assert status == 0
    assert json.loads(capsys.readouterr().out)["layout_id"] == layout_id
    status = main(["compose", str(library.root), "--objective", "path+gold", "--seed", "99"])
    assert status == 2
    assert "no layout of seed 99" in capsys.readouterr().err


def test_compose_parses_the_objective_once(library, monkeypatch):
    # Parsed at the front door, then passed inward as an Objective; only the world layer's own
    # rollout (lever.evaluation) takes it again, as its own entry point.
    parse = Objective.parse.__func__
    callers = []

    def counting(cls, spec, names=None):
        callers.append(sys._getframe(1).f_globals["__name__"])
        return parse(cls, spec, names)

    monkeypatch.setattr(Objective, "parse", classmethod(counting))
    compose(library, "path+gold+hazard", layout=library.layout_ids[0], strategy="beam", plan=True,
            scoring="ridge")
    assert [c for c in callers if c not in ("lever.evaluation", "lever.worlds.objectives")] == ["lever.search"]


def test_weighted_objectives_need_a_linear_rules_library(library, tmp_path):
    # The study's rules reward sets of components only: a weighted objective is refused, by name.
    with pytest.raises(LeverError, match="weighted"):
        compose(library, "path+gold*0.5", layout=library.layout_ids[0])
    linear = PolicyLibrary.build(tmp_path / "linear", setting="grid8", episodes=600, jobs=1, progress=False,
                                 objectives=("path", "gold", "hazard", "lever"), rules="linear")
    prep = prepare_layout(linear)
    assert prep.rules == "linear"
    objective = Objective.parse("path+gold*0.5+hazard*2")
    candidates = retrieve(prep, objective)
    for c, rows, scores in zip((0, 1, 2), candidates.rows, candidates.scores):
        # Linear rules: a component's query is w_c on its own set, so the score is w_c ψ_{c}(start).
        np.testing.assert_allclose(scores, objective.weights[c] * prep.signatures[rows, 1 << c])
    result = compose(linear, objective, strategy="exhaustive")
    truth = lever.rollout(prep.layout, result.policy.actions, objective, rules="linear")
    assert (result.true_return, result.true_end) == (truth.ret, truth.end)
    # ... and the return is w · r of the single components' returns along the route.
    assert result.true_return == pytest.approx(objective.array @ np.array(result.true_return_vector), abs=1e-9)
    targeted = search(prep, objective, Targeted())
    assert targeted.offline_return <= result.offline_return
