"""The executable: VM functions, constants, the packed-function library, metadata; one file on disk.

File layout (integers little-endian):

    magic  b"NIMBLEVM"              8 bytes
    format version                  u32
    header length                   u64
    total file length               u64
    header                          JSON (utf-8): functions (JSON bytecode), constants and kernel
                                    records pointing at sections, entry, metadata, section table
    sections                        .npy bytes of each constant (allow_pickle=False), object code
    sha256 of everything above      32 bytes

Loading checks size, magic, version, checksum, and that this CPU has the file's target features,
then links the object code with ``LoadedObject`` (no LLVM compilation). No pickle anywhere.
"""
from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import re
import struct
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np

from ..codegen.threads import num_threads
from ..dispatch.kernel_entry import KernelEntry  # (also re-exported: part of the executable format)
from ..dtypes import is_extended, numpy_dtype
from ..errors import FormatError, NimbleError, OutOfRangeError, ShapeError
from ..errors import TypeError as NimbleTypeError
from . import validate
from .kernel_call import kernel_call
from .bytecode import disassemble, function_from_json, function_to_json
from .values import ADT

MAGIC = b"NIMBLEVM"
FORMAT_VERSION = 1
_PREAMBLE = struct.Struct("<8sIQQ")
_DIGEST = 32


@dataclass(frozen=True)
class HostFuncEntry:
    """A Python function run on the host. Kind ``"shape_func"``: operator ``op``'s shape function
    with ``attrs``; ``input_modes`` per input: ``"value"`` (as is, the default) or ``"shape"``
    (the register holds a tensor; its shape is passed)."""

    name: str
    kind: str
    op: str
    attrs: dict = field(default_factory=dict)
    input_modes: tuple = ()


def host_metadata(**extra) -> dict:
    """Target, CPU, features and version of this host, for ``Executable.metadata``."""
    from ..version import __version__
    from ..codegen import jit

    h = jit.host()
    return {"target": "llvm", "triple": h.triple, "cpu": h.cpu, "features": h.features,
            "nimble_version": __version__, **extra}


@dataclass(frozen=True)
class Executable:
    """Everything a ``VirtualMachine`` runs. ``metadata["inputs"][name]`` declares input types."""

    functions: tuple
    constants: tuple
    packed: tuple
    entry: dict
    metadata: dict = field(default_factory=dict)
    _linked: list = field(default_factory=list, init=False, compare=False, repr=False)

    def __post_init__(self):
        from .storage import aligned

        # constants (weights above all) start on a cache line: vector loads then never straddle two
        object.__setattr__(self, "constants", tuple(aligned(c) for c in self.constants))

    def function_index(self, name: str) -> int:
        if name not in self.entry:
            raise NimbleError(f"the executable has no function {name!r}; it has {sorted(self.entry)}")
        return self.entry[name]

    def disassemble(self) -> str:
        fnames = [f.name for f in self.functions]
        pnames = [p.name for p in self.packed]
        return "\n\n".join(disassemble(f, fnames, pnames) for f in self.functions)

    def explain(self, name: str, shape) -> dict:
        """Which kernel the packed function ``name`` runs for an argument of ``shape`` (the
        dispatched argument's shape, or the dispatched dim's value; for a table keyed on several
        dims, their values as a tuple or a {name: value} dict), and why."""
        from .linked_dispatch import LinkedDispatch

        for entry, linked in zip(self.packed, self.library()):
            if entry.name != name:
                continue
            if isinstance(linked, LinkedDispatch):
                return linked.explain(linked.point_of(shape))
            return {"function": name, "bucket": None, "source": "a single kernel (no dispatch table)"}
        names = [p.name for p in self.packed if not isinstance(p, HostFuncEntry)]
        raise NimbleError(f"explain: no packed function {name!r}; the executable has {names}")

    def library(self) -> list:
        """The packed functions linked into this process (once; shared by every VM)."""
        if not self._linked:
            with _link_lock:
                if not self._linked:
                    self._linked.append([link_packed(p) for p in self.packed])
        return self._linked[0]

    def save(self, path, signing_key=None) -> None:
        """Write the executable to ``path`` (atomically: a temporary file, then a rename); with an
        Ed25519 ``signing_key`` (the ``sign`` extra), also its signature ``path + ".sig"``."""
        if signing_key is not None:
            from .signing import save_signed

            save_signed(self, path, signing_key)
            return
        data = serialize(self)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @staticmethod
    def load(path, trusted_keys=None) -> Executable:
        """Read, check and link an executable written by ``save``; with ``trusted_keys`` (Ed25519
        public keys) only a file signed by one of them (``FormatError`` otherwise)."""
        with open(path, "rb") as f:
            data = f.read()
        if trusted_keys is not None:
            from .signing import verify_bytes

            verify_bytes(data, path, trusted_keys)
        exe = deserialize(data, str(path))
        exe.library()
        if "_native_saved" in exe.__dict__:
            from .native import native_program

            native_program(exe)  # its object code checked and linked now, not at the first run
        return exe


