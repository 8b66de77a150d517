"""The Nimble virtual machine: bytecode, executables (save/load), the interpreter, the storage pool.

    from nimble.vm import Executable, VirtualMachine
    vm = VirtualMachine(Executable.load("model.nimble"))
    out = vm.run(x)
"""
from .bytecode import (  # noqa: F401
    AllocADT, AllocClosure, AllocStorage, AllocTensor, AllocTensorReg, DeviceCopy, Fatal, GetField, GetTag, Goto,
    If, Instruction, Invoke, InvokeClosure, InvokePacked, KillRegister, LoadConst, LoadConsti, Move, ReshapeTensor,
    Ret, ShapeOf, VMFunction, disassemble, from_json, to_json,
)
from .executable import Executable, HostFuncEntry, KernelEntry, host_metadata  # noqa: F401
from .interpreter import PythonVM  # noqa: F401
from .machine import NativeVirtualMachine, VirtualMachine  # noqa: F401
from .profile import ProfileReport  # noqa: F401
from .storage import StoragePool  # noqa: F401
from .values import ADT, Closure, to_python  # noqa: F401
