"""`release/gate/sources.py`'s run machinery without any server: `Answers` (one outcome per question, the
derived-value memo) and `explore` (the bounded pool, its priorities, its deadline)."""

from __future__ import annotations

import threading
import time

import pytest

from release.gate.sources import Answers, NotFound, Pending, SourceError, Unreachable, explore


def test_a_derived_value_is_computed_once_and_counts_its_questions_as_asked():
    answers = Answers()
    computed = []

    def compute() -> str:
        computed.append(1)
        return answers.ask(("blob", "a"), "GET a", lambda: "text of a") + "!"

    answers.begin_pass(speculate=False)
    assert answers.derived(("facts", "a"), compute) == "text of a!"
    answers.begin_pass(speculate=False)
    assert answers.derived(("facts", "a"), compute) == "text of a!"
    assert len(computed) == 1
    # the kept value's question counts as asked in this pass: a later fault does not make it "not attempted"
    with pytest.raises(Unreachable):
        answers.ask(("ref", "x"), "GET x", lambda: (_ for _ in ()).throw(Unreachable("GET x", "rate limit", "wait", source_wide=True)))
    assert answers.ask(("blob", "a"), "GET a", lambda: "never fetched again") == "text of a"


def test_after_a_source_wide_fault_a_derived_value_is_computed_again_as_asking_would():
    answers = Answers()
    answers.begin_pass(speculate=False)
    answers.derived(("facts", "a"), lambda: answers.ask(("blob", "a"), "GET a", lambda: "text"))
    answers.begin_pass(speculate=False)
    with pytest.raises(Unreachable):
        answers.ask(("ref", "x"), "GET x", lambda: (_ for _ in ()).throw(Unreachable("GET x", "rate limit", "wait", source_wide=True)))
    # asked one at a time, the blob's question would come after the fault in this pass: "not attempted"
    with pytest.raises(Unreachable, match="not attempted"):
        answers.derived(("facts", "a"), lambda: answers.ask(("blob", "a"), "GET a", lambda: "text"))


def test_a_derived_value_that_met_a_pending_or_failed_question_is_not_kept():
    answers = Answers()
    answers.begin_pass(speculate=True)
    with pytest.raises(Pending):
        answers.derived(("facts", "a"), lambda: answers.ask(("blob", "a"), "GET a", lambda: "text"))
    answers.settle(("blob", "b"), lambda: (_ for _ in ()).throw(NotFound("GET b", "404", "push it")))
    with pytest.raises(NotFound):
        answers.derived(("facts", "b"), lambda: answers.ask(("blob", "b"), "GET b", lambda: "never"))
    answers.begin_pass(speculate=False)
    assert answers.derived(("facts", "a"), lambda: answers.ask(("blob", "a"), "GET a", lambda: "text") + "?") == "text?"


def test_a_derived_value_built_on_a_guess_is_used_but_not_kept():
    answers = Answers()
    computed = []

    def compute() -> str:
        computed.append(1)
        if len(computed) == 1:
            answers.guessed()  # e.g. a tree listed by name whose id is not checked yet
        return "facts"

    answers.begin_pass(speculate=True)
    assert answers.derived(("facts", "a"), compute) == "facts"
    answers.begin_pass(speculate=False)
    assert answers.derived(("facts", "a"), compute) == "facts" and len(computed) == 2  # computed again
    assert answers.derived(("facts", "a"), compute) == "facts" and len(computed) == 2  # now kept


def test_a_full_pool_starts_the_questions_that_open_others_before_the_leaves():
    """Pool of one: the logic reaches two CI questions first and a tree last; the tree is asked first."""
    answers = Answers()
    started: list[str] = []
    rank = {"status": 2, "tree": 0}

    def fetch(name: str):
        def run() -> str:
            started.append(name)
            return name

        return run

    def run_pass() -> None:
        for key in (("status", "c1"), ("status", "c2"), ("tree", "t")):
            try:
                answers.ask(key, f"GET {key[1]}", fetch(key[1]))
            except SourceError:
                pass

    explore(answers, run_pass, 1, lambda: None, priority=lambda key: rank[key[0]])
    assert started == ["t", "c1", "c2"]


def test_at_the_deadline_queued_questions_never_start_and_are_unverified():
    answers = Answers()
    release = threading.Event()
    started: list[str] = []

    def slow() -> str:
        started.append("slow")
        release.wait(2.0)
        return "late"

    def run_pass() -> None:
        for key, fetch in ((("tree", "slow"), slow), (("status", "queued"), lambda: started.append("queued") or "x")):
            try:
                answers.ask(key, f"GET {key[1]}", fetch)
            except SourceError:
                pass

    end = time.monotonic() + 0.2
    explore(answers, run_pass, 1, lambda: end, grace=0.0, priority=lambda key: 0 if key[0] == "tree" else 2)
    release.set()
    assert started == ["slow"]
    answers.begin_pass(speculate=False)
    for key, name in ((("tree", "slow"), "slow"), (("status", "queued"), "queued")):
        with pytest.raises(Unreachable, match="cancelled"):
            answers.ask(key, f"GET {name}", lambda: "not asked after the deadline")
