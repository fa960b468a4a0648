import pytest

from ehrforge.errors import UnknownNameError
from ehrforge.tasks import TASKS, get_task, task_names


def test_unknown_task_suggests_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'fhirqa'"):
        get_task("fhirq")


def test_registry_lists_the_five_recipes_and_the_eligibility_verifier_task():
    assert task_names() == ["calc", "classify", "eligibility", "extract", "fhirqa", "sql"]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_registered_task_imports_and_names_itself(name):
    task = get_task(name)
    assert task.name == name and task.metric


def test_unknown_task_option_lists_the_accepted_ones():
    from ehrforge.errors import ConfigError

    with pytest.raises(ConfigError, match="task_options.stage: unknown setting") as info:
        get_task("sql", stage="grpo")
    assert "threshold" in info.value.hint
