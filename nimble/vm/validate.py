"""Checks an executable's parts must pass before anything reaches numpy or the linker.

An executable is code: the checksum only catches accidents, so every section reference, every
kernel description and every object file is checked here, and anything malformed is a
``FormatError``. Object files are parsed (ELF64 relocatable, this host's machine): header, section
table, string tables, symbols, relocations and undefined symbols, so that zeroed or truncated
code never reaches LLVM's RuntimeDyld (which aborts the process on malformed input).
"""
from __future__ import annotations

import struct

import numpy as np

from ..dtypes import EXTENDED_DTYPES, numpy_dtype
from ..errors import FormatError

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # ELF64 header
_SHDR = struct.Struct("<IIQQQQIIQQ")  # ELF64 section header
_SYM = struct.Struct("<IBBHQQ")  # ELF64 symbol
_RELA = struct.Struct("<QQq")  # ELF64 relocation with addend
_MACHINES = {"x86_64": 62, "aarch64": 183, "arm64": 183, "ppc64le": 21, "riscv64": 243}
# relocation types LLVM's RuntimeDyld implements (others abort the process): x86_64
_RELOCATION_TYPES = {62: frozenset({0, 1, 2, 3, 4, 9, 10, 11, 24, 25, 26, 41, 42})}
SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 2, 3, 4, 8, 9
SHN_LORESERVE = 0xFF00
KERNEL_DTYPES = ("float32", "float64", "int32", "int64", "bool", "int8", "uint8", "float16", "int16", "uint16", "uint32",
                 "uint64") + tuple(EXTENDED_DTYPES)
MAX_RANK = 32


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def sections_of(data: bytes, table, base: int, end: int) -> list:
    """The section blobs of ``data[base:end]`` named by ``table`` ([[offset, size], ...])."""
    if not isinstance(table, list):
        raise FormatError(f"the section table must be a list, got {type(table).__name__}")
    out = []
    for k, item in enumerate(table):
        if not (isinstance(item, list) and len(item) == 2 and all(is_int(x) for x in item)):
            raise FormatError(f"section {k}: expected [offset, size] integers, got {item!r}"[:200])
        off, size = item
        if off < 0 or size < 0 or base + off + size > end:
            raise FormatError(f"section {k}: bytes {off}..{off + size} lie outside the {end - base} bytes of "
                              f"sections")
        out.append(data[base + off:base + off + size])
    return out


def section_ref(sections: list, i, what: str) -> bytes:
    if not is_int(i) or not 0 <= i < len(sections):
        raise FormatError(f"{what}: section index {i!r} is not one of the {len(sections)} sections")
    return sections[i]


def check_kernel_fields(p: dict) -> None:
    """Types and ranges of a kernel record's fields (the linker trusts them)."""
    name = p.get("name")
    if not isinstance(name, str) or not name:
        raise FormatError(f"kernel name must be a non-empty string, got {name!r}"[:200])
    dtypes, ndims, svars = p.get("arg_dtypes"), p.get("arg_ndims"), p.get("shape_vars")
    if not isinstance(dtypes, list) or not all(isinstance(d, str) and d in KERNEL_DTYPES for d in dtypes):
        raise FormatError(f"kernel {name}: arg_dtypes must be names among {KERNEL_DTYPES}, got {dtypes!r}"[:300])
    if not isinstance(ndims, list) or len(ndims) != len(dtypes) or not all(is_int(n) and 0 <= n <= MAX_RANK
                                                                          for n in ndims):
        raise FormatError(f"kernel {name}: arg_ndims must be one rank (0..{MAX_RANK}) per argument, got {ndims!r}"[:300])
    variants = p.get("variants")
    if not isinstance(variants, list) or not variants:
        raise FormatError(f"kernel {name}: variants must be a non-empty list")
    for v in variants:
        if not (isinstance(v, list) and len(v) == 2 and isinstance(v[0], list) and isinstance(v[1], str) and v[1]):
            raise FormatError(f"kernel {name}: a variant must be [conds, symbol], got {v!r}"[:300])
        for c in v[0]:
            if not (isinstance(c, list) and len(c) == 3 and all(is_int(x) for x in c) and c[2] >= 1):
                raise FormatError(f"kernel {name}: a variant condition must be [arg, dim, factor >= 1], got {c!r}"[:300])
            _check_dim(name, ndims, c[0], c[1])
    if not isinstance(svars, list):
        raise FormatError(f"kernel {name}: shape_vars must be a list")
    for s in svars:
        if not (isinstance(s, list) and len(s) == 2 and all(is_int(x) for x in s)):
            raise FormatError(f"kernel {name}: a shape var must be [arg, dim], got {s!r}"[:300])
        _check_dim(name, ndims, *s)
    msgs = p.get("assert_messages")
    if not isinstance(msgs, list) or not all(isinstance(m, str) for m in msgs):
        raise FormatError(f"kernel {name}: assert_messages must be a list of strings")
    objects = p.get("objects")
    if not isinstance(objects, list) or not objects:
        raise FormatError(f"kernel {name}: objects must be a non-empty list of section indices")


