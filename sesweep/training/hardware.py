"""Where a run executes and in what precision: ``auto`` resolved once, recorded with the result."""

from __future__ import annotations

import contextlib
import itertools
import os
import platform
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from sesweep.spec import SpecError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first CUDA device when there is one, else the CPU; a missing CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecError("recipe.device", f"{name!r} asked for, but this machine has no CUDA device; "
                                             "allowed here: auto, cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SpecError("recipe.device", f"{name!r}: this machine has {torch.cuda.device_count()} CUDA "
                                             f"device(s); allowed: cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → bf16 where the device computes bf16 natively, else fp32 on the CPU and fp16 on older GPUs;
    an explicit precision the device cannot honour is a :class:`SpecError` (:func:`check_precision`).

    The rule, and the measurements behind it (``docs/precision.md``): on a 2-core AVX-512 BF16 CPU with torch
    2.14, bf16 autocast trains ResNet-20 1.4x faster than fp32 (``sesweep bench``) and its accuracy after a
    short CIFAR-10 schedule is within seed noise of fp32 (``experiments/precision-cpu.yaml``). Without native
    bf16 (no AVX-512 BF16 / AMX) PyTorch emulates it, which is slower than fp32: such CPUs stay at fp32.
    A sweep resolves ``auto`` once, on the machine that starts it, and every worker uses that value
    (:mod:`sesweep.runner.precision`), so its runs stay matched.
    """
    if name != "auto":
        check_precision(name, device)
        return name
    if native_bf16(device):
        return "bf16"
    return "fp16" if device.type == "cuda" else "fp32"


def check_precision(name: str, device: torch.device) -> None:
    """Refuse a precision this device cannot train in (fp16 autocast on the CPU, bf16 on a GPU without it)."""
    if name == "fp16" and device.type == "cpu":
        raise SpecError("recipe.precision", "fp16 autocast is for CUDA devices; allowed on CPU: fp32, bf16, auto")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SpecError("recipe.precision", f"bf16 asked for, but {torch.cuda.get_device_name(device)} has no "
                                            "bf16; allowed here: fp32, fp16, auto")


#: /proc/cpuinfo flags of CPUs that compute bf16 natively (oneDNN uses them for bf16 convolutions)
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (else bf16 is emulated, slower than fp32)."""
    return bool(torch.cuda.is_bf16_supported()) if device.type == "cuda" else cpu_has_native_bf16()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware: an AVX-512 BF16 or AMX flag in ``/proc/cpuinfo`` (Linux), or
    oneDNN's own check where there is no ``/proc``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return bool(NATIVE_BF16_FLAGS & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed precision for the forward pass; fp32 runs without autocast."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[precision]):
        yield


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure the work and not its queueing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- where a run was timed, and whether it had the device to itself -------------------------------------------

def host_name() -> str:
    """This machine's host name (``host`` in every run record)."""
    return socket.gethostname()


def device_name(device: torch.device) -> str:
    """``device_name`` in every run record: the GPU's name (``torch.cuda.get_device_name``), or the CPU's model
    name from ``/proc/cpuinfo`` (``platform.processor()`` / ``machine()`` where there is none) and its
    logical CPU count, e.g. ``Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (2 CPUs)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.lower().startswith(("model name", "hardware", "cpu model")) and ":" in line:
                model = line.split(":", 1)[1].strip()
                break
    model = model or platform.processor() or platform.machine() or "cpu"
    return f"{model} ({os.cpu_count()} CPUs)"


def device_id(device: torch.device) -> str:
    """What identifies a device among the processes of one host: ``cpu`` (every CPU run shares the cores), or
    the GPU's UUID (not its index, which ``CUDA_VISIBLE_DEVICES`` renumbers per process)."""
    if device.type != "cuda":
        return "cpu"
    props = torch.cuda.get_device_properties(device)
    uuid = getattr(props, "uuid", None)
    return f"cuda-{uuid}" if uuid is not None else f"cuda-{getattr(props, 'pci_bus_id', device.index or 0)}"


def registry_dir() -> Path:
    """Where live trainers register: ``$SESWEEP_REGISTRY_DIR``, else ``<tempdir>/sesweep-trainers``."""
    return Path(os.environ.get("SESWEEP_REGISTRY_DIR") or Path(tempfile.gettempdir()) / "sesweep-trainers")


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22; "0" without /proc):
    with the pid it names a process, even after its pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def _alive(entry: str) -> bool:
    """Whether the process of a registry entry ``PID-START-N`` still runs (and is the same process)."""
    try:
        pid_s, start, _ = entry.split("-", 2)
        pid = int(pid_s)
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    return start == "0" or _start_time(pid) in (start, "0")


_slots = itertools.count()


@dataclass
class DeviceSlot:
    """This trainer's entry in the registry of one host and device (see :func:`device_slot`)."""

    path: Path | None
    others_at_start: frozenset[str] = frozenset()

    def shared(self) -> tuple[bool | None, int | None]:
        """``(timed_shared, concurrent_workers)`` so far: whether any other trainer on this host and device was
        live at any time since this slot was taken, and how many distinct ones; ``(None, None)`` when the
        registry could not be used."""
        if self.path is None:
            return None, None
        try:
            marks = {p.name for p in self.path.iterdir()}
        except OSError:
            marks = set()
        others = set(self.others_at_start) | marks
        return bool(others), len(others)


@contextlib.contextmanager
def device_slot(device: torch.device) -> Iterator[DeviceSlot]:
    """Register this process as training on ``device`` for the duration of the ``with`` block.

    The registry is a folder per host and device (:func:`registry_dir`) holding one folder per live trainer,
    named ``PID-START-N`` (process id, process start time, a counter). On entry a trainer creates its folder,
    then lists the others: entries of processes that no longer run are removed (stale), every live one is
    remembered *and* marked (an empty file named after the newcomer inside the other's folder). Since each
    trainer registers before it looks, of two overlapping trainers at least one sees the other and marks it,
    so both learn that they overlapped, whichever started first. On exit the folder is removed. Any error of
    the file system disables the registry: :meth:`DeviceSlot.shared` then answers ``(None, None)``.
    """
    root = registry_dir() / host_name() / device_id(device)
    name = f"{os.getpid()}-{_start_time(os.getpid())}-{next(_slots)}"
    mine = root / name
    try:
        mine.mkdir(parents=True)
        others = set()
        for entry in root.iterdir():
            if entry.name == name:
                continue
            if not _alive(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
                continue
            others.add(entry.name)
            with contextlib.suppress(OSError):
                (entry / name).touch()
        slot = DeviceSlot(mine, frozenset(others))
    except OSError:
        slot = DeviceSlot(None)
    try:
        yield slot
    finally:
        if slot.path is not None:
            shutil.rmtree(slot.path, ignore_errors=True)
