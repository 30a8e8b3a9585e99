"""trainer.ema_decay: an exponential moving average of the weights used for validation and checkpoints."""

import pytest
import torch

from migt_train.errors import MigtError
from migt_train.training import load_checkpoint
from training_helpers import make_trainer, val_losses


def test_average_follows_the_ramped_decay(tmp_path):
    t = make_trainer(tmp_path, ema_decay=0.9)
    expected = [p.detach().clone() for p in t.params]
    for n in range(1, 30):
        with torch.no_grad():
            for p in t.params:
                p.add_(torch.randn_like(p))
        t.ema.update()
        d = min(0.9, (1 + n) / (10 + n))
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, t.params)]
    for e, mine in zip(expected, t.ema.average):
        assert torch.allclose(e, mine, atol=1e-6)


def test_validation_and_checkpoints_use_the_average(tmp_path):
    t = make_trainer(tmp_path, max_epochs=2, ema_decay=0.95)
    res = t.fit()
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    trained = dict(t.model.named_parameters())
    assert any(not torch.equal(last["model"][k], trained[k].detach()) for k in trained)  # really averaged
    for k, e in zip(trained, t.ema.average):  # "model" = the average, "train_model" = the raw weights
        assert torch.equal(last["model"][k], e)
        assert torch.equal(last["train_model"][k], trained[k].detach())
    # the recorded best val loss is the loss of the weights in best.pt
    t.model.load_state_dict(best["model"])
    t.ema = None  # evaluate the loaded weights as they are
    assert t.validate("val").loss == pytest.approx(res.best_val_loss, rel=1e-6)


def test_resume_with_average_equals_uninterrupted(tmp_path):
    full = make_trainer(tmp_path / "full", max_epochs=4, ema_decay=0.9).fit()
    make_trainer(tmp_path / "split", max_epochs=2, ema_decay=0.9).fit()
    resumed = make_trainer(tmp_path / "split", max_epochs=4, ema_decay=0.9, resume="auto").fit()
    assert val_losses(resumed) == pytest.approx(val_losses(full), abs=1e-6)


def test_resume_with_a_different_averaging_setting_is_one_error(tmp_path):
    make_trainer(tmp_path / "plain", max_epochs=1).fit()
    with pytest.raises(MigtError, match="last.pt: incompatible checkpoint .*ema_decay"):
        make_trainer(tmp_path / "plain", max_epochs=2, ema_decay=0.9, resume="auto").fit()


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True, "0.9"])
def test_bad_decay_names_the_key(tmp_path, bad):
    with pytest.raises(MigtError, match="trainer.ema_decay"):
        make_trainer(tmp_path, ema_decay=bad)
