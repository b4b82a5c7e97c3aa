"""Sub-commands of ``recoup``, one module per part; each imports heavy libraries inside its commands."""
