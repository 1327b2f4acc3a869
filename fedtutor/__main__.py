"""``python -m fedtutor`` is the same as the ``fedtutor`` command."""

from fedtutor.course.cli import main

raise SystemExit(main())