_link_lock = threading.Lock()


# ---------------------------------------------------------------- linking

class LinkedKernel:
    """A ``KernelEntry`` linked into this process, its ctypes prototypes made once."""

    def __init__(self, entry: KernelEntry):
        from ..codegen import jit
        from ..codegen.llvm import PYARRAY_SUFFIX

        self.name = entry.name
        n_args = len(entry.arg_dtypes)
        if len(entry.arg_ndims) != n_args or not entry.variants or entry.variants[-1][0] != ():
            raise FormatError(f"kernel {entry.name}: arg_dtypes/arg_ndims differ in length or the last variant "
                              f"is not the general one (empty conds)")
        for a, d, *_ in [s for s in entry.shape_vars] + [c for conds, _ in entry.variants for c in conds]:
            if not (0 <= a < n_args and 0 <= d < entry.arg_ndims[a]):
                raise FormatError(f"kernel {entry.name}: (arg {a}, dim {d}) is not a dimension of its arguments")
        objects = entry.object_code if isinstance(entry.object_code, tuple) else (entry.object_code,)
        self._objects = [jit.LoadedObject(bytes(o)) for o in objects]
        proto = ctypes.CFUNCTYPE(ctypes.c_int32, *([ctypes.py_object] * n_args
                                                   + [ctypes.c_int64] * len(entry.shape_vars) + [ctypes.c_int32]))
        cfuncs = []
        for _, symbol in entry.variants:
            symbol = symbol if symbol.endswith(PYARRAY_SUFFIX) else symbol + PYARRAY_SUFFIX
            cfuncs.append(proto(self._address(symbol)))
        self.general = cfuncs[-1]
        self.choices = tuple((conds, cf) for (conds, _), cf in zip(entry.variants[:-1], cfuncs[:-1]))
        self.variant_symbols = tuple(sym for _, sym in entry.variants)
        self.dtypes = tuple(numpy_dtype(d) for d in entry.arg_dtypes)
        self.ndims = tuple(entry.arg_ndims)
        self.shape_vars = tuple(entry.shape_vars)
        self.assert_messages = tuple(entry.assert_messages)
        self.call = kernel_call(self)

    def _address(self, symbol: str) -> int:
        for obj in self._objects:
            try:
                return obj.address(symbol)
            except NimbleError:
                continue
        raise FormatError(f"kernel {self.name}: symbol {symbol!r} is in none of its object files")

    def __call__(self, vals: list) -> None:
        """Run on ``vals`` (inputs then preallocated outputs); ``self.call`` is the same steps as a
        closure (``kernel_call``), which comes here for anything but the expected arrays."""
        if len(vals) != len(self.dtypes):
            raise NimbleError(f"kernel {self.name}: expected {len(self.dtypes)} arguments, got {len(vals)}")
        for v, dt, nd in zip(vals, self.dtypes, self.ndims):
            if v.__class__ is not np.ndarray or v.dtype is not dt or v.ndim != nd:
                self._check_args(vals)
        svals = [vals[a].shape[d] for a, d in self.shape_vars]
        cfunc = self.general
        for conds, cf in self.choices:
            if all(vals[a].shape[d] % factor == 0 for a, d, factor in conds):
                cfunc = cf
                break
        status = cfunc(*vals, *svals, num_threads())
        if status:
            self._raise_status(status, vals)

    def _check_args(self, vals: list) -> None:
        for i, (v, dt, nd) in enumerate(zip(vals, self.dtypes, self.ndims)):
            if not isinstance(v, np.ndarray):
                raise NimbleTypeError(f"kernel {self.name}: argument #{i} must be a tensor, got {type(v).__name__}")
            if v.dtype != dt:
                raise NimbleTypeError(f"kernel {self.name}: argument #{i} must have dtype {dt}, got {v.dtype}")
            if v.ndim != nd:
                raise ShapeError(f"kernel {self.name}: argument #{i} must have rank {nd}, got shape {v.shape}")
            if not v.flags.c_contiguous:
                raise ShapeError(f"kernel {self.name}: argument #{i} must be C-contiguous")

    def _raise_status(self, status: int, vals: list = ()):
        from ..codegen.llvm import SHAPE_STATUS

        args = describe_arguments(vals)
        if SHAPE_STATUS <= status < SHAPE_STATUS + len(self.dtypes):
            k = status - SHAPE_STATUS
            got = f" (shape {tuple(vals[k].shape)})" if k < len(vals) and hasattr(vals[k], "shape") else ""
            sizes = "; ".join(f"dim {d} of argument #{a} is {vals[a].shape[d]}" for a, d in self.shape_vars
                              if a < len(vals) and d < getattr(vals[a], "ndim", 0))
            raise ShapeError(f"{self.name}: argument #{k}{got} has a rank or dimension that disagrees with the "
                             f"other arguments{f' ({sizes})' if sizes else ''}; arguments: {args}")
        if status == 1:
            raise MemoryError(f"{self.name}: the kernel could not allocate its temporary buffers")
        if 2 <= status < 2 + len(self.assert_messages):
            shapes = [tuple(v.shape) if isinstance(v, np.ndarray) else None for v in vals]
            raise OutOfRangeError(f"{self.name}: {name_dims(self.assert_messages[status - 2], shapes)}; "
                                  f"arguments: {args}")
        raise NimbleError(f"{self.name}: the kernel returned the unknown status {status}")


