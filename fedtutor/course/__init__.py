"""The course machinery beside the library: what runs the course, not what it teaches.

- ``cli``        the ``fedtutor`` command: doctor, start, student, demo, flower
- ``doctor``     the machine checks behind ``fedtutor doctor``
- ``workspace``  the learner's own copy of the notebooks (``fedtutor start``), never overwriting
- ``student``    student versions of the notebooks, solutions replaced by placeholders
- ``exercises``  ``check()`` / ``hint()`` / ``solution()``: one module of checkers per notebook
- ``launcher``   starts and stops the Flower processes of a deployment (``fedtutor flower``)
- ``forkserver`` forks Flower's app processes from one that imported torch once (``_forkshim``
                 stands in for ``flwr-clientapp``/``flwr-serverapp``/``flwr`` and asks it)

Notebooks import ``from fedtutor.course import check, given, hint, solution``.
"""

__all__ = ["check", "given", "hint", "solution"]


def __getattr__(name: str):
    """Import the exercises only when a notebook asks for them: the command line stays quick."""
    if name in __all__:
        from fedtutor.course import exercises

        return getattr(exercises, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
