"""Hardware-aware architecture search: a declarative space filtered by the chip (space.py),
candidates built as real networks (build.py), the evaluation ladder (ladder.py), the accuracy
predictor and its screen (predictor.py), Optuna studies and their workers (run.py), the final
report (report.py) and export (export.py). See docs/search.md."""
