"""Importers: results that live elsewhere become runs, external checkpoints and evals.

- `lm_eval`: lm-evaluation-harness output JSON (0.3 and 0.4+ formats), with N and D from a
  sizes table, never guessed;
- `mlflow`: runs of an MLflow tracking server or file store, through the mlflow client;
- `history`: a long table of (run, step, metric...) rows, e.g. a W&B `run.history()` export;
- `wandb`: W&B run folders on disk (offline and synced), read by the wandb SDK's own reader
  (`wandb_reader`);
- `checks`: the value checks every importer runs first; `apply`: one transaction per import.

Exports (CSV, parquet, JSON lines) are in `scaletrack.store.exporters`.
"""
