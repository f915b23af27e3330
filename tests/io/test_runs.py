"""Run folders (workbench.io.runs): which config edits a trained run accepts."""

from workbench.config import default_config
from workbench.io.runs import EDITABLE_KEYS, config_differences


def test_config_differences_names_every_key_and_spares_the_safe_ones() -> None:
    trained = default_config()
    edited = trained.with_overrides(
        {
            "sde.kind": "ve",
            "model.hidden": 16,
            "loss.kind": "ssm",
            "train.steps": 999,
            "train.lr": 1e-4,
            "train.device": "auto",
            "sample.n": 7,
            "train.batch_size": 64,
        }
    )
    keys = [key for key, _, _ in config_differences(edited, trained)]
    # every sde key differs when the kind does (the VE SDE has its own keys)
    assert "sde.kind" in keys and "model.hidden" in keys and "loss.kind" in keys
    assert not any(k.startswith(("sample.", "train.")) for k in keys)
    on_resume = [key for key, _, _ in config_differences(edited, trained, resume=True)]
    assert sorted(on_resume) == sorted([*keys, "train.batch_size"])  # the optimiser's batches
    assert "steps" in EDITABLE_KEYS["train"] and EDITABLE_KEYS["sample"] == ("*",)
