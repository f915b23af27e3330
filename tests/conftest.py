"""Shared test setup: Qt runs offscreen, and torch uses few threads on the 2-core CI machine."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
