"""Imports Debian's torchtext 0.14.1, whose C++ extension is a stub: the research notes' shim stands in for
torchtext._torchtext (its classes raise when used), which is enough for the models. `extra` adds real
attributes to the stand-in module (make_vocab.py's Vocab)."""
import importlib.machinery
import sys
import types


def import_torchtext(extra=None):
    m = types.ModuleType("torchtext._torchtext")
    m.__spec__ = importlib.machinery.ModuleSpec("torchtext._torchtext", None)

    class _Missing:
        def __init__(self, *a, **k):
            raise RuntimeError("torchtext C++ extension missing in Debian build")

    m.__getattr__ = lambda name: type(name, (_Missing,), {})
    for name, value in (extra or {}).items():
        setattr(m, name, value)
    sys.modules["torchtext._torchtext"] = m
    import torchtext
    import torchtext.models  # noqa: F401
    return torchtext
