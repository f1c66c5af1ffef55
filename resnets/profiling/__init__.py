"""Where a step's time goes, per operator and per layer.

``measure`` profiles a case with ``torch.profiler`` (and says how, in ``Profile.method``);
``render`` turns a ``Profile`` into files and a terminal summary, without torch.
"""
