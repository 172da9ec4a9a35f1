"""The study's schedule: every model's first seed runs; a later seed's runs go in priority order while their
first seed's time fits the budget; a model that starts from another's pre-training never runs before it
(or without it)."""

from __future__ import annotations

import pytest

from vlkit.pipelines import vilbert_study_schedule as schedule
from vlkit.pipelines.vilbert_study_runs import MODELS


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Context:
    def is_done(self, name: str, seed: int) -> bool:
        return False


@pytest.fixture()
def runs(monkeypatch):
    clock, order = Clock(), []

    def run_model(context, name, seed, figures):
        order.append((name, seed, figures))
        clock.now += 100.0  # every run takes 100 s
        return {"name": name, "seed": seed, "wall_s": 100.0}

    monkeypatch.setattr(schedule, "run_model", run_model)
    monkeypatch.setattr(schedule.time, "perf_counter", clock)
    return order


def test_without_a_budget_every_model_runs_every_seed_baselines_after_their_pre_training(runs):
    results = schedule.schedule_runs(Context(), (0, 1), 0.0, None, 1, ("two-stream",))
    assert all([r["seed"] for r in results[name]] == [0, 1] for name in MODELS)
    assert runs[: len(MODELS)] == [(name, 0, name == "two-stream") for name in MODELS]
    second = [name for name, seed, _ in runs if seed == 1]
    assert second == list(schedule.SEED_PRIORITY)
    assert second.index("question-only") > second.index("two-stream")


def test_a_later_seed_runs_only_while_its_first_seed_s_time_fits(runs):
    # the first seeds take 100 s each; they + 2 x 100 + the reserve fit in the budget, a third run does not
    first = 100.0 * len(MODELS)
    budget = first + 200 + schedule.RESERVE_S + 50
    results = schedule.schedule_runs(Context(), (0, 1), 0.0, budget, 1, None)
    assert [name for name, seed, _ in runs if seed == 1] == ["two-stream", "question-only"]
    assert len(results["two-stream"]) == 2 and len(results["lxmert"]) == 1
    assert all(figures for _, seed, figures in runs if seed == 0) and not any(f for _, s, f in runs if s == 1)


def test_a_baseline_whose_pre_training_was_left_out_is_left_out_too(runs, monkeypatch):
    monkeypatch.setattr(schedule, "SEED_PRIORITY", ("image-only", "two-stream", "question-only"))
    budget = 100.0 * len(MODELS) + 50 + schedule.RESERVE_S  # room for no second-seed run
    schedule.schedule_runs(Context(), (0, 1), 0.0, budget, 1, None)
    assert [name for name, seed, _ in runs if seed == 1] == []
