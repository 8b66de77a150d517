"""The VM's instruction set: one frozen dataclass per opcode, a disassembler and a JSON form.

Every register field is an int, an index into the running frame's register file. A function's
parameters arrive in registers ``0 .. len(params) - 1``. Jumps (``If``, ``Goto``) are relative to
the jumping instruction. ``to_json(instr)`` is ``[opcode name, field, ...]`` with tuples as lists.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import FormatError


class Instruction:
    """Base class of every instruction; ``opname`` is its name in the disassembly."""

    opname = "instruction"
    __slots__ = ()


def _opcode(opname: str):
    def wrap(cls):
        cls = dataclass(frozen=True, slots=True)(cls)
        cls.opname = opname
        OPCODES[cls.__name__] = cls
        return cls

    return wrap


OPCODES: dict[str, type] = {}


@_opcode("move")
class Move(Instruction):
    """Copy register ``src`` into ``dst``."""

    src: int
    dst: int


@_opcode("ret")
class Ret(Instruction):
    """Return the value of ``result`` to the caller."""

    result: int


@_opcode("invoke")
class Invoke(Instruction):
    """Call VM function ``func_index`` with the values of ``args``; its result goes to ``dst``."""

    func_index: int
    args: tuple
    dst: int


@_opcode("invoke_closure")
class InvokeClosure(Instruction):
    """Call the closure in ``closure``: its captured values, then ``args``, become the parameters."""

    closure: int
    args: tuple
    dst: int


@_opcode("invoke_packed")
class InvokePacked(Instruction):
    """Call packed function ``packed_index``; the last ``output_count`` of ``args`` are outputs."""

    packed_index: int
    args: tuple
    output_count: int


@_opcode("alloc_storage")
class AllocStorage(Instruction):
    """Take ``size`` bytes (the int in register ``size``) aligned to ``alignment`` from the pool."""

    size: int
    alignment: int
    device: int
    dst: int


@_opcode("alloc_tensor")
class AllocTensor(Instruction):
    """A tensor of a constant ``shape`` and ``dtype`` viewing ``storage`` from byte ``offset``."""

    storage: int
    offset: int
    shape: tuple
    dtype: str
    dst: int


@_opcode("alloc_tensor_reg")
class AllocTensorReg(Instruction):
    """Like ``AllocTensor`` with the shape read from a 1-D int64 array in register ``shape_reg``."""

    storage: int
    offset: int
    shape_reg: int
    dtype: str
    dst: int


@_opcode("alloc_adt")
class AllocADT(Instruction):
    """A constructor value (tuples are tag 0) holding the values of ``fields``."""

    tag: int
    fields: tuple
    dst: int


@_opcode("alloc_closure")
class AllocClosure(Instruction):
    """A closure of VM function ``func_index`` capturing the values of ``captured``."""

    func_index: int
    captured: tuple
    dst: int


@_opcode("get_field")
class GetField(Instruction):
    """Field ``index`` of the ADT in ``obj``."""

    obj: int
    index: int
    dst: int


@_opcode("get_tag")
class GetTag(Instruction):
    """The constructor tag of the ADT in ``obj``, as a 0-d int64 array."""

    obj: int
    dst: int


@_opcode("if")
class If(Instruction):
    """Jump by ``true_offset`` if the values of ``test`` and ``target`` are equal, else ``false_offset``."""

    test: int
    target: int
    true_offset: int
    false_offset: int


@_opcode("goto")
class Goto(Instruction):
    """Jump by ``offset``."""

    offset: int


@_opcode("load_const")
class LoadConst(Instruction):
    """Constant ``const_index`` of the executable's constant pool."""

    const_index: int
    dst: int


@_opcode("load_consti")
class LoadConsti(Instruction):
    """The immediate ``value`` as a 0-d int64 array."""

    value: int
    dst: int


@_opcode("device_copy")
class DeviceCopy(Instruction):
    """Copy a tensor between devices (the CPU only: a copy)."""

    src: int
    src_device: int
    dst_device: int
    dst: int


