"""The task registry: every task's default languages declared once, one override rule for all of them."""

from __future__ import annotations

import pytest

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import TASKS, TaskOptions, declared_roles, load_task, resolve_languages
from alchemy_tune.tasks.bible import TRANSLATIONS
from release_fixtures import write_masakhanews


def test_every_task_declares_disjoint_roles_and_notes():
    for name, spec in TASKS.items():
        assert spec.seen and spec.held_out and spec.notes, name
        assert not set(spec.seen) & set(spec.held_out), name
        assert set(spec.val) <= set(spec.held_out) and spec.test, name
        assert len(set(spec.languages)) == len(spec.languages), name
    assert set(TASKS["bible-genre"].languages) == set(TRANSLATIONS)  # every bundled translation has a role


@pytest.mark.parametrize("name", sorted(TASKS))
def test_one_override_rule_for_every_task(name):
    spec = TASKS[name]

    def without_twins(seen, held):  # SIB-200: a seen language's other-script twin is never held out
        if not spec.script_twins:
            return tuple(held)
        isos = {lang.split("_")[0] for lang in seen}
        return tuple(lang for lang in held if lang.split("_")[0] not in isos)

    assert resolve_languages(name, TaskOptions()) == (spec.seen, without_twins(spec.seen, spec.held_out))
    # a list given alone is taken as it is; the other role gets every remaining language of the task
    first, other = spec.seen[0], spec.held_out[0]
    seen, held = resolve_languages(name, TaskOptions(unseen=(first,)))
    assert held == (first,) and set(seen) == set(spec.languages) - {first}
    seen, held = resolve_languages(name, TaskOptions(seen=(other,)))
    assert seen == (other,) and set(held) == set(without_twins(seen, spec.languages)) - {other}
    # validation languages are held out too
    seen, held = resolve_languages(name, TaskOptions(unseen=(first,), val=(spec.seen[1],)))
    assert held == (first, spec.seen[1]) and spec.seen[1] not in seen
    for options, needle in [
        (TaskOptions(seen=("xx",)), f"seen: unknown language 'xx' not in task {name}; valid languages: "),
        (TaskOptions(val=("xx",)), "val: unknown language 'xx'"),
        (TaskOptions(unseen=(other, other)), f"unseen: {other} listed twice"),
        (TaskOptions(seen=(first,), unseen=(first,)), f"{first} listed as both seen and unseen"),
        (TaskOptions(unseen=spec.languages), "seen: at least one training language"),
    ]:
        with pytest.raises(UsageError) as err:
            resolve_languages(name, options)
        assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_release_task_given_only_unseen_trains_on_every_other_language(tmp_path):
    """The bundled and the release loaders follow the same rule (the release ones kept their default seen)."""
    repo = write_masakhanews(tmp_path / "masakhanews")
    task = load_task("masakhanews", TaskOptions(data_dir=str(repo), unseen=("yor", "eng"), train_size=4))
    assert task.unseen == ("yor", "eng")
    assert set(task.seen) == set(TASKS["masakhanews"].languages) - {"yor", "eng"} and "lin" in task.train


def test_declared_roles_match_a_load():
    options = TaskOptions(seen=("kor", "swh"), train_size=6, dev_size=6, test_size=6)
    task = load_task("bible-genre", options)
    assert declared_roles("bible-genre", options) == (task.seen, task.val, task.unseen)