def _check_dim(name: str, ndims: list, a: int, d: int) -> None:
    if not (0 <= a < len(ndims) and 0 <= d < ndims[a]):
        raise FormatError(f"kernel {name}: (arg {a}, dim {d}) is not a dimension of its arguments")


def check_symbols(name: str, objects, symbols) -> None:
    """Every variant's entry point is defined by one of the kernel's (checked) object files."""
    from ..codegen.llvm import PYARRAY_SUFFIX

    defined = set()
    for o in objects:
        defined |= object_symbols(o, name)[0]
    for sym in symbols:
        entry = sym if sym.endswith(PYARRAY_SUFFIX) else sym + PYARRAY_SUFFIX
        if entry not in defined:
            raise FormatError(f"kernel {name}: symbol {entry!r} is defined in none of its object files")


def _host_machine() -> int | None:
    from ..codegen import jit

    return _MACHINES.get(jit.host().triple.split("-")[0])


def object_symbols(obj: bytes, what: str = "object file") -> tuple:
    """(defined, undefined) global symbol names of an ELF64 relocatable object, after checking its
    header, section table, string tables, symbols and relocations; ``FormatError`` otherwise."""
    try:
        return _parse_elf(obj, what)
    except struct.error as exc:
        raise FormatError(f"{what}: object code truncated ({exc})") from None


