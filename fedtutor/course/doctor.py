"""``fedtutor doctor``: checks the learner's machine for the course.

One ``Check`` per line (Python, the packages, the widgets extension, the data, free disk, the
mode, and whether this machine can serve or join a classroom), each with the fix for anything
wrong; ``run_doctor`` returns them in order.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import sys
from dataclasses import dataclass

MIN_PYTHON = (3, 10)
MIN_FREE_DISK_GB = 1.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.required else "warn")
        text = f"[{mark}] {self.name:<14} {self.detail}"
        return text if self.ok or not self.fix else f"{text}\n       fix: {self.fix}"


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    shown = ".".join(map(str, version))
    ok = tuple(version[:2]) >= MIN_PYTHON
    fix = "install Python 3.10 or newer (python.org or conda), make a fresh venv with it, reinstall fedtutor"
    return Check("python", ok, f"{shown} ({platform.python_implementation()})", fix)


def check_package(module: str, pip_name: str | None = None, required: bool = True, minimum: str = "") -> Check:
    """Import ``module`` and report its version (or the pip command that fixes it)."""
    pip_name = pip_name or module
    try:
        mod = importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - a broken install raises more than ImportError
        reason = "not installed" if isinstance(err, ModuleNotFoundError) else f"fails to import: {err}"
        return Check(module, False, reason, f'pip install "{pip_name}{minimum}"', required)
    version = getattr(mod, "__version__", "?")
    if minimum and version != "?" and _version_tuple(version) < _version_tuple(minimum.lstrip(">=")):
        return Check(module, False, f"{version} is too old", f'pip install -U "{pip_name}{minimum}"', required)
    return Check(module, True, version, required=required)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_torch_device() -> Check:
    import torch

    if torch.cuda.is_available():
        return Check("accelerator", True, f"CUDA: {torch.cuda.get_device_name(0)} (not needed; the course runs on CPU)")
    return Check("accelerator", True, "CPU only (that is all the course needs)", required=False)


def check_widgets_extension() -> Check:
    """ipywidgets 8 renders in JupyterLab through the jupyterlab_widgets prebuilt extension."""
    try:
        import jupyterlab_widgets
    except ModuleNotFoundError:
        return Check(
            "widgets ext",
            False,
            "jupyterlab_widgets not installed: sliders would show as text",
            'pip install "ipywidgets>=8" (it brings jupyterlab_widgets), then restart JupyterLab',
        )
    return Check("widgets ext", True, f"jupyterlab_widgets {jupyterlab_widgets.__version__}")


def check_data() -> Check:
    """Which data set this learner has, and what that means for run times (``DataSource.describe``)."""
    from fedtutor.data import DataError, mnist_source

    try:
        source = mnist_source()
    except (DataError, OSError, ValueError) as err:  # OSError/ValueError: a file the reader could not cope with
        return Check("data", False, str(err), "see the message above; `unset FEDTUTOR_DATA` restores the default")
    if source.is_mini:
        detail = f"{source.describe()}; full MNIST downloads automatically when online"
        return Check("data", True, detail)
    return Check("data", True, source.describe())


def check_disk(path: str | None = None, minimum_gb: float | None = None) -> Check:
    from fedtutor.course.datasource import cache_dir

    minimum_gb = MIN_FREE_DISK_GB if minimum_gb is None else minimum_gb
    target = path or str(_existing_parent(cache_dir()))
    free_gb = shutil.disk_usage(target).free / 1e9
    fix = f"free at least {minimum_gb:.0f} GB on the drive holding {target}, or set FEDTUTOR_CACHE to another drive"
    return Check("disk", free_gb >= minimum_gb, f"{free_gb:.1f} GB free at {target}", fix)


def _existing_parent(path):
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_mode() -> Check:
    from fedtutor import quick_mode

    if quick_mode():
        why = "FEDTUTOR_QUICK=1" if os.environ.get("FEDTUTOR_QUICK") == "1" else "CI=true"
        return Check("mode", True, f"quick ({why}): small data and few rounds, for demos and CI", required=False)
    return Check("mode", True, "full: the real experiments (set FEDTUTOR_QUICK=1 for a fast demo)", required=False)


def run_doctor(min_free_disk_gb: float | None = None) -> list[Check]:
    """Every check, in the order printed; ``min_free_disk_gb`` defaults to ``MIN_FREE_DISK_GB``."""
    checks = [check_python()]
    packages = [
        ("torch", "torch", ">=2.2"),
        ("torchvision", "torchvision", ">=0.17"),
        ("ipywidgets", "ipywidgets", ">=8.0"),
        ("matplotlib", "matplotlib", ">=3.7"),
        ("tqdm", "tqdm", ">=4.66"),
        ("jupyterlab", "jupyterlab", ">=4.0"),
    ]
    checks += [check_package(module, pip, minimum=minimum) for module, pip, minimum in packages]
    installed = {c.name: c.ok for c in checks}
    if installed["torch"]:  # the rest needs torch
        checks.append(check_torch_device())
        checks.append(check_widgets_extension())
        if installed["torchvision"]:  # finding the data goes through torchvision's dataset classes
            checks.append(check_data())
    checks += [check_disk(minimum_gb=min_free_disk_gb), check_mode()]
    from fedtutor.course.classroom import check_classroom  # optional: a warning at worst, never a failure

    checks.append(check_classroom())
    return checks
