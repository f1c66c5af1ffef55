"""Sub-commands of the ``resnets`` CLI, one module each (see ``resnets.cli``)."""