def _parse_elf(obj: bytes, what: str) -> tuple:
    n = len(obj)
    if n < _EHDR.size:
        raise FormatError(f"{what}: object code truncated: {n} bytes is shorter than an ELF header")
    (ident, e_type, e_machine, e_version, _entry, _phoff, e_shoff, _flags, e_ehsize, _phentsize, _phnum,
     e_shentsize, e_shnum, e_shstrndx) = _EHDR.unpack_from(obj)
    if ident[:4] != b"\x7fELF":
        raise FormatError(f"{what}: object code is not an ELF file (magic {bytes(ident[:4])!r})")
    if ident[4] != 2 or ident[5] != 1 or ident[6] != 1 or e_version != 1:
        raise FormatError(f"{what}: object code is not a little-endian ELF64 version-1 file")
    if e_type != 1:
        raise FormatError(f"{what}: object code is ELF type {e_type}, expected 1 (relocatable)")
    machine = _host_machine()
    if machine is not None and e_machine != machine:
        raise FormatError(f"{what}: object code is for ELF machine {e_machine}, this host is {machine}")
    if e_ehsize != _EHDR.size or e_shentsize != _SHDR.size:
        raise FormatError(f"{what}: object code has header sizes {e_ehsize}/{e_shentsize}, expected 64/64")
    if not 1 <= e_shnum < SHN_LORESERVE or e_shoff < _EHDR.size or e_shoff + e_shnum * _SHDR.size > n:
        raise FormatError(f"{what}: the section table ({e_shnum} entries at {e_shoff}) lies outside the "
                          f"{n} bytes of object code")
    if not 0 < e_shstrndx < e_shnum:
        raise FormatError(f"{what}: section-name table index {e_shstrndx} out of range")
    shdrs = [_SHDR.unpack_from(obj, e_shoff + k * _SHDR.size) for k in range(e_shnum)]
    for k, (_nm, typ, _fl, _addr, off, size, link, info, align, entsize) in enumerate(shdrs):
        if typ != SHT_NOBITS and k and off + size > n:
            raise FormatError(f"{what}: section {k} (bytes {off}..{off + size}) lies outside the {n} bytes")
        if link >= e_shnum or align > 1 << 16:
            raise FormatError(f"{what}: section {k} links to section {link} or aligns to {align}: out of range")
        if typ in (SHT_RELA, SHT_REL) and (info >= e_shnum or shdrs[link][1] != SHT_SYMTAB):
            raise FormatError(f"{what}: relocation section {k} applies to section {info} with symbols in {link}")
    if shdrs[e_shstrndx][1] != SHT_STRTAB:
        raise FormatError(f"{what}: section-name table {e_shstrndx} is not a string table")
    shstr_size = shdrs[e_shstrndx][5]
    if any(h[0] >= max(shstr_size, 1) and h[1] != 0 for h in shdrs):
        raise FormatError(f"{what}: a section name lies outside the section-name table")
    symtabs = [k for k, h in enumerate(shdrs) if h[1] == SHT_SYMTAB]
    if len(symtabs) != 1:
        raise FormatError(f"{what}: expected one symbol table, found {len(symtabs)}")
    _, _, _, _, s_off, s_size, s_link, _, _, s_ent = shdrs[symtabs[0]]
    if s_ent != _SYM.size or s_size % _SYM.size or shdrs[s_link][1] != SHT_STRTAB:
        raise FormatError(f"{what}: the symbol table has entries of {s_ent} bytes or no string table")
    str_off, str_size = shdrs[s_link][4], shdrs[s_link][5]
    n_syms = s_size // _SYM.size
    defined, undefined = set(), set()
    for j in range(n_syms):
        st_name, st_info, _other, st_shndx, st_value, st_size = _SYM.unpack_from(obj, s_off + j * _SYM.size)
        if st_name >= max(str_size, 1) or (st_shndx < SHN_LORESERVE and st_shndx >= e_shnum):
            raise FormatError(f"{what}: symbol {j} names string {st_name} or section {st_shndx}: out of range")
        if not st_name:
            continue
        end = obj.find(b"\0", str_off + st_name, str_off + str_size)
        if end < 0:
            raise FormatError(f"{what}: symbol {j}'s name is not terminated inside the string table")
        sym = obj[str_off + st_name:end].decode("utf-8", "replace")
        if st_shndx == 0:
            if st_info >> 4:  # global or weak
                undefined.add(sym)
        elif 0 < st_shndx < SHN_LORESERVE:
            sec = shdrs[st_shndx]
            if sec[1] != SHT_NOBITS and st_value + st_size > sec[5]:
                raise FormatError(f"{what}: symbol {sym!r} lies outside its section {st_shndx}")
            defined.add(sym)
    for k, (_nm, typ, _fl, _addr, off, size, link, info, _al, entsize) in enumerate(shdrs):
        if typ not in (SHT_RELA, SHT_REL):
            continue
        esize = _RELA.size if typ == SHT_RELA else 16
        if entsize != esize or size % esize:
            raise FormatError(f"{what}: relocation section {k} has entries of {entsize} bytes")
        target_size = shdrs[info][5] if info else None
        known = _RELOCATION_TYPES.get(e_machine)
        for j in range(size // esize):
            r_offset, r_info = struct.unpack_from("<QQ", obj, off + j * esize)
            if (r_info >> 32) >= n_syms or (target_size is not None and r_offset + 4 > target_size):
                raise FormatError(f"{what}: relocation {j} of section {k} points outside its symbols or section")
            if known is not None and (r_info & 0xFFFFFFFF) not in known:
                raise FormatError(f"{what}: relocation {j} of section {k} has the unsupported type "
                                  f"{r_info & 0xFFFFFFFF}")
    _check_resolvable(undefined - defined, what)
    return defined, undefined


def _check_resolvable(names: set, what: str) -> None:
    """Each symbol the object needs from outside must exist in this process (else LLVM aborts)."""
    if not names:
        return
    import llvmlite.binding as llvm

    from ..codegen import jit, parallel

    jit.host()
    # nimble's parallel-for runtime is registered before anything links (jit.LoadedObject)
    missing = sorted(s for s in names if s not in (parallel.ENTRY, parallel.LEGACY_ENTRY)
                     and not llvm.address_of_symbol(s))
    if missing:
        raise FormatError(f"{what}: the object code needs symbols this process lacks: {', '.join(missing[:8])}")


def extended_constant(arr, name, k: int) -> np.ndarray:
    """A constant of an ml_dtypes dtype, saved as the unsigned ints of its bits, as that dtype."""
    if not isinstance(name, str) or name not in EXTENDED_DTYPES:
        raise FormatError(f"constant {k}: dtype {str(name)[:40]!r} is not one of {sorted(EXTENDED_DTYPES)}")
    bits = np.dtype(f"uint{8 * EXTENDED_DTYPES[name]}")
    if not isinstance(arr, np.ndarray) or arr.dtype != bits:
        raise FormatError(f"constant {k}: the bits of a {name} constant must be {bits}, got {getattr(arr, 'dtype', arr)}")
    return arr.view(numpy_dtype(name))


def check_constant_array(arr, k: int) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype.hasobject or arr.dtype.kind not in "biufc":
        raise FormatError(f"constant {k}: expected a numeric array, got {getattr(arr, 'dtype', type(arr))}")
    return arr