_DIM_NAME = re.compile(r"\bd(\d+)_(\d+)\b")


def describe_arguments(vals) -> str:
    """``#0 float32 (3, 4), #1 ...``: a kernel call's arguments, for error messages."""
    return ", ".join(f"#{i} {v.dtype} {tuple(v.shape)}" if isinstance(v, np.ndarray) else f"#{i} {type(v).__name__}"
                     for i, v in enumerate(vals)) or "none"


def name_dims(text: str, shapes) -> str:
    """An assert message with the kernel's internal dim names (``d<arg>_<dim>``, as generated
    kernels name them) replaced by the argument, the dim and its size in this call (``shapes``:
    each argument's shape, None for a non-tensor)."""
    def named(m):
        a, d = int(m.group(1)), int(m.group(2))
        if a < len(shapes) and shapes[a] is not None and d < len(shapes[a]):
            return f"dim {d} of argument #{a} (= {shapes[a][d]})"
        return m.group(0)
    return _DIM_NAME.sub(named, text)


class LinkedHostFunc:
    """A ``HostFuncEntry`` resolved to its Python function."""

    def __init__(self, entry: HostFuncEntry):
        from ..ops import get_op

        if entry.kind != "shape_func":
            raise FormatError(f"host function {entry.name}: unknown kind {entry.kind!r} (known: 'shape_func')")
        try:
            op = get_op(entry.op)
            self.attrs = op.full_attrs(dict(entry.attrs))
        except NimbleError as exc:
            raise FormatError(f"host function {entry.name}: {exc}") from None
        bad = [m for m in entry.input_modes if m not in ("value", "shape")]
        if bad:
            raise FormatError(f"host function {entry.name}: input modes must be 'value' or 'shape', got {bad}")
        self.name = entry.name
        self.op = entry.op
        self.shape_func = op.shape_func
        self.modes = tuple(entry.input_modes)

    def _input(self, v, mode: str):
        if isinstance(v, ADT):
            return [self._input(x, mode) for x in v.fields]
        return np.array(v.shape, dtype=np.int64) if mode == "shape" else v

    def __call__(self, vals: list, output_count: int) -> None:
        n_in = len(vals) - output_count
        modes = self.modes or ("value",) * n_in
        ins = [self._input(v, m) for v, m in zip(vals[:n_in], modes)]
        shapes = self.shape_func(*ins, **self.attrs)
        if len(shapes) != output_count:
            raise ShapeError(f"{self.name}: the shape function of {self.op} gave {len(shapes)} shapes for "
                             f"{output_count} output registers")
        for k, (out, s) in enumerate(zip(vals[n_in:], shapes)):
            s = np.asarray(s, dtype=np.int64)
            if out.shape != s.shape:
                raise ShapeError(f"{self.name}: output {k} of the shape function of {self.op} is a rank-{s.size} "
                                 f"shape, but its register holds an array of shape {out.shape}")
            out[...] = s


