#!/usr/bin/python3
"""Writes a torchtext Vocab the way torchtext 0.14.1 torch.save's one (its bundles' xlmr.vocab.pt and
roberta.vocab.pt): the nn.Module torchtext.vocab.vocab.Vocab wrapping a torchtext._torchtext.Vocab,
which pickles its state (version, [default_index]?, itos, []). Debian's torchtext has no C++ extension,
so a stand-in class with the same module, name and state takes the pybind object's place.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
import tt_shim  # noqa: E402


class Vocab:
    """Stands for the pybind class torchtext._torchtext.Vocab (its pickled form: NEWOBJ + BUILD(state))."""

    def __init__(self, itos, default_index=None):
        self.state = ("0.0.2", [] if default_index is None else [default_index], list(itos), [])

    def __getstate__(self):
        return self.state

    def __setstate__(self, state):
        self.state = state


Vocab.__module__ = "torchtext._torchtext"


def _install():
    tt_shim.import_torchtext({"Vocab": Vocab})
    import torchtext.vocab  # noqa: F401  (its module "vocab" is shadowed by the factory function "vocab")
    return sys.modules["torchtext.vocab.vocab"].Vocab


def save_vocab(path, itos, default_index=None):
    module_class = _install()
    torch.save(module_class(Vocab(itos, default_index)), path)


def lookup(itos, default_index, tokens):
    index = {}
    for i, t in enumerate(itos):
        index.setdefault(t, i)
    return [index.get(t, default_index) for t in tokens]
