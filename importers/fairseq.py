"""fairseq checkpoints (a directory with model.pt [+ dict.txt], or the .pt file), read with
no fairseq installed and no pickle code run: the checkpoint's pickle goes through the
restricted unpickler, argparse.Namespace and friends become plain attribute data, and only
the tensors of `model` are taken (optimizer state is never touched)."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from ..formats import pickle, torchzip
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError, UsageError
from ..ir.layout import even_split
from ..ir.tensor import Tensor
from ..models import FAMILIES
from .base import Importer, require_exists

# Non-tensor classes fairseq pickles into checkpoints, kept as plain data (never imported):
# the legacy `args` Namespace, numpy scalars in metrics, and the meters of pre-2020 runs.
_DATA_CLASSES = [("argparse", "Namespace"), ("numpy.core.multiarray", "scalar"),
                 ("numpy._core.multiarray", "scalar"), ("numpy", "dtype"),
                 ("fairseq.meters", "AverageMeter"), ("fairseq.meters", "TimeMeter"),
                 ("fairseq.meters", "StopwatchMeter")]


@functools.cache
def allowed() -> dict:
    """The stand-in class of each, made when the first checkpoint is read (not at start-up)."""
    return {key: pickle.Stub.subclass(*key) for key in _DATA_CLASSES}

CHECKPOINT_NAMES = ("model.pt", "checkpoint_best.pt", "checkpoint_last.pt")
# The renames fairseq itself applies when it loads an older checkpoint (RobertaModel's
# upgrade_state_dict_named): RoBERTa lived in `decoder` until 2020, and the embedding
# LayerNorm was `emb_layer_norm` before the 2021 encoder refactor.
LEGACY_NAMES = [(re.compile(r"^decoder\."), "encoder."),
                (re.compile(r"\.emb_layer_norm\."), ".layernorm_embedding.")]
# Before 2019-10 fairseq's attention kept q, k and v stacked in one in_proj tensor (3D rows);
# fairseq splits it on load, and so does irconv (lazily, ir.layout.Split: read once for the three).
FUSED_QKV = re.compile(r"^(.*\.self_attn)\.in_proj_(weight|bias)$")


def split_qkv(tensor: Tensor, module: str, leaf: str) -> list[Tensor]:
    try:
        split = even_split(0, tensor.shape[0] if tensor.shape else 0, 3)
    except ValueError:
        raise FormatError(f"{tensor.source!r} has {tensor.shape[0] if tensor.shape else 0} rows, "
                          "not 3 equal q/k/v parts") from None
    return split.apply(tensor, tuple(f"{module}.{p}_proj.{leaf}" for p in "qkv"))
HEAD = re.compile(r"^classification_heads\.([^.]+)\.")


def as_dict(value) -> dict:
    """A config section whatever it was pickled as: dict, Namespace (a Stub) or None."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, pickle.Stub):
        return dict(vars(value))
    raise FormatError(f"unexpected config object {type(value).__name__} (expected a dict or an "
                      f"argparse.Namespace)")


def model_config(obj: dict) -> dict:
    """The model's config: cfg['model'] (fairseq >= 0.10, a dict or a Namespace) or the
    legacy top-level `args` Namespace."""
    cfg = as_dict(obj.get("cfg"))
    model = as_dict(cfg.get("model")) if cfg.get("model") is not None else {}
    return model or as_dict(obj.get("args"))


def find_checkpoint(path: Path) -> Path:
    if path.is_dir():
        for name in CHECKPOINT_NAMES:
            if (path / name).is_file():
                return path / name
        raise FormatError(f"no fairseq checkpoint here (looked for {', '.join(CHECKPOINT_NAMES)})",
                          path=str(path))
    return path


