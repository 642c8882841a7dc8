"""Test and benchmark support: tiny random-weight checkpoints and the model cards' reference loops."""
