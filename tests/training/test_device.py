"""Where training steps run (lmrec.training.device): the choice, its errors, and a fit on a GPU
where one is present."""

import pytest
import torch

from lmrec.errors import ConfigError
from lmrec.training import device
from lmrec.training.losses import chunked_softmax_ce


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: True)


def test_cpu_and_auto_without_a_gpu(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    assert device.choose("cpu", []) == "cpu"
    assert device.choose("auto", []) == "cpu"
    with pytest.raises(ConfigError, match=r"no CUDA GPU.*--device cpu"):
        device.choose("cuda", [])


def test_auto_takes_the_gpu_only_when_everything_in_the_fit_can(gpu):
    assert device.choose("auto", []) == "cuda"
    assert device.choose("auto", ["data augmentation"]) == "cpu"
    assert device.choose("cpu", []) == "cpu"
    with pytest.raises(ConfigError, match=r"data augmentation, DP-SGD train\(s\) on the CPU only"):
        device.choose("cuda", ["data augmentation", "DP-SGD"])
    assert "a CUDA GPU is present, but DP-SGD" in device.describe("cpu", "auto", ["DP-SGD"])
    assert device.describe("cpu", "cpu", []) == "cpu"


def test_cpu_batches_are_left_alone():
    batch = (torch.ones(2, 3), torch.zeros(2, 3))
    assert device.to_device(batch, torch.device("cpu")) is batch
    moved = device.to_device(batch, torch.device("meta"))
    assert all(t.device.type == "meta" for t in moved)


def test_chunked_softmax_stays_on_its_inputs_device():
    hidden = torch.randn(7, 4, device="meta", requires_grad=True)
    weights = torch.randn(5, 4, device="meta", requires_grad=True)
    loss = chunked_softmax_ce(hidden, weights, torch.tensor([0, 1, 2, 3, 4, 0, 1], device="meta"), chunk=3)
    loss.backward()
    assert hidden.grad.device.type == weights.grad.device.type == "meta"


def test_pipeline_refuses_cuda_for_what_trains_on_the_cpu_only(gpu, tmp_path):
    from lmrec.config import RunConfig
    from lmrec.pipeline import train_run
    from tests.conftest import make_events

    make_events().write_csv(tmp_path / "events.csv")
    config = RunConfig.model_validate({"runtime": {"device": "cuda", "progress": False}})
    with pytest.raises(ConfigError, match="model 'ease' train"):
        train_run(tmp_path / "events.csv", "ease", tmp_path / "run", config, log=lambda *_: None)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch on this machine")
def test_sasrec_trains_on_a_gpu_and_serves_from_the_cpu(tmp_path):
    from lmrec.config import RunConfig
    from lmrec.pipeline import train_run
    from lmrec.runs import Run
    from tests.conftest import make_events

    make_events().write_csv(tmp_path / "events.csv")
    lines = []
    config = RunConfig.model_validate({"runtime": {"device": "auto", "progress": False},
                                       "model": {"d_model": 16, "max_len": 10},
                                       "training": {"epochs": 3, "time_budget": 2}})
    result = train_run(tmp_path / "events.csv", "sasrec", tmp_path / "run", config, log=lines.append)
    assert any(line.startswith("device: cuda") for line in lines)
    assert result.summary["overall"]["ndcg@10"] >= 0
    model = Run.open(tmp_path / "run").load_model()
    assert all(p.device.type == "cpu" for p in model.net.parameters())
