"""A pretend CUDA device for checking device placement without a GPU (issue 16, item 1).

Inside `FakeCuda()`, every tensor is computed on the CPU but carries the device it would
have on a GPU machine: `.to("cuda")`, `device="cuda"` factories and module `.to("cuda")`
give "cuda"; tensors made without a device (``torch.tensor(...)``, ``torch.randn(...)``)
give "cpu", as they would there. Every operation checks that its tensor inputs agree
(0-dim CPU tensors are scalars and may mix, as on a GPU) and that a random op's
generator is on the output's device; a mismatch raises `DeviceMismatch` naming the
operation and where it was called from: the error a GPU run would hit at that line.

FakeTensorMode cannot do this here: operations without a meta kernel (grid_sample)
fall back to a real CUDA kernel.
"""

from __future__ import annotations

import traceback

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

TAG = "_fake_device"
INDEXING = {
    torch.ops.aten.index.Tensor,
    torch.ops.aten.index_put.default,
    torch.ops.aten.index_put_.default,
    torch.ops.aten._index_put_impl_.default,
}
ANY = "any"  # made by torch internals on "the" device: takes the device of what it meets


class DeviceMismatch(RuntimeError):
    pass


def _user_frame() -> str:
    """The innermost caller outside torch and this module."""
    for f in reversed(traceback.extract_stack()):
        if "/torch/" not in f.filename and not f.filename.endswith("fake_cuda.py"):
            return f"{f.filename}:{f.lineno} ({f.line})"
    return "?"


class FakeCuda(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.checked = 0
        self.by_storage: dict[int, str] = {}  # a module's .to() swaps a Parameter's data, not the object

    def __enter__(self):
        # Tensor.to("cuda") initialises CUDA before dispatch reaches a dispatch mode: a
        # function mode in front turns every cuda device argument into the CPU first
        self._front = _CudaToCpu(self)
        self._front.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        out = super().__exit__(*exc)
        self._front.__exit__(*exc)
        return out

    def mark(self, out, device: str) -> None:
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                if not isinstance(t, torch.nn.Parameter):
                    setattr(t, TAG, device)
                if t.untyped_storage().data_ptr():
                    self.by_storage[t.untyped_storage().data_ptr()] = device

    def tag(self, t: torch.Tensor) -> str:
        if isinstance(t, torch.nn.Parameter):  # its data is swapped by Module.to: follow the storage
            return self.by_storage.get(t.untyped_storage().data_ptr(), "cpu")
        return getattr(t, TAG, "cpu")  # no mark: made outside the mode (from_numpy, a worker), on the CPU

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        want = kwargs.get("device")
        want = None if want is None else torch.device(want).type
        if want == "cuda":
            kwargs = {**kwargs, "device": torch.device("cpu")}
        if kwargs.get("pin_memory"):
            kwargs = {**kwargs, "pin_memory": False}
        checked_args = args
        if func in INDEXING:  # x_cuda[cpu_index] is allowed: PyTorch moves the indices
            checked_args = (args[0], *args[2:])
        tensors = [t for t in tree_flatten((checked_args, kwargs))[0] if isinstance(t, torch.Tensor)]
        devices = {self.tag(t) for t in tensors if t.dim() > 0 or self.tag(t) != "cpu"} - {ANY}
        if len(devices) > 1:
            shapes = [(tuple(t.shape), self.tag(t)) for t in tensors]
            raise DeviceMismatch(f"{func}: inputs on {sorted(devices)} {shapes} at {_user_frame()}")
        if want == "cpu" and func is not torch.ops.aten._to_copy.default:
            # an explicit CPU device outside a transfer comes from torch's own C++ code
            # mirroring another tensor (new_empty_strided for a gradient, empty(options)),
            # or from Python, which the front mode marks itself: it follows its inputs
            out_device = devices.pop() if devices else ANY
        else:
            out_device = want or (devices.pop() if devices else "cpu")
        gen = kwargs.get("generator")
        if gen is not None and out_device != ANY and gen.device.type != out_device:
            raise DeviceMismatch(f"{func}: a {gen.device.type} generator for a {out_device} tensor at {_user_frame()}")
        self.checked += 1
        out = func(*args, **kwargs)
        self.mark(out, out_device)
        return out


# tensors made from nothing: without a device they are on the CPU (at dispatch, torch's
# own C++ code passes device=cpu too, so only here can the two be told apart)
FACTORIES = {
    torch.tensor,
    torch.as_tensor,
    torch.from_numpy,
    torch.zeros,
    torch.ones,
    torch.empty,
    torch.full,
    torch.rand,
    torch.randn,
    torch.randint,
    torch.randperm,
    torch.arange,
    torch.linspace,
    torch.logspace,
    torch.eye,
}


def _is_cuda(a) -> bool:
    if isinstance(a, torch.device):
        return a.type == "cuda"
    return isinstance(a, str) and (a == "cuda" or a.startswith("cuda:"))


class _CudaToCpu(TorchFunctionMode):
    """Calls asking for a cuda tensor (Tensor.to/.cuda, factories with device=) run on
    the CPU; their outputs are marked cuda."""

    def __init__(self, checker: FakeCuda):
        super().__init__()
        self.checker = checker

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        want = None
        if func is torch._C._nn._parse_to:  # Module.to parses its arguments first: keep them
            return func(*args, **kwargs)
        owner = getattr(func, "__self__", None)
        if owner is torch.Tensor.device:  # `device=x.device` must follow x to the GPU
            return torch.device("cuda", 0) if self.checker.tag(args[0]) == "cuda" else func(*args)
        if owner is torch.Tensor.is_cuda:
            return self.checker.tag(args[0]) == "cuda"
        if func is torch.Tensor.cuda:
            func, args, want = torch.Tensor.to, (args[0], "cpu"), "cuda"
        elif func is torch.Tensor.to and len(args) > 1 and isinstance(args[1], torch.Tensor):
            want = self.checker.tag(args[1])  # .to(other): other's device
            args = (args[0], args[1].dtype, *args[2:])
        elif any(_is_cuda(a) for a in args) or _is_cuda(kwargs.get("device")):
            want = "cuda"
            args = tree_map(lambda a: "cpu" if _is_cuda(a) else a, args)
            if _is_cuda(kwargs.get("device")):
                kwargs["device"] = "cpu"
        asked_cpu = want is None and (
            isinstance(kwargs.get("device"), (str, torch.device))
            or (func in FACTORIES and kwargs.get("device") is None)
        )
        out = func(*args, **kwargs)
        if want is not None:
            self.checker.mark(out, want)
        elif asked_cpu:  # Python asked for the CPU itself
            self.checker.mark(out, "cpu")
        return out
