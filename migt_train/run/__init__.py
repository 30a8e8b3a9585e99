"""One run's lifecycle: run(cfg) (runner.py), the Hydra run guard, the run directory record, resume
rules, stop signals, a finished run loaded back (load_run), train() from Python, loggers."""