class FairseqImporter(Importer):
    name = "fairseq"
    description = "fairseq checkpoint (model.pt [+ dict.txt]); no fairseq needed, no pickle code run"

    def detect(self, path: Path) -> bool:
        # A fairseq model directory has its dictionary beside the checkpoint; a bare .pt
        # could be anything torch saved, so that needs --from fairseq.
        directory = path if path.is_dir() else path.parent
        return (directory / "dict.txt").is_file() and (
            any((path / n).is_file() for n in CHECKPOINT_NAMES) if path.is_dir() else path.suffix == ".pt")

    def load(self, path, *, model=None, view=None, config=None, head: str | None = None) -> Checkpoint:
        path = require_exists(Path(path))
        ckpt_path = find_checkpoint(path)
        obj, archive = torchzip.load_pickle(ckpt_path, allow=allowed())
        if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
            raise FormatError("not a fairseq checkpoint: no 'model' state dict at the top level",
                              path=str(ckpt_path))
        try:
            fairseq_cfg = model_config(obj)
        except FormatError as e:
            raise FormatError(str(e), path=str(ckpt_path)) from None
        state = obj["model"]
        odd = [k for k in state if not isinstance(k, str)]
        if odd:
            raise FormatError(f"the model state dict has {len(odd)} key(s) that are not names "
                              f"(a {type(odd[0]).__name__})", path=str(ckpt_path))
        if not all(isinstance(k, str) for k in fairseq_cfg):
            raise FormatError("the model config has keys that are not names", path=str(ckpt_path))
        heads = sorted({m.group(1) for name in state if (m := HEAD.match(name))})
        if head is not None and head not in heads:
            raise UsageError(f"{ckpt_path}: no classification head {head!r}; it has "
                             f"{', '.join(map(repr, heads)) or 'none'}")
        # One HF class per conversion: the LM head (the default), or one classification head.
        skipped = []
        raw = []
        for name, ref in state.items():
            if not isinstance(ref, torchzip.TensorRef):
                raise FormatError(f"model entry {name!r} is not a tensor", path=str(ckpt_path))
            m = HEAD.match(name)
            if (m and m.group(1) != head) or (head is not None and ".lm_head." in name):
                skipped.append(name)
                continue
            modern = HEAD.sub("classification_heads.head.", name)
            for pattern, replacement in LEGACY_NAMES:
                modern = pattern.sub(replacement, modern)
            tensor = archive.tensor(name, ref).with_spec(name=modern)
            fused = FUSED_QKV.match(modern)
            raw.extend(split_qkv(tensor, *fused.groups()) if fused else [tensor])

        view = view or "fairseq"
        family = FAMILIES.get(model) if model else self._family(fairseq_cfg, raw, view, ckpt_path)
        vc = family.view_configs.get(view)
        if config is None and vc is not None:
            config = vc.to_canonical({**fairseq_cfg, "__shapes__": {t.name: t.shape for t in raw},
                                      "__head__": head})
        ckpt = family.view(view).to_canonical(raw, config, str(path))
        ckpt.source.update({"format": self.name, "files": [ckpt_path.name],
                            "fairseq_arch": fairseq_cfg.get("arch") or fairseq_cfg.get("_name")})
        ckpt.source["skipped"] = ckpt.source.get("skipped", []) + skipped
        return ckpt

    @staticmethod
    def _family(fairseq_cfg: dict, raw, view: str, where: Path):
        """The family whose fairseq view claims this architecture (its ViewConfig.matches)."""
        arch = fairseq_cfg.get("arch") or fairseq_cfg.get("_name")
        shapes = {t.name: t.shape for t in raw}
        claims = [f for f in FAMILIES if view in f.views and f.view_configs[view].matches(fairseq_cfg, shapes)]
        if len(claims) != 1:
            known = sorted({a for f in FAMILIES if view in f.views for a in f.view_configs[view].names})
            raise UsageError(f"{where}: fairseq architecture {arch!r} is "
                             + ("claimed by " + ", ".join(f.name for f in claims) if claims else "not one irconv knows")
                             + f"; known: {', '.join(known)}; pass --model to choose")
        return claims[0]