@_opcode("shape_of")
class ShapeOf(Instruction):
    """The shape of the tensor in ``tensor`` as a 1-D int64 array."""

    tensor: int
    dst: int


@_opcode("reshape_tensor")
class ReshapeTensor(Instruction):
    """A view of ``tensor`` with the shape in register ``newshape`` (same element count)."""

    tensor: int
    newshape: int
    dst: int


@_opcode("kill")
class KillRegister(Instruction):
    """Drop the value of ``reg`` (its storage returns to the pool once nothing views it)."""

    reg: int


@_opcode("fatal")
class Fatal(Instruction):
    """Stop with an error (an unmatched pattern, an unreachable branch)."""

    message: str


@dataclass(frozen=True)
class VMFunction:
    """A VM function: parameter names (registers 0..n-1), its code and the size of its register file.

    ``dead_after`` is liveness metadata (``nimble.vm.bytecode_opt``): empty, or one tuple per
    instruction of the registers whose values both VMs drop once that instruction has run (what
    ``kill`` instructions do in the stream, without the instructions)."""

    name: str
    params: tuple
    instructions: tuple
    register_count: int
    dead_after: tuple = ()


# ---------------------------------------------------------------- disassembly

def _regs(rs) -> str:
    return ", ".join(f"${r}" for r in rs)


def _name(names, i: int, kind: str) -> str:
    return f"@{names[i]}" if names and 0 <= i < len(names) else f"{kind}[{i}]"


def format_instruction(ins: Instruction, pc: int = 0, func_names=(), packed_names=()) -> str:
    """One instruction as a line of disassembly (destination first, jumps as absolute targets)."""
    match ins:
        case Move(src, dst):
            return f"move ${dst} <- ${src}"
        case Ret(result):
            return f"ret ${result}"
        case Invoke(f, args, dst):
            return f"invoke ${dst} <- {_name(func_names, f, 'VMFunc')}({_regs(args)})"
        case InvokeClosure(c, args, dst):
            return f"invoke_closure ${dst} <- ${c}({_regs(args)})"
        case InvokePacked(p, args, n_out):
            ins_, outs = args[:len(args) - n_out], args[len(args) - n_out:]
            return f"invoke_packed {_name(packed_names, p, 'Packed')}(in: {_regs(ins_)} | out: {_regs(outs)})"
        case AllocStorage(size, align, device, dst):
            return f"alloc_storage ${dst} <- size=${size} align={align} device={device}"
        case AllocTensor(st, off, shape, dtype, dst):
            return f"alloc_tensor ${dst} <- ${st}+{off} [{', '.join(map(str, shape))}] {dtype}"
        case AllocTensorReg(st, off, shape_reg, dtype, dst):
            return f"alloc_tensor_reg ${dst} <- ${st}+{off} shape=${shape_reg} {dtype}"
        case AllocADT(tag, flds, dst):
            return f"alloc_adt ${dst} <- tag({tag}) [{_regs(flds)}]"
        case AllocClosure(f, captured, dst):
            return f"alloc_closure ${dst} <- {_name(func_names, f, 'VMFunc')} capturing [{_regs(captured)}]"
        case GetField(obj, index, dst):
            return f"get_field ${dst} <- ${obj}[{index}]"
        case GetTag(obj, dst):
            return f"get_tag ${dst} <- tag(${obj})"
        case If(test, target, t, f):
            return f"if ${test} == ${target} then {pc + t} else {pc + f}"
        case Goto(offset):
            return f"goto {pc + offset}"
        case LoadConst(c, dst):
            return f"load_const ${dst} <- Const[{c}]"
        case LoadConsti(value, dst):
            return f"load_consti ${dst} <- {value}"
        case DeviceCopy(src, sd, dd, dst):
            return f"device_copy ${dst} <- ${src} (device {sd} -> {dd})"
        case ShapeOf(t, dst):
            return f"shape_of ${dst} <- ${t}"
        case ReshapeTensor(t, ns, dst):
            return f"reshape_tensor ${dst} <- ${t} shape=${ns}"
        case KillRegister(reg):
            return f"kill ${reg}"
        case Fatal(message):
            return f"fatal {message!r}"
    raise FormatError(f"not an instruction: {ins!r}")