def link_packed(entry):
    """The callable for one packed-function entry."""
    if isinstance(entry, KernelEntry):
        return LinkedKernel(entry)
    from ..dispatch.table import DispatchEntry

    from .linked_dispatch import LinkedDispatch

    if isinstance(entry, DispatchEntry):
        return LinkedDispatch(entry)
    if isinstance(entry, HostFuncEntry):
        from .host_shapes import HOST_KINDS

        if entry.kind in HOST_KINDS:
            return HOST_KINDS[entry.kind](entry)
        return LinkedHostFunc(entry)
    raise FormatError(f"packed function {entry!r} is neither a KernelEntry nor a HostFuncEntry")


# ---------------------------------------------------------------- serialisation

def _encode_attr(v):
    if isinstance(v, tuple):
        return {"__tuple__": [_encode_attr(x) for x in v]}
    if isinstance(v, list):
        return [_encode_attr(x) for x in v]
    if isinstance(v, dict):
        return {"__dict__": [[k, _encode_attr(x)] for k, x in v.items()]}
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise FormatError(f"save: attribute value {v!r} ({type(v).__name__}) cannot be written")


def _decode_attr(v):
    if isinstance(v, dict):
        if "__tuple__" in v:
            return tuple(_decode_attr(x) for x in v["__tuple__"])
        return {k: _decode_attr(x) for k, x in v["__dict__"]}
    if isinstance(v, list):
        return [_decode_attr(x) for x in v]
    return v


def serialize(exe: Executable) -> bytes:
    sections: list[bytes] = []

    def section(blob: bytes) -> int:
        sections.append(blob)
        return len(sections) - 1

    constants = []
    for i, c in enumerate(exe.constants):
        buf = io.BytesIO()
        c = np.asarray(c, order="C")
        extended = c.dtype.name if is_extended(c.dtype.name) else None
        if extended:  # an ml_dtypes dtype: its bits as unsigned ints, its name beside them
            c = c.view(f"uint{8 * c.dtype.itemsize}")
        try:
            np.save(buf, c, allow_pickle=False)
        except ValueError as exc:
            raise FormatError(f"save: constant {i} ({c.dtype}) cannot be written without pickle") from exc
        constants.append({"section": section(buf.getvalue()), "dtype": extended} if extended else
                         section(buf.getvalue()))
    from ..dispatch.table import DispatchEntry, dispatch_to_json

    def kernel_json(p: KernelEntry) -> dict:
        objects = p.object_code if isinstance(p.object_code, tuple) else (p.object_code,)
        return {"type": "kernel", "name": p.name, "objects": [section(bytes(o)) for o in objects],
                "variants": [[[list(c) for c in conds], sym] for conds, sym in p.variants],
                "arg_dtypes": list(p.arg_dtypes), "arg_ndims": list(p.arg_ndims),
                "shape_vars": [list(s) for s in p.shape_vars], "assert_messages": list(p.assert_messages)}

    packed = []
    for p in exe.packed:
        if isinstance(p, KernelEntry):
            packed.append(kernel_json(p))
        elif isinstance(p, DispatchEntry):
            packed.append(dispatch_to_json(p, kernel_json))
        elif isinstance(p, HostFuncEntry):
            packed.append({"type": "host", "name": p.name, "kind": p.kind, "op": p.op,
                           "attrs": _encode_attr(dict(p.attrs)), "input_modes": list(p.input_modes)})
        else:
            raise FormatError(f"save: packed function {p!r} is neither a KernelEntry nor a HostFuncEntry")
    from ..codegen import parallel
    from .native import native_section

    par_version, par_object = parallel.saved_object()
    par = {"abi": parallel.ENTRY, "version": par_version, "object": section(par_object)}
    native = native_section(exe, section)
    offsets, pos = [], 0
    for s in sections:
        offsets.append([pos, len(s)])
        pos += len(s)
    header = json.dumps({
        "functions": [function_to_json(f) for f in exe.functions], "constants": constants, "packed": packed,
        "entry": dict(exe.entry), "metadata": _encode_attr(dict(exe.metadata)), "sections": offsets,
        "parallel": par, **({"native": native} if native is not None else {}),
    }, separators=(",", ":")).encode()
    total = _PREAMBLE.size + len(header) + pos + _DIGEST
    body = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(header), total) + header + b"".join(sections)
    return body + hashlib.sha256(body).digest()


