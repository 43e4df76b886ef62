"""The public API's surface is pinned: every name ``streamq`` exports, each function's
and method's signature, each property, each dataclass's fields and each exception's exit
code, written out as text and compared with tests/api_surface.txt. A change to the API
(a renamed argument, a new required one, a field gone) fails here as a readable diff;
when it is intended, regenerate the file and say so in the change:

    python -m tests.test_api_surface > tests/api_surface.txt

``streamq.sandbox``'s functions and its Sandbox are pinned the same way."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from pathlib import Path
from typing import Any

PINNED = Path(__file__).resolve().parent / "api_surface.txt"


def _sig(obj: Any) -> str:
    return str(inspect.signature(obj))


def _class(name: str, cls: type) -> list[str]:
    if issubclass(cls, enum.Enum):
        return [f"{name}: enum"] + [f"  {m.name} = {m.value!r}" for m in cls]
    if issubclass(cls, BaseException):
        code = getattr(cls, "exit_code", None)
        bases = ", ".join(b.__name__ for b in cls.__bases__)
        return [f"{name}: exception({bases}) exit_code={int(code) if code is not None else '-'}"]
    kind = "class"
    lines: list[str] = []
    if dataclasses.is_dataclass(cls):
        params = getattr(cls, "__dataclass_params__", None)
        kind = "dataclass(frozen)" if params is not None and params.frozen else "dataclass"
        for f in dataclasses.fields(cls):
            if f.name.startswith("_"):
                continue
            default = ("" if f.default is dataclasses.MISSING
                       and f.default_factory is dataclasses.MISSING
                       else f" = {f.default!r}" if f.default is not dataclasses.MISSING
                       else " = <factory>")
            lines.append(f"  field {f.name}: {f.type}{default}")
    else:
        lines.append(f"  __init__{_sig(cls.__init__)}")
    for attr, value in sorted(vars(cls).items()):
        if attr.startswith("_") and attr not in ("__enter__", "__exit__", "__iter__",
                                                 "__next__"):
            continue
        if isinstance(value, property):
            ret = inspect.signature(value.fget).return_annotation if value.fget else ""
            lines.append(f"  property {attr}: {ret}")
        elif isinstance(value, classmethod):
            lines.append(f"  classmethod {attr}{_sig(value.__func__)}")
        elif isinstance(value, staticmethod):
            lines.append(f"  staticmethod {attr}{_sig(value.__func__)}")
        elif inspect.isfunction(value):
            lines.append(f"  method {attr}{_sig(value)}")
        elif not callable(value) and attr.isupper():
            lines.append(f"  constant {attr} = {value!r}")
    return [f"{name}: {kind}", *lines]


def surface() -> list[str]:
    import streamq
    import streamq.sandbox

    out: list[str] = [f"streamq.__all__ = {sorted(streamq.__all__)}"]
    for module, names in (("streamq", sorted(streamq.__all__)),
                          ("streamq.sandbox", sorted(streamq.sandbox.__all__))):
        mod = streamq if module == "streamq" else streamq.sandbox
        for name in names:
            if name == "__version__":
                continue
            obj = getattr(mod, name)
            qual = f"{module}.{name}"
            if inspect.isclass(obj):
                out.extend(_class(qual, obj))
            elif inspect.isfunction(obj):
                out.append(f"{qual}{_sig(obj)}")
            else:
                out.append(f"{qual} = {obj!r}")
    return out


def test_the_api_surface_is_pinned() -> None:
    current = surface()
    pinned = PINNED.read_text().splitlines()
    if current != pinned:
        import difflib

        diff = "\n".join(difflib.unified_diff(pinned, current, "tests/api_surface.txt",
                                              "the API now", lineterm=""))
        raise AssertionError("the public API changed; if that is intended, regenerate "
                             "tests/api_surface.txt (python -m tests.test_api_surface > "
                             f"tests/api_surface.txt) and say so:\n{diff}")


def test_the_surface_covers_what_the_doc_promises() -> None:
    """The pinned text is about the real objects (it would not catch a stub)."""
    text = "\n".join(surface())
    for needle in ("streamq.Outbox: class", "method records(self, status: 'Statuses' = None",
                   "method refire(self, targets:", "method change_trigger(self, *,",
                   "streamq.RefireSummary: dataclass(frozen)", "field refired" not in text
                   and "property refired: int", "streamq.Refused: exception(StreamqError) "
                   "exit_code=5", "streamq.sandbox.start(*, port: 'int' = 0",
                   "streamq.sandbox.Sandbox: dataclass(frozen)"):
        assert needle in text, needle


if __name__ == "__main__":
    print("\n".join(surface()))
