"""Convergence speed: how many iterations and seconds a model needs to reach a test accuracy.

``protocol`` holds the optimizer and schedule per model (the documented protocol);
``trainer`` runs one seeded training run and returns a ``schema.ConvergenceResult``. The
experiments (which models, data, targets and seeds) are a catalogue beside the speed
presets, in ``resnets.presets``; the statistics over seeds are the report's
(``report.tables.convergence_table``), which ``resnets train`` prints too.
"""
from .protocol import HyperParams, default_hyperparams
from .trainer import CURVE_KEYS, run, run_trial

__all__ = ["CURVE_KEYS", "HyperParams", "default_hyperparams", "run", "run_trial"]