def deserialize(data: bytes, where: str = "<bytes>") -> Executable:
    """The executable in ``data``; ``FormatError`` naming what is wrong with it."""
    if len(data) < _PREAMBLE.size + _DIGEST:
        raise FormatError(f"{where}: truncated: {len(data)} bytes is shorter than any nimble executable")
    magic, version, header_len, total = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"{where}: not a nimble executable (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise FormatError(f"{where}: format version {version} is not supported (this nimble reads version "
                          f"{FORMAT_VERSION}); rebuild the executable")
    if len(data) < total:
        raise FormatError(f"{where}: truncated: {len(data)} bytes, the file says {total}")
    if len(data) > total:
        raise FormatError(f"{where}: {len(data) - total} unexpected bytes after the end ({total} bytes)")
    if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
        raise FormatError(f"{where}: checksum mismatch: the file is corrupt or was altered")
    if not _PREAMBLE.size <= _PREAMBLE.size + header_len <= total - _DIGEST:
        raise FormatError(f"{where}: the header ({header_len} bytes) runs past the end of the file")
    try:
        header = json.loads(data[_PREAMBLE.size:_PREAMBLE.size + header_len])
        if not isinstance(header, dict):
            raise FormatError(f"the header must be a JSON object, got {type(header).__name__}")
        base = _PREAMBLE.size + header_len
        sections = validate.sections_of(data, header["sections"], base, total - _DIGEST)
        metadata = _decode_attr(header["metadata"])
        if not isinstance(metadata, dict):
            raise FormatError("metadata must be a JSON object")
        check_target(metadata, where)
        if "parallel" in header:
            _register_parallel(header["parallel"], sections)
        constants = tuple(_load_constant(sections, i, k) for k, i in enumerate(header["constants"]))
        packed = tuple(_packed_from(p, sections) for p in header["packed"])
        functions = tuple(function_from_json(f) for f in header["functions"])
        entry = {str(k): int(v) for k, v in header["entry"].items()}
        if any(not 0 <= v < len(functions) for v in entry.values()):
            raise FormatError(f"an entry point names no function (there are {len(functions)}): {entry}"[:300])
        exe = Executable(functions, constants, packed, entry, metadata)
        if "native" in header:
            from .native import load_native_section

            load_native_section(exe, header["native"], sections)
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from None
    except NimbleError as exc:
        raise FormatError(f"{where}: malformed executable ({exc})") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        raise FormatError(f"{where}: malformed header ({type(exc).__name__}: {exc})"[:1000]) from None
    return exe


