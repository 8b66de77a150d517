"""The instruction set: JSON round trips, the disassembly, and bytecode the VM refuses to run."""
import json

import pytest
import vm_kernels as K
from test_vm_programs import list_exe

import nimble
from nimble.vm import bytecode as bc
from nimble.vm import VirtualMachine, VMFunction

ONE_OF_EACH = [
    bc.Move(1, 2), bc.Ret(3), bc.Invoke(1, (0, 1), 2), bc.InvokeClosure(4, (0,), 5),
    bc.InvokePacked(0, (0, 1, 2), 1), bc.AllocStorage(1, 64, 0, 2), bc.AllocTensor(2, 16, (2, 3), "float32", 3),
    bc.AllocTensorReg(2, 0, 1, "int64", 3), bc.AllocADT(1, (0, 1), 2), bc.AllocClosure(2, (0,), 1),
    bc.GetField(0, 1, 2), bc.GetTag(0, 1), bc.If(0, 1, 1, -3), bc.Goto(-2), bc.LoadConst(0, 1),
    bc.LoadConsti(-7, 1), bc.DeviceCopy(0, 0, 0, 1), bc.ShapeOf(0, 1), bc.ReshapeTensor(0, 1, 2),
    bc.KillRegister(3), bc.Fatal("unreachable: no pattern matched"),
]


def test_every_opcode_round_trips_through_json():
    assert {type(i).__name__ for i in ONE_OF_EACH} == set(bc.OPCODES)
    for ins in ONE_OF_EACH:
        assert bc.from_json(json.loads(json.dumps(bc.to_json(ins)))) == ins


@pytest.mark.parametrize("data,message", [
    (["Jump", 1], "unknown or malformed instruction"),
    (["Move", 1], "Move takes 2 fields, got 1"),
    (["Move", 1, "2"], "Move.dst must be an integer"),
    (["Invoke", 0, [1, 2.5], 3], "Invoke.args must be a list of integers"),
    (["Fatal", 3], "Fatal.message must be a string"),
])
def test_malformed_json_instructions_are_rejected(data, message):
    with pytest.raises(nimble.FormatError, match=message):
        bc.from_json(data)


def test_disassembly_reads_like_the_relay_vm():
    exe = list_exe()
    text = bc.disassemble(exe.functions[2], [f.name for f in exe.functions], [p.name for p in exe.packed])
    assert text == """\
def @sum($0 list, $1 acc) /* 10 registers */ {
   0: get_tag $2 <- tag($0)
   1: load_consti $3 <- 0
   2: if $2 == $3 then 3 else 4
   3: ret $1
   4: get_field $4 <- $0[0]
   5: get_field $5 <- $0[1]
   6: load_consti $6 <- 8
   7: alloc_storage $7 <- size=$6 align=64 device=0
   8: alloc_tensor $8 <- $7+0 [] int64
   9: invoke_packed @add_i64(in: $1, $4 | out: $8)
  10: invoke $9 <- @sum($5, $8)
  11: ret $9
}"""
    assert "alloc_adt $6 <- tag(1) [$0, $1]" in exe.disassemble()


@pytest.mark.parametrize("code,registers,message", [
    ((bc.Move(0, 5), bc.Ret(0)), 2, r"register \$5 outside the 2 registers"),
    ((bc.Goto(3), bc.Ret(0)), 1, "jump to 3 outside the function's 2 instructions"),
    ((bc.Move(0, 0),), 1, "the last instruction must be ret, goto, if or fatal"),
    ((bc.Invoke(0, (0, 0), 1), bc.Ret(1)), 2, "passes 2 arguments to a function of 1"),
    ((bc.InvokePacked(3, (0,), 1), bc.Ret(0)), 1, "packed_index 3 is out of range: the executable has 0"),
    ((bc.LoadConsti(8, 0), bc.AllocStorage(0, 64, 1, 0), bc.Ret(0)), 1, "device 1: this VM runs on the CPU"),
])
def test_malformed_bytecode_is_refused_before_running(code, registers, message):
    exe = K.executable([VMFunction("main", ("x",), code, registers)], [])
    with pytest.raises(nimble.FormatError, match=message):
        VirtualMachine(exe)
