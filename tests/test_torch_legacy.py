"""Pre-1.6 torch.save files (not zip: a few pickles in a row, then the raw storages), the
format of the 2019 releases (fairseq RoBERTa/XLM-R, early HF pytorch_model.bin)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from irconv.formats import torchzip  # noqa: E402
from irconv.ir import FormatError, UnsafeFileError  # noqa: E402
from conftest import assert_one_line_error, run_irconv  # noqa: E402
from zoo import assert_close, inputs_for, make_pt, run_pt  # noqa: E402


def legacy_save(obj, path):
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    with open(path, "rb") as f:
        assert not f.read(4).startswith(b"PK")
    return path


def test_every_dtype_and_view_reads_bit_exactly(tmp):
    base = torch.randn(6, 4)
    sd = {"f32": torch.randn(3, 4), "i64": torch.arange(5), "t": torch.randn(4, 3).t(),
          "f16": torch.randn(2).half(), "bf16": torch.randn(3).bfloat16(), "bool": torch.tensor([True, False]),
          "view": base[2:4], "scalar": torch.tensor(1.5), "empty": torch.zeros(0, 3)}
    sd["tied"] = sd["f32"]
    tensors = {t.name: t for t in torchzip.read(legacy_save(sd, tmp / "m.pt"))}
    assert sorted(tensors) == sorted(sd)
    for name, ref in sd.items():
        got = tensors[name].load()
        ref = ref.contiguous()
        assert got.shape == tuple(ref.shape), name
        assert got.reshape(-1).view(np.uint8).tobytes() == ref.reshape(-1).view(torch.uint8).numpy().tobytes(), name
    assert torchzip.shares_storage(tensors["f32"], tensors["tied"])


def test_hf_model_in_the_legacy_format_converts(tmp):
    model = make_pt("bert", "BertForPreTraining", seed=31)
    model.config.save_pretrained(tmp / "src")
    legacy_save(model.state_dict(), tmp / "src" / "pytorch_model.bin")
    run_irconv("convert", tmp / "src", tmp / "out", "--to", "pt", check=True)
    loaded, info = transformers.BertForPreTraining.from_pretrained(tmp / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    inputs = inputs_for("bert", model.config)
    assert_close(run_pt(model, inputs), run_pt(loaded.eval(), inputs), 0.0)


def test_hostile_legacy_pickle_is_refused(tmp):
    marker = tmp / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    path = tmp / "evil.pt"
    with open(path, "wb") as f:
        for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, {"w": Evil()}, []):
            pickle.dump(part, f, protocol=2)
    with pytest.raises(UnsafeFileError):
        torchzip.read(path)
    assert not marker.exists()
    proc = run_irconv("convert", path, tmp / "out", "--to", "pt", "--model", "bert")
    assert_one_line_error(proc, "evil.pt", "system")
    assert not marker.exists() and not (tmp / "out").exists()


def test_truncated_legacy_file(tmp):
    path = legacy_save({"a": torch.randn(100)}, tmp / "m.pt")
    data = path.read_bytes()
    path.write_bytes(data[:-50])
    with pytest.raises(FormatError, match="truncated"):
        torchzip.read(path)


def test_declared_lengths_are_checked_against_the_file_before_reading(tmp):
    """The legacy pickles are read straight from the file, whose read(n) allocates n bytes up
    front: a string declaring 2**40 bytes is refused from the bytes left, not allocated."""
    path = tmp / "long.pt"
    with open(path, "wb") as f:
        for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(part, f, protocol=2)
        f.write(b"\x80\x02X" + (1 << 31).to_bytes(4, "little") + b"short.")
    with pytest.raises(FormatError, match=r"long\.pt: corrupt or truncated pickle: it declares "
                                          r"2,147,483,648 bytes of data where only 6 are left"):
        torchzip.read(path)


def test_legacy_views_get_the_same_stride_checks(tmp):
    path = legacy_save({"big": torch.zeros(100).expand(10000, 100)}, tmp / "big.pt")
    with pytest.raises(FormatError, match=r"big\.pt: tensor 'big' .* repeats the elements"):
        torchzip.read(path)