def _register_parallel(data: dict, sections: list) -> None:
    """Link the parallel-for runtime the file carries when it is this nimble's (no LLVM needed);
    an older one is ignored and the runtime compiled instead (kernels only name its ABI entry)."""
    from ..codegen import parallel

    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise FormatError("parallel runtime: expected {abi, version, object}")
    if data.get("abi") not in (parallel.ENTRY, parallel.LEGACY_ENTRY):
        raise FormatError(f"parallel runtime: ABI {str(data.get('abi'))[:60]!r} is not this nimble's "
                          f"{parallel.ENTRY!r}; rebuild the executable")
    if data["version"] != parallel.version():
        return
    blob = validate.section_ref(sections, data.get("object"), "parallel runtime")
    defined, _ = validate.object_symbols(blob, "parallel runtime")
    if parallel.ENTRY not in defined:
        raise FormatError(f"parallel runtime: the object does not define {parallel.ENTRY}")
    parallel.register(blob, data["version"])


def _load_constant(sections: list, ref, k: int = 0) -> np.ndarray:
    """Constant `k`: ``ref`` is its section, or {section, dtype} for an ml_dtypes dtype saved as its bits."""
    extended = ref.get("dtype") if isinstance(ref, dict) else None
    blob = validate.section_ref(sections, ref.get("section") if isinstance(ref, dict) else ref, f"constant {k}")
    try:
        arr = np.load(io.BytesIO(blob), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy's parser raises many kinds on damaged .npy bytes
        raise FormatError(f"constant {k}: not a valid .npy array ({type(exc).__name__}: {exc})"[:500]) from None
    arr = validate.check_constant_array(arr, k)
    if isinstance(ref, dict):
        arr = validate.extended_constant(arr, extended, k)
    arr = np.asarray(arr, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    arr.flags.writeable = False
    return arr


def _packed_from(p: dict, sections: list):
    if not isinstance(p, dict) or not isinstance(p.get("type"), str):
        raise FormatError(f"a packed function must be a JSON object with a type, got {str(p)[:100]}")
    if p["type"] == "kernel":
        validate.check_kernel_fields(p)
        objects = tuple(validate.section_ref(sections, i, f"kernel {p['name']}") for i in p["objects"])
        validate.check_symbols(f"kernel {p['name']}", objects, [sym for _, sym in p["variants"]])
        return KernelEntry(p["name"], objects if len(objects) > 1 else objects[0],
                           tuple((tuple(tuple(c) for c in conds), sym) for conds, sym in p["variants"]),
                           tuple(p["arg_dtypes"]), tuple(p["arg_ndims"]), tuple(tuple(s) for s in p["shape_vars"]),
                           tuple(p["assert_messages"]))
    if p["type"] == "host":
        if not all(isinstance(p.get(k), str) for k in ("name", "kind", "op")):
            raise FormatError(f"host function: name, kind and op must be strings, got {str(p)[:200]}")
        return HostFuncEntry(p["name"], p["kind"], p["op"], _decode_attr(p["attrs"]), tuple(p["input_modes"]))
    if p["type"] == "dispatch":
        from ..dispatch.table import dispatch_from_json

        return dispatch_from_json(p, lambda k: _packed_from(k, sections))
    raise FormatError(f"unknown packed function type {p['type']!r}")


def check_target(metadata: dict, where: str) -> None:
    """``FormatError`` unless this host can run code built for the metadata's target."""
    target = metadata.get("target", "llvm")
    for key in ("target", "triple", "cpu", "features"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            raise FormatError(f"{where}: metadata {key!r} must be a string, got {metadata[key]!r}"[:300])
    if not target.split() or target.split()[0] != "llvm":
        raise FormatError(f"{where}: built for target {target!r}; this VM runs llvm (CPU) code only")
    if not metadata.get("features") and not metadata.get("triple"):
        return
    from ..codegen import jit

    h = jit.host()
    if metadata.get("triple") and metadata["triple"].split("-")[0] != h.triple.split("-")[0]:
        raise FormatError(f"{where}: built for {metadata['triple']}, this host is {h.triple}")
    have = {f[1:] for f in h.features.split(",") if f.startswith("+")}
    want = [f[1:] for f in (metadata.get("features") or "").split(",") if f.startswith("+")]
    missing = [f for f in want if f not in have]
    if missing and h.features:
        raise FormatError(f"{where}: built for CPU {metadata.get('cpu')!r}; this CPU ({h.cpu}) lacks the features "
                          f"{', '.join(sorted(missing)[:12])}{' ...' if len(missing) > 12 else ''}")
