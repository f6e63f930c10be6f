"""A thin view of numpy arrays and torch tensors: data pointer, shape, strides in elements,
mla dtype and device. Neither numpy nor torch is imported here: an object can only be a
numpy array / torch tensor if its module is already loaded."""

import sys

from . import _lib
from ._errors import InvalidArgumentError

_BF16_NAMES = ("bf16", "bfloat16")


class Arr(object):
    __slots__ = ("obj", "name", "kind", "shape", "strides", "ptr", "dtype", "dtype_str", "device", "nbytes")

    @property
    def ndim(self):
        return len(self.shape)

    def describe_device(self):
        return "cpu" if self.device == _lib.MLA_DEVICE_CPU else "cuda:%d" % self.device


def is_torch_tensor(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def is_numpy_array(x):
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.ndarray)


def _torch_dtype_code(torch, dt):
    table = {torch.bfloat16: _lib.MLA_DTYPE_BF16, torch.float16: _lib.MLA_DTYPE_FP16,
             torch.float32: _lib.MLA_DTYPE_FP32, torch.int32: _lib.MLA_DTYPE_INT32,
             torch.uint8: _lib.MLA_DTYPE_UINT8}
    fp8 = getattr(torch, "float8_e4m3fn", None)
    if fp8 is not None:
        table[fp8] = _lib.MLA_DTYPE_FP8_E4M3
    return table.get(dt)


def _numpy_dtype_code(np, dt, bf16):
    if dt == np.float16:
        return _lib.MLA_DTYPE_FP16
    if dt == np.float32:
        return _lib.MLA_DTYPE_FP32
    if dt == np.int32:
        return _lib.MLA_DTYPE_INT32
    if dt == np.uint8:
        return _lib.MLA_DTYPE_UINT8
    if dt == np.uint16 and bf16:
        return _lib.MLA_DTYPE_BF16
    if dt.name == "bfloat16":          # ml_dtypes.bfloat16
        return _lib.MLA_DTYPE_BF16
    if dt.name == "float8_e4m3fn":     # ml_dtypes.float8_e4m3fn
        return _lib.MLA_DTYPE_FP8_E4M3
    return None


def wrap(x, name, bf16=False):
    """Describes `x` (numpy array or torch tensor). `bf16`: numpy uint16 data is bfloat16."""
    a = Arr()
    a.obj = x
    a.name = name
    if is_torch_tensor(x):
        torch = sys.modules["torch"]
        a.kind = "torch"
        a.shape = tuple(int(s) for s in x.shape)
        a.strides = tuple(int(s) for s in x.stride())
        a.dtype = _torch_dtype_code(torch, x.dtype)
        a.dtype_str = str(x.dtype).replace("torch.", "")
        dev = x.device
        if dev.type == "cpu":
            a.device = _lib.MLA_DEVICE_CPU
        elif dev.type == "cuda":
            a.device = int(dev.index) if dev.index is not None else int(torch.cuda.current_device())
        else:
            raise InvalidArgumentError("%s is on device '%s'; mla runs on CPU and CUDA tensors only" % (name, dev))
        a.ptr = int(x.data_ptr())
        a.nbytes = int(x.numel()) * int(x.element_size())
        return a
    if is_numpy_array(x):
        np = sys.modules["numpy"]
        a.kind = "numpy"
        itemsize = x.dtype.itemsize
        a.shape = tuple(int(s) for s in x.shape)
        strides = []
        for s in x.strides:
            if itemsize == 0 or s % itemsize:
                raise InvalidArgumentError("%s has a byte stride (%d) that is not a multiple of its item size (%d)"
                                           % (name, s, itemsize))
            strides.append(s // itemsize)
        a.strides = tuple(strides)
        a.dtype = _numpy_dtype_code(np, x.dtype, bf16)
        a.dtype_str = "bf16" if a.dtype == _lib.MLA_DTYPE_BF16 else str(x.dtype)
        a.device = _lib.MLA_DEVICE_CPU
        a.ptr = int(x.ctypes.data)
        a.nbytes = int(x.nbytes)
        return a
    raise InvalidArgumentError("%s must be a numpy.ndarray or a torch.Tensor (got %s)" % (name, type(x).__name__))