def disassemble(func: VMFunction, func_names=(), packed_names=()) -> str:
    """The function as text: a header, then one numbered line per instruction."""
    params = ", ".join(f"${i} {p}" for i, p in enumerate(func.params))
    lines = [f"def @{func.name}({params}) /* {func.register_count} registers */ {{"]
    width = len(str(max(len(func.instructions) - 1, 0)))
    for pc, ins in enumerate(func.instructions):
        dead = func.dead_after[pc] if func.dead_after else ()
        note = f"  ; dead: {_regs(dead)}" if dead else ""
        lines.append(f"  {pc:>{width}}: {format_instruction(ins, pc, func_names, packed_names)}{note}")
    lines.append("}")
    return "\n".join(lines)


# ---------------------------------------------------------------- JSON

def _to_plain(v):
    return [_to_plain(x) for x in v] if isinstance(v, tuple) else v


def to_json(instr: Instruction) -> list:
    """``[opcode name, field values...]``, tuples as lists."""
    return [type(instr).__name__] + [_to_plain(getattr(instr, f.name)) for f in fields(instr)]


def _field_value(cls, f, v):
    where = f"{cls.__name__}.{f.name}"
    if f.type == "tuple":
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            raise FormatError(f"bytecode: {where} must be a list of integers, got {v!r}")
        return tuple(v)
    if f.type == "str":
        if not isinstance(v, str):
            raise FormatError(f"bytecode: {where} must be a string, got {v!r}")
        return v
    if not isinstance(v, int) or isinstance(v, bool):
        raise FormatError(f"bytecode: {where} must be an integer, got {v!r}")
    return v


def from_json(data: list) -> Instruction:
    """The instruction ``to_json`` wrote; ``FormatError`` on an unknown opcode or malformed fields."""
    if not isinstance(data, list) or not data or data[0] not in OPCODES:
        raise FormatError(f"bytecode: unknown or malformed instruction {data!r}")
    cls = OPCODES[data[0]]
    fs = fields(cls)
    if len(data) != len(fs) + 1:
        raise FormatError(f"bytecode: {data[0]} takes {len(fs)} fields, got {len(data) - 1}: {data!r}")
    return cls(*(_field_value(cls, f, v) for f, v in zip(fs, data[1:])))


def function_to_json(func: VMFunction) -> dict:
    out = {"name": func.name, "params": list(func.params), "register_count": func.register_count,
           "instructions": [to_json(i) for i in func.instructions]}
    if func.dead_after:
        out["dead_after"] = [list(d) for d in func.dead_after]
    return out


def _dead_after_from_json(data, name: str, count: int) -> tuple:
    if data is None:
        return ()
    if not isinstance(data, list) or len(data) != count or not all(
            isinstance(d, list) and all(isinstance(r, int) and not isinstance(r, bool) for r in d) for d in data):
        raise FormatError(f"bytecode: @{name}: dead_after must be one list of register numbers per instruction "
                          f"({count}), got {str(data)[:200]}")
    return tuple(tuple(d) for d in data)


def function_from_json(data: dict) -> VMFunction:
    try:
        instructions = tuple(from_json(i) for i in data["instructions"])
        return VMFunction(str(data["name"]), tuple(str(p) for p in data["params"]), instructions,
                          int(data["register_count"]),
                          _dead_after_from_json(data.get("dead_after"), str(data["name"]), len(instructions)))
    except (KeyError, TypeError, AttributeError) as exc:
        raise FormatError(f"bytecode: malformed function record ({exc})") from None
