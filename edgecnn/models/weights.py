"""Load local checkpoints safely: ``torch.load(weights_only=True)``, never pickled code, never a download."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from edgecnn.errors import EdgecnnError

_WRAPPERS = ("state_dict", "model", "model_state_dict", "net")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path``; unwraps ``{"state_dict": ...}``/``{"model": ...}`` and ``module.``."""
    p = Path(path)
    if not p.is_file():
        raise EdgecnnError(f"weights file not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgecnnError(
            f"cannot read weights {p}: {first[:200]} (expected a torch state dict saved with torch.save; "
            "pickled code is never executed)") from None
    for key in _WRAPPERS:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EdgecnnError(f"{p} holds no state dict of tensors (got {type(obj).__name__})")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise one readable error if ``state`` does not match ``model`` key for key and shape for shape."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or shapes):
        return

    def head(items: list[str]) -> str:
        more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
        return ", ".join(items[:3]) + more

    parts = []
    if missing:
        parts.append(f"missing keys: {head(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {head(unexpected)}")
    if shapes:
        parts.append(f"shape mismatch: {head(shapes)}")
    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    raise EdgecnnError(f"{source} does not match model {name}: " + "; ".join(parts))


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a local state dict into ``model`` (strict) and return the model."""
    state = read_state_dict(path)
    check_state_dict(model, state, source=str(path))
    model.load_state_dict(state, strict=True)
    return model
