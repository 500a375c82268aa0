"""The sandbox's child side: stdlib-only modules run by ``run.py`` in a fresh ``python -I -S -B``
(never imported by the evaluating process)."""
